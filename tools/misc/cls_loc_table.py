"""Print the CLS-LOC results table (markdown) from training work dirs.

``python tools/misc/cls_loc_table.py work_dirs/cls_loc/<config> [...]``: for each
work dir, the last validation's CLS-LOC errors and bbox mAP, and the mean
training loss over the last epoch (from ``vis_data/scalars.json``). The
binomial standard error ``sqrt(e (1 - e) / n)`` of the top-1 errors is printed
as the noise level.
"""
import argparse
import math
import os.path as osp

from balancedet.analysis.run_logs import last_row_with, read_scalars


def summarize(work_dir):
    rows = read_scalars(work_dir)
    val = last_row_with(rows, 'cls_loc/top1_cls_err', work_dir)
    train = [r for r in rows if 'loss' in r and 'epoch' in r]
    last = max(r['epoch'] for r in train)
    loss = sum(r['loss'] for r in train if r['epoch'] == last) / sum(
        1 for r in train if r['epoch'] == last)
    return dict(val, train_loss=loss, epochs=last)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('work_dirs', nargs='+')
    args = parser.parse_args()
    cols = ['top1_cls_err', 'top5_cls_err', 'top1_loc_err', 'top5_loc_err']
    print('| run | epochs | ' + ' | '.join(c.replace('_', ' ') + ' (%)' for c in cols)
          + ' | bbox mAP | last-epoch train loss |')
    print('|---' * (len(cols) + 4) + '|')
    for wd in args.work_dirs:
        s = summarize(wd)
        vals = [f'{s[f"cls_loc/{c}"]:.1f}' if f'cls_loc/{c}' in s else '-' for c in cols]
        m = f'{s["coco/bbox_mAP"]:.3f}' if 'coco/bbox_mAP' in s else '-'
        print(f'| {osp.basename(wd.rstrip("/"))} | {s["epochs"]} | ' + ' | '.join(vals)
              + f' | {m} | {s["train_loss"]:.3f} |')
    n = s['cls_loc/num_images']
    e = s['cls_loc/top1_cls_err'] / 100
    print(f'\nval images: {n}; binomial s.e. of a {100 * e:.0f} % error: '
          f'{100 * math.sqrt(e * (1 - e) / n):.1f} points')


if __name__ == '__main__':
    main()
