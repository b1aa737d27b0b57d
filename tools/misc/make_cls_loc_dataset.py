"""Write the CLS-LOC (one class per image) version of a COCO dataset.

``python tools/misc/make_cls_loc_dataset.py [--src data/demo] [--out data/demo_cls_loc]``
(the rule is documented in ``balancedet/datasets/cls_loc.py``).
"""
import argparse
import os.path as osp

from balancedet.datasets.cls_loc import convert_to_cls_loc


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--src', default='data/demo', help='source COCO dataset root')
    parser.add_argument('--out', default='data/demo_cls_loc', help='output dataset root')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'])
    parser.add_argument('--keep-others', action='store_true',
                        help='copy images unchanged instead of erasing the other classes')
    parser.add_argument('--margin', type=int, default=2,
                        help='pixels by which erased boxes are grown (anti-aliased edges)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if not osp.isfile(osp.join(args.src, 'annotations', f'{args.splits[0]}.json')):
        raise SystemExit(f'{args.src} has no annotations/{args.splits[0]}.json; run '
                         '`python tools/misc/make_demo_dataset.py` first or fix --src')
    stats = convert_to_cls_loc(args.src, args.out, splits=args.splits,
                               erase_others=not args.keep_others, margin=args.margin,
                               seed=args.seed)
    for split, s in stats.items():
        print(f'{split}: {s["num_images"]} images, {s["num_boxes"]} boxes '
              f'({s["dropped_images"]} images without a leaf box left out) -> {args.out}')


if __name__ == '__main__':
    main()
