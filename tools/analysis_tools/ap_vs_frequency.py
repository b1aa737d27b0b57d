"""Plot per-class AP against class frequency (like Fig. 5 of Peng et al., CVPR 2020).

    python tools/test.py CONFIG CKPT --cfg-options test_evaluator.classwise=True
    python tools/analysis_tools/ap_vs_frequency.py data/demo/annotations/train.json \
        baseline=work_dirs/A/20260101_000000/20260101_000000.log \
        lam0.5=work_dirs/B/.../....json --png work_dirs/ap_vs_freq.png

Each RUN is ``LABEL=FILE`` (or just FILE): a test log or the json/scalars
file of a test run, holding mmdet CocoMetric's class-wise keys
``coco/<class>_precision`` (the last value of each key is used). Class
frequency is the number of training images containing the class.
"""
import argparse
import os.path as osp
import re

import numpy as np

from balancedet.analysis.sampling_stats import (
    merge_runs,
    per_class_ap_vs_frequency,
    plot_ap_vs_frequency,
    summarise_ap,
)
from balancedet.datasets.samplers.class_index import ClassImageIndex

_KEY = re.compile(r'(?:coco/)?(?:bbox_)?([^\s"\'/:,{}]+)_precision["\']?\s*[:=]\s*'
                  r'(-?[\d.]+(?:e-?\d+)?)')


def read_per_class_ap(path):
    """``{class name: AP}`` from a test log / json file (last occurrence wins)."""
    with open(path) as f:
        text = f.read()
    found = {name: float(value) for name, value in _KEY.findall(text)}
    if not found:
        raise ValueError(f'{path!r} holds no per-class AP ("coco/<class>_precision"); test with '
                         '`--cfg-options test_evaluator.classwise=True`')
    return found


def image_counts_from_coco(ann_file):
    import json
    with open(ann_file) as f:
        coco = json.load(f)
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    id2label = {c['id']: i for i, c in enumerate(cats)}
    id2img = {img['id']: i for i, img in enumerate(coco['images'])}
    anns = [a for a in coco['annotations'] if not a.get('iscrowd', 0)]
    index = ClassImageIndex.from_pairs(
        np.array([id2img[a['image_id']] for a in anns], dtype=np.int64),
        np.array([id2label[a['category_id']] for a in anns], dtype=np.int64),
        len(coco['images']), len(cats))
    return [c['name'] for c in cats], index.counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('train_ann', help='COCO annotation file of the training split')
    parser.add_argument('runs', nargs='+', help='LABEL=FILE or FILE of test output')
    parser.add_argument('--png', required=True, help='output plot')
    args = parser.parse_args(argv)
    classes, counts = image_counts_from_coco(args.train_ann)
    runs, summaries = {}, {}
    for run in args.runs:
        label, _, path = run.rpartition('=')
        label = label or osp.basename(osp.dirname(path)) or path
        ap = read_per_class_ap(path)
        runs[label] = per_class_ap_vs_frequency(ap, counts, classes)
        summaries[label] = summarise_ap(ap, counts, classes)
    names, counts = merge_runs(runs)
    print(f'{"class":<14} {"images":>7} ' + ' '.join(f'{lab[:12]:>12}' for lab in runs))
    for name, count in zip(names, counts):
        row = []
        for run_names, _, aps in runs.values():
            by_name = dict(zip(run_names, aps))
            row.append(f'{100 * by_name[name]:>12.1f}' if name in by_name else f'{"-":>12}')
        print(f'{name:<14} {count:>7} ' + ' '.join(row))
    rare = next(iter(summaries.values()))['rare_classes']
    print(f'\n| run | mAP (mean per-class AP) | mAP rarest third ({", ".join(rare)}) |')
    print('|---|---|---|')
    for label, s in summaries.items():
        note = f' (no AP: {", ".join(s["rare_missing"])})' if s['rare_missing'] else ''
        print(f'| {label} | {100 * s["mAP"]:.1f} | {100 * s["rare_mAP"]:.1f}{note} |')
    plot_ap_vs_frequency(runs, args.png)
    print(f'saved {args.png}')


if __name__ == '__main__':
    main()
