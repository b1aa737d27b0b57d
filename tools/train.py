"""Train a detector: ``python tools/train.py CONFIG [--work-dir D] [--resume [CKPT]]``.

``--resume`` / ``load_from`` read ``.pth`` and ``.safetensors`` checkpoints from
any source through balancedet's safe loader (nothing in a checkpoint runs).
"""
import argparse

from balancedet.apis import add_runner_arguments, build_runner, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', help='mixed precision training (CUDA)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the LR by batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint of the work dir')
    return add_runner_arguments(parser).parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, work_dir=args.work_dir, cfg_options=args.cfg_options,
                      launcher=args.launcher, amp=args.amp, auto_scale_lr=args.auto_scale_lr,
                      resume=args.resume)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
