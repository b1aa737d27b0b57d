"""Attack suite: crafted checkpoints, from every source, must be refused and run nothing.

Every vector writes a marker file if it manages to run code (or, for the
memory/class-state vectors, leaves an observable trace); each test asserts the
refusal message names the file and that no trace appeared. URL vectors are
served by an ``http.server`` the test starts on 127.0.0.1 (ephemeral port)
and stops itself; torch.hub's cache is pointed at ``tmp_path`` (TORCH_HOME).
See docs/safety.md for the list of vectors and defences.
"""
import copyreg
import functools
import http.server
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import BASELINE, PYTHON, REPO, run_tool, tiny_train_options
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import balancedet  # noqa: F401  (registers the safe loaders)
from balancedet.apis import ConfigOptionError, load_config
from balancedet.engine import safe_checkpoint as sc
from balancedet.engine.safe_checkpoint import CheckpointFormatError, UnsafeCheckpointError
from balancedet.engine.safetensors_checkpoint import META_KEY, checkpoint_to_safetensors

NP_MULTIARRAY = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray


# --------------------------------------------------------------------------
# crafting helpers: objects whose pickles are the attacks
# --------------------------------------------------------------------------
class RunShell:
    """Unpickles as ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


class Reduce:
    """Unpickles as ``func(*args)`` (then BUILD ``state`` if given)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


def getattr_ref(owner, name):
    return Reduce(getattr, (owner, name))


def crafted_dtype(code, state):
    """A numpy dtype pickle with an arbitrary ``__setstate__`` tuple."""
    return Reduce(np.dtype, (code, False, True), state)


def crafted_array(dtype, shape, raw):
    return Reduce(NP_MULTIARRAY._reconstruct, (np.ndarray, (0,), b'b'),
                  (1, shape, dtype, False, raw))


def crafted_history(state):
    """A ``HistoryBuffer`` pickle (NEWOBJ + BUILD) with an arbitrary state dict."""
    buf = HistoryBuffer()
    buf.__reduce_ex__ = lambda protocol: (copyreg.__newobj__, (HistoryBuffer,), state)
    return buf


def genuine_like():
    hub = dict(log_scalars=OrderedDict(loss=HistoryBuffer([1.0, 3.0], [1, 1])),
               runtime_info=OrderedDict(iter=2), resumed_keys=OrderedDict(loss=True, iter=True))
    return dict(meta=dict(epoch=1, iter=2), state_dict=OrderedDict(w=torch.ones(2)),
                message_hub=hub)


def save(obj, path, legacy=False):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'MARKER_code_ran'
    yield path
    assert not path.exists(), 'the checkpoint ran code'


@pytest.fixture
def history_class_state():
    """Snapshot of HistoryBuffer's class-wide statistics table, restored afterwards."""
    before = dict(HistoryBuffer._statistics_methods)
    yield before
    HistoryBuffer._statistics_methods.clear()
    HistoryBuffer._statistics_methods.update(before)


# --------------------------------------------------------------------------
# 0. the classic: a pickle that runs a shell command, every format
# --------------------------------------------------------------------------
@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy-pickle'])
def test_os_system_pickle_is_refused(tmp_path, marker, legacy):
    ckpt = genuine_like()
    ckpt['meta']['payload'] = RunShell(marker)
    path = save(ckpt, tmp_path / 'evil.pth', legacy)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth.*'(posix|os)\.system'"):
        _load_checkpoint(str(path), map_location='cpu')


# --------------------------------------------------------------------------
# 1. meta['config'] executed by Runner.resume (explicit --resume and auto)
# --------------------------------------------------------------------------
def test_config_string_is_removed_and_never_evaluated(tmp_path, marker):
    ckpt = genuine_like()
    ckpt['meta']['config'] = f'import os\nos.system("touch {marker}")\ngpu_ids = [0, 1]\n'
    ckpt['meta']['cfg'] = 'model = dict(type="X")'
    path = save(ckpt, tmp_path / 'config.pth')
    loaded = _load_checkpoint(str(path), map_location='cpu')
    assert 'config' not in loaded['meta']
    assert loaded['meta']['cfg'] == 'model = dict(type="X")'   # data, kept as text
    # the only thing resume reads from it is parsed as data, not run
    assert sc._config_gpu_ids(ckpt['meta']['config']) == [0, 1]


