"""End to end through tools/train.py and tools/test.py: exact resume, evaluation."""
import pytest
import torch
from conftest import BASELINE, PYTHON, run_tool, tiny_train_options

pytestmark = pytest.mark.slow


def train(data_root, work_dir, epochs, *extra):
    opts = tiny_train_options(data_root, work_dir, **{'train_cfg.max_epochs': epochs,
                                                      'train_cfg.val_interval': 100})
    return run_tool([PYTHON, 'tools/train.py', str(BASELINE), *extra, '--cfg-options', *opts])


def state(path):
    # plain torch.load must refuse mmengine checkpoints; our loader is exercised by --resume
    from balancedet.engine.safe_checkpoint import safe_torch_load
    return safe_torch_load(str(path))['state_dict']


def test_resume_reproduces_uninterrupted_training(demo_data_root, tmp_path):
    full, split = tmp_path / 'full', tmp_path / 'split'
    train(demo_data_root, full, 2)
    train(demo_data_root, split, 1)
    out = train(demo_data_root, split, 2, '--resume')
    assert 'resumed epoch: 1' in (out.stdout + out.stderr)
    a, b = state(full / 'epoch_2.pth'), state(split / 'epoch_2.pth')
    assert a.keys() == b.keys()
    init = state(split / 'epoch_1.pth')
    changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], init[k])]
    assert len(changed) > 10, 'the second epoch must change the weights'
    for k in a:
        assert torch.equal(a[k], b[k]), f'{k} differs after resume'

    # evaluation through tools/test.py reports COCO bbox mAP
    res = run_tool([PYTHON, 'tools/test.py', str(BASELINE), str(full / 'epoch_2.pth'),
                    '--cfg-options', *tiny_train_options(demo_data_root, tmp_path / 'test')])
    assert 'coco/bbox_mAP:' in res.stdout + res.stderr


def test_load_from_uses_safe_loader(demo_data_root, tmp_path):
    first = tmp_path / 'first'
    train(demo_data_root, first, 1)
    out = train(demo_data_root, tmp_path / 'finetune', 1, '--cfg-options',
                f'load_from={first / "epoch_1.pth"}')
    assert 'Load checkpoint from' in out.stdout + out.stderr
