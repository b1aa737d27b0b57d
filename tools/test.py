"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir D]``.

CHECKPOINT is a ``.pth`` or ``.safetensors`` file or any URL scheme mmengine
knows; it is read by balancedet's safe loader. Weights that do not cover the
model (missing or unexpected keys, other shapes) are an error naming the first
few, unless ``--allow-partial``.
"""
import argparse

from balancedet.apis import add_runner_arguments, build_runner, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--allow-partial', action='store_true',
                        help='evaluate even if the weights do not cover the model '
                             '(missing/unexpected keys, other shapes)')
    return add_runner_arguments(parser).parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, work_dir=args.work_dir, cfg_options=args.cfg_options,
                      launcher=args.launcher, checkpoint=args.checkpoint)
    build_runner(cfg, strict_weights=not args.allow_partial).test()


if __name__ == '__main__':
    main()
