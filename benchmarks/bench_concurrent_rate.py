"""r_ij from an Open-Images-sized V6 box CSV: wall time and peak memory.

Generates once (``--csv``, default ``/tmp/oi_bench/train-bbox.csv``; reused
when it exists with the same size) a file in the real V6 format with
``--boxes`` rows (default 12 M) on ``--images`` images (default 1.74 M), on the
real 601-class label file: 16-hex-digit ImageIDs in sorted order, a long
tail of MIDs, ~15 % of the boxes repeated with a second label (explicit
multi-labels, the same coordinates), 6-decimal coordinates.  Then runs
``estimate_concurrent_rate_openimages`` (CSV + label file + hierarchy, as the
CLI does) in a fresh child process and prints its wall time and peak RSS
(``ru_maxrss`` of the child) against the targets of issue 11 (<= 60 s,
<= 2 GB on the 2-core machine), plus the ratio of wall time to the
target.  A correctness check on the first 200 k rows compares the result
with a brute-force dict count in the same run.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_concurrent_rate.py``
(``--boxes 1200000 --images 174000`` for a quick run).
"""
import argparse
import csv
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from balancedet.datasets.openimages_generator import HIERARCHY_FILE, LABEL_FILE  # noqa: E402

HEADER = (b'ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,'
          b'IsGroupOf,IsDepiction,IsInside\n')


