"""configs/openimages/*: every config trains 2 iterations and evaluates on a generated set.

The set is written by the Open Images generator in the real V6 / Challenge 2019 formats;
the configs keep their data paths relative to ``data_root`` and only ``data_root``, the
image scale, ``init_cfg`` and the schedule length are shrunk here.
"""
import glob
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import balancedet  # noqa: F401
from balancedet.analysis.concurrent_rate import (
    estimate_concurrent_rate_openimages,
    save_concurrent_rate,
)
from balancedet.datasets.openimages_generator import generate_openimages_dataset

ROOT = str(REPO)
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'openimages', '*.py')))


@pytest.fixture(scope='module')
def oi_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('oi_cfg'))
    generate_openimages_dataset(root, num_train=8, num_val=4, seed=3, min_size=64,
                                max_size=96)
    for sub, ann, lab, hier in (
            ('challenge2019', 'challenge-2019-train-detection-bbox.txt',
             'cls-label-description.csv', 'class_label_tree.np'),
            ('annotations', 'oidv6-train-annotations-bbox.csv',
             'class-descriptions-boxable.csv', 'bbox_labels_600_hierarchy.json')):
        d = osp.join(root, sub)
        res = estimate_concurrent_rate_openimages(osp.join(d, ann), osp.join(d, lab),
                                                  osp.join(d, hier))
        save_concurrent_rate(res, osp.join(d, 'concurrent_rate.json'))
    return root + '/'


def tiny_cfg(cfg_file, root, work_dir):
    cfg = Config.fromfile(cfg_file)
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    cfg.model.train_cfg.rcnn.sampler.num = 64
    cfg.model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    loss = cfg.model.roi_head.bbox_head.loss_cls
    if loss.get('r_file'):
        sub = 'challenge2019' if 'challenge' in cfg_file else 'annotations'
        loss.r_file = osp.join(root, sub, 'concurrent_rate.json')
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(num_workers=0, persistent_workers=False,
                      batch_size=2 if split == 'train' else 1)
        loader.dataset.data_root = root
        loader.dataset.indices = 4
        for t in loader.dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (96, 64)
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=2)]
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.default_hooks.visualization.draw = False
    for hook in cfg.get('custom_hooks', []):
        if hook['type'] == 'HybridScheduleHook':  # switch after the first epoch
            hook['switch_epoch'] = 1
            cfg.train_cfg.max_epochs = 2
            cfg.train_cfg.val_interval = 2
    cfg.randomness = dict(seed=0)
    return cfg


def test_config_list():
    names = {osp.basename(c) for c in CONFIGS}
    for ds in ('oi-challenge2019', 'oi-v6'):
        for row in ('softmax', 'cs-loss-cs-test', 'sb-lam0p7', 'cs-loss-cs-test_hybrid-sb-lam0p7'):
            assert f'faster-rcnn_r50_fpn_{row}_1x_{ds}.py' in names
    for row in ('class-aware-sampler', 'cs-loss-softmax-test', 'softmax-loss-cs-test',
                'hybrid-sb-lam0p7', *(f'sb-lam{x}' for x in ('0p3', '0p5', '1p0', '1p5'))):
        assert f'faster-rcnn_r50_fpn_{row}_1x_oi-challenge2019.py' in names


