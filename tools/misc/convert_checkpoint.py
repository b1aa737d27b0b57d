"""Convert a checkpoint (``.pth``, any source) to the safetensors checkpoint format.

    python tools/misc/convert_checkpoint.py IN.pth [OUT.safetensors] [--overwrite]

The input is read through balancedet's safe loader (a checkpoint that runs code
or holds non-numeric arrays is refused, as everywhere); the output holds the
tensors in safetensors and everything else as JSON
(:mod:`balancedet.engine.safetensors_checkpoint`), so it loads without any
unpickling. ``meta['config']`` (executable config text of old mmcv/mmengine
checkpoints) is not carried over; ``meta['cfg']`` stays as plain text. The
output defaults to IN with a ``.safetensors`` suffix; the input is never
overwritten, an existing output only with ``--overwrite``.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('input', help='checkpoint path or URL (http(s)://, torchvision://, ...)')
    parser.add_argument('output', nargs='?', help='output .safetensors path')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output file (never the input)')
    return parser.parse_args(argv)


def default_output(path):
    return osp.splitext(osp.basename(path.split('://', 1)[1]) if '://' in path else path)[0] \
        + '.safetensors'


def main(argv=None):
    args = parse_args(argv)
    out = args.output or default_output(args.input)
    if not out.endswith('.safetensors'):
        sys.exit(f'error: output {out!r} must end with .safetensors')
    if '://' not in args.input and osp.exists(out) and (
            osp.realpath(out) == osp.realpath(args.input) or osp.samefile(out, args.input)):
        sys.exit(f'error: output {out!r} is the input file; refusing to overwrite the input')
    if osp.exists(out) and not args.overwrite:
        sys.exit(f'error: output {out!r} exists; pass --overwrite to replace it')

    from mmengine.runner.checkpoint import CheckpointLoader

    import balancedet  # noqa: F401  (registers the safe loaders)
    from balancedet.engine.safetensors_checkpoint import checkpoint_to_safetensors
    checkpoint = CheckpointLoader.load_checkpoint(args.input, map_location='cpu')
    if not isinstance(checkpoint, dict):
        sys.exit(f'error: {args.input!r} does not hold a dict')
    if 'state_dict' not in checkpoint and all(hasattr(v, 'shape') for v in checkpoint.values()):
        checkpoint = dict(state_dict=checkpoint)   # a bare state dict
    checkpoint_to_safetensors(checkpoint, out)
    print(f'wrote {out} ({len(checkpoint.get("state_dict", {}))} weight tensors)')


if __name__ == '__main__':
    main()
