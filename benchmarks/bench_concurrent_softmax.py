"""Forward+backward time of ConcurrentSoftmaxLoss vs F.cross_entropy.

N=4096 boxes, C=501 foreground classes (+ background), measured in the same
run; prints the ratio (target <= 1.5x).  Three label mixes:

* ``detection``: 25% positives (mmdet's RoI sampler default), 30% of them
  carrying 2-3 labels; r dense on 5% of pairs.
* ``all-single``: every box positive with one label.
* ``all-multi``: every box positive with 2-3 labels (worst case).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_concurrent_softmax.py
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from balancedet.models.losses.concurrent_softmax_loss import ConcurrentSoftmaxLoss


def make_labels(n, c, pos_frac, multi_frac, gen):
    y = torch.zeros(n, c + 1, dtype=torch.bool)
    single = torch.full((n,), c, dtype=torch.long)
    npos = int(n * pos_frac)
    for b in range(n):
        if b < npos:
            k = int(torch.randint(2, 4, (1,), generator=gen)) \
                if torch.rand(1, generator=gen) < multi_frac else 1
            cls = torch.randperm(c, generator=gen)[:k]
            y[b, cls] = True
            single[b] = cls[0]
        else:
            y[b, c] = True
    return y, single


def timeit_pair(fa, fb, repeat):
    """Median times of fa and fb, measured alternately (same machine load)."""
    fa(), fb()  # warm-up
    ta, tb = [], []
    for _ in range(repeat):
        for fn, ts in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return float(np.median(ta)), float(np.median(tb))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--n', type=int, default=4096)
    parser.add_argument('--c', type=int, default=501)
    parser.add_argument('--repeat', type=int, default=25)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    n, c = args.n, args.c
    r = torch.rand(c, c, generator=gen) * (torch.rand(c, c, generator=gen) < 0.05)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=c, r_file=r.numpy())
    z0 = torch.randn(n, c + 1, generator=gen)
    print(f'N={n} C={c} threads={torch.get_num_threads()} (median of {args.repeat})')
    print(f'{"labels":<12} {"cross_entropy ms":>17} {"concurrent ms":>14} {"ratio":>6}')
    for name, pos, multi in [('detection', 0.25, 0.3), ('all-single', 1.0, 0.0),
                             ('all-multi', 1.0, 1.0)]:
        y, single = make_labels(n, c, pos, multi, gen)
        w = torch.ones(n)

        def ce(single=single):
            z = z0.clone().requires_grad_(True)
            F.cross_entropy(z, single).backward()

        def cs(y=y, w=w):
            z = z0.clone().requires_grad_(True)
            loss_mod(z, y, w, avg_factor=float(n)).backward()

        t_ce, t_cs = timeit_pair(ce, cs, args.repeat)
        print(f'{name:<12} {t_ce * 1e3:>17.2f} {t_cs * 1e3:>14.2f} {t_cs / t_ce:>6.2f}')


if __name__ == '__main__':
    main()
