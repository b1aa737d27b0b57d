"""configs/libra_rcnn/*_coco.py: the full Libra config is mmdet's, key by key, and its
IoU-balanced sampler draws like mmdet's sampler does after its first call."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.task_modules.samplers import IoUBalancedNegSampler
from mmengine.config import Config

import balancedet  # noqa: F401
from balancedet.models.task_modules.iou_balanced_sampler import BalancedIoUSampler

ROOT = str(REPO)
LIBRA = osp.join(ROOT, 'configs', 'libra_rcnn', 'libra-faster-rcnn_r50_fpn_1x_coco.py')
COCO_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'libra_rcnn', '*_coco.py')))

# component type names: mmdet's -> balancedet's
TYPE_NAMES = {'BFP': 'BalancedFeaturePyramid', 'BalancedL1Loss': 'BalancedL1LossV2',
              'CocoDataset': 'BalancedCocoDataset'}
SAMPLER = 'model.train_cfg.rcnn.sampler'


def flatten(obj, prefix=''):
    """Dotted key -> leaf value (lists by index)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(flatten(v, f'{prefix}.{k}' if prefix else str(k)))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, v in enumerate(obj):
            out.update(flatten(v, f'{prefix}.{i}'))
        return out if obj else {prefix: type(obj)()}
    return {prefix: obj}


def test_every_ablation_row_is_present():
    names = {osp.basename(c) for c in COCO_CONFIGS}
    assert names == {
        'faster-rcnn_r50_fpn_1x_coco.py', 'faster-rcnn_r50_fpn_iou-balanced-sampler_1x_coco.py',
        'faster-rcnn_r50_fpn-bfp_1x_coco.py', 'faster-rcnn_r50_fpn_balanced-l1_1x_coco.py',
        'libra-faster-rcnn_r50_fpn_1x_coco.py',
        'libra-faster-rcnn_r50_fpn_half-bbox-weight_1x_coco.py'}


def resolve_mmdet(name, tmp_path):
    """mmdet's config resolved the way ours are (through an ``mmdet::`` base)."""
    path = tmp_path / 'ref.py'
    path.write_text(f"_base_ = 'mmdet::{name}'\n")
    return Config.fromfile(str(path)).to_dict()


def test_libra_config_resolves_to_mmdet_key_by_key(tmp_path):
    ours = flatten(Config.fromfile(LIBRA).to_dict())
    ref = flatten(resolve_mmdet('libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py', tmp_path))
    assert ours.pop('custom_imports.imports.0') == 'balancedet'
    assert ours.pop('custom_imports.allow_failed_imports') is False
    # the sampler: mmdet's CombinedSampler(InstanceBalancedPosSampler, IoUBalancedNegSampler)
    # is one BalancedIoUSampler with pos_balance=True
    ref_s = {k[len(SAMPLER) + 1:]: ref.pop(k) for k in list(ref) if k.startswith(SAMPLER + '.')}
    our_s = {k[len(SAMPLER) + 1:]: ours.pop(k) for k in list(ours) if k.startswith(SAMPLER + '.')}
    assert ref_s == {'type': 'CombinedSampler', 'num': 512, 'pos_fraction': 0.25,
                     'add_gt_as_proposals': True, 'pos_sampler.type': 'InstanceBalancedPosSampler',
                     'neg_sampler.type': 'IoUBalancedNegSampler', 'neg_sampler.floor_thr': -1,
                     'neg_sampler.floor_fraction': 0, 'neg_sampler.num_bins': 3}
    assert our_s == {'type': 'BalancedIoUSampler', 'num': ref_s['num'],
                     'pos_fraction': ref_s['pos_fraction'],
                     'add_gt_as_proposals': ref_s['add_gt_as_proposals'], 'pos_balance': True,
                     # mmdet's floor_thr=-1 is floor_thr=0 from its second call on (below)
                     'floor_thr': 0, 'floor_fraction': ref_s['neg_sampler.floor_fraction'],
                     'num_bins': ref_s['neg_sampler.num_bins']}
    assert sorted(ours) == sorted(ref), set(ours) ^ set(ref)
    diffs = []
    for key, value in ref.items():
        expected = TYPE_NAMES.get(value, value) if isinstance(value, str) else value
        if ours[key] != expected:
            diffs.append((key, ref[key], ours[key]))
    assert not diffs
    # every swapped name is a real swap that happened
    swapped = {ref[k] for k in ref if isinstance(ref[k], str) and ref[k] in TYPE_NAMES}
    assert swapped == set(TYPE_NAMES)


