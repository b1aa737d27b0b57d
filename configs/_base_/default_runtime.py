# Runtime shared by every balancedet config: mmdet's runtime, plus the
# toolbox's components and a log interval that suits short CPU runs.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['balancedet'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)

# `nccl` needs GPUs; balancedet's train/test entry points switch to `gloo`
# when CUDA is unavailable, so the same config runs under torchrun on CPU.
env_cfg = dict(dist_cfg=dict(backend='nccl'))

# Exact resume (RNGStateHook) is registered by tools/train.py's runner for
# every config, so no hook list here can drop it.

# A fixed seed makes the demo's and the ablations' numbers reproducible
# (override with --cfg-options randomness.seed=N).
randomness = dict(seed=0)