@pytest.fixture(scope='module')
def genuine_run(demo_data_root, tmp_path_factory):
    """A real 1-epoch training on 8 images: work dir with epoch_1.pth."""
    work = tmp_path_factory.mktemp('genuine')
    opts = tiny_train_options(demo_data_root, work, **{
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 100,
        'train_dataloader.dataset.indices': 8})
    run_tool([PYTHON, 'tools/train.py', str(BASELINE), '--cfg-options', *opts])
    return work, opts


def _evil_resume_copy(genuine, dst, marker):
    ckpt = sc.safe_torch_load(str(genuine / 'epoch_1.pth'))
    ckpt['meta']['config'] = f'import os\nos.system("touch {marker}")\n'
    torch.save(ckpt, dst)
    return dst


@pytest.mark.slow
def test_resume_does_not_run_meta_config(genuine_run, tmp_path, marker):
    work, opts = genuine_run
    evil = _evil_resume_copy(work, tmp_path / 'evil_config.pth', marker)
    opts = [o for o in opts if not o.startswith('work_dir=')] + [f'work_dir={tmp_path / "w"}']
    out = run_tool([PYTHON, 'tools/train.py', str(BASELINE), '--resume', str(evil),
                    '--cfg-options', *opts])
    assert 'resumed epoch: 1' in out.stdout + out.stderr


@pytest.mark.slow
def test_auto_resume_via_last_checkpoint_does_not_run_meta_config(genuine_run, tmp_path, marker):
    work, opts = genuine_run
    auto = tmp_path / 'auto'
    auto.mkdir()
    evil = _evil_resume_copy(work, auto / 'epoch_1.pth', marker)
    (auto / 'last_checkpoint').write_text(str(evil))
    opts = [o for o in opts if not o.startswith('work_dir=')] + [f'work_dir={auto}']
    out = run_tool([PYTHON, 'tools/train.py', str(BASELINE), '--resume', '--cfg-options', *opts])
    assert 'resumed epoch: 1' in out.stdout + out.stderr


# --------------------------------------------------------------------------
# 2. every URL scheme, served from 127.0.0.1; the hub cache file
# --------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(directory served, base URL); TORCH_HOME and MMENGINE_HOME inside tmp_path."""
    root = tmp_path / 'www'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine_home'))
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _evil_file(root, marker, name='evil.pth'):
    ckpt = genuine_like()
    ckpt['meta']['payload'] = RunShell(marker)
    return save(ckpt, root / name)


def test_every_scheme_uses_the_safe_loader():
    prefixes = ['', 'http://', 'https://', 'modelzoo://', 'torchvision://', 'open-mmlab://',
                'openmmlab://', 'mmcls://', 'pavi://', r'(\S+\:)?s3://', r'(\S+\:)?petrel://']
    ours = set(sc.SCHEMES.values())
    for prefix in prefixes:
        assert CheckpointLoader._schemes[prefix] in ours, prefix
    for path in ('x.pth', 'http://h/x.pth', 'https://h/x', 'torchvision://r', 'open-mmlab://r',
                 'openmmlab://r', 'mmcls://r', 'modelzoo://r', 'pavi://r', 's3://b/x',
                 'a:s3://b/x', 'petrel://b/x'):
        assert CheckpointLoader._get_checkpoint_loader(path) in ours, path


def test_http_pickle_is_refused_and_cache_named(served, marker, tmp_path):
    root, url = served
    _evil_file(root, marker)
    with pytest.raises(UnsafeCheckpointError, match=r'127\.0\.0\.1.*evil\.pth.*cached as.*'
                       r'torch_home.*(posix|os)\.system'):
        _load_checkpoint(f'{url}/evil.pth', map_location='cpu')
    assert (tmp_path / 'torch_home/hub/checkpoints/evil.pth').is_file()


def test_hub_cache_file_goes_through_the_same_loader(served, marker, tmp_path):
    root, url = served
    save(genuine_like(), root / 'model.pth')             # the server holds a benign file
    cache = tmp_path / 'torch_home/hub/checkpoints'
    cache.mkdir(parents=True)
    _evil_file(cache, marker, 'model.pth')               # a poisoned cache entry
    with pytest.raises(UnsafeCheckpointError, match='model.pth'):
        _load_checkpoint(f'{url}/model.pth', map_location='cpu')


