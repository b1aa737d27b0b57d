"""Config handling behind ``tools/train.py`` and ``tools/test.py``.

The tools stay as thin as mmdet's: they parse arguments and call
:func:`load_config` then :func:`build_runner`. Everything a CPU-only or
distributed user needs beyond mmdet's tools lives here:

* ``--launcher pytorch`` on a machine without CUDA switches the process
  group backend to ``gloo`` (the configs say ``nccl``, which needs GPUs),
  joins the group itself and wraps the model in DDP without ``device_ids``
  (mmengine 0.10.7 assumes CUDA for both);
* ``--amp`` turns on float16 mixed precision (CUDA only: a clear error on CPU);
* ``--resume`` and ``load_from`` go through balancedet's safe checkpoint
  loader (:mod:`balancedet.engine.safe_checkpoint`), for every source;
* ``--cfg-options`` keys are checked against the resolved config
  (:func:`check_cfg_options`): a key that names nothing is an error listing
  the closest existing keys; ``+key=value`` adds a new key on purpose;
* arguments that mmengine keeps for later (``CheckpointHook``'s extra
  keyword arguments, used at the first save) are checked when the runner is
  built (:func:`check_deferred_arguments`), so a typo fails at start;
* ``tools/test.py`` refuses weights that do not cover the model
  (:class:`StrictWeightsHook`) unless ``--allow-partial``.
"""
import difflib
import inspect
import os
import os.path as osp
import re

import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from balancedet.engine import safe_checkpoint  # noqa: F401  (installs the safe loader)
from balancedet.engine.multi_label_check_hook import MultiLabelTargetCheckHook
from balancedet.engine.rng_state_hook import RNGStateHook


class ConfigOptionError(KeyError):
    """A ``--cfg-options`` key names nothing in the config."""

    def __str__(self):
        return str(self.args[0])


def _walk(cfg, parts):
    """Follow ``parts`` through dicts/lists; return (found, last container, depth)."""
    cur = cfg
    for depth, part in enumerate(parts):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, (list, tuple)) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, cur, depth
    return True, cur, len(parts)


def _all_keys(node, prefix=''):
    if isinstance(node, dict):
        for k, v in node.items():
            key = f'{prefix}{k}'
            yield key
            yield from _all_keys(v, key + '.')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):   # (a scalar item yields nothing)
            yield from _all_keys(v, f'{prefix}{i}.')


#: top-level keys the runner accepts although a config need not set them
_RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}
#: dicts without ``type`` whose allowed keys are a function's parameters
_KNOWN_SCHEMAS = {'randomness': frozenset(inspect.signature(Runner.set_randomness).parameters)
                                - {'self'}}


def _closest(name, candidates, n):
    return ', '.join(difflib.get_close_matches(name, candidates, n=n, cutoff=0.6))


def check_cfg_options(cfg, cfg_options):
    """Validate ``--cfg-options`` against ``cfg``; return them with ``+`` prefixes removed.

    A key is accepted when its whole path exists in the resolved config, when
    it is a top-level argument of mmengine's ``Runner`` (``work_dir``,
    ``load_from``, ``resume``, ...), when it is a new argument of a component
    config (a dict with ``type``: the component's constructor checks its
    arguments when it is built, which is before the first iteration), or a
    known key of ``randomness``. Any other key is a
    :class:`ConfigOptionError` listing the closest existing keys; prefix it
    with ``+`` (``--cfg-options +my_new_key=1``) to add it on purpose.
    """
    if not cfg_options:
        return cfg_options
    tree = cfg.to_dict()
    out, bad = {}, []
    for key, value in cfg_options.items():
        out[key.removeprefix('+')] = value
        if key.startswith('+'):
            continue
        parts = key.split('.')
        found, parent, depth = _walk(tree, parts)
        if not (found or (len(parts) == 1 and key in _RUNNER_KEYS) or (
                depth == len(parts) - 1 and isinstance(parent, dict) and (
                    'type' in parent
                    or (depth == 1 and parts[1] in _KNOWN_SCHEMAS.get(parts[0], ()))))):
            bad.append(key)
    if bad:
        candidates = sorted(set(_all_keys(tree)) | _RUNNER_KEYS)
        lines = [f'  {key!r}: closest existing keys: {_closest(key, candidates, 5) or "(none)"}'
                 for key in bad]
        raise ConfigOptionError(
            '--cfg-options names keys that are not in the config:\n' + '\n'.join(lines)
            + '\nFix the spelling, or write +KEY=VALUE to add a new key on purpose.')
    return out


