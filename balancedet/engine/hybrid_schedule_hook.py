"""Hybrid training schedule of Peng et al. (CVPR 2020, section 4.2, "20+7").

Junran Peng et al., "Large-scale Object Detection in the Wild from Imbalanced
Multi-Labels", CVPR 2020: train with natural sampling (``lam = 0`` of eq. 8,
i.e. the config's ordinary sampler), then fine-tune with soft-balance
sampling (eqs. 6-8) for the last epochs, restarting the learning-rate
schedule. :class:`HybridScheduleHook` does this inside one run:

* at the start of epoch ``switch_epoch`` (0-based, i.e. after
  ``switch_epoch`` epochs of phase 1) the train dataloader is rebuilt around
  the *same* dataset object with the phase-2 ``sampler`` config (the
  dataloader's other settings, batch sampler included, are kept);
* if ``param_scheduler`` is given, every parameter group's ``lr`` is reset to
  its ``initial_lr`` (the optimizer config's value) and the phase-2
  schedulers are built; their ``begin``/``end`` count from the switch (epoch
  or iteration 0 of phase 2). ``None`` keeps the phase-1 schedulers running;
* the switch is logged, stored in every checkpoint's ``meta`` and replayed by
  ``--resume``: a checkpoint saved after the switch resumes with the phase-2
  sampler and schedulers (whose saved state is restored by the runner), one
  saved before it switches at ``switch_epoch`` as usual.

Only epoch-based training loops are supported (checked before training).
The loop's ``max_iters`` (used for the ETA in the logs) stays the phase-1
figure when a phase-2 epoch has another length; the epoch count is exact.
The hook uses only mmengine's public API, as mmyolo's mode-switch hooks do.
"""
from __future__ import annotations

import copy

from mmdet.registry import DATA_SAMPLERS, HOOKS
from mmengine.hooks import Hook

_META_KEY = 'hybrid_schedule'


