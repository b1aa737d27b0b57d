"""Forward+backward time of ConcurrentSoftmaxLoss vs F.cross_entropy.

N=4096 boxes, C=501 foreground classes (+ background), measured in the same
run; prints the ratio (target <= 1.5x).  Three label mixes:

* ``detection``: 25% positives (mmdet's RoI sampler default), 30% of them
  carrying 2-3 labels; r dense on 5% of pairs.
* ``all-single``: every box positive with one label.
* ``all-multi``: every box positive with 2-3 labels.
* ``parent-heavy``: the adversarial case for the sparse evaluation: classes
  >= 50 are leaves of 50 parents (``hierarchy='concurrent'``, r = 1 between a
  leaf and its parent), every box is labelled with a leaf alone while its
  parent holds most of the probability, so every (box, label) pair is
  recomputed exactly (``O(C)`` each).

Two tables: the default allocator, and a steady allocator (glibc told to keep
freed memory: ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, set in a
child process).  With the default, every fresh (N, C + 1) buffer of either
loss page-faults, which on this VM costs as much as the arithmetic and varies
4x between calls; the steady table compares the arithmetic alone, which is
the harder comparison for the concurrent loss (cross-entropy allocates more
full-size buffers).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_concurrent_softmax.py
"""
import argparse
import os
import subprocess
import sys

import torch
import torch.nn.functional as F
from timing import median_times  # benchmarks/timing.py

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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--n', type=int, default=4096)
    parser.add_argument('--c', type=int, default=501)
    parser.add_argument('--repeat', type=int, default=40)
    parser.add_argument('--allocator', choices=['both', 'default', 'steady'], default='both')
    args = parser.parse_args()
    big = str(1 << 32)
    steady_env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=big, MALLOC_TRIM_THRESHOLD_=big)
    child = [sys.executable, __file__, '--n', str(args.n), '--c', str(args.c),
             '--repeat', str(args.repeat), '--allocator', 'steady']
    if args.allocator == 'both':
        print('== default allocator ==', flush=True)
    elif args.allocator == 'steady' and 'MALLOC_TRIM_THRESHOLD_' not in os.environ:
        sys.exit(subprocess.call(child, env=steady_env))
    gen = torch.Generator().manual_seed(0)
    n, c = args.n, args.c
    r = torch.rand(c, c, generator=gen) * (torch.rand(c, c, generator=gen) < 0.05)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=c, r_file=r.numpy())
    z0 = torch.randn(n, c + 1, generator=gen)
    print(f'N={n} C={c} threads={torch.get_num_threads()} (median of {args.repeat})')
    print(f'{"labels":<12} {"cross_entropy ms":>17} {"concurrent ms":>14} {"ratio":>6}')
    parents = {i: i % 50 for i in range(50, c)}
    loss_hier = ConcurrentSoftmaxLoss(num_classes=c, r_file=r.numpy(), parents=parents)
    z_heavy = z0.clone()
    leaves = torch.randint(50, c, (n, ), generator=gen)
    z_heavy[torch.arange(n), leaves % 50] += 9.0  # parent probability ~0.9
    y_heavy = torch.zeros(n, c + 1, dtype=torch.bool)
    y_heavy[torch.arange(n), leaves] = True
    mixes = [(name, *make_labels(n, c, pos, multi, gen), loss_mod, z0)
             for name, pos, multi in [('detection', 0.25, 0.3), ('all-single', 1.0, 0.0),
                                      ('all-multi', 1.0, 1.0)]]
    mixes.append(('parent-heavy', y_heavy, leaves, loss_hier, z_heavy))
    for name, y, single, module, logits in mixes:
        w = torch.ones(n)

        def ce(single=single, logits=logits):
            z = logits.clone().requires_grad_(True)
            F.cross_entropy(z, single).backward()

        def cs(y=y, w=w, module=module, logits=logits):
            z = logits.clone().requires_grad_(True)
            module(z, y, w, avg_factor=float(n)).backward()

        t_ce, t_cs = median_times([ce, cs], args.repeat, warmup=1)
        print(f'{name:<12} {t_ce * 1e3:>17.2f} {t_cs * 1e3:>14.2f} {t_cs / t_ce:>6.2f}')
    if args.allocator == 'both':
        print('\n== steady allocator (freed memory kept by glibc) ==', flush=True)
        subprocess.check_call(child, env=steady_env)


if __name__ == '__main__':
    main()
