"""Plot per-class AP against class frequency (like Fig. 5 of Peng et al., CVPR 2020).

    python tools/test.py CONFIG CKPT --cfg-options test_evaluator.classwise=True
    python tools/analysis_tools/ap_vs_frequency.py data/demo/annotations/train.json \
        baseline=work_dirs/A/20260101_000000/20260101_000000.log \
        lam0.5=work_dirs/B/20260101_000000/20260101_000000.json --png work_dirs/ap_vs_freq.png

TRAIN_ANN gives each class's frequency, the number of training images containing it: a
COCO or LVIS v1 annotation file, or a JSON ``{class name: training images}`` (e.g. for Open
Images: the file ``FastOpenImagesMetric``'s ``train_image_counts`` reads). Each RUN is
``LABEL=FILE`` (or just FILE): the JSON file of an mmengine test run
(``<work_dir>/<timestamp>/<timestamp>.json``, one JSON object per line) or a text log. The
per-class AP keys of the three metric families are read (the last record holding any wins):

* COCO (mmdet's ``CocoMetric``, ``classwise=True``): ``coco/<class>_precision``;
* LVIS (``BalancedLVISMetric``, ``classwise=True``): ``lvis/bbox_AP/<class>`` (``--iou-type
  segm``: ``lvis/segm_AP/<class>``);
* Open Images (``FastOpenImagesMetric``, ``classwise=True``): ``openimages/AP/<class>``.

Class names may contain spaces (they are JSON keys); text logs are read for COCO and LVIS
keys only (names without spaces).

Reported per run: mAP over the classes, the mean over the rarest third of the classes and,
for an LVIS file (or ``--groups lvis``), LVIS's APr / APc / APf from the categories'
``frequency``. Classes without training images are left out of all of them (one warning with
their number and the first few names).
"""
import argparse
import json
import os.path as osp
import re
import warnings

import numpy as np

from balancedet.analysis.sampling_stats import (
    frequency_group_ap,
    merge_runs,
    per_class_ap_vs_frequency,
    plot_ap_vs_frequency,
    summarise_ap,
    summarise_names,
)
from balancedet.datasets.balanced_coco import category_labels
from balancedet.datasets.samplers.class_index import ClassImageIndex

_COCO_TEXT = re.compile(r'(?:coco/)?(?:bbox_)?([^\s"\'/:,{}]+)_precision["\']?\s*[:=]\s*'
                        r'(-?[\d.]+(?:e-?\d+)?)')
_LVIS_TEXT = r'lvis/{}_AP/([^\s"\':,{{}}]+)["\']?\s*[:=]\s*(-?[\d.]+(?:e-?\d+)?)'
FIX = 'test with `--cfg-options test_evaluator.classwise=True` (COCO, LVIS, Open Images)'


def per_class_from_record(record, iou_type='bbox'):
    """``(family, {class name: AP})`` of one JSON record (``(None, {})`` if none)."""
    families = {'lvis': {}, 'openimages': {}, 'coco': {}}
    lvis_prefix = f'lvis/{iou_type}_AP/'
    for key, value in record.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key.startswith(lvis_prefix):
            families['lvis'][key[len(lvis_prefix):]] = float(value)
        elif key.startswith('openimages/AP/'):
            families['openimages'][key[len('openimages/AP/'):]] = float(value)
        elif key.startswith('coco/') and key.endswith('_precision'):
            name = key[len('coco/'):-len('_precision')]
            if name.startswith(f'{iou_type}_'):
                name = name[len(iou_type) + 1:]
            families['coco'][name] = float(value)
    for family, found in families.items():
        if found:
            return family, found
    return None, {}


def read_per_class_ap(path, iou_type='bbox'):
    """``{class name: AP}`` from a test-run JSON file or a text log (last record wins)."""
    with open(path) as f:
        text = f.read()
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith('{'):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            _, per_class = per_class_from_record(record, iou_type)
            found = per_class or found
    if not found:  # text log
        found = {n: float(v) for n, v in re.findall(_LVIS_TEXT.format(iou_type), text)}
        found = found or {n: float(v) for n, v in _COCO_TEXT.findall(text)}
    if not found:
        raise ValueError(f'{path!r} holds no per-class AP (coco/<class>_precision, '
                         f'lvis/{iou_type}_AP/<class> or openimages/AP/<class>); {FIX}')
    return found


