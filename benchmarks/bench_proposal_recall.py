"""Cost of balancedet's proposal recall vs mmdet's recall evaluation.

Generates a synthetic proposal-evaluation problem (``--images`` images with
1..20 ground-truth boxes and 1,000 scored proposals each, ragged), then, in the
same run:

* ours: ``balancedet.evaluation.proposal_recall.proposal_recalls`` for
  N in (10, 100, 300, 500, 1000) and IoU 0.50:0.05:0.95;
* reference: mmdet's greedy matcher ``_recalls`` on the same IoU matrices
  (mmdet's public ``eval_recalls`` cannot be used: with ragged images it builds
  ``np.array`` of differently-shaped matrices and raises under numpy >= 1.24;
  the benchmark wraps the matrices in an object array first);

checks that both give the same recall table and prints the time ratio.
Also times one forward of the hourglass RPN model at 1 vs 4 test scales.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_proposal_recall.py``
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

NUMS = (10, 100, 300, 500, 1000)
THRS = np.round(np.arange(0.5, 0.951, 0.05), 2)
REPO = Path(__file__).resolve().parents[1]


def make_problem(num_images, seed=0):
    rng = np.random.default_rng(seed)
    gts, props = [], []
    for _ in range(num_images):
        ng = int(rng.integers(1, 21))
        xy = rng.uniform(0, 400, (ng, 2))
        gt = np.concatenate([xy, xy + rng.uniform(8, 200, (ng, 2))], 1)
        jit = np.repeat(gt, 20, 0) + rng.normal(0, 10, (20 * ng, 4))
        jit[:, 2:] = np.maximum(jit[:, 2:], jit[:, :2] + 1)
        xy = rng.uniform(0, 500, (1000 - len(jit), 2))
        rnd = np.concatenate([xy, xy + rng.uniform(4, 300, (len(xy), 2))], 1)
        p = np.concatenate([jit, rnd])[:1000]
        score = rng.uniform(0, 1, (len(p), 1))
        gts.append(gt)
        props.append(np.concatenate([p, score], 1))
    return gts, props


def bench_recall(num_images):
    from mmdet.evaluation.functional import recall as mm

    from balancedet.evaluation.proposal_recall import proposal_recalls
    gts, props = make_problem(num_images)
    try:
        mm.eval_recalls(gts, props, list(NUMS), THRS, logger='silent')
        print('mmdet eval_recalls: ran (inputs not ragged)')
    except ValueError as e:
        print(f'mmdet eval_recalls: raises ValueError on ragged inputs ({str(e)[:60]}...)')

    t0 = time.perf_counter()
    ours = proposal_recalls(gts, props, NUMS, THRS)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    all_ious = np.empty(len(gts), dtype=object)
    for i, (g, p) in enumerate(zip(gts, props)):
        p = p[np.argsort(-p[:, 4], kind='stable')]
        all_ious[i] = mm.bbox_overlaps(g, p[:max(NUMS), :4])
    ref = mm._recalls(all_ious, np.array(NUMS), THRS)
    t_ref = time.perf_counter() - t0
    err = float(np.abs(ours - ref).max())
    print(f'recall table, {num_images} images x 1000 proposals: ours {t_ours:.3f} s, '
          f'mmdet _recalls (object-array wrapped) {t_ref:.3f} s, '
          f'ratio ours/ref = {t_ours / t_ref:.2f}, max |diff| = {err:.2e}')
    for n, row in zip(NUMS, ours):
        print(f'  AR@{n} = {row.mean():.4f}')


def bench_multiscale(repeats):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import balancedet  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(REPO / 'configs/_base_/models/hourglass-rpn_r18-w16.py'))
    model = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 3, 128, 128)
    meta = dict(img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1., 1.),
                pad_shape=(128, 128), batch_input_shape=(128, 128))
    times = {}
    for scales in (None, [256, 192, 128, 96]):
        model.test_scales = scales
        with torch.no_grad():
            model.predict(x, [DetDataSample(metainfo=meta)])
            t0 = time.perf_counter()
            for _ in range(repeats):
                model.predict(x, [DetDataSample(metainfo=meta)])
        times[str(scales)] = (time.perf_counter() - t0) / repeats
    single, multi = times['None'], times[str([256, 192, 128, 96])]
    print(f'hourglass RPN inference, 128 px image: single scale {single * 1e3:.1f} ms, '
          f'4 scales (256/192/128/96) {multi * 1e3:.1f} ms, ratio = {multi / single:.2f} '
          f'(pixel ratio {(256**2 + 192**2 + 128**2 + 96**2) / 128**2:.2f})')


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--images', type=int, default=200)
    ap.add_argument('--repeats', type=int, default=10)
    args = ap.parse_args()
    bench_recall(args.images)
    bench_multiscale(args.repeats)