def add_runner_arguments(parser):
    """The options ``tools/train.py`` and ``tools/test.py`` share."""
    parser.add_argument('--work-dir', help='the dir to save logs, models and evaluations')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value; +key=value adds a new key')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def load_config(config, *, work_dir=None, cfg_options=None, launcher='none', amp=False,
                auto_scale_lr=False, resume=None, checkpoint=None):
    """Read ``config`` and apply the command-line options of the tools.

    Args:
        config (str): Path of the config file.
        work_dir (str, optional): Overrides ``cfg.work_dir``; by default
            ``work_dirs/<config name>``.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        amp (bool): Mixed precision training.
        auto_scale_lr (bool): Scale the LR by the total batch size.
        resume (str, optional): ``'auto'`` resumes from the latest checkpoint
            of the work dir; a path resumes from that checkpoint.
        checkpoint (str, optional): Weights to evaluate (test tool).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(check_cfg_options(cfg, cfg_options))
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])

    if launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
        # mmengine passes device_ids=[LOCAL_RANK] to DDP, which CPU modules refuse.
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper

    if amp:
        if not torch.cuda.is_available():
            raise ValueError('--amp needs a CUDA device (mmengine\'s AmpOptimWrapper refuses the '
                             'CPU); drop --amp to train in float32 on the CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if auto_scale_lr:
        scale = cfg.get('auto_scale_lr')
        if not scale or 'base_batch_size' not in scale:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict(enable=False, '
                             'base_batch_size=N)` in the config')
        cfg.auto_scale_lr.enable = True

    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, _existing(resume, '--resume checkpoint')
    if checkpoint is not None:
        cfg.load_from = _existing(checkpoint, 'checkpoint')
    return cfg


def _existing(path, what):
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} does not exist')
    return path


def _unknown(names, allowed, what):
    lines = [f'{name!r}' + (f' (did you mean {close}?)' if (
        close := _closest(name, sorted(allowed), 3)) else '') for name in sorted(names)]
    return f'{what}: unknown argument(s) {"; ".join(lines)}; accepted: {", ".join(sorted(allowed))}'


def check_deferred_arguments(runner):
    """Check now the arguments mmengine keeps for later use.

    ``CheckpointHook(**kwargs)`` stores unknown keyword arguments and passes
    them to ``Runner.save_checkpoint`` at the first save, after a whole epoch:
    ``default_hooks.checkpoint.intervall=1`` failed only then. Every other
    hook, the samplers, datasets and metrics take their arguments in their
    constructors, which mmengine calls before the first iteration.
    """
    save_params = set(inspect.signature(runner.save_checkpoint).parameters)
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook) and (
                unknown := set(getattr(hook, 'args', None) or ()) - save_params):
            accepted = (set(inspect.signature(CheckpointHook.__init__).parameters)
                        | save_params) - {'self', 'kwargs', 'out_dir', 'filename'}
            raise TypeError(_unknown(unknown, accepted, type(hook).__name__))


class StrictWeightsHook(Hook):
    """Refuse a checkpoint whose weights do not cover the model (``tools/test.py``).

    Runs in ``after_load_checkpoint``, i.e. on the checkpoint dict before its
    weights are copied into the model: missing keys, unexpected keys and shape
    mismatches (after mmengine's default ``^module.`` prefix removal) are an
    error naming the first few. ``num_batches_tracked`` buffers are not
    weights and may be missing (mmengine ignores them too).
    """

    priority = 'VERY_HIGH'

    def __init__(self, filename='checkpoint', show=5):
        self.filename, self.show = filename, show

    def after_load_checkpoint(self, runner, checkpoint):
        model = runner.model
        if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        weights = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
        weights = {re.sub(r'^module\.', '', k): v for k, v in weights.items()}
        expected = model.state_dict()
        missing = [k for k in expected
                   if k not in weights and not k.endswith('num_batches_tracked')]
        unexpected = [k for k in weights if k not in expected]
        mismatched = [f'{k} (checkpoint {tuple(weights[k].shape)}, model {tuple(v.shape)})'
                      for k, v in expected.items() if k in weights and hasattr(weights[k], 'shape')
                      and tuple(weights[k].shape) != tuple(v.shape)]
        problems = []
        for what, keys in (('missing from the checkpoint', missing),
                           ('not in the model', unexpected), ('with another shape', mismatched)):
            if keys:
                more = f' and {len(keys) - self.show} more' if len(keys) > self.show else ''
                problems.append(f'{len(keys)} key(s) {what}: {", ".join(keys[:self.show])}{more}')
        if problems:
            raise ValueError(
                f'the weights of {self.filename!r} do not cover the model '
                f'({type(model).__name__}): ' + '; '.join(problems)
                + '. Evaluating it would score a partly random model. Check the config matches '
                'the checkpoint, or pass --allow-partial to evaluate anyway.')


def build_runner(cfg, *, strict_weights=False):
    """Build mmengine's runner (or ``cfg.runner_type``) from a loaded config.

    Args:
        cfg (Config): From :func:`load_config`.
        strict_weights (bool): Register :class:`StrictWeightsHook` (test tool).
    """
    os.environ.setdefault('LOCAL_RANK', '0')
    if (cfg.get('launcher', 'none') == 'pytorch' and not torch.cuda.is_available()
            and not torch.distributed.is_initialized()):
        # mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device``, which a CPU
        # build of torch cannot do; the runner skips its own initialisation when a
        # process group already exists
        torch.distributed.init_process_group(
            backend=cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo'),
            init_method='env://')
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    check_deferred_arguments(runner)
    # registered once, whatever the config's hook lists say: the generators' states
    # travel in every checkpoint (exact resume); multi-label data with a head/loss that
    # would reduce it to one label is an error before the first iteration
    for hook_type in (RNGStateHook, MultiLabelTargetCheckHook):
        if not any(isinstance(h, hook_type) for h in runner.hooks):
            runner.register_hook(hook_type())
    if strict_weights:
        runner.register_hook(StrictWeightsHook(cfg.get('load_from') or 'checkpoint'))
    return runner
