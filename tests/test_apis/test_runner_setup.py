"""build_runner: exact resume cannot be dropped by a config's hook lists."""
import pytest
from conftest import REPO

from balancedet.apis.runner_setup import build_runner, load_config
from balancedet.engine.rng_state_hook import RNGStateHook

HYBRID = REPO / 'configs/soft_balance/faster-rcnn_r18-w16_fpn_hybrid-2e-sb-lam0p5_3e_demo.py'


@pytest.mark.parametrize('hooks', [None, '[]', "[dict(type='RNGStateHook')]"])
def test_rng_state_hook_registered_exactly_once(tmp_path, hooks):
    cfg_file = tmp_path / 'cfg.py'
    text = f"_base_ = '{HYBRID}'\n"
    if hooks is not None:
        text += f'custom_hooks = {hooks}\n'
    cfg_file.write_text(text)
    cfg = load_config(str(cfg_file), work_dir=str(tmp_path / 'work'))
    runner = build_runner(cfg)
    assert sum(isinstance(h, RNGStateHook) for h in runner.hooks) == 1