def load_train_counts(path):
    """``(classes, image counts, frequencies or None)`` from TRAIN_ANN (see module doc)."""
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict) and all(k in data for k in ('images', 'annotations',
                                                          'categories')):
        cats = sorted(data['categories'], key=lambda c: c['id'])
        id2label = category_labels(cats)[1]
        id2img = {img['id']: i for i, img in enumerate(data['images'])}
        anns = [a for a in data['annotations'] if not a.get('iscrowd', 0)]
        for a in anns:
            if a['category_id'] not in id2label or a['image_id'] not in id2img:
                raise ValueError(f'{path!r}: annotation {a.get("id")!r} refers to an unknown '
                                 'category or image; fix the annotation file')
        index = ClassImageIndex.from_pairs(
            np.array([id2img[a['image_id']] for a in anns], dtype=np.int64),
            np.array([id2label[a['category_id']] for a in anns], dtype=np.int64),
            len(data['images']), len(cats))
        freqs = [c.get('frequency') for c in cats]
        has = [f is not None for f in freqs]
        if any(has) and not all(has):
            missing = [c['name'] for c, h in zip(cats, has) if not h]
            raise ValueError(f'{path!r}: categories without "frequency" '
                             f'({summarise_names(missing)}) next to ones with it; use the '
                             'unmodified LVIS v1 annotation file')
        return [c['name'] for c in cats], index.counts, freqs if all(has) else None
    if isinstance(data, dict) and data and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in data.values()):
        return list(data), np.array(list(data.values()), dtype=np.int64), None
    raise ValueError(f'{path!r} is neither a COCO / LVIS annotation file (images, annotations, '
                     'categories) nor a JSON {class name: training images}; pass the training '
                     "split's annotation file")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('train_ann', help='COCO / LVIS annotation file of the training split, '
                        'or a JSON {class name: training images}')
    parser.add_argument('runs', nargs='+', help='LABEL=FILE or FILE of test output')
    parser.add_argument('--png', required=True, help='output plot')
    parser.add_argument('--iou-type', default='bbox', choices=('bbox', 'segm'),
                        help='LVIS per-class keys to read (lvis/<type>_AP/<class>)')
    parser.add_argument('--groups', default='auto', choices=('auto', 'lvis', 'thirds'),
                        help='lvis: report APr/APc/APf (needs "frequency" in TRAIN_ANN); auto: '
                        'when the file has it')
    args = parser.parse_args(argv)
    classes, counts, freqs = load_train_counts(args.train_ann)
    if args.groups == 'lvis' and freqs is None:
        raise ValueError(f'--groups lvis needs the categories\' "frequency" (r/c/f), which '
                         f'{args.train_ann!r} lacks; pass the LVIS v1 training annotation file')
    lvis_groups = freqs is not None and args.groups != 'thirds'
    untrained = [n for n, c in zip(classes, counts) if c <= 0]
    if untrained:
        warnings.warn(f'{len(untrained)} class(es) have no training image in '
                      f'{args.train_ann!r} and are left out (no frequency to rank): '
                      f'{summarise_names(untrained)}', stacklevel=2)
    runs, summaries, groups = {}, {}, {}
    for run in args.runs:
        label, _, path = run.rpartition('=')
        label = label or osp.basename(osp.dirname(path)) or path
        ap = read_per_class_ap(path, args.iou_type)
        unknown = [n for n in ap if n not in set(classes)]
        if unknown and len(unknown) == len(ap):
            raise ValueError(f'{path!r}: none of its {len(ap)} per-class AP names is a class of '
                             f'{args.train_ann!r} (e.g. {summarise_names(unknown)}); is it the '
                             'training file of the same dataset?')
        if unknown:
            warnings.warn(f'{path!r}: per-class AP of classes not in {args.train_ann!r} '
                          f'ignored: {summarise_names(unknown)}', stacklevel=2)
        trained = [c for c in range(len(classes)) if counts[c] > 0]
        runs[label] = per_class_ap_vs_frequency(
            {n: v for n, v in ap.items() if n in set(classes[c] for c in trained)},
            counts[trained], [classes[c] for c in trained])
        summaries[label] = summarise_ap(ap, counts, classes)
        if lvis_groups:
            groups[label] = frequency_group_ap(ap, classes, freqs, counts)
    names, merged = merge_runs(runs)
    width = max(14, *(len(n) for n in names))
    print(f'{"class":<{width}} {"images":>7} ' + ' '.join(f'{lab[:12]:>12}' for lab in runs))
    for name, count in zip(names, merged):
        row = []
        for run_names, _, aps in runs.values():
            by_name = dict(zip(run_names, aps))
            row.append(f'{100 * by_name[name]:>12.1f}' if name in by_name else f'{"-":>12}')
        print(f'{name:<{width}} {count:>7} ' + ' '.join(row))
    first = next(iter(summaries.values()))
    rare = first['rare_classes']
    head = f'| run | mAP (mean per-class AP) | mAP rarest third ({summarise_names(rare)}) |'
    if lvis_groups:
        head += ' APr | APc | APf |'
    print('\n' + head)
    print('|---' * (head.count('|') - 1) + '|')
    for label, s in summaries.items():
        note = f' (no AP: {summarise_names(s["rare_missing"])})' if s['rare_missing'] else ''
        row = f'| {label} | {100 * s["mAP"]:.1f} | {100 * s["rare_mAP"]:.1f}{note} |'
        if lvis_groups:
            g = groups[label]
            row += ''.join(f' {100 * g[k]:.1f} ({g["num_" + k[-1]]} classes) |'
                           for k in ('APr', 'APc', 'APf'))
        print(row)
    plot_ap_vs_frequency(runs, args.png)
    print(f'saved {args.png}')


if __name__ == '__main__':
    main()
