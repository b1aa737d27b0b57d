"""One safe loader for every checkpoint, whatever its source: nothing in a file runs code.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and refuses
any pickled global that is not allow-listed. mmengine 0.10.7 writes a few such
objects into its checkpoints (the message hub's ``HistoryBuffer``, numpy
arrays, dtypes and scalars), and its own loaders either fail on them or, for
URLs, call ``torch.hub.load_state_dict_from_url`` with ``weights_only=False``.

This module registers, with ``CheckpointLoader.register_scheme(...,
force=True)``, one loader for every scheme mmengine 0.10.7 knows (a local
path, ``http://``, ``https://``, ``torchvision://``, ``modelzoo://``,
``open-mmlab://``, ``openmmlab://``, ``mmcls://``, ``pavi://``, ``s3://``,
``petrel://``). Each resolves the source to bytes on disk (a URL is
downloaded into torch.hub's cache, ``$TORCH_HOME/hub/checkpoints``, and that
cached file is read like any local file) and hands them to
:func:`load_checkpoint_file`, which

* recognises the format from the bytes: a PyTorch zip or legacy pickle, or a
  safetensors file (:mod:`balancedet.engine.safetensors_checkpoint`, which
  needs no unpickling at all); an empty, text or truncated file is a
  :class:`CheckpointFormatError` naming the file;
* unpickles with ``torch.load(weights_only=True)`` where every non-torch
  global is an **inert stand-in**: ``numpy.ndarray``, ``numpy.dtype``, the
  ``numpy._core`` / ``numpy.core`` (numpy 1.x) ``multiarray._reconstruct``
  and ``scalar`` functions, mmengine's ``HistoryBuffer`` and ``getattr`` only
  *record* their arguments. Nothing the file names is ever called, so
  neither a numpy ``dtype.__setstate__`` with forged flags (the SIGSEGV
  vector) nor ``HistoryBuffer.__setstate__`` (which writes the file's
  functions into the class-wide statistics table) nor a
  ``_rebuild_from_type_v2`` call on a resolved method can run;
* rebuilds the recorded objects **by value**, after validating them: arrays
  and scalars only with plain numeric dtypes (bool, signed/unsigned
  integers, float16/32/64, complex64/128, any byte order) and exactly the
  bytes their shape needs; a ``HistoryBuffer`` through its constructor from
  two numeric 1-D arrays and an integer ``max_length`` (the file's
  ``statistics_methods`` are ignored: the statistics are mmengine's code,
  not data); a ``getattr`` reference is legal only there;
* removes ``meta['config']``: mmengine's ``Runner.resume`` would pass it to
  ``Config.fromstring(..., '.py')``, which executes it. The only thing resume
  reads from it, ``gpu_ids``, is parsed as data (``ast``, never executed) and
  a mismatch with the world size is logged. ``meta['cfg']`` (the config text
  mmengine 0.10.7 writes) stays a plain string nobody evaluates.

A refused file raises :class:`UnsafeCheckpointError` naming the file and the
offending global or value. Nothing is added to torch's process-wide allowlist
and the safety is never turned off. Users whose checkpoints carry other
trusted types add them with :func:`allow_globals` (those, and only those, are
then built by the unpickler itself).
"""
import ast
import io
import logging
import math
import os
import os.path as osp
import pickle
import re
import tempfile
from collections import Counter, OrderedDict
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import checkpoint as mmckpt


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object or value outside the allowlist."""


class CheckpointFormatError(ValueError):
    """A file is not a readable checkpoint (empty, text, truncated, corrupt)."""


# --------------------------------------------------------------------------
# inert stand-ins for every non-torch global a mmengine checkpoint names
# --------------------------------------------------------------------------
class _Stub:
    """Records what the unpickler would have built; never does anything else."""

    __slots__ = ('args', 'state')

    def __new__(cls, *args):
        obj = object.__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __setstate__(self, state):
        self.state = state


# The stand-ins, called (REDUCE) or instantiated (NEWOBJ) in place of:
#   _NdarrayStub        numpy.ndarray (the class argument of ``_reconstruct``)
#   _ArrayStub          numpy._core.multiarray._reconstruct(ndarray, shape, typecode)
#   _DtypeStub          numpy.dtype(code, align, copy), then its __setstate__ tuple
#   _ScalarStub         numpy._core.multiarray.scalar(dtype, bytes)
#   _HistoryBufferStub  mmengine.logging.history_buffer.HistoryBuffer (NEWOBJ then BUILD)
#   _AttrRef            getattr(owner, name), recorded as a reference, never resolved
_NdarrayStub, _ArrayStub, _DtypeStub, _ScalarStub, _HistoryBufferStub, _AttrRef = (
    type(name, (_Stub, ), dict(__slots__=(), __module__=__name__)) for name in (
        '_NdarrayStub', '_ArrayStub', '_DtypeStub', '_ScalarStub', '_HistoryBufferStub',
        '_AttrRef'))


def _bytes(*args):
    """``bytes()``: how protocol-2 pickles write ``b''`` (an empty array's data)."""
    if args and not (len(args) == 1 and isinstance(args[0], (bytes, bytearray))):
        raise pickle.UnpicklingError(f'unsupported GLOBAL bytes{args!r}')
    return bytes(*args)


# numpy >= 2 and numpy 1.x module names of ``_reconstruct`` and ``scalar``
_NUMPY_CORES = [f'{core}.{mod}' for core in ('numpy._core', 'numpy.core')
                for mod in ('multiarray', '_multiarray_umath')]
#: What the restricted unpickler may resolve beyond torch's defaults: stand-ins only.
_STANDINS = [(_NdarrayStub, 'numpy.ndarray'), (_DtypeStub, 'numpy.dtype'),
             (_HistoryBufferStub, 'mmengine.logging.history_buffer.HistoryBuffer'),
             *((_ArrayStub, f'{core}._reconstruct') for core in _NUMPY_CORES),
             *((_ScalarStub, f'{core}.scalar') for core in _NUMPY_CORES),
             *((obj, f'{mod}.{name}') for mod in ('builtins', '__builtin__')
               for name, obj in (('getattr', _AttrRef), ('bytes', _bytes)))]
#: Trusted real types users add with :func:`allow_globals`.
_USER_ALLOWED = []


def allow_globals(*objs):
    """Trust these classes/functions: the unpickler then builds them itself.

    This is the only way code named by a file can run during loading: use it
    only for types whose ``__setstate__``/constructor you trust with any input.
    """
    for obj in objs:
        if obj not in _USER_ALLOWED:
            _USER_ALLOWED.append(obj)


# --------------------------------------------------------------------------
# by-value rebuilding of what the stand-ins recorded
# --------------------------------------------------------------------------
#: numpy type codes of plain numeric dtypes (what ``dtype.__reduce__`` writes).
PLAIN_DTYPE_CODES = frozenset(
    ['b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8', 'c8', 'c16'])
_PASS_THROUGH = (str, bytes, bytearray, int, float, complex, bool, type(None), torch.Tensor,
                 torch.Size, torch.device, torch.dtype, torch.layout)


class _Refusal(Exception):
    """A value that must not be built; carries the reason."""


def plain_dtype(code, endian='|'):
    """``numpy.dtype`` for a plain numeric type code, else :class:`_Refusal`."""
    if not isinstance(code, str) or code not in PLAIN_DTYPE_CODES:
        raise _Refusal(f'numpy dtype {code!r} is not a plain numeric dtype (allowed: '
                       f'{sorted(PLAIN_DTYPE_CODES)}; object, void/structured, string and '
                       'datetime dtypes are refused)')
    if not isinstance(endian, str) or endian not in ('<', '>', '|', '='):
        raise _Refusal(f'numpy dtype byte order {endian!r} is invalid')
    return np.dtype(code).newbyteorder(endian)   # '|' keeps, '=' is native


def _build_dtype(stub, resolve):
    args, state = stub.args, stub.state
    if len(args) != 3 or args[1:] != (False, True):
        raise _Refusal(f'numpy dtype arguments {args!r} are not the ones numpy writes')
    code = args[0]
    plain_dtype(code)   # refuses object / void / string / datetime codes first
    if state is None:
        return plain_dtype(code)
    # (version, byte order, subarray, names, fields, elsize, alignment, flags): a
    # plain dtype has no subarray/fields and numpy's defaults for the rest. Forged
    # flags (NPY_ITEM_HASOBJECT on a void) are what turns bytes into pointers.
    if (not isinstance(state, tuple) or len(state) != 8 or state[0] != 3
            or state[2:] != (None, None, None, -1, -1, 0)):
        raise _Refusal(f'numpy dtype {code!r} with state {state!r}: not that of a plain '
                       'numeric dtype (subarray, fields, item size, alignment or flags set)')
    return plain_dtype(code, state[1])


def _build_array(stub, resolve):
    args, state = stub.args, stub.state
    if (len(args) != 3 or args[0] is not _NdarrayStub or args[1] != (0,)
            or args[2] != b'b'):
        raise _Refusal(f'numpy _reconstruct arguments {args!r} are not the ones numpy writes')
    if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
        raise _Refusal('numpy array state is not (1, shape, dtype, fortran, bytes)')
    _, shape, dtype, fortran, raw = state
    if not isinstance(dtype, _DtypeStub):
        raise _Refusal(f'numpy array dtype is a {type(dtype).__name__}, not a dtype')
    dtype = resolve(dtype)
    if (not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape)
            or not isinstance(fortran, bool) or not isinstance(raw, (bytes, bytearray))):
        raise _Refusal('numpy array shape, order or data is malformed (data must be raw bytes)')
    return array_from_bytes(raw, dtype, shape, 'F' if fortran else 'C', 'numpy array')


