"""Estimate the concurrent rates r_ij of a COCO file (concurrent softmax).

    python tools/analysis_tools/concurrent_rate.py data/demo/annotations/train.json \
        --out data/demo/concurrent_rate.json --png data/demo/concurrent_rate.png

Writes the matrix (.json with class names and hierarchy, or .npy) and a heat
map of the most concurrent pairs; ``--multilabel-subset OUT.json`` also
writes the images holding multi-label boxes (for mAP on that subset).
"""
import argparse
import json

from balancedet.analysis.concurrent_rate import (
    estimate_concurrent_rate,
    multi_label_subset,
    plot_concurrent_rate,
    save_concurrent_rate,
    top_pairs,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann_file', help='COCO-format annotation file')
    parser.add_argument('--out', required=True, help='output .json or .npy')
    parser.add_argument('--png', help='heat map of the top pairs (PNG)')
    parser.add_argument('--top-k', type=int, default=20, help='pairs shown in the heat map')
    parser.add_argument('--iou-thr', type=float, default=0.9,
                        help='annotations overlapping this much are one object')
    parser.add_argument('--multilabel-subset', help='also write the multi-label image subset')
    args = parser.parse_args(argv)
    result = estimate_concurrent_rate(args.ann_file, iou_thr=args.iou_thr)
    save_concurrent_rate(result, args.out)
    print(f'wrote {args.out}: {len(result["classes"])} classes, '
          f'{int(result["num_objects"].sum())} object-labels')
    for val, a, b in top_pairs(result, min(args.top_k, 10)):
        print(f'  r[{a} -> {b}] = {val:.3f}')
    if args.png:
        plot_concurrent_rate(result, args.png, args.top_k)
        print(f'wrote {args.png}')
    if args.multilabel_subset:
        sub = multi_label_subset(args.ann_file, args.iou_thr)
        with open(args.multilabel_subset, 'w') as f:
            json.dump(sub, f)
        print(f'wrote {args.multilabel_subset}: {len(sub["images"])} images, '
              f'{len(sub["annotations"])} annotations')


if __name__ == '__main__':
    main()
