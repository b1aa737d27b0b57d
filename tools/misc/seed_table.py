"""Print a markdown table of bbox AP over several seeds of the same runs.

``python tools/misc/seed_table.py work_dirs/libra/ladder work_dirs/libra/ladder-seed1 ...``:
each argument is a root holding one work dir per config (``<root>/<config>``,
as ``tools/train.py --work-dir`` writes them), one root per seed.  For every
config of the first root: the last validation's ``coco/bbox_mAP`` of each
seed, their mean and sample standard deviation, and the mean AP50 / AP75.
"""
import argparse
import os
import os.path as osp
import statistics

from balancedet.analysis.run_logs import last_validation

KEY = 'coco/bbox_mAP'


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('roots', nargs='+', help='one directory of work dirs per seed')
    parser.add_argument('--configs', nargs='*', help='config names in row order '
                        '(default: every work dir of the first root, sorted)')
    args = parser.parse_args()
    names = args.configs or sorted(
        d for d in os.listdir(args.roots[0]) if osp.isdir(osp.join(args.roots[0], d)))
    print('| config | ' + ' | '.join(f'AP {osp.basename(r.rstrip("/"))}' for r in args.roots)
          + ' | mean AP | sd | mean AP50 | mean AP75 |')
    print('|---' * (len(args.roots) + 5) + '|')
    for name in names:
        rows = [last_validation(osp.join(root, name), KEY) for root in args.roots]
        ap = [r[KEY] for r in rows]
        sd = statistics.stdev(ap) if len(ap) > 1 else float('nan')
        mean50 = statistics.mean(r[KEY + '_50'] for r in rows)
        mean75 = statistics.mean(r[KEY + '_75'] for r in rows)
        print(f'| {name} | ' + ' | '.join(f'{a:.3f}' for a in ap)
              + f' | {statistics.mean(ap):.3f} | {sd:.3f} | {mean50:.3f} | {mean75:.3f} |')


if __name__ == '__main__':
    main()
