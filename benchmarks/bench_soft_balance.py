"""Open-Images-scale cost of the soft-balance sampler vs mmdet's ClassAwareSampler.

Generates a synthetic label table shaped like the Open Images 2019 challenge
train set (1.74 M images, 500 classes with a long-tailed image frequency,
~12 M image-level labels), then measures, in the same run:

* ours: building the per-class index (``ClassImageIndex``) + the
  ``SoftBalanceSampler`` and drawing one full epoch (``list(sampler)``),
  wall time and peak extra memory (tracemalloc, numpy buffers included);
* reference: mmdet's ``ClassAwareSampler`` on the same dataset (building its
  per-class lists through ``get_cat_ids`` and drawing one epoch), wall time.

Targets (issue #5): ours <= 2 s and <= 500 MB on the 2-core dev machine.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_soft_balance.py``
(``--scale 0.1`` for a quick run; ``--skip-reference`` to time ours only).
Ours is timed ``--repeat`` times (fastest kept), the reference once.
"""
import argparse
import gc
import time
import tracemalloc
import warnings

import numpy as np


class OpenImagesLikeDataset:
    """Label-only dataset: CSR ``(offsets, labels)`` of box labels per image."""

    def __init__(self, num_images, num_classes, labels_per_image, seed=0):
        rng = np.random.default_rng(seed)
        # Each image holds 1 + Poisson(0.5) classes drawn from a Zipf(1.3) law
        # (head class in ~30 % of the images, tail classes in a few hundred
        # at full scale) and 1 + Poisson(m) boxes of each, m chosen so that the
        # dataset has ``labels_per_image`` box labels per image on average.
        weights = 1.0 / np.arange(1, num_classes + 1) ** 1.3
        classes_per_image = 1 + rng.poisson(0.5, num_images)
        cls = rng.choice(num_classes, size=int(classes_per_image.sum()),
                         p=weights / weights.sum()).astype(np.int16)
        boxes = 1 + rng.poisson(labels_per_image / 1.5 - 1, cls.size)
        self.labels = np.repeat(cls, boxes)
        per_image = np.add.reduceat(boxes, np.r_[0, np.cumsum(classes_per_image)[:-1]])
        self.offsets = np.zeros(num_images + 1, dtype=np.int64)
        np.cumsum(per_image, out=self.offsets[1:])
        self.metainfo = {'classes': tuple(f'class{c}' for c in range(num_classes))}

    def __len__(self):
        return len(self.offsets) - 1

    def get_cat_ids(self, i):  # mmdet's API, used by ClassAwareSampler
        return self.labels[self.offsets[i]:self.offsets[i + 1]].tolist()

    def get_class_image_pairs(self):  # balancedet's fast path
        img = np.repeat(np.arange(len(self), dtype=np.int32), np.diff(self.offsets))
        return img, self.labels


def measure(fn):
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, elapsed, peak / 2 ** 20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--scale', type=float, default=1.0, help='fraction of 1.74 M images')
    parser.add_argument('--lam', type=float, default=0.5)
    parser.add_argument('--repeat', type=int, default=3,
                        help='time ours this many times and keep the fastest (the machine is '
                        'shared; the minimum is the least noisy estimate)')
    parser.add_argument('--skip-reference', action='store_true')
    args = parser.parse_args()

    from mmdet.datasets.samplers import ClassAwareSampler

    from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler

    num_images = int(1_740_000 * args.scale)
    t0 = time.perf_counter()
    ds = OpenImagesLikeDataset(num_images, 500, labels_per_image=6.9)
    print(f'dataset: {len(ds):,} images, 500 classes, {ds.labels.size:,} labels '
          f'(generated in {time.perf_counter() - t0:.1f} s, not timed)')

    def build():
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return SoftBalanceSampler(ds, lam=args.lam, seed=0)

    def ours():
        t0 = time.perf_counter()
        sampler = build()
        t1 = time.perf_counter()
        epoch = list(sampler)
        return sampler, epoch, t1 - t0, time.perf_counter() - t1

    # timing pass (no tracing), then a memory pass under tracemalloc
    runs = []
    for _ in range(max(1, args.repeat)):
        sampler, epoch, build_s, draw_s = ours()
        runs.append((build_s + draw_s, build_s, draw_s))
        del epoch
    t_ours, build_s, draw_s = min(runs)
    counts = sampler.index.counts
    print(f'index: n_i from {counts.max():,} (head) to {counts.min():,} (tail) images; '
          f'{sampler.index.images.size:,} (image, class) entries')
    del sampler
    _, _, mem_ours = measure(ours)
    print(f'ours  : index+sampler {build_s:.2f} s, one epoch ({len(ds):,} draws) {draw_s:.2f} s, '
          f'total {t_ours:.2f} s (fastest of {len(runs)}: '
          f'{", ".join(f"{r[0]:.2f}" for r in runs)}), peak extra memory {mem_ours:.0f} MB')
    ok = t_ours <= 2.0 and mem_ours <= 500
    print(f'target (<= 2 s, <= 500 MB): {"PASS" if ok else "FAIL"}'
          + ('' if args.scale == 1.0 else f' (scaled run, x{args.scale})'))
    if args.skip_reference:
        return

    def reference():
        sampler = ClassAwareSampler(ds, seed=0)
        return list(sampler)

    t0 = time.perf_counter()
    ref_epoch = reference()
    t_ref = time.perf_counter() - t0
    print(f'mmdet ClassAwareSampler: index + one epoch ({len(ref_epoch):,} draws) {t_ref:.2f} s')
    print(f'ratio ours / mmdet ClassAwareSampler (time): {t_ours / t_ref:.4f} '
          f'(ours {t_ref / t_ours:.0f}x faster)')


if __name__ == '__main__':
    main()
