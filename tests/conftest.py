"""Shared fixtures: a small demo dataset and helpers to run the tools."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / 'configs/faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory):
    """A small demo dataset (64 train / 24 val images of 128 px)."""
    from balancedet.datasets.demo_generator import generate_demo_dataset
    root = tmp_path_factory.mktemp('demo')
    generate_demo_dataset(str(root), num_train=64, num_val=24, seed=1)
    return root


def tiny_train_options(data_root, work_dir, **extra):
    """``--cfg-options`` that shrink the baseline to a seconds-long CPU run."""
    data_root = str(data_root).rstrip('/') + '/'
    opts = {
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'val_evaluator.ann_file': data_root + 'annotations/val.json',
        'test_evaluator.ann_file': data_root + 'annotations/val.json',
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'train_dataloader.batch_size': 4,
        'randomness.seed': 0,
        'randomness.deterministic': True,
        'default_hooks.logger.interval': 1,
        'default_hooks.visualization.draw': False,
        'work_dir': str(work_dir),
    }
    opts.update(extra)
    return [f'{k}={v}' for k, v in opts.items()]


def run_tool(args, env_extra=None, timeout=600):
    """Run a command from the repo root; return the completed process."""
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), str(REPO / 'tests'),
                                        env.get('PYTHONPATH', '')])
    env.update(env_extra or {})
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'command failed ({proc.returncode}): {" ".join(map(str, args))}\n'
                             f'--- stdout ---\n{proc.stdout[-4000:]}\n'
                             f'--- stderr ---\n{proc.stderr[-6000:]}')
    return proc


PYTHON = sys.executable