@pytest.mark.slow
@pytest.mark.parametrize('cfg_file', CONFIGS, ids=osp.basename)
def test_config_trains_and_evaluates(cfg_file, oi_root, tmp_path):
    cfg = Config.fromfile(cfg_file)
    # the paper's settings (sec. 5.2), untouched in the files
    assert cfg.model.backbone.depth == 50
    assert cfg.model.backbone.init_cfg.checkpoint == 'torchvision://resnet50'
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.optim_wrapper.optimizer.momentum == 0.9
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.00125 * 16)
    assert cfg.train_cfg.max_epochs == 7
    assert cfg.param_scheduler[1].milestones == [4, 6]
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (1333, 800)
    assert cfg.train_dataloader.dataset.pipeline[-1].type == 'PackMultiLabelDetInputs'
    assert cfg.val_evaluator.type == 'FastOpenImagesMetric'
    num = 500 if 'challenge' in cfg_file else 601
    assert cfg.model.roi_head.bbox_head.num_classes == num
    assert 'num_classes' not in cfg.model.roi_head.bbox_head.loss_cls  # from the head

    init_default_scope('mmdet')
    cfg = tiny_cfg(cfg_file, oi_root, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        runner = Runner.from_cfg(cfg)
        runner.train()
    assert runner.iter == 2 * cfg.train_cfg.max_epochs
    assert runner.model.roi_head.bbox_head.loss_cls.num_classes == num
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/loss'].current())
    assert 'val/openimages/mAP' in scalars


def test_dog_animal_box_arrives_multi_hot(oi_root, tmp_path, monkeypatch):
    """A Dog + Animal box of the CSV reaches the concurrent-softmax loss as one multi-hot
    target holding both labels."""
    import csv

    from balancedet.models.roi_heads.concurrent_softmax_head import ConcurrentSoftmaxBBoxHead
    ann = osp.join(oi_root, 'annotations', 'oidv6-train-annotations-bbox.csv')
    with open(osp.join(oi_root, 'annotations', 'class-descriptions-boxable.csv')) as f:
        mids = {name: mid for mid, name in csv.reader(f)}
    rows = list(csv.DictReader(open(ann)))
    dog_rows = [r for r in rows if r['LabelName'] == mids['Dog']]
    assert dog_rows, 'the generator writes Dog boxes'
    dog = dog_rows[0]
    box = [dog[k] for k in ('XMin', 'XMax', 'YMin', 'YMax')]
    same = [r for r in rows if r['ImageID'] == dog['ImageID']
            and [r[k] for k in ('XMin', 'XMax', 'YMin', 'YMax')] == box]
    assert {r['LabelName'] for r in same} == {mids['Dog'], mids['Animal']}

    cfg = tiny_cfg(osp.join(ROOT, 'configs/openimages/'
                            'faster-rcnn_r50_fpn_cs-loss-cs-test_1x_oi-v6.py'), oi_root,
                   tmp_path)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.pop('indices')
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS, MODELS
    ds = DATASETS.build(ds_cfg)
    classes = ds.metainfo['classes']
    i_dog, i_animal = classes.index('Dog'), classes.index('Animal')
    idx = next(i for i in range(len(ds)) if ds.get_data_info(i)['img_id'] == dog['ImageID'])
    sample = ds[idx]
    gt = sample['data_samples'].gt_instances
    ml = gt.multi_labels
    k = next(j for j in range(len(ml)) if i_dog in ml[j].tolist())
    assert {i_dog, i_animal} <= set(ml[k].tolist())

    model = MODELS.build(cfg.model)
    seen = []
    orig = ConcurrentSoftmaxBBoxHead.get_multi_hot_targets

    def spy(self, sampling_results):
        y = orig(self, sampling_results)
        seen.append((y, sampling_results))
        return y
    monkeypatch.setattr(ConcurrentSoftmaxBBoxHead, 'get_multi_hot_targets', spy)
    # force a positive RoI on the Dog box: feed its ground truth as a proposal
    batch = model.data_preprocessor({'inputs': [sample['inputs']],
                                     'data_samples': [sample['data_samples']]}, True)
    torch.manual_seed(0)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert torch.isfinite(losses['loss_cls'])
    y, res = seen[0]
    pos = res[0].pos_assigned_gt_inds
    rows_dog = torch.nonzero(pos == k).view(-1)
    assert rows_dog.numel() > 0  # gt boxes are added as proposals by mmdet's sampler
    assert y[rows_dog][:, i_dog].all() and y[rows_dog][:, i_animal].all()
