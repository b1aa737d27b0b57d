"""Class weights from the effective number of samples (Cui et al., CVPR 2019).

    python tools/analysis_tools/effective_num_weights.py data/demo/annotations/train.json \
        --beta 0.999 --background-weight 1.0

Prints the per-class instance counts, the weights (normalised to sum to C,
background last when --background-weight is given) and a ready-to-paste
``class_weight=[...]`` for the classification loss.
"""
import argparse

from balancedet.analysis.effective_number import effective_number_weights, instance_counts_from_coco


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann_file', help='COCO annotation file of the training split')
    parser.add_argument('--beta', type=float, default=0.999, help='beta in [0, 1)')
    parser.add_argument('--background-weight', type=float,
                        help='append this weight for the background class (softmax heads)')
    args = parser.parse_args(argv)
    classes, counts = instance_counts_from_coco(args.ann_file)
    weights = effective_number_weights(counts, args.beta, args.background_weight)
    for name, n, w in zip(classes, counts, weights):
        print(f'{name:<16} {n:>7}  {w:.4f}')
    print('class_weight=[' + ', '.join(f'{w:.4f}' for w in weights) + ']')


if __name__ == '__main__':
    main()