@HOOKS.register_module()
class HybridScheduleHook(Hook):
    """Switch sampler (and restart the LR schedule) at a given epoch.

    Args:
        switch_epoch (int): first epoch (0-based) of phase 2; >= 1.
        sampler (dict): phase-2 sampler config, e.g.
            ``dict(type='SoftBalanceSampler', lam=0.5)``.
        param_scheduler (dict | list[dict], optional): phase-2 parameter
            scheduler configs with ``begin``/``end`` relative to the switch.
            ``None`` keeps the phase-1 schedulers.
    """

    # Run before DistSamplerSeedHook (NORMAL) so it seeds the new sampler too.
    priority = 'ABOVE_NORMAL'

    def __init__(self, switch_epoch: int, sampler: dict,
                 param_scheduler: list | None = None) -> None:
        if isinstance(switch_epoch, bool) or not isinstance(switch_epoch, int):
            raise TypeError(f'switch_epoch must be an int, got {type(switch_epoch).__name__}')
        if switch_epoch < 1:
            raise ValueError(f'switch_epoch must be >= 1 (the first epoch of phase 2), got '
                             f'{switch_epoch}; to sample with the phase-2 sampler from the start '
                             'put it in train_dataloader.sampler instead')
        if not isinstance(sampler, dict) or 'type' not in sampler:
            raise TypeError(f"sampler must be a config dict with a 'type', got {sampler!r}")
        if isinstance(param_scheduler, dict):
            param_scheduler = [param_scheduler]
        if param_scheduler is not None:
            if not isinstance(param_scheduler, (list, tuple)) or not all(
                    isinstance(c, dict) and 'type' in c for c in param_scheduler):
                raise TypeError('param_scheduler must be None, a scheduler config dict or a list '
                                f"of them (each with a 'type'), got {param_scheduler!r}")
            param_scheduler = [dict(c) for c in param_scheduler]
        self.switch_epoch = switch_epoch
        self.sampler_cfg = dict(sampler)
        self.param_scheduler_cfg = param_scheduler
        self.switched = False

    # -- hook points ---------------------------------------------------------
    def before_train(self, runner) -> None:
        max_epochs = getattr(runner.train_loop, 'max_epochs', None)
        if max_epochs is None or not hasattr(runner.train_loop, 'run_epoch'):
            raise TypeError('HybridScheduleHook needs an epoch-based train loop '
                            "(train_cfg=dict(type='EpochBasedTrainLoop', ...))")
        if self.switch_epoch >= max_epochs:
            raise ValueError(f'HybridScheduleHook: switch_epoch={self.switch_epoch} is not below '
                             f'max_epochs={max_epochs}, so phase 2 would never run; lower '
                             'switch_epoch or raise train_cfg.max_epochs')
        # a class-based phase-2 sampler over ClassBalancedDataset: refuse now, not at the switch
        from balancedet.datasets.samplers.class_index import ClassIndexSamplerBase
        from balancedet.datasets.samplers.wrapper_check import check_no_rebalancing_wrapper
        cls = DATA_SAMPLERS.get(self.sampler_cfg['type'])
        if isinstance(cls, type) and issubclass(cls, ClassIndexSamplerBase):
            check_no_rebalancing_wrapper(runner.train_loop.dataloader.dataset, cls.__name__)
        if self.param_scheduler_cfg is not None and isinstance(runner.param_schedulers, dict):
            raise TypeError('HybridScheduleHook supports a single optimizer (a list of '
                            'param_schedulers), not a dict of them')

    def before_train_epoch(self, runner) -> None:
        if not self.switched and runner.epoch >= self.switch_epoch:
            self._switch(runner, restart_lr=True, epoch=runner.epoch, it=runner.iter)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[_META_KEY] = dict(
            switched=self.switched, switch_epoch=self.switch_epoch)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get(_META_KEY)
        if not runner.cfg.get('resume', False) or not state or not state.get('switched'):
            return
        # Resuming inside phase 2. The runner restores optimizer and scheduler
        # states right after this hook, into the objects we install here.
        self._switch(runner, restart_lr=False, epoch=checkpoint['meta']['epoch'],
                     it=checkpoint['meta']['iter'])

    # -- the switch ------------------------------------------------------------
    def _switch(self, runner, restart_lr: bool, epoch: int, it: int) -> None:
        loop = runner.train_loop
        base_cfg = runner.cfg.get('train_dataloader')
        if not isinstance(base_cfg, dict):
            raise TypeError('HybridScheduleHook rebuilds the train dataloader from its config; '
                            'build the runner from a config with a train_dataloader dict')
        loader_cfg = copy.deepcopy({k: v for k, v in base_cfg.items() if k != 'dataset'})
        loader_cfg.update(dataset=loop.dataloader.dataset, sampler=copy.deepcopy(self.sampler_cfg))
        new = runner.build_dataloader(
            loader_cfg, seed=runner.seed,
            diff_rank_seed=runner.cfg.get('randomness', {}).get('diff_rank_seed', False))
        if hasattr(new.sampler, 'set_epoch'):
            new.sampler.set_epoch(epoch)
        loop.dataloader = new

        msg = (f'HybridScheduleHook: phase 2 from epoch {epoch} (iter {it}): sampler '
               f'{self.sampler_cfg}, {len(new)} iterations per epoch')
        if self.param_scheduler_cfg is not None:
            if restart_lr:
                for group in runner.optim_wrapper.param_groups:
                    group['lr'] = group.get('initial_lr', group['lr'])
            runner.param_schedulers = runner.build_param_scheduler(
                copy.deepcopy(self.param_scheduler_cfg))
            msg += (f'; LR schedule {"restarted" if restart_lr else "resumed"}: '
                    f'{self.param_scheduler_cfg}')
        self.switched = True
        runner.message_hub.update_info('hybrid_schedule_phase', 2)
        runner.logger.info(msg)
