"""A checkpoint format that needs no unpickling: tensors in safetensors, the rest as JSON.

One ``.safetensors`` file holds a whole mmengine checkpoint: every tensor
(weights, optimizer moments, RNG state tensors) is a safetensors tensor, and
everything else (``meta``, the message hub, optimizer/scheduler scalars and
structure, RNG states, numpy arrays and scalars, ``HistoryBuffer`` values) is
one JSON document in the file's header metadata (key ``balancedet.checkpoint``).
Loading parses JSON and raw little-endian tensor bytes only: no pickle, no
global, nothing the file names is looked up or called.

JSON encoding (a JSON object is always exactly one tag):

========================  ================================================
Python value              JSON
========================  ================================================
None, bool, int, str      themselves
float                     itself; ``{"$float": "nan" | "inf" | "-inf"}``
list                      list
tuple / set               ``{"$tuple": [...]}`` / ``{"$set": [...]}``
dict / OrderedDict        ``{"$dict": [[key, value], ...]}`` / ``{"$odict": ...}``
torch.Tensor              ``{"$tensor": "<safetensors name>"}``
numpy array / scalar      ``{"$ndarray": {dtype, shape, data}}`` / ``{"$npscalar": ...}``
                          (plain numeric dtypes only; data base64 of raw bytes)
HistoryBuffer             ``{"$history": {max_length, log, count}}`` (by value)
bytes, torch.Size/dtype   ``{"$bytes": b64}``, ``{"$size": [...]}``, ``{"$tdtype": "float32"}``
========================  ================================================

Keys keep their types (optimizer state is keyed by ``int``) and order. Every
tensor, array and value therefore round-trips bit for bit, and a run resumed
from a ``.safetensors`` checkpoint matches an uninterrupted one exactly, like
the ``.pth`` path (``tests/test_train_resume.py``).

Writing: :class:`SafetensorsCheckpointHook` (``default_hooks.checkpoint =
dict(type='SafetensorsCheckpointHook', interval=1)``) is mmengine's
``CheckpointHook`` saving ``epoch_N.safetensors`` / ``iter_N.safetensors``
through the file backend ``balancedet_safetensors`` registered here (mmengine
hands a backend the checkpoint it serialised; the backend reads it back
through the safe loader and writes this format instead). Reading:
:func:`balancedet.engine.safe_checkpoint.load_checkpoint_file` recognises the
format from its bytes, so ``--resume``, ``load_from``, ``init_cfg``
checkpoints and ``tools/test.py`` read it from any source. A safetensors file
without the metadata (plain weights, as model hubs ship them) loads as
``{'state_dict': tensors}``. ``tools/misc/convert_checkpoint.py`` converts a
``.pth``.
"""
import base64
import io
import json
import math
import os
import os.path as osp
from collections import OrderedDict
from itertools import chain, count

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging.history_buffer import HistoryBuffer

from .safe_checkpoint import (
    CheckpointFormatError,
    UnsafeCheckpointError,
    _Refusal,
    array_from_bytes,
    history_buffer_from_values,
    plain_dtype,
    safe_torch_load,
)

META_KEY = 'balancedet.checkpoint'
FORMAT = 'balancedet-checkpoint-v1'
BACKEND = 'balancedet_safetensors'


# --------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------
def _b64(raw):
    return base64.b64encode(raw).decode('ascii')


def _array_json(arr, where):
    arr = np.asarray(arr)
    if arr.dtype.kind not in 'biufc' or arr.dtype.fields is not None:
        raise TypeError(f'{where}: numpy dtype {arr.dtype} cannot be stored (plain numeric only)')
    code = arr.dtype.str   # e.g. '<f8', '|b1'
    return dict(dtype=code, shape=list(arr.shape), data=_b64(np.ascontiguousarray(arr).tobytes()))


