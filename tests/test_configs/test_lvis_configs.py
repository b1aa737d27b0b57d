"""configs/lvis/*: the repeat-factor and Seesaw rows are mmdet's configs key by key (but for
the dataset / metric type names), and every row is a short override of its shared base."""
import functools
import glob
import os.path as osp

import pytest
from conftest import REPO
from mmengine.config import Config
from test_coco_libra_configs import flatten, resolve_mmdet

ROOT = str(REPO)
LVIS = sorted(glob.glob(osp.join(ROOT, 'configs', 'lvis', '*.py')))
TYPE_NAMES = {'LVISV1Dataset': 'BalancedLVISDataset', 'LVISMetric': 'BalancedLVISMetric'}


@functools.lru_cache(maxsize=None)
def resolved(path):
    return flatten(Config.fromfile(path).to_dict())


def lvis(name):
    return osp.join(ROOT, 'configs', 'lvis', name)


@pytest.mark.parametrize('ours, theirs', [
    ('mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py',
     'lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py'),
    ('mask-rcnn_r50_fpn_seesaw-loss_sample1e-3-ms-2x_lvis-v1.py',
     'seesaw_loss/mask-rcnn_r50_fpn_seesaw-loss_sample1e-3-ms-2x_lvis-v1.py')])
def test_baselines_resolve_to_mmdet(ours, theirs, tmp_path):
    # `_scope_` marks dicts that came from an mmdet:: base; the default scope is mmdet anyway
    mine = {k: v for k, v in flatten(Config.fromfile(lvis(ours)).to_dict()).items()
            if not k.endswith('._scope_')}
    ref = {k: v for k, v in flatten(resolve_mmdet(theirs, tmp_path)).items()
           if not k.endswith('._scope_')}
    extra = {k for k in mine if k.startswith('custom_imports.')}
    assert {mine[k] for k in extra} == {'balancedet', False}
    assert sorted(set(mine) - extra) == sorted(ref), set(mine) ^ set(ref)
    diffs = [(k, v, mine[k]) for k, v in ref.items()
             if mine[k] != (TYPE_NAMES.get(v, v) if isinstance(v, str) else v)]
    assert not diffs


def test_rows_present_and_short():
    names = {osp.basename(c) for c in LVIS}
    for m in ('mask', 'faster'):
        rows = [f'{m}-rcnn_r50_fpn_{r}_lvis-v1.py' for r in (
            'random-ms-1x', 'sample1e-3_ms-1x', 'class-aware-sampler_ms-1x',
            'seesaw-loss_sample1e-3-ms-2x', 'hybrid-9e-sb-lam0p5_ms-1x', 'icip-balanced_ms-1x')]
        rows += [f'{m}-rcnn_r50_fpn_sb-lam{lam}_ms-1x_lvis-v1.py'
                 for lam in ('0p3', '0p5', '0p7', '1', '1p5')]
        assert set(rows) <= names
    assert len(names) == 22
    for cfg in LVIS:
        with open(cfg) as f:
            lines = [ln for ln in f if ln.strip()]
        assert len(lines) <= 15, cfg


@pytest.mark.parametrize('cfg_file', LVIS, ids=osp.basename)
def test_row_changes_only_its_technique(cfg_file):
    name = osp.basename(cfg_file)
    base = 'mask' if name.startswith('mask') else 'faster'
    base = resolved(lvis(f'{base}-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'))
    cfg = Config.fromfile(cfg_file)
    mine = flatten(cfg.to_dict())
    changed = {k.split('.')[0] for k in set(base) | set(mine) if base.get(k) != mine.get(k)}
    if 'sb-lam' in name and 'hybrid' not in name:
        assert changed == {'train_dataloader'} and cfg.train_dataloader.sampler == dict(
            type='SoftBalanceSampler',
            lam=float(name.split('sb-lam')[1].split('_')[0].replace('p', '.')))
    elif 'hybrid' in name:
        assert changed == {'custom_hooks', 'param_scheduler'}
    elif 'icip' in name:
        assert changed == {'train_dataloader'}
        assert cfg.train_dataloader.sampler.type == 'ICIPStrategySampler'
    elif 'class-aware' in name:
        assert changed == {'train_dataloader'}
        assert cfg.train_dataloader.sampler.type == 'ClassAwareSampler'
    elif 'seesaw' in name:
        assert changed == {'train_dataloader', 'model', 'train_cfg', 'param_scheduler'}
    elif 'sample1e-3' in name:
        assert changed == {'train_dataloader'}
        assert cfg.train_dataloader.dataset.type == 'ClassBalancedDataset'
        assert cfg.train_dataloader.dataset.oversample_thr == 1e-3
    else:
        assert changed == set()


def _epoch_lrs(scheduler_cfgs, epochs, opt):
    from mmengine.registry import PARAM_SCHEDULERS
    schedulers = [PARAM_SCHEDULERS.build(dict(c, optimizer=opt)) for c in scheduler_cfgs
                  if c.get('by_epoch', True)]
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]['lr'])
        for s in schedulers:
            s.step()
    return lrs


@pytest.mark.parametrize('model', ['mask', 'faster'])
def test_hybrid_keeps_the_1x_learning_rates(model):
    """Epoch LRs of the hybrid row (phase 1, then the hook's restart) = the 1x schedule's."""
    import mmengine.optim  # noqa: F401  (registers the schedulers)
    import torch
    base = Config.fromfile(lvis(f'{model}-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'))
    cfg = Config.fromfile(lvis(f'{model}-rcnn_r50_fpn_hybrid-9e-sb-lam0p5_ms-1x_lvis-v1.py'))
    hook = [h for h in cfg.custom_hooks if h['type'] == 'HybridScheduleHook'][0]
    lr = base.optim_wrapper.optimizer.lr

    def opt():
        return torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=lr)

    ref = _epoch_lrs(base.param_scheduler, base.train_cfg.max_epochs, opt())
    o = opt()
    got = _epoch_lrs(cfg.param_scheduler, hook['switch_epoch'], o)
    for g in o.param_groups:  # what the hook does at the switch
        g['lr'] = g['initial_lr']
    got += _epoch_lrs(hook['param_scheduler'], cfg.train_cfg.max_epochs - hook['switch_epoch'], o)
    assert got == pytest.approx(ref, rel=1e-9)
    assert hook['sampler'] == dict(type='SoftBalanceSampler', lam=0.5)
