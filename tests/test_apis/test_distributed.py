"""Two real processes (torchrun, gloo on CPU) through tools/dist_train.sh."""
import json
import os

import pytest
from conftest import BASELINE, run_tool, tiny_train_options

pytestmark = pytest.mark.slow


def test_two_process_training_agrees(demo_data_root, tmp_path):
    cfg = tmp_path / 'dist_cfg.py'
    cfg.write_text(f"_base_ = '{BASELINE}'\n"
                   "custom_imports = dict(imports=['balancedet', 'dist_probe'], "
                   "allow_failed_imports=False)\n"
                   "custom_hooks = [dict(type='RNGStateHook'), dict(type='WeightDigestHook')]\n")
    work = tmp_path / 'work'
    opts = tiny_train_options(demo_data_root, work, **{'train_cfg.max_epochs': 1,
                                                       'train_cfg.val_interval': 100})
    # the README's launcher, without an activated environment (no torchrun on PATH)
    path = ':'.join(p for p in os.environ.get('PATH', '').split(':') if '.venv' not in p)
    run_tool(['bash', 'tools/dist_train.sh', str(cfg), '2', '--cfg-options', *opts],
             env_extra={'PORT': '29611', 'PATH': path})
    ranks = [json.loads((work / f'rank{r}.json').read_text()) for r in (0, 1)]
    assert [r['rank'] for r in ranks] == [0, 1]
    assert all(r['world_size'] == 2 and r['backend'] == 'gloo' for r in ranks)
    # 64 training images (minus the empty ones, filtered), batch 4 per process, 2 processes
    assert ranks[0]['iter'] == ranks[1]['iter'] and 6 <= ranks[0]['iter'] <= 8
    assert ranks[0]['digest'].keys() == ranks[1]['digest'].keys()
    for k, v in ranks[0]['digest'].items():
        assert v == ranks[1]['digest'][k], f'{k} differs between ranks'
