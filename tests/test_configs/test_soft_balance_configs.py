"""configs/soft_balance/*: every config builds its train dataloader on the demo data."""
import glob
import math
import os.path as osp
import warnings

import numpy as np
import pytest
from conftest import REPO
from mmengine.config import Config
from mmengine.dataset import ClassBalancedDataset
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import balancedet  # noqa: F401
from balancedet.analysis.effective_number import effective_number_weights, instance_counts_from_coco
from balancedet.datasets import demo_generator
from balancedet.datasets.demo_generator import generate_demo_dataset
from balancedet.datasets.samplers.class_index import ClassImageIndex
from balancedet.datasets.samplers.icip_samplers import ICIPStrategySampler
from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler

ROOT = str(REPO)
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'soft_balance', '*.py')))


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('sb_cfg'))
    generate_demo_dataset(root, num_train=60, num_val=0, seed=1)
    return root


@pytest.fixture(scope='module')
def default_train_ann(tmp_path_factory):
    """Annotations of the default demo train split (= data/demo), images not written."""
    root = str(tmp_path_factory.mktemp('sb_cfg_default'))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo_generator.cv2, 'imwrite', lambda *args, **kwargs: True)
        generate_demo_dataset(root, num_val=0)
    return osp.join(root, 'annotations', 'train.json')


def load(cfg_file, root):
    cfg = Config.fromfile(cfg_file)
    init_default_scope('mmdet')
    loader = dict(cfg.train_dataloader, num_workers=0, persistent_workers=False)
    ds = loader['dataset']
    inner = ds['dataset'] if ds['type'] == 'ClassBalancedDataset' else ds
    inner['data_root'] = root + '/'
    return cfg, loader


def test_all_configs_present():
    names = {osp.basename(c) for c in CONFIGS}
    for lam in ('0', '0p5', '0p7', '1', '1p5'):
        assert f'faster-rcnn_r18-w16_fpn_sb-lam{lam}_8e_demo.py' in names
    for peer in ('class-aware-sampler', 'repeat-factor', 'effective-num-loss', 'icip-balanced'):
        assert f'faster-rcnn_r18-w16_fpn_{peer}_8e_demo.py' in names


@pytest.mark.parametrize('cfg_file', CONFIGS, ids=osp.basename)
def test_config_builds(cfg_file, demo_root, default_train_ann):
    cfg, loader_cfg = load(cfg_file, demo_root)
    name = osp.basename(cfg_file)
    if 'hybrid' in name:  # the train dataloader is the baseline's; the hook is tested elsewhere
        hook = [h for h in cfg.custom_hooks if h['type'] == 'HybridScheduleHook']
        assert len(hook) == 1 and 0 < hook[0]['switch_epoch'] < cfg.train_cfg.max_epochs
        assert hook[0]['sampler']['type'] == 'SoftBalanceSampler'
        return
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    sampler = loader.batch_sampler.sampler
    if '_sb-lam' in name:
        lam = float(name.split('_sb-lam')[1].split('_')[0].replace('p', '.'))
        assert isinstance(sampler, SoftBalanceSampler) and sampler.lam == lam
        assert len(sampler) == len(loader.dataset)
    elif 'icip' in name:
        assert isinstance(sampler, ICIPStrategySampler) and sampler.strategy == 'balanced'
    elif 'class-aware' in name:
        assert type(sampler).__name__ == 'ClassAwareSampler'
    elif 'repeat-factor' in name:
        assert isinstance(loader.dataset, ClassBalancedDataset)
    elif 'effective-num' in name:
        weights = cfg.model.roi_head.bbox_head.loss_cls.class_weight
        _, counts = instance_counts_from_coco(default_train_ann)
        ref = effective_number_weights(counts, 0.999, background_weight=1.0)
        np.testing.assert_allclose(weights, ref, atol=6e-5)
    else:
        pytest.fail(f'untested config {name}')


def test_repeat_factor_peer_uses_post_filter_indices(demo_root):
    """ClassBalancedDataset and our index agree image by image after filter_empty_gt."""
    cfg_file = osp.join(ROOT, 'configs', 'soft_balance',
                        'faster-rcnn_r18-w16_fpn_repeat-factor_8e_demo.py')
    _, loader_cfg = load(cfg_file, demo_root)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    wrapper = loader.dataset
    inner = wrapper.dataset
    assert inner.filter_cfg['filter_empty_gt']
    index = ClassImageIndex.from_dataset(inner)
    assert index.labelled_images().tolist() == list(range(len(inner)))  # no empty image left
    freq = index.counts / len(inner)
    thr = wrapper.oversample_thr
    r_cls = np.maximum(1.0, np.sqrt(thr / np.where(freq > 0, freq, np.inf)))
    expected = np.ones(len(inner))
    for c in range(index.num_classes):
        imgs = index.images_of(c)
        expected[imgs] = np.maximum(expected[imgs], r_cls[c])
    got = np.bincount(np.asarray(wrapper.repeat_indices), minlength=len(inner))
    assert got.tolist() == [math.ceil(r) for r in expected]
