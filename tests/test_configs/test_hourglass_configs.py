"""Hourglass RPN configs build, train and test through tools/ with recall metrics."""
import re
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, run_tool, tiny_train_options
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import balancedet  # noqa: F401

CONFIGS = sorted((REPO / 'configs/hourglass_rpn').glob('*.py'))


@pytest.mark.parametrize('path', CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_builds(path):
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports['imports'] == ['balancedet']
    model = MODELS.build(cfg.model)
    head = getattr(model, 'rpn_head', None) or model.bbox_head
    assert type(head).__name__ == 'HourglassRPNHead'
    assert type(model.neck).__name__ == 'HourglassNeck'
    if 'faster-rcnn' not in path.name:
        assert cfg.test_evaluator.type == 'ProposalRecallMetric'


@pytest.mark.slow
def test_train_then_test_reports_recall(demo_data_root, tmp_path):
    cfg = REPO / 'configs/hourglass_rpn/hourglass-rpn_r18-w16-30anchors-all_8e_demo.py'
    opts = tiny_train_options(demo_data_root, tmp_path, **{
        'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 5,
        'train_dataloader.dataset.indices': 16, 'test_dataloader.dataset.indices': 8,
        'val_dataloader.dataset.indices': 8, 'model.test_scales': '[160,128]'})
    opts = [o for o in opts if not o.startswith(('val_evaluator', 'test_evaluator'))]
    run_tool([PYTHON, 'tools/train.py', str(cfg), '--cfg-options', *opts], timeout=300)
    ckpt = Path(tmp_path) / 'epoch_1.pth'
    assert ckpt.exists()
    proc = run_tool([PYTHON, 'tools/test.py', str(cfg), str(ckpt), '--cfg-options', *opts],
                    timeout=300)
    out = proc.stdout + proc.stderr
    for key in ('AR@10', 'AR@100', 'AR@300', 'AR@500', 'AR@1000', 'Recall@0.5@300'):
        m = re.search(r'proposal/' + re.escape(key) + r':\s*([0-9.]+)', out)
        assert m is not None, key
        assert 0.0 <= float(m.group(1)) <= 1.0
