"""Safe (``weights_only``) loading of mmengine checkpoints under torch >= 2.6.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and refuses
any pickled global that is not allow-listed. mmengine 0.10.7 writes a few such
objects into its checkpoints (the message hub's ``HistoryBuffer`` and the
numpy arrays/scalars it holds), so ``--resume`` and ``load_from`` fail with
``Unsupported global: mmengine.logging.history_buffer.HistoryBuffer``.

This module replaces mmengine's loader for local files with one that calls
``torch.load(..., weights_only=True)`` inside
``torch.serialization.safe_globals(ALLOWED)``: exactly the types mmengine
writes are accepted, the unpickler stays restricted, and a checkpoint carrying
any other pickled object is refused with :class:`UnsafeCheckpointError`,
which names the file and the offending global. Nothing is added to torch's
process-wide allowlist and the safety is never turned off.

Users whose checkpoints carry other trusted types (say a custom hook's state)
add them with :func:`allow_globals`.
"""
import os.path as osp
import pickle
import re

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allowlist."""


def _numpy_globals():
    """numpy objects that pickled arrays, dtypes and scalars reference."""
    core = getattr(np, '_core', None) or np.core
    multiarray = core.multiarray
    found = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy >= 1.25 pickles dtypes as instances of per-type classes such as
    # ``numpy.dtypes.Float64DType``.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return found


def _history_buffer_getattr(owner, name):
    """Stand-in for ``getattr`` in checkpoints, limited to what mmengine pickles.

    A ``HistoryBuffer`` pickles its ``statistics_methods`` dict, whose values
    are its own methods, as ``getattr(HistoryBuffer, 'mean')`` and the like.
    Allow-listing the real ``getattr`` would let a crafted file reach any
    attribute of any allowed object (and from there ``eval``); this one
    resolves only public methods of ``HistoryBuffer``.
    """
    if owner is not HistoryBuffer or name.startswith('_') or not callable(
            getattr(HistoryBuffer, name, None)):
        raise pickle.UnpicklingError(
            f'Unsupported global: GLOBAL getattr({getattr(owner, "__name__", owner)!r}, '
            f'{name!r}) is outside the allowlist')
    return getattr(HistoryBuffer, name)


#: The globals an mmengine 0.10.7 checkpoint references beyond torch's own
#: defaults; ``getattr`` is served by the restricted stand-in above.
ALLOWED = [HistoryBuffer, *_numpy_globals(),
           (_history_buffer_getattr, '__builtin__.getattr'),
           (_history_buffer_getattr, 'builtins.getattr')]


def allow_globals(*objs):
    """Add trusted classes/functions to the allowlist of checkpoint loading."""
    for obj in objs:
        if obj not in ALLOWED:
            ALLOWED.append(obj)


_UNSUPPORTED = re.compile(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([^ ]+)')


def safe_torch_load(filename, map_location=None):
    """``torch.load`` with ``weights_only=True`` and mmengine's types allowed.

    Raises:
        UnsafeCheckpointError: the file references a global outside
            :data:`ALLOWED`; the message names it.
    """
    try:
        with torch.serialization.safe_globals(ALLOWED):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        match = _UNSUPPORTED.search(str(err))
        what = f'the pickled object {match.group(1)!r}' if match else 'a pickled object'
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename!r}: it references {what}, which is not one '
            'of the types mmengine writes. Loading it could run arbitrary code. If you trust the '
            'file and its origin, allow the type with '
            '`balancedet.engine.safe_checkpoint.allow_globals(<type>)` before loading, or '
            're-save only its state_dict.') from None


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename, map_location):
    """mmengine's local-file checkpoint scheme, made safe (see module doc)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    return safe_torch_load(filename, map_location=map_location)
