"""Per-class epoch statistics of soft-balance sampling for a list of lambdas.

    python tools/analysis_tools/sampling_stats.py CONFIG --lams 0 0.5 0.7 1 1.5 \
        --png work_dirs/sampling_stats.png

    # Open Images: any configs/openimages/ config; every label of a multi-label
    # object counts, --count-descendants also counts each image for the ancestors
    python tools/analysis_tools/sampling_stats.py \
        configs/openimages/faster-rcnn_r50_fpn_softmax_1x_oi-v6.py --count-descendants \
        --counts-out data/OpenImages/annotations/train_image_counts.json

Builds the config's training dataset (after its filter_cfg), prints the
expected draws per class and epoch, the share of the most frequent class's
images never seen in an epoch and the over-sampling factor of the rarest
class for every lambda (Peng et al., CVPR 2020, sec. 4.2), and saves a plot.
``--counts-out`` writes ``{class name: training images}`` (the JSON the Open
Images metric takes for its head / middle / tail mAP).
"""
import argparse
import json
import os.path as osp
import warnings

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from balancedet.analysis.sampling_stats import (
    format_sampling_stats,
    plot_sampling_stats,
    sampling_stats,
)
from balancedet.datasets.samplers.class_index import ClassImageIndex


def build_train_dataset(config, cfg_options=None):
    from mmdet.registry import DATASETS

    import balancedet  # noqa: F401  (registers the toolbox)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return DATASETS.build(cfg.train_dataloader.dataset)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config whose train_dataloader.dataset is analysed')
    parser.add_argument('--lams', type=float, nargs='+', default=[0.0, 0.5, 0.7, 1.0, 1.5],
                        help='lambda values of eq. 8')
    parser.add_argument('--epoch-length', type=int, help='draws per epoch (default: #images)')
    parser.add_argument('--top', type=int, help='show only the TOP most and least frequent')
    parser.add_argument('--png', help='save the plot here')
    parser.add_argument('--count-descendants', action='store_true',
                        help='count a class for every image containing it or a descendant')
    parser.add_argument('--counts-out', help='write {class name: training images} JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    for out in (args.png, args.counts_out):
        if out and osp.abspath(out) == osp.abspath(args.config):
            parser.error(f'output {out!r} is the input config; choose another path')
    dataset = build_train_dataset(args.config, args.cfg_options)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        index = ClassImageIndex.from_dataset(dataset, count_descendants=args.count_descendants)
    stats = sampling_stats(index, args.lams, args.epoch_length)
    classes = dataset.metainfo['classes']
    print(f'{len(dataset)} training images, {index.images.size} (image, class) pairs')
    print(format_sampling_stats(stats, classes, args.top))
    if args.png:
        plot_sampling_stats(stats, args.png, classes)
        print(f'saved {args.png}')
    if args.counts_out:
        with open(args.counts_out, 'w') as f:
            json.dump({name: int(n) for name, n in zip(classes, index.counts)}, f, indent=1)
        print(f'saved {args.counts_out}')


if __name__ == '__main__':
    main()
