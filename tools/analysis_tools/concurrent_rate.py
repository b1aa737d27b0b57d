"""Estimate the concurrent rates r_ij (concurrent softmax) from COCO or Open Images files.

    # COCO (the demo dataset)
    python tools/analysis_tools/concurrent_rate.py data/demo/annotations/train.json \
        --out data/demo/concurrent_rate.json --png data/demo/concurrent_rate.png
    # Open Images V6 (or a Challenge 2019 .txt with cls-label-description.csv and
    # class_label_tree.np)
    python tools/analysis_tools/concurrent_rate.py oidv6-train-annotations-bbox.csv \
        --hierarchy bbox_labels_600_hierarchy.json \
        --label-file class-descriptions-boxable.csv --out r_oi.json \
        --png r_oi.png --parent-png parent_without_leaf.png

Writes the matrix (.json with class names and the hierarchy DAG, or .npy), a
heat map of the most concurrent pairs (the paper's Fig. 3a) and, for Open
Images, the share of parent annotations without a leaf (Fig. 3b).  Boxes are
grouped into objects by the one same-object rule of
``balancedet.datasets.same_object``.  ``--multilabel-subset OUT.json`` (COCO)
also writes the images holding multi-label boxes (for mAP on that subset).
"""
import argparse
import json
import os.path as osp

from balancedet.analysis.concurrent_rate import (
    estimate_concurrent_rate,
    estimate_concurrent_rate_openimages,
    multi_label_subset,
    plot_concurrent_rate,
    plot_parent_without_leaf,
    save_concurrent_rate,
    top_pairs,
)


def _same_file(a, b):
    return osp.abspath(a) == osp.abspath(b) or (osp.exists(b) and osp.samefile(a, b))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann_file', help='COCO .json, Open Images V6 box .csv or Challenge .txt')
    parser.add_argument('--out', required=True, help='output .json or .npy')
    parser.add_argument('--label-file', help='Open Images label file (needed for .csv / .txt)')
    parser.add_argument('--hierarchy', help='Open Images hierarchy (.json or class_label_tree.np)')
    parser.add_argument('--png', help='heat map of the top pairs (PNG, Fig. 3a)')
    parser.add_argument('--parent-png', help='parents without a leaf label (PNG, Fig. 3b; '
                        'needs --hierarchy)')
    parser.add_argument('--top-k', type=int, default=20, help='pairs shown in the heat map')
    parser.add_argument('--multilabel-subset', help='also write the multi-label image subset')
    args = parser.parse_args(argv)
    outputs = [x for x in (args.out, args.png, args.parent_png, args.multilabel_subset) if x]
    inputs = [x for x in (args.ann_file, args.label_file, args.hierarchy) if x]
    for o in outputs:
        for i in inputs:
            if _same_file(i, o):
                parser.error(f'output {o!r} is the input file {i!r}; the tool never overwrites '
                             'its input, choose another output path')
    is_oi = args.ann_file.endswith(('.csv', '.txt'))
    if is_oi:
        if not args.label_file:
            parser.error(f'{args.ann_file!r} is an Open Images file: pass --label-file '
                         '(class-descriptions-boxable.csv or cls-label-description.csv) and '
                         'preferably --hierarchy')
        result = estimate_concurrent_rate_openimages(args.ann_file, args.label_file,
                                                     args.hierarchy)
    else:
        if args.label_file or args.hierarchy:
            parser.error('--label-file / --hierarchy are for Open Images files; a COCO file '
                         'carries its classes and supercategory hierarchy')
        if args.parent_png:
            parser.error('--parent-png needs Open Images input with --hierarchy')
        result = estimate_concurrent_rate(args.ann_file)
    save_concurrent_rate(result, args.out)
    print(f'wrote {args.out}: {len(result["classes"])} classes, '
          f'{int(result["num_objects"].sum())} object-labels')
    for val, a, b in top_pairs(result, min(args.top_k, 10)):
        print(f'  r[{a} -> {b}] = {val:.3f}')
    if args.png:
        plot_concurrent_rate(result, args.png, args.top_k)
        print(f'wrote {args.png}')
    if args.parent_png:
        if 'parent_without_leaf' not in result:
            parser.error('--parent-png needs --hierarchy')
        plot_parent_without_leaf(result, args.parent_png)
        print(f'wrote {args.parent_png}')
    if args.multilabel_subset:
        if is_oi:
            parser.error('--multilabel-subset is for COCO input')
        sub = multi_label_subset(args.ann_file)
        with open(args.multilabel_subset, 'w') as f:
            json.dump(sub, f)
        print(f'wrote {args.multilabel_subset}: {len(sub["images"])} images, '
              f'{len(sub["annotations"])} annotations')


if __name__ == '__main__':
    main()