def array_from_bytes(raw, dtype, shape, order='C', what='array'):
    """A copy of exactly the bytes an array of ``shape`` needs, else :class:`_Refusal`."""
    count = math.prod(shape)
    if len(raw) != count * dtype.itemsize:
        raise _Refusal(f'{what} of shape {shape} and dtype {dtype} needs '
                       f'{count * dtype.itemsize} bytes, the file holds {len(raw)}')
    return np.frombuffer(bytes(raw), dtype=dtype, count=count).copy().reshape(shape, order=order)


def _build_scalar(stub, resolve):
    if len(stub.args) != 2 or not isinstance(stub.args[0], _DtypeStub) or stub.state is not None:
        raise _Refusal('numpy scalar is not (dtype, bytes)')
    dtype, raw = resolve(stub.args[0]), stub.args[1]
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != dtype.itemsize:
        raise _Refusal(f'numpy scalar of dtype {dtype} needs {dtype.itemsize} raw bytes')
    return np.frombuffer(bytes(raw), dtype=dtype, count=1)[0]


_HISTORY_KEYS = {'max_length', '_log_history', '_count_history'}


def history_buffer_from_values(log_history, count_history, max_length):
    """A ``HistoryBuffer`` built through its constructor from validated values."""
    for name, arr in (('log_history', log_history), ('count_history', count_history)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind not in 'biuf':
            raise _Refusal(f'HistoryBuffer {name} must be a 1-D numeric array')
    if len(log_history) != len(count_history):
        raise _Refusal('HistoryBuffer log and count histories differ in length')
    if type(max_length) is not int or max_length <= 0:
        raise _Refusal(f'HistoryBuffer max_length {max_length!r} is not a positive int')
    return HistoryBuffer(log_history, count_history, max_length)


def _build_history(stub, resolve):
    state = stub.state
    if stub.args or not isinstance(state, dict):
        raise _Refusal('HistoryBuffer state is not a dict')
    keys = set(state) - {'statistics_methods'}
    if keys != _HISTORY_KEYS:
        raise _Refusal(f'HistoryBuffer state keys {sorted(map(str, state))} are not '
                       f'{sorted(_HISTORY_KEYS)} (+ statistics_methods)')
    # ``statistics_methods`` holds getattr references to mmengine's own methods;
    # they are code, not data, and are never restored from a file.
    return history_buffer_from_values(resolve(state['_log_history']),
                                      resolve(state['_count_history']), state['max_length'])


#: how each recorded object is rebuilt by value
_BUILDERS = {_DtypeStub: _build_dtype, _ArrayStub: _build_array, _ScalarStub: _build_scalar,
             _HistoryBufferStub: _build_history}


def _resolver():
    memo = {}

    def resolve(obj):
        key = id(obj)
        if key in memo:
            return memo[key][1]
        kind = type(obj)
        if isinstance(obj, torch.Tensor) or kind in _PASS_THROUGH:
            return obj
        if kind in (dict, OrderedDict, Counter, list):
            out = kind()
            memo[key] = (obj, out)   # before the items: shared and self references
            if kind is list:
                out.extend(resolve(v) for v in obj)
            else:
                for k, v in obj.items():
                    out[resolve(k)] = resolve(v)
            return out
        if kind in (tuple, set, frozenset):
            out = kind(resolve(v) for v in obj)
        elif kind in _BUILDERS:
            out = _BUILDERS[kind](obj, resolve)
        elif kind is _AttrRef:
            raise _Refusal(f'getattr{obj.args!r} outside a HistoryBuffer\'s statistics table')
        elif kind is _NdarrayStub:
            raise _Refusal('a numpy.ndarray built outside _reconstruct')
        elif isinstance(obj, tuple(t for t in _USER_ALLOWED if isinstance(t, type))):
            out = obj
        else:
            raise _Refusal(f'a value of type {kind.__module__}.{kind.__qualname__}')
        memo[key] = (obj, out)
        return out

    return resolve


def rebuild_by_value(obj, name):
    """Turn the stand-ins of an unpickled checkpoint into validated values."""
    try:
        return _resolver()(obj)
    except _Refusal as err:
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {name!r}: it holds {err}. Loading it could corrupt '
            'memory or run code; only the values mmengine writes are accepted.') from None
    except RecursionError:
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {name!r}: its objects are nested too deeply') from None
    except (TypeError, AttributeError, ValueError) as err:
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {name!r}: it holds a malformed object ({err})') from None