def test_http_genuine_and_safetensors_load(served):
    root, url = served
    save(genuine_like(), root / 'ok.pth')
    checkpoint_to_safetensors(genuine_like(), str(root / 'ok.safetensors'))
    for name in ('ok.pth', 'ok.safetensors'):
        ckpt = _load_checkpoint(f'{url}/{name}', map_location='cpu')
        assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
        assert ckpt['message_hub']['log_scalars']['loss'].mean() == 2.0


def test_init_cfg_pretrained_url_is_refused(served, marker):
    # model init_cfg=dict(type='Pretrained', checkpoint=URL[, prefix=...]) ends in
    # mmengine's load_checkpoint / _load_checkpoint_with_prefix
    from mmengine.model import initialize
    root, url = served
    _evil_file(root, marker, 'pretrained.pth')
    for init_cfg in (dict(type='Pretrained', checkpoint=f'{url}/pretrained.pth'),
                     dict(type='Pretrained', checkpoint=f'{url}/pretrained.pth',
                          prefix='backbone.')):
        with pytest.raises(UnsafeCheckpointError, match=r'pretrained\.pth.*(posix|os)\.system'):
            initialize(torch.nn.Linear(2, 2), init_cfg)


def test_http_html_error_page_names_the_url(served):
    root, url = served
    (root / 'page.pth').write_text('<html>404 not found</html>')
    with pytest.raises(CheckpointFormatError, match=r'page\.pth.*neither a PyTorch'):
        _load_checkpoint(f'{url}/page.pth', map_location='cpu')


def test_torchvision_and_modelzoo_schemes(served, marker, monkeypatch):
    import mmengine.runner.checkpoint as mc
    root, url = served
    _evil_file(root, marker, 'tv.pth')
    monkeypatch.setattr(mc, 'get_torchvision_models', lambda: {'resnet_evil': f'{url}/tv.pth'})
    for scheme in ('torchvision://', 'modelzoo://'):
        with pytest.raises(UnsafeCheckpointError, match=r'tv\.pth.*(posix|os)\.system'):
            _load_checkpoint(f'{scheme}resnet_evil', map_location='cpu')


def test_openmmlab_schemes_url_and_local(served, marker, tmp_path):
    root, url = served
    _evil_file(root, marker, 'om.pth')
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    _evil_file(home, marker, 'om_local.pth')
    # the documented user table of extra model names (read by mmengine)
    (home / 'open_mmlab.json').write_text(json.dumps(
        {'evil_url': f'{url}/om.pth', 'evil_local': 'om_local.pth'}))
    for scheme in ('open-mmlab://', 'openmmlab://'):
        for name, file in (('evil_url', 'om.pth'), ('evil_local', 'om_local.pth')):
            with pytest.raises(UnsafeCheckpointError, match=rf'{file}.*(posix|os)\.system'):
                _load_checkpoint(f'{scheme}{name}', map_location='cpu')


def test_mmcls_scheme(served, marker, monkeypatch):
    import mmengine.runner.checkpoint as mc
    root, url = served
    _evil_file(root, marker, 'cls.pth')
    monkeypatch.setattr(mc, 'get_mmcls_models', lambda: {'evil': f'{url}/cls.pth'})
    with pytest.raises(UnsafeCheckpointError, match=r'cls\.pth.*(posix|os)\.system'):
        _load_checkpoint('mmcls://evil', map_location='cpu')


def test_s3_petrel_scheme(tmp_path, marker, monkeypatch):
    import mmengine.fileio as fileio
    data = _evil_file(tmp_path, marker).read_bytes()

    class FakeBackend:
        def get(self, filename):
            return data

    monkeypatch.setattr(fileio, 'get_file_backend', lambda *a, **k: FakeBackend())
    for path in ('s3://bucket/evil.pth', 'cluster:s3://bucket/evil.pth', 'petrel://b/evil.pth'):
        with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth.*(posix|os)\.system'):
            _load_checkpoint(path, map_location='cpu')


