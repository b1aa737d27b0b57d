"""End to end through tools/train.py and tools/test.py: exact resume, evaluation.

A run resumed from a checkpoint ends with bit-identical weights to the
uninterrupted run, for ``.pth`` checkpoints, for ``.safetensors`` checkpoints
written by ``SafetensorsCheckpointHook`` (auto-resume through
``last_checkpoint``), and for a ``.pth`` converted by
``tools/misc/convert_checkpoint.py``.
"""
import pytest
import torch
from conftest import BASELINE, PYTHON, run_tool, tiny_train_options

pytestmark = pytest.mark.slow

SAFETENSORS_HOOK = {'default_hooks.checkpoint.type': 'SafetensorsCheckpointHook'}


def train(data_root, work_dir, epochs, *extra, **options):
    opts = tiny_train_options(data_root, work_dir, **{'train_cfg.max_epochs': epochs,
                                                      'train_cfg.val_interval': 100}, **options)
    return run_tool([PYTHON, 'tools/train.py', str(BASELINE), *extra, '--cfg-options', *opts])


def state(path):
    # plain torch.load must refuse mmengine checkpoints; our loader is exercised by --resume
    from balancedet.engine.safe_checkpoint import load_checkpoint_file
    return load_checkpoint_file(str(path))['state_dict']


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), f'{k} differs after resume'


@pytest.fixture(scope='module')
def full_run(demo_data_root, tmp_path_factory):
    """The uninterrupted reference: 2 epochs, .pth checkpoints."""
    full = tmp_path_factory.mktemp('full')
    train(demo_data_root, full, 2)
    return full


def test_resume_reproduces_uninterrupted_training(demo_data_root, full_run, tmp_path):
    split = tmp_path / 'split'
    train(demo_data_root, split, 1)
    out = train(demo_data_root, split, 2, '--resume')
    assert 'resumed epoch: 1' in (out.stdout + out.stderr)
    a, b = state(full_run / 'epoch_2.pth'), state(split / 'epoch_2.pth')
    init = state(split / 'epoch_1.pth')
    changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], init[k])]
    assert len(changed) > 10, 'the second epoch must change the weights'
    assert_same_weights(a, b)

    # evaluation through tools/test.py reports COCO bbox mAP
    res = run_tool([PYTHON, 'tools/test.py', str(BASELINE), str(full_run / 'epoch_2.pth'),
                    '--cfg-options', *tiny_train_options(demo_data_root, tmp_path / 'test')])
    assert 'coco/bbox_mAP:' in res.stdout + res.stderr


def test_safetensors_resume_is_bit_exact(demo_data_root, full_run, tmp_path):
    split = tmp_path / 'st'
    train(demo_data_root, split, 1, **SAFETENSORS_HOOK)
    assert (split / 'epoch_1.safetensors').is_file() and not (split / 'epoch_1.pth').exists()
    assert (split / 'last_checkpoint').read_text().strip().endswith('epoch_1.safetensors')
    from balancedet.engine.safe_checkpoint import sniff_format
    with open(split / 'epoch_1.safetensors', 'rb') as f:   # a safetensors file, not a pickle
        assert sniff_format(f.read(16), 'epoch_1') == 'safetensors'
    out = train(demo_data_root, split, 2, '--resume', **SAFETENSORS_HOOK)   # auto resume
    assert 'resumed epoch: 1' in (out.stdout + out.stderr)
    assert_same_weights(state(full_run / 'epoch_2.pth'), state(split / 'epoch_2.safetensors'))

    # tools/test.py evaluates a safetensors checkpoint
    res = run_tool([PYTHON, 'tools/test.py', str(BASELINE), str(split / 'epoch_2.safetensors'),
                    '--cfg-options', *tiny_train_options(demo_data_root, tmp_path / 'test')])
    assert 'coco/bbox_mAP:' in res.stdout + res.stderr


def test_resume_from_converted_pth_is_bit_exact(demo_data_root, full_run, tmp_path):
    converted = tmp_path / 'epoch_1.safetensors'
    run_tool([PYTHON, 'tools/misc/convert_checkpoint.py', str(full_run / 'epoch_1.pth'),
              str(converted)])
    out = train(demo_data_root, tmp_path / 'conv', 2, '--resume', str(converted))
    assert 'resumed epoch: 1' in (out.stdout + out.stderr)
    assert_same_weights(state(full_run / 'epoch_2.pth'), state(tmp_path / 'conv/epoch_2.pth'))


def test_load_from_uses_safe_loader(demo_data_root, full_run, tmp_path):
    converted = tmp_path / 'w.safetensors'
    run_tool([PYTHON, 'tools/misc/convert_checkpoint.py', str(full_run / 'epoch_1.pth'),
              str(converted)])
    for ckpt in (full_run / 'epoch_1.pth', converted):
        out = train(demo_data_root, tmp_path / f'finetune_{ckpt.suffix[1:]}', 1,
                    **{'load_from': str(ckpt), 'train_dataloader.dataset.indices': 8})
        assert f'Load checkpoint from {ckpt}' in out.stdout + out.stderr
