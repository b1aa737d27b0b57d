"""Config handling behind ``tools/train.py`` and ``tools/test.py``.

The tools stay as thin as mmdet's: they parse arguments and call
:func:`load_config` then :func:`build_runner`. Everything a CPU-only or
distributed user needs beyond mmdet's tools lives here:

* ``--launcher pytorch`` on a machine without CUDA switches the process
  group backend to ``gloo`` (the configs say ``nccl``, which needs GPUs),
  joins the group itself and wraps the model in DDP without ``device_ids``
  (mmengine 0.10.7 assumes CUDA for both);
* ``--amp`` turns on float16 mixed precision (CUDA only: a clear error on CPU);
* ``--resume`` and ``load_from`` go through balancedet's allow-listed
  ``weights_only`` checkpoint loader (:mod:`balancedet.engine.safe_checkpoint`).
"""
import os
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from balancedet.engine import safe_checkpoint  # noqa: F401  (installs the safe loader)


def load_config(config, *, work_dir=None, cfg_options=None, launcher='none', amp=False,
                auto_scale_lr=False, resume=None, checkpoint=None):
    """Read ``config`` and apply the command-line options of the tools.

    Args:
        config (str): Path of the config file.
        work_dir (str, optional): Overrides ``cfg.work_dir``; by default
            ``work_dirs/<config name>``.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        amp (bool): Mixed precision training.
        auto_scale_lr (bool): Scale the LR by the total batch size.
        resume (str, optional): ``'auto'`` resumes from the latest checkpoint
            of the work dir; a path resumes from that checkpoint.
        checkpoint (str, optional): Weights to evaluate (test tool).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])

    if launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
        # mmengine passes device_ids=[LOCAL_RANK] to DDP, which CPU modules refuse.
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper

    if amp:
        if not torch.cuda.is_available():
            raise ValueError('--amp needs a CUDA device (mmengine\'s AmpOptimWrapper refuses the '
                             'CPU); drop --amp to train in float32 on the CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if auto_scale_lr:
        scale = cfg.get('auto_scale_lr')
        if not scale or 'base_batch_size' not in scale:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict(enable=False, '
                             'base_batch_size=N)` in the config')
        cfg.auto_scale_lr.enable = True

    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        if not osp.isfile(resume):
            raise FileNotFoundError(f'--resume checkpoint {resume!r} does not exist')
        cfg.resume, cfg.load_from = True, resume

    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
        cfg.load_from = checkpoint
    return cfg


def _init_cpu_process_group(cfg):
    """Join the torchrun process group on a machine without CUDA.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device``
    unconditionally, which a CPU build of torch cannot do. The runner skips
    its own initialisation when a process group already exists.
    """
    import torch.distributed as dist
    if not dist.is_initialized():
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
        dist.init_process_group(backend=backend, init_method='env://')


def build_runner(cfg):
    """Build mmengine's runner (or ``cfg.runner_type``) from a loaded config."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = '0'
    if cfg.get('launcher', 'none') == 'pytorch' and not torch.cuda.is_available():
        _init_cpu_process_group(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