class _Encoder:

    def __init__(self):
        self.tensors = OrderedDict()

    def _tensor_name(self, where):
        base = where or 'tensor'
        return next(name for name in chain([base], (f'{base}#{i}' for i in count(1)))
                    if name not in self.tensors)

    def __call__(self, obj, where=''):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and not isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, float) and not isinstance(obj, np.floating):
            if math.isfinite(obj):
                return float(obj)
            return {'$float': 'nan' if math.isnan(obj) else ('inf' if obj > 0 else '-inf')}
        if isinstance(obj, torch.Tensor):
            if obj.layout != torch.strided or obj.is_quantized:
                raise TypeError(f'{where}: {obj.layout} / quantized tensors cannot be stored')
            name = self._tensor_name(where)
            # a copy: safetensors refuses shared storage (tied weights) and needs contiguity
            self.tensors[name] = obj.detach().to('cpu').clone().contiguous()
            return {'$tensor': name}
        if isinstance(obj, torch.Size):
            return {'$size': list(obj)}
        if isinstance(obj, torch.dtype):
            return {'$tdtype': str(obj).replace('torch.', '')}
        if isinstance(obj, np.ndarray):
            return {'$ndarray': _array_json(obj, where)}
        if isinstance(obj, np.generic):
            return {'$npscalar': _array_json(np.asarray(obj), where)}
        if isinstance(obj, HistoryBuffer):
            log, counts = obj.data
            return {'$history': dict(max_length=int(obj.max_length), log=_array_json(log, where),
                                     count=_array_json(counts, where))}
        if isinstance(obj, (bytes, bytearray)):
            return {'$bytes': _b64(bytes(obj))}
        if isinstance(obj, list):
            return [self(v, f'{where}/{i}') for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {'$tuple': [self(v, f'{where}/{i}') for i, v in enumerate(obj)]}
        if isinstance(obj, (set, frozenset)):
            return {'$set': [self(v, f'{where}/{i}') for i, v in enumerate(sorted(obj, key=repr))]}
        if isinstance(obj, dict):
            tag = '$odict' if isinstance(obj, OrderedDict) else '$dict'
            return {tag: [[self(k, f'{where}/<key>'), self(v, f'{where}/{k}'.lstrip('/'))]
                          for k, v in obj.items()]}
        raise TypeError(f'{where or "checkpoint"}: a {type(obj).__module__}.'
                        f'{type(obj).__qualname__} cannot be stored in a safetensors checkpoint '
                        '(only tensors, numbers, strings, containers, numpy arrays and '
                        'HistoryBuffers)')


def checkpoint_to_safetensors(checkpoint, filename):
    """Write ``checkpoint`` (an mmengine checkpoint dict) to ``filename``."""
    from safetensors.torch import save_file
    encode = _Encoder()
    doc = encode(checkpoint)
    tmp = f'{filename}.tmp-{os.getpid()}'
    save_file(encode.tensors, tmp, metadata={META_KEY: json.dumps(doc, allow_nan=False),
                                             'format': FORMAT})
    os.replace(tmp, filename)   # never a half-written checkpoint under the final name


# --------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------
_TAGS = {'$float', '$tensor', '$size', '$tdtype', '$ndarray', '$npscalar', '$history', '$bytes',
         '$tuple', '$set', '$dict', '$odict'}
_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    'bool', 'uint8', 'int8', 'int16', 'int32', 'int64', 'float16', 'bfloat16', 'float32',
    'float64', 'complex64', 'complex128', 'uint16', 'uint32', 'uint64')}


def _array_from_json(spec):
    if not isinstance(spec, dict) or set(spec) != {'dtype', 'shape', 'data'}:
        raise _Refusal('an array record is not {dtype, shape, data}')
    code = spec['dtype']
    if not isinstance(code, str) or len(code) < 2:
        raise _Refusal(f'numpy dtype {code!r} is invalid')
    dtype = plain_dtype(code[1:], code[0])
    shape = spec['shape']
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise _Refusal(f'array shape {shape!r} is invalid')
    return array_from_bytes(base64.b64decode(spec['data'], validate=True), dtype, shape)


