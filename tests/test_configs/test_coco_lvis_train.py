"""Every COCO and LVIS config builds, trains 2 iterations and evaluates on CPU.

The data paths point at the tiny generated datasets (``coco_lvis_generator``); in the test
only the ImageNet weights are replaced by ``init_cfg=None``, the images are resized to
96 x 64 px, proposals, sampled RoIs and detections are few (64, 64, 20: LVIS's 1,203-class
mask logits dominate CPU time), so an R-50 run takes seconds, and the R-CNN score threshold
is 0 (an untrained model has no detection above COCO's 0.05, and mmdet's CocoMetric then
reports nothing).
"""
import glob
import json
import os.path as osp
import warnings

import pytest
from conftest import PYTHON, REPO, run_tool
from mmengine.config import Config
from mmengine.runner import Runner

from balancedet.datasets.coco_lvis_generator import generate_tiny_coco, generate_tiny_lvis

pytestmark = pytest.mark.slow  # 29 short R-50 runs: minutes on 2 cores

ROOT = str(REPO)
COCO = sorted(glob.glob(osp.join(ROOT, 'configs', 'libra_rcnn', '*_coco.py')))
LVIS = sorted(glob.glob(osp.join(ROOT, 'configs', 'lvis', '*.py')))
SCALE = (96, 64)


@pytest.fixture(autouse=True)
def _no_config_pretty_print(monkeypatch):
    # the runner formats the whole config with yapf to log and dump it: seconds per config
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: repr(self._cfg_dict)))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    coco = str(tmp_path_factory.mktemp('tiny_coco'))
    generate_tiny_coco(coco, num_train=4, num_val=2, img_size=96, seed=0)
    lvis = str(tmp_path_factory.mktemp('tiny_lvis'))
    generate_tiny_lvis(lvis, num_train=4, num_val=2, img_size=96, seed=0)
    return {'coco': coco + '/', 'lvis': lvis + '/'}


def _shrink_pipeline(pipeline):
    for t in pipeline:
        if t['type'] == 'RandomChoiceResize':
            t['scales'] = [SCALE]
        elif t['type'] == 'Resize':
            t['scale'] = SCALE


def tiny_cfg(cfg_file, data, work_dir, checkpoint=False):
    """The config with data at the tiny datasets, no pretrained weights, 96 x 64 px."""
    cfg = Config.fromfile(cfg_file)
    kind = 'lvis' if 'lvis' in osp.basename(cfg_file) else 'coco'
    root = data[kind]
    val_ann = 'annotations/lvis_v1_val.json' if kind == 'lvis' else \
        'annotations/instances_val2017.json'
    model = cfg.model.detector if cfg.model.type == 'WeightedLossDetector' else cfg.model
    model.backbone.init_cfg = None
    # an untrained model scores below COCO's 0.05; keep its detections to evaluate them
    model.test_cfg.rcnn.score_thr = 0.0
    # few proposals / RoIs / detections: LVIS's 1,203-class mask logits dominate CPU time
    model.train_cfg.rpn_proposal.max_per_img = 64
    model.train_cfg.rcnn.sampler.num = 64
    # 8 x 1,203 boxes stay under mmcv's split threshold: one NMS call, not one per class
    model.test_cfg.rpn.max_per_img = 8
    model.test_cfg.rcnn.max_per_img = 20
    train_ds = cfg.train_dataloader.dataset
    inner = train_ds.dataset if train_ds.type == 'ClassBalancedDataset' else train_ds
    inner.data_root = root
    _shrink_pipeline(inner.pipeline)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = root
        _shrink_pipeline(loader.dataset.pipeline)
    for ev in (cfg.val_evaluator, cfg.test_evaluator):
        ev.ann_file = root + val_ann
    hybrid = [h for h in cfg.get('custom_hooks', []) if h['type'] == 'HybridScheduleHook']
    epochs = 1
    if hybrid:  # one epoch of each phase
        hybrid[0]['switch_epoch'] = 1
        epochs = 2
    # no validation while training: the test loop below evaluates once
    cfg.train_cfg.update(max_epochs=epochs, val_interval=100)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(interval=1000, save_last=checkpoint)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=0)
    return cfg


def train_and_test(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.test()
    return runner, metrics


@pytest.mark.parametrize('cfg_file', COCO + LVIS, ids=osp.basename)
def test_config_trains_and_evaluates(cfg_file, data, tmp_path):
    cfg = tiny_cfg(cfg_file, data, tmp_path)
    runner, metrics = train_and_test(cfg)
    name = osp.basename(cfg_file)
    assert runner.iter >= 2
    if 'lvis' in name:
        keys = ['lvis/bbox_AP', 'lvis/bbox_APr', 'lvis/bbox_APc', 'lvis/bbox_APf']
        if name.startswith('mask'):
            keys += ['lvis/segm_AP']
    else:
        keys = ['coco/bbox_mAP', 'coco/bbox_mAP_50']
    for key in keys:
        assert key in metrics and -1 <= metrics[key] <= 1, (key, metrics)
    if 'hybrid' in name:
        assert runner.message_hub.get_info('hybrid_schedule_phase') == 2


def test_tools_test_on_an_lvis_config(data, tmp_path):
    """tools/test.py evaluates an LVIS config in this environment (numpy 2, no lvis)."""
    cfg = tiny_cfg(osp.join(ROOT, 'configs', 'lvis', 'mask-rcnn_r50_fpn_random-ms-1x_lvis-v1.py'),
                   data, tmp_path / 'train', checkpoint=True)
    cfg.test_evaluator.classwise = True
    runner, _ = train_and_test(cfg)
    cfg_path = str(tmp_path / 'tiny_lvis_cfg.py')
    with open(cfg_path, 'w') as f:  # as Config.dump, without the (patched) pretty text
        f.write('\n'.join(f'{k} = {v!r}' for k, v in cfg.to_dict().items()) + '\n')
    ckpt = osp.join(str(tmp_path / 'train'), 'epoch_1.pth')
    assert osp.isfile(ckpt)
    run_tool([PYTHON, 'tools/test.py', cfg_path, ckpt, '--work-dir', str(tmp_path / 'test')])
    logs = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    assert logs, 'tools/test.py wrote no metrics json'
    with open(logs[0]) as f:
        record = json.loads(f.read().splitlines()[-1])
    for key in ('lvis/bbox_AP', 'lvis/bbox_APr', 'lvis/segm_AP', 'lvis/segm_APf'):
        assert key in record, record.keys()
    assert any(k.startswith('lvis/bbox_AP/') for k in record)
