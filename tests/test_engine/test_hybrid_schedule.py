"""HybridScheduleHook: sampler switch, LR restart, logging, resume on both sides."""
import copy
import glob
import itertools
import os.path as osp
from typing import ClassVar

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, HOOKS, MODELS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import balancedet  # noqa: F401
from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler
from balancedet.engine.hybrid_schedule_hook import HybridScheduleHook

N_IMAGES = 44          # 40 of class 0, 4 of class 1
BATCH = 4
SWITCH, MAX_EPOCHS = 3, 5
PHASE2_LEN = 24        # draws per phase-2 epoch
LR = 0.1
_RUN_IDS = itertools.count()


@DATASETS.register_module(force=True)
class HybridToyDataset(Dataset):
    metainfo: ClassVar[dict] = dict(classes=('common', 'rare'))

    def __init__(self, **kwargs):
        self.labels = [[0]] * 40 + [[1]] * 4

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, i):
        return self.labels[i]

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([(i + 1) / 50.0]), idx=i)


@MODELS.register_module(force=True)
class HybridToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.5]))

    def forward(self, inputs, idx=None, mode='tensor'):
        x = torch.stack(inputs).float()
        loss = ((self.w * x - 1.0) ** 2).mean()
        return dict(loss=loss)


@HOOKS.register_module(force=True)
class HybridRecorderHook(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.records = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        # the LR this iteration trains with (schedulers step after the iteration)
        self.records.append((runner.epoch, batch_idx, runner.optim_wrapper.get_lr()['lr'][0],
                             tuple(data_batch['idx'])))


def make_cfg(work_dir, **hook_overrides):
    hook = dict(type='HybridScheduleHook', switch_epoch=SWITCH,
                sampler=dict(type='SoftBalanceSampler', lam=1.0,
                             num_samples_per_epoch=PHASE2_LEN),
                param_scheduler=[
                    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
                    dict(type='MultiStepLR', by_epoch=True, begin=0, end=2, milestones=[1],
                         gamma=0.1)])
    hook.update(hook_overrides)
    return Config(dict(
        default_scope='mmdet',
        model=dict(type='HybridToyModel'),
        work_dir=str(work_dir),
        train_dataloader=dict(batch_size=BATCH, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              dataset=dict(type='HybridToyDataset')),
        train_cfg=dict(by_epoch=True, max_epochs=MAX_EPOCHS),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=LR, momentum=0.9)),
        param_scheduler=[dict(type='MultiStepLR', by_epoch=True, milestones=[2], gamma=0.1)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook, dict(type='HybridRecorderHook')],
        randomness=dict(seed=7),
        experiment_name=f'hybrid_{osp.basename(str(work_dir))}_{next(_RUN_IDS)}',
        log_level='INFO',
    ))


def run(cfg, resume_from=None):
    cfg = copy.deepcopy(cfg)
    if resume_from:
        cfg.load_from, cfg.resume = resume_from, True
    runner = Runner.from_cfg(cfg)
    runner.train()
    rec = next(h for h in runner.hooks if isinstance(h, HybridRecorderHook))
    return runner, rec.records


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('hybrid_full')
    runner, records = run(make_cfg(work))
    return work, runner, records


def read_log(work_dir):
    with open(glob.glob(osp.join(work_dir, '*', '*.log'))[0]) as f:
        return f.read()


def expected_lr(epoch, it):
    """LR of the schedule written out by hand."""
    if epoch < SWITCH:  # phase 1: MultiStepLR(milestones=[2]) from LR
        return LR * (0.1 if epoch >= 2 else 1.0)
    e2 = epoch - SWITCH  # phase 2 restarts from LR
    warm = 0.5 + 0.5 * min(it, 2) / 2 if e2 == 0 else 1.0
    return LR * warm * (0.1 if e2 >= 1 else 1.0)


def test_switch_sampler_lr_and_log(full_run):
    work, runner, records = full_run
    per_epoch = {}
    for epoch, it, lr, idx in records:
        assert lr == pytest.approx(expected_lr(epoch, it)), (epoch, it)
        per_epoch.setdefault(epoch, []).extend(idx)
    assert sorted(per_epoch) == list(range(MAX_EPOCHS))
    for epoch in range(SWITCH):  # natural: every image once
        assert sorted(per_epoch[epoch]) == list(range(N_IMAGES))
    # phase 2: exactly the sequence of an independently built SoftBalanceSampler
    ref = SoftBalanceSampler(HybridToyDataset(), lam=1.0, num_samples_per_epoch=PHASE2_LEN,
                             seed=7)
    for epoch in range(SWITCH, MAX_EPOCHS):
        ref.set_epoch(epoch)
        assert per_epoch[epoch] == list(ref)
        rare = np.mean([i >= 40 for i in per_epoch[epoch]])
        assert rare > 0.25  # vs 4/44 under natural sampling
    # phase 2 ran its own epoch length (private loop state is not touched, so the loop's
    # max_iters -- only the ETA of the logs -- keeps the phase-1 figure)
    assert runner.iter == SWITCH * N_IMAGES // BATCH + 2 * PHASE2_LEN // BATCH
    log = read_log(work)
    assert log.count('HybridScheduleHook: phase 2 from epoch 3') == 1
    assert 'LR schedule restarted' in log


@pytest.mark.parametrize('ckpt_epoch', [SWITCH - 1, SWITCH, SWITCH + 1])
def test_resume_on_either_side_of_switch(full_run, tmp_path, ckpt_epoch):
    work, full_runner, full_records = full_run
    ckpt = osp.join(work, f'epoch_{ckpt_epoch}.pth')
    runner, records = run(make_cfg(tmp_path / 'resumed'), resume_from=ckpt)
    expected = [r for r in full_records if r[0] >= ckpt_epoch]
    assert [r[:2] + r[3:] for r in records] == [r[:2] + r[3:] for r in expected]
    for got, ref in zip(records, expected):
        assert got[2] == pytest.approx(ref[2])
    torch.testing.assert_close(runner.model.w.detach(), full_runner.model.w.detach())
    log = read_log(tmp_path / 'resumed')
    if ckpt_epoch > SWITCH:
        assert 'LR schedule resumed' in log
    else:
        assert 'LR schedule restarted' in log


def test_no_scheduler_restart_keeps_phase1_schedule(tmp_path):
    _, records = run(make_cfg(tmp_path, param_scheduler=None))
    for epoch, _, lr, _ in records:
        assert lr == pytest.approx(LR * (0.1 if epoch >= 2 else 1.0))


def test_bad_config():
    with pytest.raises(ValueError, match='switch_epoch must be >= 1'):
        HybridScheduleHook(switch_epoch=0, sampler=dict(type='SoftBalanceSampler'))
    with pytest.raises(TypeError, match='switch_epoch must be an int'):
        HybridScheduleHook(switch_epoch=2.0, sampler=dict(type='SoftBalanceSampler'))
    with pytest.raises(TypeError, match="sampler must be a config dict with a 'type'"):
        HybridScheduleHook(switch_epoch=2, sampler='SoftBalanceSampler')
    with pytest.raises(TypeError, match='param_scheduler must be None'):
        HybridScheduleHook(switch_epoch=2, sampler=dict(type='SoftBalanceSampler'),
                           param_scheduler=[dict(gamma=0.1)])


def test_switch_after_last_epoch_rejected(tmp_path):
    runner = Runner.from_cfg(make_cfg(tmp_path, switch_epoch=MAX_EPOCHS))
    with pytest.raises(ValueError, match='switch_epoch=5 is not below max_epochs=5'):
        runner.train()