def _decoder(tensors):
    # tags whose value must be a key of a table: (table, what a missing key is)
    lookups = {'$float': ({v: float(v) for v in ('nan', 'inf', '-inf')}, 'float'),
               '$tensor': (tensors, 'a reference to a missing tensor'),
               '$tdtype': (_TORCH_DTYPES, 'torch dtype')}

    def decode(node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [decode(v) for v in node]
        if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _TAGS:
            raise _Refusal(f'an unknown JSON record {str(node)[:80]}')
        (tag, val), = node.items()
        if tag in lookups:
            table, what = lookups[tag]
            if not isinstance(val, str) or val not in table:
                raise _Refusal(f'{what} {val!r}')
            return table[val]
        if tag == '$size':
            return torch.Size(decode(val))
        if tag == '$ndarray':
            return _array_from_json(val)
        if tag == '$npscalar':
            arr = _array_from_json(val)
            if arr.shape != ():
                raise _Refusal('a numpy scalar with a shape')
            return arr[()]
        if tag == '$history':
            if not isinstance(val, dict) or set(val) != {'max_length', 'log', 'count'}:
                raise _Refusal('a HistoryBuffer record is not {max_length, log, count}')
            return history_buffer_from_values(_array_from_json(val['log']),
                                              _array_from_json(val['count']), val['max_length'])
        if tag == '$bytes':
            return base64.b64decode(val, validate=True)
        if not isinstance(val, list):
            raise _Refusal(f'{tag} record is not a list')
        if tag == '$tuple':
            return tuple(decode(v) for v in val)
        if tag == '$set':
            return {decode(v) for v in val}
        out = OrderedDict() if tag == '$odict' else {}
        for pair in val:
            if not isinstance(pair, list) or len(pair) != 2:
                raise _Refusal(f'{tag} item is not a [key, value] pair')
            out[decode(pair[0])] = decode(pair[1])
        return out

    return decode


def _metadata(source, name):
    if isinstance(source, str):
        with open(source, 'rb') as f:
            return _metadata(f, name)
    pos = source.tell()
    head = source.read(8)
    if len(head) < 8:
        raise CheckpointFormatError(f'safetensors file {name!r} is truncated (no header)')
    size = int.from_bytes(head, 'little')
    header = source.read(size)
    source.seek(pos)
    if len(header) != size:
        raise CheckpointFormatError(f'safetensors file {name!r} is truncated (header cut short)')
    try:
        header = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointFormatError(f'safetensors file {name!r} has a corrupt header ({err})')
    meta = header.get('__metadata__') if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def load_safetensors_checkpoint(source, map_location=None, name=None):
    """Read a safetensors checkpoint from a path or a binary file object."""
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file
    name = name or (source if isinstance(source, str) else '<buffer>')
    meta = _metadata(source, name)
    try:
        if isinstance(source, str):
            tensors = load_file(source, device='cpu')
        else:
            pos = source.tell()
            tensors = load(source.read())
            source.seek(pos)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointFormatError(
            f'safetensors file {name!r} is truncated or corrupt ({err})') from None
    if isinstance(map_location, dict):
        raise ValueError('a dict map_location is not supported for safetensors checkpoints')
    tensors = OrderedDict((k, v if map_location is None or callable(map_location)
                           else v.to(map_location)) for k, v in tensors.items())
    if META_KEY not in meta:
        return {'state_dict': tensors}   # plain weights (a model hub's file)
    try:
        checkpoint = _decoder(tensors)(json.loads(meta[META_KEY]))
    except json.JSONDecodeError as err:
        raise CheckpointFormatError(f'checkpoint {name!r}: its JSON metadata is corrupt ({err})')
    except (_Refusal, ValueError, TypeError) as err:
        raise UnsafeCheckpointError(f'refusing to load checkpoint {name!r}: it holds {err}; '
                                    'only the values mmengine writes are accepted') from None
    except RecursionError:
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {name!r}: its JSON is nested too deeply') from None
    if not isinstance(checkpoint, dict):
        raise CheckpointFormatError(f'checkpoint {name!r} does not hold a dict')
    return checkpoint


# --------------------------------------------------------------------------
# writing from training: a file backend and a CheckpointHook
# --------------------------------------------------------------------------
@register_backend(BACKEND, force=True)
class SafetensorsLocalBackend(LocalBackend):
    """Local files; a checkpoint ``put`` to ``*.safetensors`` is written in that format.

    mmengine's ``save_checkpoint`` serialises the checkpoint with
    ``torch.save`` and calls ``backend.put(bytes, path)``; for a
    ``.safetensors`` path the bytes are read back through the safe loader and
    written as a safetensors checkpoint. Everything else is ``LocalBackend``.
    """

    def put(self, obj, filepath):
        if str(filepath).endswith('.safetensors') and isinstance(obj, (bytes, bytearray)):
            with io.BytesIO(obj) as buf:
                try:
                    checkpoint = safe_torch_load(buf, map_location='cpu', name=str(filepath))
                except UnsafeCheckpointError as err:
                    raise TypeError(f'cannot write {filepath} as a safetensors checkpoint: it '
                                    f'holds a value that is not plain data ({err})') from None
            os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
            checkpoint_to_safetensors(checkpoint, str(filepath))
            return
        super().put(obj, filepath)


@HOOKS.register_module()
class SafetensorsCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` writing ``.safetensors`` checkpoints.

    Takes every argument of ``CheckpointHook``; the default file names are
    ``epoch_{}.safetensors`` / ``iter_{}.safetensors``. Local directories only.
    """

    def __init__(self, *args, filename_tmpl=None, backend_args=None, by_epoch=True, **kwargs):
        if filename_tmpl is None:
            filename_tmpl = 'epoch_{}.safetensors' if by_epoch else 'iter_{}.safetensors'
        if not filename_tmpl.endswith('.safetensors'):
            raise ValueError(f'SafetensorsCheckpointHook: filename_tmpl {filename_tmpl!r} must '
                             'end with .safetensors')
        if backend_args and backend_args.get('backend', BACKEND) != BACKEND:
            raise ValueError('SafetensorsCheckpointHook writes local files; drop backend_args '
                             f'{backend_args!r} or use CheckpointHook')
        super().__init__(*args, filename_tmpl=filename_tmpl, by_epoch=by_epoch,
                         backend_args={**(backend_args or {}), 'backend': BACKEND}, **kwargs)
