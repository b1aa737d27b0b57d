"""Tests of reading results back from work dirs (balancedet.analysis.run_logs,
tools/misc/seed_table.py)."""
import json
import runpy
import sys

import pytest
from conftest import REPO

from balancedet.analysis.run_logs import last_validation, read_scalars


def _write_run(work_dir, stamp, rows):
    d = work_dir / stamp / 'vis_data'
    d.mkdir(parents=True)
    (d / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))


def _val(ap, ap50, ap75):
    return {'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': ap50, 'coco/bbox_mAP_75': ap75, 'step': 4}


def test_newest_run_and_last_validation(tmp_path):
    wd = tmp_path / 'cfg'
    _write_run(wd, '20260101_000000', [{'loss': 1.0, 'epoch': 1}, _val(0.1, 0.2, 0.05)])
    _write_run(wd, '20260102_000000', [{'loss': 1.0, 'epoch': 1}, _val(0.2, 0.3, 0.1),
                                       {'loss': 0.5, 'epoch': 2}, _val(0.3, 0.5, 0.2)])
    assert len(read_scalars(str(wd))) == 4  # the newer run only
    assert last_validation(str(wd), 'coco/bbox_mAP')['coco/bbox_mAP'] == 0.3
    with pytest.raises(SystemExit, match='no validation row'):
        last_validation(str(wd), 'cls_loc/top1_cls_err')
    with pytest.raises(SystemExit, match='train the config first'):
        read_scalars(str(tmp_path / 'missing'))


def test_seed_table_mean_and_sd(tmp_path, capsys, monkeypatch):
    for seed, (a, b) in enumerate([(0.30, 0.50), (0.40, 0.30)]):
        _write_run(tmp_path / f's{seed}' / 'base', '20260101_000000', [_val(a, 0.6, 0.2)])
        _write_run(tmp_path / f's{seed}' / 'libra', '20260101_000000', [_val(b, 0.7, 0.4)])
    monkeypatch.setattr(sys, 'argv', ['seed_table.py', str(tmp_path / 's0'),
                                      str(tmp_path / 's1'), '--configs', 'libra', 'base'])
    runpy.run_path(str(REPO / 'tools/misc/seed_table.py'), run_name='__main__')
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[2] == '| libra | 0.500 | 0.300 | 0.400 | 0.141 | 0.700 | 0.400 |'
    # sd of (0.3, 0.4) with n - 1: 0.0707
    assert lines[3] == '| base | 0.300 | 0.400 | 0.350 | 0.071 | 0.600 | 0.200 |'
