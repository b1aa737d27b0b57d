"""Test helper imported by configs of tests/test_distributed.py (custom_imports)."""
import json
import os.path as osp

import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class WeightDigestHook(Hook):
    """Each rank writes its iteration count and a float64 digest of its parameters."""

    def after_run(self, runner):
        rank, world_size = get_dist_info()
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # parameters only: BN running statistics are per-process buffers in
        # mmdet's DDP setting (broadcast_buffers=False), as in any mmdet run
        digest = {k: float(v.detach().double().sum()) for k, v in model.named_parameters()}
        with open(osp.join(runner.work_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(dict(rank=rank, world_size=world_size, iter=runner.iter,
                           backend=torch.distributed.get_backend()
                           if torch.distributed.is_initialized() else None,
                           digest=digest), f)
