"""Checkpoints load with weights_only=True; anything beyond mmengine's types is refused."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import balancedet  # noqa: F401
from balancedet.engine.safe_checkpoint import UnsafeCheckpointError, safe_torch_load


def mmengine_like_checkpoint():
    hub = MessageHub.get_instance('safe_ckpt_test')
    for v in (1.0, 2.5, np.float64(3.0)):
        hub.update_scalar('train/loss', v)
    hub.update_info('iter', 7)
    return dict(meta=dict(epoch=1, iter=7, seed=0, dataset_meta=dict(classes=('a', 'b')),
                          arr=np.arange(3, dtype=np.float32), scalar=np.int64(4)),
                state_dict=OrderedDict(w=torch.ones(2, 2)),
                message_hub=hub.state_dict())


def test_plain_torch_load_refuses_mmengine_checkpoint(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save(mmengine_like_checkpoint(), path)
    # the problem this module solves: torch >= 2.6 refuses mmengine's own files
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        torch.load(path)


def test_mmengine_checkpoint_loads_through_mmengine_api(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save(mmengine_like_checkpoint(), path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(6.5 / 3)
    assert ckpt['meta']['scalar'] == 4 and ckpt['meta']['arr'].dtype == np.float32
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2, 2))


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f'touch {self.target}',))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    ckpt = mmengine_like_checkpoint()
    ckpt['meta']['payload'] = _Evil(marker)
    torch.save(ckpt, path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.pth.*'(posix|os)\.system'"):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


class _GetattrEscape:
    """getattr(HistoryBuffer, '__init__') is the first step of a classic escape."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_limited_to_history_buffer_methods(tmp_path):
    path = tmp_path / 'escape.pth'
    torch.save(dict(meta=dict(x=_GetattrEscape())), path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_torch_load(str(path))


def test_missing_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        _load_checkpoint(str(tmp_path / 'nothere.pth'))


class Trusted:
    """A user type (e.g. a custom hook's state) the user chooses to trust."""

    def __init__(self, value):
        self.value = value


def test_allow_globals_admits_a_trusted_type(tmp_path):
    from balancedet.engine import safe_checkpoint as sc
    path = tmp_path / 'trusted.pth'
    torch.save(dict(meta=dict(state=Trusted(3))), path)
    with pytest.raises(UnsafeCheckpointError, match=r'trusted\.pth.*Trusted'):
        _load_checkpoint(str(path))
    sc.allow_globals(Trusted)
    try:
        assert _load_checkpoint(str(path))['meta']['state'].value == 3
    finally:
        sc._USER_ALLOWED.remove(Trusted)