def _digits(v, n):
    """``(N, n)`` ASCII digits of the ints ``v`` (zero padded)."""
    pw = 10 ** np.arange(n - 1, -1, -1, dtype=np.int64)
    return ((v[:, None] // pw) % 10 + 48).astype(np.uint8)


def _coord(v):
    """ints in [0, 999999] -> ``0.dddddd`` bytes (N, 8)."""
    out = np.empty((v.size, 8), dtype=np.uint8)
    out[:, 0], out[:, 1] = 48, 46
    out[:, 2:] = _digits(v, 6)
    return out


def _const(n, s):
    return np.broadcast_to(np.frombuffer(s, dtype=np.uint8), (n, len(s)))


def generate(path, num_boxes, num_images, seed=0, chunk=1_000_000):
    with open(LABEL_FILE) as f:
        mids = [row[0] for row in csv.reader(f)]
    width = max(len(m) for m in mids)
    mid_mat = np.zeros((len(mids), width), dtype=np.uint8)
    for i, m in enumerate(mids):
        mid_mat[i, :len(m)] = np.frombuffer(m.encode(), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(0, 2**63, num_images * 11 // 10, dtype=np.int64))
    ids = rng.permutation(ids)[:num_images]
    ids.sort()
    # objects: ~num_boxes / 1.15 of them; ~15 % carry a second label row
    num_obj = int(num_boxes / 1.15)
    obj_img = np.sort(rng.integers(0, num_images, num_obj))
    obj_img[:num_images] = np.arange(num_images)  # every image has a box
    obj_img.sort()
    weights = 1.0 / np.arange(1, len(mids) + 1) ** 1.1
    p = weights / weights.sum()
    hexd = np.frombuffer(b'0123456789abcdef', dtype=np.uint8)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    written = 0
    with open(path, 'wb') as f:
        f.write(HEADER)
        extra_total = num_boxes - num_obj
        for s in range(0, num_obj, chunk):
            oi = obj_img[s:s + chunk]
            n = oi.size
            lab = rng.choice(len(mids), size=n, p=p)
            x0, y0 = rng.integers(0, 500000, n), rng.integers(0, 500000, n)
            x1 = x0 + rng.integers(1, 499999, n)
            y1 = y0 + rng.integers(1, 499999, n)
            flags = rng.random((n, 5)) < 0.1
            # second labels: the first `extra` objects of this chunk
            extra = min(extra_total - written, n) if s + chunk < num_obj else \
                extra_total - written
            extra = max(0, min(extra, n))
            rep = np.r_[np.arange(n), rng.choice(n, extra, replace=False)]
            rep.sort(kind='stable')
            lab2 = lab[rep].copy()
            dup = np.r_[False, rep[1:] == rep[:-1]]
            lab2[dup] = (lab2[dup] + 1 + rng.integers(0, 20, dup.sum())) % len(mids)
            written += extra
            m = rep.size
            img_hex = hexd[((ids[oi[rep]].view(np.uint64)[:, None] >> shifts) & np.uint64(15))
                           .astype(np.int64)]
            parts = [img_hex, _const(m, b',xclick,'), mid_mat[lab2], _const(m, b',1,'),
                     _coord(x0[rep]), _const(m, b','), _coord(x1[rep]), _const(m, b','),
                     _coord(y0[rep]), _const(m, b','), _coord(y1[rep])]
            for k in range(5):
                parts += [_const(m, b','), (flags[rep, k] + 48).astype(np.uint8)[:, None]]
            parts.append(_const(m, b'\n'))
            rows = np.concatenate(parts, axis=1)
            f.write(rows[rows != 0].tobytes())
    return num_obj + written, ids


def child(csv_path, out_json):
    from balancedet.analysis.concurrent_rate import estimate_concurrent_rate_openimages
    t0 = time.perf_counter()
    res = estimate_concurrent_rate_openimages(csv_path, LABEL_FILE, HIERARCHY_FILE)
    dt = time.perf_counter() - t0
    with open(out_json, 'w') as f:
        json.dump({'seconds': dt, 'boxes': res['num_boxes'], 'images': res['num_images'],
                   'objects': res['num_object_total'],
                   'r_sum': float(res['r'].sum()),
                   'co_sum': int(res['num_concurrent'].sum())}, f)


def brute_force_check(csv_path, rows=200_000):
    """r from the first ``rows`` rows by a dict count vs the estimator."""
    import itertools
    import tempfile

    from balancedet.analysis.concurrent_rate import estimate_concurrent_rate_openimages
    with open(csv_path) as f:
        lines = list(itertools.islice(f, rows + 1))
    with tempfile.NamedTemporaryFile('w', suffix='.csv', delete=False) as tmp:
        tmp.writelines(lines)
    with open(LABEL_FILE) as f:
        m2l = {row[0]: i for i, row in enumerate(csv.reader(f))}
    objs = {}
    for r in csv.DictReader(lines):
        key = (r['ImageID'], float(r['XMin']), float(r['XMax']), float(r['YMin']),
               float(r['YMax']))
        objs.setdefault(key, set()).add(m2l[r['LabelName']])
    c = len(m2l)
    n, co = np.zeros(c), np.zeros((c, c))
    for labels in objs.values():
        for i in labels:
            n[i] += 1
            for j in labels:
                if i != j:
                    co[i, j] += 1
    ref = co / np.maximum(n, 1)[:, None]
    res = estimate_concurrent_rate_openimages(tmp.name, LABEL_FILE)
    os.unlink(tmp.name)
    return float(np.abs(ref - res['r']).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--csv', default='/tmp/oi_bench/train-bbox.csv')
    parser.add_argument('--boxes', type=int, default=12_000_000)
    parser.add_argument('--images', type=int, default=1_740_000)
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    meta = args.csv + '.meta.json'
    want = {'boxes': args.boxes, 'images': args.images}
    if not (osp.isfile(args.csv) and osp.isfile(meta) and json.load(open(meta)) == want):
        t0 = time.perf_counter()
        rows, _ = generate(args.csv, args.boxes, args.images)
        print(f'generated {args.csv}: {rows} rows, {osp.getsize(args.csv) / 2**20:.0f} MiB in '
              f'{time.perf_counter() - t0:.1f} s')
        with open(meta, 'w') as f:
            json.dump(want, f)
    out = args.csv + '.result.json'
    subprocess.run([sys.executable, __file__, '--child', args.csv, out], check=True,
                   env=dict(os.environ, PYTHONPATH=REPO))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    res = json.load(open(out))
    print(f'r_ij from {res["boxes"]} boxes / {res["images"]} images ({res["objects"]} objects, '
          f'{osp.getsize(args.csv) / 2**20:.0f} MiB CSV):')
    print(f'  wall {res["seconds"]:.1f} s (target <= 60 s, ratio {res["seconds"] / 60:.2f}), '
          f'peak RSS {peak / 2**30:.2f} GiB (target <= 2 GiB, ratio {peak / 2**31:.2f})')
    print(f'  brute-force check on the first 200k rows: max |r - r_ref| = '
          f'{brute_force_check(args.csv):.2e}')


if __name__ == '__main__':
    main()
