"""The CLS-LOC configs train and evaluate end to end on a tiny dataset (CPU)."""
import glob
import json
import os.path as osp

import pytest
from conftest import PYTHON, run_tool

from balancedet.datasets.cls_loc import convert_to_cls_loc


@pytest.fixture(scope='module')
def cls_loc_root(demo_data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('cls_loc_train')
    convert_to_cls_loc(str(demo_data_root), str(out))
    return str(out).rstrip('/') + '/'


def _options(root, work_dir, detector=True):
    opts = {
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
        'train_dataloader.batch_size': 8,
        'train_dataloader.dataset.indices': 16, 'val_dataloader.dataset.indices': 12,
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
        'randomness.seed': 0, 'default_hooks.logger.interval': 1,
        'default_hooks.visualization.draw': False, 'work_dir': str(work_dir),
    }
    if detector:
        opts['val_evaluator.1.ann_file'] = root + 'annotations/val.json'
        opts['test_evaluator.1.ann_file'] = root + 'annotations/val.json'
    return [f'{k}={v}' for k, v in opts.items()]


def _last_val(work_dir):
    scalars = glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))
    assert scalars, 'no scalars.json written'
    with open(scalars[0]) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if 'cls_loc/top1_cls_err' in r][-1]


@pytest.mark.parametrize('config, detector', [
    ('ssd_resdropnet-w25_augsuite_8e_demo-cls-loc.py', True),
    ('resdrop-classifier_resdropnet-w25_8e_demo-cls-loc.py', False),
])
def test_config_trains_and_reports_cls_loc(cls_loc_root, tmp_path, config, detector):
    run_tool([PYTHON, 'tools/train.py', f'configs/ssd_cls_loc/{config}', '--cfg-options',
              *_options(cls_loc_root, tmp_path, detector)])
    val = _last_val(tmp_path)
    for k in (1, 5):
        assert 0.0 <= val[f'cls_loc/top{k}_cls_err'] <= 100.0
        assert (f'cls_loc/top{k}_loc_err' in val) == detector
    assert val['cls_loc/top5_cls_err'] <= val['cls_loc/top1_cls_err']
    if detector:
        assert val['cls_loc/top1_loc_err'] >= val['cls_loc/top1_cls_err']
        assert 'coco/bbox_mAP' in val