# --------------------------------------------------------------------------
# formats
# --------------------------------------------------------------------------
_REFUSAL = re.compile(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([^ ]+)'
                      r'|(Trying to call reduce for unrecognized function .*)'
                      r'|(Can only (?:build|create new object for) .*)')


def sniff_format(head, name):
    """``'torch-zip'``, ``'torch-pickle'`` or ``'safetensors'`` from a file's first bytes."""
    if not head:
        raise CheckpointFormatError(
            f'checkpoint {name!r} is empty (0 bytes): an interrupted save or download? '
            'Delete it and save/download it again')
    if head[:4] == b'PK\x03\x04':
        return 'torch-zip'
    if head[:1] == b'\x80' and len(head) > 1 and head[1:2] in b'\x02\x03\x04\x05':
        return 'torch-pickle'
    if len(head) >= 9 and head[8:9] == b'{' and int.from_bytes(head[:8], 'little') < 1 << 30:
        return 'safetensors'
    raise CheckpointFormatError(
        f'checkpoint {name!r} is neither a PyTorch checkpoint (zip or pickle) nor a '
        f'safetensors file: it starts with {head[:16]!r}. Is it a text file, an HTML error '
        'page of a download, or another format?')


def safe_torch_load(file, map_location=None, name=None):
    """Restricted ``torch.load`` of a path or file object; returns validated values.

    Raises:
        UnsafeCheckpointError: the file references a global outside the
            allowlist or holds a value that is not plain data; the message
            names the file and what was refused.
        CheckpointFormatError: the file is empty, text, truncated or corrupt.
    """
    name = name or (file if isinstance(file, str) else getattr(file, 'name', '<buffer>'))
    try:
        with torch.serialization.safe_globals([*_STANDINS, *_USER_ALLOWED]):
            obj = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        match = _REFUSAL.search(str(err))
        if match is None:
            raise CheckpointFormatError(
                f'checkpoint {name!r} is corrupt or truncated ({err})') from None
        what = (f'the pickled object {match.group(1)!r}' if match.group(1)
                else match.group(2) or match.group(3))
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {name!r}: it references {what}, which is not one '
            'of the types mmengine writes. Loading it could run arbitrary code. If you trust the '
            'file and its origin, allow the type with '
            '`balancedet.engine.safe_checkpoint.allow_globals(<type>)` before loading, or '
            're-save only its state_dict.') from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError,
            TypeError, AttributeError) as err:
        raise CheckpointFormatError(
            f'checkpoint {name!r} is truncated or corrupt (or crafted) and cannot be read '
            f'({type(err).__name__}: {str(err)[:200]}). Save or download it again') from None
    return rebuild_by_value(obj, name)


