"""Benchmark of the Libra R-CNN components against mmdet 3.3's implementations.

Prints, from one run (times are medians of interleaved repetitions, ratios
compare numbers measured in this same run):

1. IoU-balanced sampling: ``BalancedIoUSampler`` vs mmdet's
   ``IoUBalancedNegSampler`` (negatives) and vs mmdet's Libra combination
   ``CombinedSampler(InstanceBalancedPosSampler, IoUBalancedNegSampler)``
   (full ``sample()``), at 2,000 and 20,000 proposals, 512 samples.
   Target: >= 5x faster on CPU.
2. Balanced Feature Pyramid forward + backward: ``BalancedFeaturePyramid`` vs
   mmdet's ``BFP`` (non-local refine) on two pyramid sizes.
3. Training-step cost of the Libra configs vs the baseline Faster R-CNN on
   a synthetic batch (8 x 128 px, like the demo), and of balancedet's Libra
   vs the same model built from mmdet's Libra components.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/bench_libra.py [--quick]
"""
import argparse
import copy
import sys
from pathlib import Path

import torch
from timing import median_times  # benchmarks/timing.py

REPO = Path(__file__).resolve().parents[1]




def bench_sampler(reps):
    from mmdet.models.task_modules.samplers import CombinedSampler, IoUBalancedNegSampler
    from mmdet.registry import TASK_UTILS
    from mmengine.structures import InstanceData

    from balancedet.models.task_modules.iou_balanced_sampler import BalancedIoUSampler

    print('\n== IoU-balanced sampling (512 samples, pos_fraction 0.25, 3 bins) ==')
    print('negatives: _sample_neg only; sample()a: random positives (mmdet '
          'IoUBalancedNegSampler vs ours pos_balance=False); sample()b: instance-balanced '
          'positives (mmdet CombinedSampler(InstanceBalancedPos, IoUBalancedNeg) vs ours '
          'pos_balance=True)')
    print('warm: blocks of 10 back-to-back calls, interleaved (steady state, each sampler '
          'pays its own garbage collection); cold: single interleaved calls (each call '
          'starts from the caches and garbage the other sampler left)')
    print(f'{"proposals":>10} {"part":>10} {"mmdet ms":>10} {"ours ms":>10} {"speed-up":>9} '
          f'{"cold mmdet":>11} {"cold ours":>10} {"cold s-up":>10}')
    assigner = TASK_UTILS.build(dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                     min_pos_iou=0.5, match_low_quality=False))
    for num in (2000, 20000):
        gen = torch.Generator().manual_seed(0)
        gt_xy = torch.rand(8, 2, generator=gen) * 600
        gt = torch.cat([gt_xy, gt_xy + 40 + torch.rand(8, 2, generator=gen) * 160], 1)
        # proposals: jittered copies of the ground truths plus background boxes
        near = gt[torch.randint(0, 8, (num // 4, ), generator=gen)]
        near = near + torch.randn(near.shape, generator=gen) * 25
        xy = torch.rand(num - num // 4, 2, generator=gen) * 700
        far = torch.cat([xy, xy + 20 + torch.rand(len(xy), 2, generator=gen) * 200], 1)
        priors = torch.cat([near, far])
        priors = torch.cat([priors[:, :2].minimum(priors[:, 2:] - 4),
                            priors[:, 2:]], 1)
        pred = InstanceData(priors=priors)
        gts = InstanceData(bboxes=gt, labels=torch.arange(8))
        assign = assigner.assign(pred, gts)
        ours = BalancedIoUSampler(num=512, pos_fraction=0.25, floor_thr=-1, num_bins=3,
                                  pos_balance=True, add_gt_as_proposals=False)
        ours_rand = BalancedIoUSampler(num=512, pos_fraction=0.25, floor_thr=-1, num_bins=3,
                                       add_gt_as_proposals=False)
        ref_neg = IoUBalancedNegSampler(num=512, pos_fraction=0.25, floor_thr=-1,
                                        num_bins=3, add_gt_as_proposals=False)
        ref = CombinedSampler(
            num=512, pos_fraction=0.25, add_gt_as_proposals=False,
            pos_sampler=dict(type='InstanceBalancedPosSampler'),
            neg_sampler=dict(type='IoUBalancedNegSampler', floor_thr=-1, num_bins=3))
        n_neg = 512 - min(int(512 * 0.25), int((assign.gt_inds > 0).sum()))
        parts = {
            'negatives': (lambda: ref_neg._sample_neg(assign, n_neg),
                          lambda: ours._sample_neg(assign, n_neg)),
            'sample()a': (lambda: ref_neg.sample(assign, pred, gts),
                          lambda: ours_rand.sample(assign, pred, gts)),
            'sample()b': (lambda: ref.sample(assign, pred, gts),
                          lambda: ours.sample(assign, pred, gts)),
        }
        for part, fns in parts.items():
            t_ref, t_ours = median_times(fns, max(reps // 10, 5), block=10)
            c_ref, c_ours = median_times(fns, reps)
            print(f'{num:>10} {part:>10} {t_ref * 1e3:>10.3f} {t_ours * 1e3:>10.3f} '
                  f'{t_ref / t_ours:>8.1f}x {c_ref * 1e3:>11.3f} {c_ours * 1e3:>10.3f} '
                  f'{c_ref / c_ours:>9.1f}x')


def bench_bfp(reps):
    from mmdet.models.necks import BFP

    from balancedet.models.necks.balanced_feature_pyramid import BalancedFeaturePyramid

    print('\n== Balanced Feature Pyramid, non-local refine, forward + backward ==')
    print(f'{"pyramid":>26} {"mmdet ms":>10} {"ours ms":>10} {"mmdet/ours":>11}')
    for batch, ch, h in ((8, 64, 32), (2, 256, 96)):
        sizes = [(h >> i, (h * 3 // 2) >> i) for i in range(5)]
        feats = [torch.randn(batch, ch, a, b) for a, b in sizes]
        ref = BFP(ch, 5, refine_level=2, refine_type='non_local')
        ours = BalancedFeaturePyramid(ch, 5, refine_level=2, refine_type='non_local')
        ours.load_state_dict(ref.state_dict())

        def step(m):
            xs = [f.clone().requires_grad_(True) for f in feats]
            sum(o.sum() for o in m(xs)).backward()

        t_ref, t_ours = median_times([lambda: step(ref), lambda: step(ours)], reps)
        name = f'{batch}x{ch}x{sizes[0][0]}x{sizes[0][1]} (5 lv)'
        print(f'{name:>26} {t_ref * 1e3:>10.2f} {t_ours * 1e3:>10.2f} {t_ref / t_ours:>10.2f}x')


def _build(cfg_path, **overrides):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / cfg_path))
    cfg.merge_from_dict(overrides)
    return MODELS.build(cfg.model)


def bench_train_step(reps):
    from mmdet.testing import demo_mm_inputs
    from mmengine.optim import OptimWrapper

    print('\n== Training step (batch 8 x 128 px, synthetic, SGD), vs baseline ==')
    base = 'configs/faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'
    libra = 'configs/libra_rcnn/libra-faster-rcnn_r18-w16_fpn_8e_demo.py'
    models = {
        'baseline Faster R-CNN': _build(base),
        '+ BalancedIoUSampler': _build(
            'configs/libra_rcnn/faster-rcnn_r18-w16_fpn_iou-balanced-sampler_8e_demo.py'),
        '+ BalancedFeaturePyramid': _build(
            'configs/libra_rcnn/faster-rcnn_r18-w16_fpn-bfp_8e_demo.py'),
        '+ BalancedL1LossV2': _build(
            'configs/libra_rcnn/faster-rcnn_r18-w16_fpn_balanced-l1_8e_demo.py'),
        'Libra (balancedet)': _build(libra),
        'Libra + WeightedLossDetector': _build(
            'configs/libra_rcnn/libra-faster-rcnn_r18-w16_fpn_half-bbox-weight_8e_demo.py'),
        'Libra (mmdet components)': _build(libra, **{
            'model.neck.1.type': 'BFP',
            'model.roi_head.bbox_head.loss_bbox.type': 'BalancedL1Loss',
            'model.train_cfg.rcnn.sampler': dict(
                _delete_=True, type='CombinedSampler', num=256, pos_fraction=0.25,
                add_gt_as_proposals=True,
                pos_sampler=dict(type='InstanceBalancedPosSampler'),
                neg_sampler=dict(type='IoUBalancedNegSampler', floor_thr=-1,
                                 floor_fraction=0, num_bins=3))}),
    }
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=8, image_shapes=[(3, 128, 128)] * 8,
                          num_items=[4] * 8, num_classes=10, with_mask=False)
    fns = []
    for m in models.values():
        m.train()
        optim = OptimWrapper(torch.optim.SGD(m.parameters(), lr=1e-4))

        def step(m=m, optim=optim):
            m.train_step(copy.copy(data), optim)
        fns.append(step)
    times = median_times(fns, reps, warmup=2)
    t0 = times[0]
    print(f'{"model":>30} {"ms/step":>9} {"vs baseline":>12}')
    for (name, _), t in zip(models.items(), times):
        print(f'{name:>30} {t * 1e3:>9.1f} {t / t0:>11.2f}x')
    print(f'{"balancedet Libra vs mmdet Libra":>30} {"":>9} '
          f'{times[4] / times[6]:>11.2f}x (time ratio, < 1 is faster)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='fewer repetitions')
    parser.add_argument('--only', choices=['sampler', 'bfp', 'train'], help='one section')
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from mmdet.utils import register_all_modules

    import balancedet  # noqa: F401
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, device cpu')
    if args.only in (None, 'sampler'):
        bench_sampler(reps=30 if args.quick else 200)
    if args.only in (None, 'bfp'):
        bench_bfp(reps=5 if args.quick else 20)
    if args.only in (None, 'train'):
        bench_train_step(reps=3 if args.quick else 8)


if __name__ == '__main__':
    main()