@pytest.mark.parametrize('cfg_file', COCO_CONFIGS, ids=osp.basename)
def test_coco_rows_differ_from_the_baseline_only_in_their_component(cfg_file):
    base = flatten(Config.fromfile(osp.join(osp.dirname(LIBRA),
                                            'faster-rcnn_r50_fpn_1x_coco.py')).to_dict())
    ours = flatten(Config.fromfile(cfg_file).to_dict())
    changed = {k.split('.')[1] if k.startswith('model.') else k.split('.')[0]
               for k in set(base) | set(ours) if base.get(k, None) != ours.get(k, None)}
    name = osp.basename(cfg_file)
    allowed = {'faster-rcnn_r50_fpn_1x_coco.py': set(),
               'faster-rcnn_r50_fpn_iou-balanced-sampler_1x_coco.py': {'train_cfg'},
               'faster-rcnn_r50_fpn-bfp_1x_coco.py': {'neck'},
               'faster-rcnn_r50_fpn_balanced-l1_1x_coco.py': {'roi_head'},
               'libra-faster-rcnn_r50_fpn_1x_coco.py': {'neck', 'roi_head', 'train_cfg'}}
    if name in allowed:
        assert changed == allowed[name]
    else:  # the half-weight row wraps the whole model
        assert ours['model.type'] == 'WeightedLossDetector'
        assert ours['model.loss_weights.loss_bbox'] == 0.5


def _typical_image(gen, num_zero=1500, num_low=700, num_pos=40):
    """IoUs of one image's proposals as the R-CNN stage sees them: most negatives have
    IoU 0 with every ground truth, some overlap a little (< 0.5), a few are positives."""
    ious = torch.cat([torch.zeros(num_zero), 0.5 * torch.rand(num_low, generator=gen) * 0.999,
                      0.5 + 0.5 * torch.rand(num_pos, generator=gen)])
    gt = torch.zeros(len(ious), dtype=torch.long)
    gt[-num_pos:] = 1
    labels = torch.where(gt > 0, torch.zeros_like(gt), torch.full_like(gt, -1))
    return AssignResult(1, gt, ious, labels=labels)


def _zero_and_bins(inds, ious, upper):
    """(IoU == 0 count, counts in the 3 equal bins of (0, upper])."""
    sel = ious[inds]
    zero = int((sel == 0).sum())
    b = torch.bucketize(sel[sel > 0], torch.tensor([upper / 3, 2 * upper / 3]), right=True)
    return zero, torch.bincount(b, minlength=3).tolist()


@pytest.mark.parametrize('num_low', [700, 100])
def test_floor_thr_zero_draws_like_mmdets_steady_state(num_low):
    """mmdet's sampler after its first call vs BalancedIoUSampler(floor_thr=0), the
    setting of the COCO config: the same distribution over the IoU-0 set and the bins."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    num_neg = 384
    mmdet_s = IoUBalancedNegSampler(num=512, pos_fraction=0.25, floor_thr=-1,
                                    floor_fraction=0, num_bins=3)
    mmdet_s._sample_neg(_typical_image(gen, num_low=num_low), num_neg)  # the first call
    assert mmdet_s.floor_thr == 0  # mmdet's rewrite, the reason for the config's setting
    ours = BalancedIoUSampler(num=512, pos_fraction=0.25, floor_thr=0, floor_fraction=0,
                              num_bins=3)
    stateless = BalancedIoUSampler(num=512, pos_fraction=0.25, floor_thr=-1,
                                   floor_fraction=0, num_bins=3)
    totals = {'mmdet': [0, [0, 0, 0]], 'ours': [0, [0, 0, 0]], 'stateless': [0, [0, 0, 0]]}
    for _ in range(20):
        ar = _typical_image(gen, num_low=num_low)
        upper = float(ar.max_overlaps.max())
        for name, s in (('mmdet', mmdet_s), ('ours', ours), ('stateless', stateless)):
            inds = s._sample_neg(ar, num_neg)
            assert len(inds) == num_neg and len(torch.unique(inds)) == num_neg
            zero, bins = _zero_and_bins(inds, ar.max_overlaps, upper)
            totals[name][0] += zero
            totals[name][1] = [a + b for a, b in zip(totals[name][1], bins)]
    if num_low >= num_neg:
        # enough IoU > 0 negatives: no IoU-0 negative at all in the steady state
        assert totals['mmdet'][0] == totals['ours'][0] == 0
        # the stateless floor_thr=-1 bins the IoU-0 ones into the first bin (they fill it)
        assert totals['stateless'][0] > 0.25 * 20 * num_neg / 3
    else:
        # too few: all of them are taken and IoU-0 negatives refill, in both samplers
        assert totals['mmdet'][0] == totals['ours'][0] == 20 * (num_neg - num_low)
    # bin counts: the quotas (128 per bin) and the uniform refill give the same expectation;
    # with these sizes they are deterministic but for the refill's split across bins
    for m, o in zip(totals['mmdet'][1], totals['ours'][1]):
        assert abs(m - o) <= max(0.05 * m, 20)