def _config_gpu_ids(text):
    """``gpu_ids`` of a config text, read as data (the text is parsed, never run)."""
    try:
        for node in ast.parse(text).body:
            names = [getattr(t, 'id', None) for t in getattr(node, 'targets', ())]
            if isinstance(node, ast.Assign) and names == ['gpu_ids']:
                return ast.literal_eval(node.value)
    except (SyntaxError, ValueError, TypeError):
        return None


def neutralise_meta(checkpoint, name):
    """Remove ``meta['config']`` (mmengine's resume would execute it); see module doc."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or 'config' not in meta:
        return checkpoint
    text = meta.pop('config')
    gpu_ids = _config_gpu_ids(text) if isinstance(text, str) else None
    world_size = get_dist_info()[1]
    if isinstance(gpu_ids, (list, tuple)) and gpu_ids and len(gpu_ids) != world_size:
        print_log(f'checkpoint {name!r} was trained on {len(gpu_ids)} GPUs, this run has '
                  f'{world_size} processes: scale the learning rate (auto_scale_lr)',
                  logger='current', level=logging.WARNING)
    return checkpoint


def load_checkpoint_file(file, map_location=None, name=None):
    """Load a checkpoint from a local path or a binary file object, safely.

    The one function every source ends in (see the module doc). Returns the
    checkpoint dict with ``meta['config']`` removed.
    """
    if isinstance(file, (str, os.PathLike)):
        file = osp.expanduser(os.fspath(file))
        if not osp.isfile(file):
            raise FileNotFoundError(f'checkpoint {file!r} does not exist')
        with open(file, 'rb') as f:
            head = f.read(16)
    else:
        pos = file.tell()
        head = file.read(16)
        file.seek(pos)
    name = name or (file if isinstance(file, str) else getattr(file, 'name', '<buffer>'))
    load = safe_torch_load
    if sniff_format(head, name) == 'safetensors':
        from .safetensors_checkpoint import load_safetensors_checkpoint as load
    return neutralise_meta(load(file, map_location=map_location, name=name), name)


# --------------------------------------------------------------------------
# every source mmengine knows, through that one function
# --------------------------------------------------------------------------
def _download(url, model_dir=None):
    """torch.hub's cached copy of ``url`` (``$TORCH_HOME/hub/checkpoints/<basename>``)."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urlparse(url).path) or 'checkpoint')
    if not osp.isfile(cached):
        torch.hub.download_url_to_file(url, cached, progress=False)
    return cached