def test_pavi_scheme(tmp_path, marker, monkeypatch):
    import types
    evil = _evil_file(tmp_path, marker)

    class Model:
        name = 'evil.pth'

        def download(self, path):
            with open(path, 'wb') as f:
                f.write(evil.read_bytes())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(UnsafeCheckpointError, match=r'pavi://x/evil\.pth.*(posix|os)\.system'):
        _load_checkpoint('pavi://x/evil.pth', map_location='cpu')


# --------------------------------------------------------------------------
# 3. numpy dtypes: forged flags (SIGSEGV), object, structured, size lies
# --------------------------------------------------------------------------
def _refused_in_child(path, pattern):
    """Load in a child process: a memory-corruption bug must not kill the suite."""
    code = textwrap.dedent(f'''
        import balancedet
        from mmengine.runner.checkpoint import _load_checkpoint
        from balancedet.engine.safe_checkpoint import UnsafeCheckpointError
        try:
            ckpt = _load_checkpoint({str(path)!r}, map_location='cpu')
        except UnsafeCheckpointError as err:
            print('REFUSED', err)
        else:
            print('LOADED', repr(ckpt['meta']))
    ''')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH',
                                                                               '')]))
    proc = subprocess.run([PYTHON, '-c', code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, f'child died ({proc.returncode}): {proc.stderr[-2000:]}'
    assert 'REFUSED' in proc.stdout, proc.stdout
    assert path.name in proc.stdout
    assert pattern in proc.stdout, proc.stdout


def test_void_dtype_with_forged_object_flags_is_refused(tmp_path):
    # V8 with an object field and flags 61 (NPY_ITEM_HASOBJECT etc. without
    # NPY_LIST_PICKLE): numpy takes the 8 attacker bytes as a PyObject pointer.
    # On the unprotected loader this is a SIGSEGV (exit 139) at the first repr.
    dtype = crafted_dtype('V8', (3, '|', None, ('a',), {'a': (np.dtype('O'), 0)}, 8, 1, 61))
    ckpt = genuine_like()
    ckpt['meta']['arr'] = crafted_array(dtype, (1,), b'\x41' * 8)
    _refused_in_child(save(ckpt, tmp_path / 'void_flags.pth'), "'V8' is not a plain numeric")


def test_plain_code_with_forged_flags_is_refused(tmp_path):
    dtype = crafted_dtype('f8', (3, '<', None, None, None, -1, -1, 63))
    ckpt = genuine_like()
    ckpt['meta']['arr'] = crafted_array(dtype, (1,), b'\x41' * 8)
    _refused_in_child(save(ckpt, tmp_path / 'f8_flags.pth'), 'flags')


@pytest.mark.parametrize('value,what', [
    (np.array([object()], dtype=object)[:0], 'O8'),
    (np.zeros(2, dtype=[('a', 'f4'), ('b', 'i4')]), 'V8'),
    (np.array(['abc']), 'U3'),
    (np.array(['2020-01-01'], dtype='datetime64[D]'), 'M8'),
], ids=['object', 'structured', 'unicode', 'datetime'])
def test_non_numeric_arrays_are_refused(tmp_path, value, what):
    ckpt = genuine_like()
    ckpt['meta']['arr'] = value
    path = save(ckpt, tmp_path / f'{what}.pth')
    with pytest.raises(UnsafeCheckpointError, match=rf'{what}\.pth.*{what}.*not a plain numeric'):
        _load_checkpoint(str(path), map_location='cpu')


@pytest.mark.parametrize('shape,raw,needs', [
    ((10 ** 12,), b'\x00' * 8, 8 * 10 ** 12),     # 8 TB from 8 bytes (read past / memory bomb)
    ((2 ** 32, 2 ** 32), b'', 8 * 2 ** 64),      # a size that wraps to 0 in int64
], ids=['huge', 'int64-wrap'])
def test_array_bigger_than_its_bytes_is_refused(tmp_path, shape, raw, needs):
    ckpt = genuine_like()
    ckpt['meta']['arr'] = crafted_array(np.dtype('f8'), shape, raw)
    path = save(ckpt, tmp_path / 'short.pth')
    with pytest.raises(UnsafeCheckpointError, match=rf'short\.pth.*needs {needs} bytes'):
        _load_checkpoint(str(path), map_location='cpu')


def test_object_scalar_is_refused(tmp_path):
    ckpt = genuine_like()
    ckpt['meta']['s'] = Reduce(NP_MULTIARRAY.scalar, (np.dtype('O'), b'\x41' * 8))
    path = save(ckpt, tmp_path / 'oscalar.pth')
    with pytest.raises(UnsafeCheckpointError, match=r'oscalar\.pth.*O8'):
        _load_checkpoint(str(path), map_location='cpu')


def test_plain_numeric_arrays_and_scalars_round_trip(tmp_path):
    values = dict(f=np.arange(6, dtype='>f4').reshape(2, 3), b=np.array([True, False]),
                  u=np.arange(3, dtype=np.uint32), c=np.array([1 + 2j]), e=np.zeros((0, 4)),
                  fortran=np.asfortranarray(np.arange(6.).reshape(2, 3)),
                  s=np.float16(1.5), i=np.int64(-3))
    ckpt = genuine_like()
    ckpt['meta'].update(values)
    path = save(ckpt, tmp_path / 'np.pth')
    meta = _load_checkpoint(str(path), map_location='cpu')['meta']
    for k, v in values.items():
        assert meta[k].dtype == v.dtype and np.array_equal(meta[k], v), k


# --------------------------------------------------------------------------
# 4. HistoryBuffer / getattr: class-wide tampering, calls on resolved methods
# --------------------------------------------------------------------------
def test_history_state_cannot_rebind_statistics(tmp_path, history_class_state):
    state = dict(max_length=10, _log_history=np.array([1.0, 3.0]),
                 _count_history=np.array([1, 1]),
                 statistics_methods={'mean': getattr_ref(HistoryBuffer, 'max')})
    ckpt = genuine_like()
    ckpt['message_hub']['log_scalars']['loss'] = crafted_history(state)
    path = save(ckpt, tmp_path / 'hb.pth')
    buf = _load_checkpoint(str(path), map_location='cpu')['message_hub']['log_scalars']['loss']
    assert type(buf) is HistoryBuffer and buf.mean() == 2.0
    assert HistoryBuffer._statistics_methods == history_class_state
    assert HistoryBuffer([1.0, 3.0], [1, 1]).statistics('mean') == 2.0   # not the maximum


def test_history_state_with_extra_attributes_is_refused(tmp_path, history_class_state):
    state = dict(max_length=10, _log_history=np.array([1.0]), _count_history=np.array([1]),
                 update='not a method')
    ckpt = genuine_like()
    ckpt['message_hub']['log_scalars']['loss'] = crafted_history(state)
    with pytest.raises(UnsafeCheckpointError, match=r'hb2\.pth.*HistoryBuffer state keys'):
        _load_checkpoint(str(save(ckpt, tmp_path / 'hb2.pth')), map_location='cpu')


def test_rebuild_from_type_v2_on_a_resolved_method_changes_nothing(tmp_path,
                                                                   history_class_state):
    # _rebuild_from_type_v2 (in torch's default allowlist) calls its first argument:
    # with a resolving getattr this registered a new class-wide statistic
    call = Reduce(torch._tensor._rebuild_from_type_v2,
                  (getattr_ref(HistoryBuffer, 'register_statistics'), torch.Tensor,
                   (NP_MULTIARRAY._reconstruct,), {}))
    ckpt = genuine_like()
    ckpt['meta']['x'] = call
    path = save(ckpt, tmp_path / 'v2.pth')
    with pytest.raises((UnsafeCheckpointError, CheckpointFormatError), match=r'v2\.pth'):
        _load_checkpoint(str(path), map_location='cpu')
    assert HistoryBuffer._statistics_methods == history_class_state


@pytest.mark.parametrize('name', ['__init__', 'update', 'mean', '__class__'])
def test_getattr_outside_history_is_refused(tmp_path, name):
    path = save(dict(meta=dict(x=getattr_ref(HistoryBuffer, name))), tmp_path / 'ga.pth')
    with pytest.raises(UnsafeCheckpointError, match=r'ga\.pth.*getattr'):
        _load_checkpoint(str(path), map_location='cpu')


def test_bare_class_objects_are_refused(tmp_path):
    path = save(dict(meta=dict(x=OrderedDict)), tmp_path / 'cls.pth')
    with pytest.raises(UnsafeCheckpointError, match=r'cls\.pth.*type'):
        _load_checkpoint(str(path), map_location='cpu')


# --------------------------------------------------------------------------
# 5. numpy 1.x pickles load (numpy.core.* names)
# --------------------------------------------------------------------------
def test_numpy1_checkpoint_loads(tmp_path):
    ckpt = genuine_like()
    ckpt['meta'].update(arr=np.arange(4, dtype=np.int32), s=np.float64(2.5))
    buf = io.BytesIO()
    torch.save(ckpt, buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue()
    assert b'numpy._core.multiarray' in raw
    old = raw.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')   # as numpy 1.x writes
    path = tmp_path / 'numpy1.pth'
    path.write_bytes(old)
    loaded = _load_checkpoint(str(path), map_location='cpu')
    assert np.array_equal(loaded['meta']['arr'], np.arange(4, dtype=np.int32))
    assert loaded['meta']['s'] == 2.5 and loaded['meta']['s'].dtype == np.float64
    assert loaded['message_hub']['log_scalars']['loss'].mean() == 2.0


# --------------------------------------------------------------------------
# 9. unreadable files are errors naming the file
# --------------------------------------------------------------------------
def test_zero_byte_text_and_truncated_checkpoints(tmp_path):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    text = tmp_path / 'text.pth'
    text.write_text('this is not a checkpoint\n')
    good = save(genuine_like(), tmp_path / 'good.pth').read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good[:len(good) // 2])
    legacy = save(genuine_like(), tmp_path / 'legacy.pth', legacy=True).read_bytes()
    cut_legacy = tmp_path / 'cut_legacy.pth'
    cut_legacy.write_bytes(legacy[:len(legacy) // 2])
    checkpoint_to_safetensors(genuine_like(), str(tmp_path / 'st.safetensors'))
    st = (tmp_path / 'st.safetensors').read_bytes()
    cut_st = tmp_path / 'cut.safetensors'
    cut_st.write_bytes(st[:len(st) - 4])
    cases = [(empty, 'empty \\(0 bytes\\)'), (text, 'neither a PyTorch'),
             (cut, 'truncated or corrupt'), (cut_legacy, 'truncated or corrupt'),
             (cut_st, 'truncated or corrupt')]
    for path, pattern in cases:
        with pytest.raises(CheckpointFormatError, match=rf'{path.name}.*{pattern}'):
            _load_checkpoint(str(path), map_location='cpu')


def test_missing_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        _load_checkpoint(str(tmp_path / 'nothere.pth'))


# --------------------------------------------------------------------------
# safetensors: crafted JSON cannot choose code or bad dtypes
# --------------------------------------------------------------------------
def _st_with_doc(path, doc):
    from safetensors.torch import save_file
    save_file({'w': torch.ones(2)}, str(path), metadata={META_KEY: json.dumps(doc)})
    return path


@pytest.mark.parametrize('doc,pattern', [
    ({'$pickle': 'gASV'}, 'unknown JSON record'),
    ({'$dict': [['arr', {'$ndarray': {'dtype': '|O8', 'shape': [1], 'data': 'QUFBQUFBQUE='}}]]},
     'O8.*not a plain numeric'),
    ({'$dict': [['w', {'$tensor': 'nope'}]]}, 'missing tensor'),
    ({'$dict': [['h', {'$history': {'max_length': 'x', 'log': 1, 'count': 2}}]]},
     'array record'),
    ({'$dict': [['x', {'$tdtype': 'object'}]]}, 'torch dtype'),
], ids=['unknown-tag', 'object-array', 'missing-tensor', 'bad-history', 'bad-dtype'])
def test_crafted_safetensors_json_is_refused(tmp_path, doc, pattern):
    path = _st_with_doc(tmp_path / 'crafted.safetensors', doc)
    with pytest.raises(UnsafeCheckpointError, match=rf'crafted\.safetensors.*{pattern}'):
        _load_checkpoint(str(path), map_location='cpu')


def test_plain_safetensors_weights_load_as_state_dict(tmp_path):
    from safetensors.torch import save_file
    save_file({'a.weight': torch.arange(4.)}, str(tmp_path / 'hub.safetensors'))
    ckpt = _load_checkpoint(str(tmp_path / 'hub.safetensors'), map_location='cpu')
    assert torch.equal(ckpt['state_dict']['a.weight'], torch.arange(4.))


def test_safetensors_round_trip_is_exact(tmp_path):
    import random
    ckpt = genuine_like()
    ckpt['meta'].update(nan=float('nan'), inf=float('-inf'), t=(1, 'a', None), f=0.1 + 0.2,
                        big=2 ** 70, s=np.float32(0.1), dataset_meta=dict(classes=('a', 'b')))
    ckpt['optimizer'] = dict(state={0: dict(momentum_buffer=torch.randn(3, dtype=torch.float64))},
                             param_groups=[dict(lr=0.02, params=[0], betas=(0.9, 0.999))])
    ckpt['rng_states'] = [dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                               python=random.getstate())]
    ckpt['state_dict']['tied'] = ckpt['state_dict']['w']          # shared storage
    ckpt['state_dict']['bf'] = torch.randn(2, 2).to(torch.bfloat16)
    path = tmp_path / 'rt.safetensors'
    checkpoint_to_safetensors(ckpt, str(path))
    got = _load_checkpoint(str(path), map_location='cpu')
    assert pickle.dumps(got['meta']['t']) == pickle.dumps(ckpt['meta']['t'])
    assert np.isnan(got['meta']['nan']) and got['meta']['inf'] == float('-inf')
    assert got['meta']['f'] == 0.1 + 0.2 and got['meta']['big'] == 2 ** 70
    assert got['meta']['s'].dtype == np.float32 and got['meta']['s'] == np.float32(0.1)
    assert list(got['optimizer']['state']) == [0]
    assert torch.equal(got['optimizer']['state'][0]['momentum_buffer'],
                       ckpt['optimizer']['state'][0]['momentum_buffer'])
    assert got['optimizer']['param_groups'][0]['betas'] == (0.9, 0.999)
    for k in ckpt['state_dict']:
        assert torch.equal(got['state_dict'][k], ckpt['state_dict'][k]), k
        assert got['state_dict'][k].dtype == ckpt['state_dict'][k].dtype
    a, b = got['rng_states'][0], ckpt['rng_states'][0]
    assert torch.equal(a['torch'], b['torch']) and a['python'] == b['python']
    assert a['numpy'][0] == b['numpy'][0] and np.array_equal(a['numpy'][1], b['numpy'][1])
    assert a['numpy'][2:] == b['numpy'][2:]
    assert isinstance(got['message_hub']['log_scalars']['loss'], HistoryBuffer)


def test_unstorable_value_names_its_path(tmp_path):
    ckpt = genuine_like()
    ckpt['meta']['hook_state'] = object()
    with pytest.raises(TypeError, match='meta/hook_state.*builtins.object'):
        checkpoint_to_safetensors(ckpt, str(tmp_path / 'x.safetensors'))
    assert not (tmp_path / 'x.safetensors').exists()


def test_convert_tool_never_overwrites_its_input(tmp_path):
    src = save(genuine_like(), tmp_path / 'in.pth')
    same = tmp_path / 'same.safetensors'
    same.write_bytes(src.read_bytes())
    proc = subprocess.run([PYTHON, 'tools/misc/convert_checkpoint.py', str(same), '--overwrite'],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and 'is the input file' in proc.stderr
    assert same.read_bytes() == src.read_bytes()
    run_tool([PYTHON, 'tools/misc/convert_checkpoint.py', str(src)])
    out = _load_checkpoint(str(tmp_path / 'in.safetensors'), map_location='cpu')
    assert torch.equal(out['state_dict']['w'], torch.ones(2))
    proc = subprocess.run([PYTHON, 'tools/misc/convert_checkpoint.py', str(src)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and 'exists' in proc.stderr


def test_convert_tool_refuses_evil_input(tmp_path, marker):
    evil = _evil_file(tmp_path, marker)
    proc = subprocess.run([PYTHON, 'tools/misc/convert_checkpoint.py', str(evil)],
                          cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode != 0 and 'UnsafeCheckpointError' in proc.stderr
    assert not (tmp_path / 'evil.safetensors').exists()


# --------------------------------------------------------------------------
# 6. tools/test.py refuses weights that do not cover the model
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_test_tool_refuses_partial_weights(genuine_run, tmp_path):
    work, opts = genuine_run
    ckpt = sc.safe_torch_load(str(work / 'epoch_1.pth'))
    sd = ckpt['state_dict']
    dropped = [k for k in sd if k.startswith('roi_head.bbox_head.fc_cls')]
    for k in dropped:
        del sd[k]
    sd['neck.extra_layer.weight'] = torch.zeros(1)
    reshaped = next(k for k in sd if k.startswith('rpn_head.rpn_conv.weight'))
    sd[reshaped] = torch.zeros(1, 1, 1, 1)
    bad = tmp_path / 'partial.pth'
    torch.save(ckpt, bad)
    test_opts = [o for o in opts if not o.startswith('work_dir=')] + [
        f'work_dir={tmp_path / "t"}', 'test_dataloader.dataset.indices=4']
    proc = subprocess.run([PYTHON, 'tools/test.py', str(BASELINE), str(bad), '--cfg-options',
                           *test_opts], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'))
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'partial.pth' in err and 'do not cover the model' in err
    assert dropped[0] in err and 'neck.extra_layer.weight' in err and reshaped in err
    assert 'coco/bbox_mAP' not in err
    out = run_tool([PYTHON, 'tools/test.py', str(BASELINE), str(bad), '--allow-partial',
                    '--cfg-options', *test_opts])
    assert 'coco/bbox_mAP' in out.stdout + out.stderr


# --------------------------------------------------------------------------
# 11. --cfg-options typos fail at once; hook argument typos before the 1st iteration
# --------------------------------------------------------------------------
def test_misspelled_cfg_option_lists_closest_keys():
    with pytest.raises(ConfigOptionError, match=r"'load_fromm': closest existing keys: "
                       r'load_from'):
        load_config(str(BASELINE), cfg_options={'load_fromm': 'x.pth'})
    with pytest.raises(ConfigOptionError, match=r'train_dataloader\.batch_sise.*'
                       r'train_dataloader\.batch_size'):
        load_config(str(BASELINE), cfg_options={'train_dataloader.batch_sise': 2})


def test_cfg_options_accept_existing_component_and_plus_keys():
    cfg = load_config(str(BASELINE), cfg_options={
        'train_cfg.max_epochs': 2, 'load_from': 'x.pth', 'default_hooks.visualization.draw': False,
        'randomness.deterministic': True, '+my_note': 'hello', '+custom.nested': 1})
    assert cfg.train_cfg.max_epochs == 2 and cfg.load_from == 'x.pth'
    assert cfg.my_note == 'hello' and cfg.custom.nested == 1
    assert cfg.default_hooks.visualization.draw is False


@pytest.mark.slow
def test_checkpoint_hook_typo_fails_before_first_iteration(demo_data_root, tmp_path):
    opts = tiny_train_options(demo_data_root, tmp_path, **{
        'train_cfg.max_epochs': 1, 'train_dataloader.dataset.indices': 8,
        'default_hooks.checkpoint.intervall': 1})
    proc = subprocess.run([PYTHON, 'tools/train.py', str(BASELINE), '--cfg-options', *opts],
                          cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'))
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown argument(s) 'intervall' (did you mean interval" in err
    assert 'Epoch(train)' not in err


@pytest.mark.slow
@pytest.mark.parametrize('key', ['train_dataloader.sampler.shufle', 'val_evaluator.classwisee'])
def test_sampler_and_metric_typos_fail_before_first_iteration(demo_data_root, tmp_path, key):
    import argparse

    from mmengine.config import DictAction
    from mmengine.hooks import Hook

    from balancedet.apis import build_runner
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    opts = parser.parse_args(['--cfg-options', *tiny_train_options(
        demo_data_root, tmp_path, **{'train_cfg.max_epochs': 1, key: True})]).cfg_options
    runner = build_runner(load_config(str(BASELINE), cfg_options=opts))
    iterations = []

    class Spy(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            iterations.append(batch_idx)

    runner.register_hook(Spy())
    with pytest.raises(TypeError, match=key.rsplit('.', 1)[1]):
        runner.train()
    assert iterations == []