def load_from_http(filename, map_location=None, model_dir=None):
    """``http(s)://`` through torch.hub's cache, then the safe file loader.

    In a distributed run local rank 0 downloads first; the other ranks wait,
    then read the cached file.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(filename, model_dir)
    if world_size > 1:
        torch.distributed.barrier()
    cached = _download(filename, model_dir)   # rank 0: already cached
    return load_checkpoint_file(cached, map_location=map_location,
                                name=f'{filename} (cached as {cached})')


def _model_url(filename, urls, what, renamed=()):
    """The URL mmengine's table ``urls`` gives the model ``SCHEME://NAME`` names."""
    name = filename.split('://', 1)[1]
    name = dict(renamed).get(name, name)
    if name not in urls:
        raise KeyError(f'{filename!r}: unknown {what} model {name!r}')
    return urls[name]


def load_from_torchvision(filename, map_location=None):
    """``torchvision://NAME`` / ``modelzoo://NAME``: mmengine's URL table, then HTTP."""
    return load_from_http(_model_url(filename, mmckpt.get_torchvision_models(), 'torchvision'),
                          map_location=map_location)


def load_from_openmmlab(filename, map_location=None):
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's tables, then HTTP or a file."""
    url = _model_url(filename, mmckpt.get_external_models(), 'OpenMMLab',
                     mmckpt.get_deprecated_model_names())
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location=map_location)
    home = os.getenv('MMENGINE_HOME') or osp.join(os.getenv('XDG_CACHE_HOME', '~/.cache'),
                                                  'mmengine')
    return load_checkpoint_file(osp.join(osp.expanduser(home), url), map_location=map_location)


def load_from_mmcls(filename, map_location=None):
    """``mmcls://NAME``: HTTP, then only the ``backbone.`` weights, prefix removed."""
    checkpoint = load_from_http(_model_url(filename, mmckpt.get_mmcls_models(), 'mmcls'),
                                map_location=map_location)
    weights = checkpoint.get('state_dict', checkpoint)
    return dict(state_dict=OrderedDict(
        (k[len('backbone.'):], v) for k, v in weights.items() if k.startswith('backbone.')))


def load_from_pavi(filename, map_location=None):
    """``pavi://PATH``: download with pavi into a temporary dir, then the safe loader."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, osp.basename(model.name))
        model.download(downloaded)
        return load_checkpoint_file(downloaded, map_location=map_location, name=filename)


def load_from_ceph(filename, map_location=None, backend='petrel'):
    """``s3://`` / ``petrel://``: bytes from mmengine's file backend, then the safe loader."""
    from mmengine.fileio import get_file_backend
    data = get_file_backend(filename, backend_args={'backend': backend}).get(filename)
    return load_checkpoint_file(io.BytesIO(data), map_location=map_location, name=filename)


def load_from_local(filename, map_location=None):
    """A local path (the fallback scheme)."""
    return load_checkpoint_file(filename, map_location=map_location)


#: scheme prefixes of mmengine 0.10.7 → balancedet's safe loader for them
SCHEMES = {
    '': load_from_local,
    ('http://', 'https://'): load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    'mmcls://': load_from_mmcls,
    'pavi://': load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
}


def install():
    """Register the safe loader for every scheme (idempotent)."""
    for prefixes, loader in SCHEMES.items():
        mmckpt.CheckpointLoader.register_scheme(prefixes=prefixes, loader=loader, force=True)


install()
