"""Concurrent softmax plumbing: multi-label packing, RoI multi-hot targets,
eq. 5 at prediction, the r_ij estimator and its CLI, the ablation configs."""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch
from concurrent_softmax_ref import naive_eq3, pad_bg
from conftest import REPO
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import balancedet  # noqa: F401
from balancedet.analysis.concurrent_rate import (
    estimate_concurrent_rate,
    multi_label_subset,
    top_pairs,
)
from balancedet.datasets.transforms.multi_label_packing import PackMultiLabelDetInputs

init_default_scope('mmdet')
CFG_DIR = REPO / 'configs/concurrent_softmax'
MAIN_CFG = CFG_DIR / 'faster-rcnn_r18-w16_fpn_cs-loss-cs-test_8e_demo.py'


def reference_multi_labels(ann_file):
    """image file name -> {xyxy box: set of label indices}, straight from the json."""
    with open(ann_file) as f:
        coco = json.load(f)
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    label = {c['id']: i for i, c in enumerate(cats)}
    name = {im['id']: im['file_name'] for im in coco['images']}
    out = {}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        out.setdefault(name[a['image_id']], {}).setdefault(
            (x, y, x + w, y + h), set()).add(label[a['category_id']])
    return out


def test_pack_multi_labels_match_annotation_file(demo_data_root):
    ds = DATASETS.build({
        'type': 'BalancedCocoDataset', 'data_root': str(demo_data_root),
        'ann_file': 'annotations/train.json', 'data_prefix': {'img': 'train/'},
        'pipeline': [{'type': 'LoadAnnotations', 'with_bbox': True},
                  {'type': 'PackMultiLabelDetInputs'}]})
    ref = reference_multi_labels(osp.join(demo_data_root, 'annotations/train.json'))
    n_multi = 0
    for idx in range(len(ds)):
        sample = ds[idx]['data_samples']
        gt = sample.gt_instances
        boxes = ref.get(osp.basename(sample.img_path), {})
        assert gt.multi_labels.shape[0] == len(gt.labels)
        for box, ml, lab in zip(gt.bboxes.tensor.tolist(), gt.multi_labels.tolist(),
                                gt.labels.tolist()):
            got = {v for v in ml if v >= 0}
            assert got == boxes[tuple(box)], (sample.img_path, box)
            assert lab in got
            n_multi += len(got) > 1
    assert n_multi > 0  # the demo data has explicit multi-labels


def test_pack_ignore_split_and_errors():
    pack = PackMultiLabelDetInputs()
    inst = [{'bbox': [0, 0, 5, 5], 'bbox_label': 1, 'multi_labels': [1, 3]},
            {'bbox': [9, 9, 20, 20], 'bbox_label': 2, 'multi_labels': [2]}]
    res = {'instances': inst, 'gt_bboxes_labels': np.array([1, 2]),
               'gt_ignore_flags': np.array([False, True])}
    out = pack(dict(res))['data_samples']
    assert out.gt_instances.multi_labels.tolist() == [[1, 3]]
    assert out.ignored_instances.multi_labels.tolist() == [[2, -1]]
    with pytest.raises(ValueError, match='dropped or added boxes'):
        pack({'instances': inst, 'gt_bboxes_labels': np.array([1])})
    with pytest.raises(ValueError, match='out of order'):
        pack({'instances': inst, 'gt_bboxes_labels': np.array([2, 1])})
    # plain instances (no multi_labels key): single labels
    out = pack({'instances': [{'bbox_label': 4}], 'gt_bboxes_labels': np.array([4])})
    assert out['data_samples'].gt_instances.multi_labels.tolist() == [[4]]


def _write_r(path, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0, 1, (num_classes, num_classes)) * (rng.uniform(size=(num_classes,) * 2) < .5)
    np.fill_diagonal(r, 0)
    np.save(path, r)
    return r


def _roi_inputs(num_imgs=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = tuple(torch.randn(num_imgs, 64, 128 // s, 128 // s, generator=g)
              for s in (4, 8, 16, 32, 64))
    samples, proposals = [], []
    for i in range(num_imgs):
        xy = torch.rand(4, 2, generator=g) * 70
        wh = 16 + torch.rand(4, 2, generator=g) * 40
        boxes = torch.cat([xy, xy + wh], 1)
        boxes = torch.cat([boxes, boxes[:1]])  # box 0 duplicated: labels {3, 0}
        labels = torch.tensor([3, 5, 7, 9, 0])
        multi = torch.tensor([[0, 3], [5, -1], [7, 8], [9, -1], [0, 3]])
        ds = DetDataSample(metainfo={'img_shape': (128, 128), 'ori_shape': (128, 128),
                                         'scale_factor': (1., 1.)})
        ds.gt_instances = InstanceData(bboxes=boxes, labels=labels, multi_labels=multi)
        samples.append(ds)
        jitter = boxes.repeat(20, 1) + torch.randn(100, 4, generator=g) * 6
        rand = torch.rand(60, 2, generator=g) * 90
        rand = torch.cat([rand, rand + 10 + torch.rand(60, 2, generator=g) * 30], 1)
        proposals.append(InstanceData(bboxes=torch.cat([jitter, rand]),
                                      scores=torch.rand(160, generator=g)))
    return x, proposals, samples


def _build_roi_head(r_file):
    cfg = Config.fromfile(str(MAIN_CFG))
    cfg.model.roi_head.bbox_head.loss_cls.r_file = str(r_file)
    roi_cfg = cfg.model.roi_head
    roi_cfg.train_cfg = cfg.model.train_cfg.rcnn
    roi_cfg.test_cfg = cfg.model.test_cfg.rcnn
    torch.manual_seed(0)
    head = MODELS.build(roi_cfg)
    head.init_weights()
    return head


def test_roi_head_builds_multi_hot_targets_and_eq3_loss(tmp_path):
    r = _write_r(tmp_path / 'r.npy', 10)
    head = _build_roi_head(tmp_path / 'r.npy')
    torch.testing.assert_close(head.bbox_head.loss_cls.r, torch.as_tensor(r, dtype=torch.float32))
    rec = {}
    orig = head.bbox_head.loss_cls.forward

    def spy(cls_score, labels, *args, **kwargs):
        rec['score'], rec['y'], rec['w'] = cls_score.detach(), labels.clone(), args[0]
        rec['avg'] = kwargs['avg_factor']
        return orig(cls_score, labels, *args, **kwargs)

    head.bbox_head.loss_cls.forward = spy
    orig_lt = head.bbox_head.loss_and_target

    def spy_lt(*args, **kwargs):
        rec['rois'] = kwargs['rois']
        return orig_lt(*args, **kwargs)

    head.bbox_head.loss_and_target = spy_lt
    x, proposals, samples = _roi_inputs()
    losses = head.loss(x, proposals, samples)
    y, rois = rec['y'], rec['rois']
    assert y.shape == (rois.size(0), 11)
    pos = ~y[:, 10]
    assert pos.sum() > 10 and (~pos).sum() > 10
    # independent matching: each positive RoI gets its max-IoU gt's label set
    n_multi = 0
    for k in torch.nonzero(pos).flatten().tolist():
        img = int(rois[k, 0])
        gt = samples[img].gt_instances
        iou = bbox_overlaps(rois[k:k + 1, 1:], gt.bboxes)[0]
        assert iou.max() >= 0.5
        j = int(iou.argmax())
        expect = {v for v in gt.multi_labels[j].tolist() if v >= 0}
        assert set(torch.nonzero(y[k]).flatten().tolist()) == expect
        n_multi += len(expect) > 1
    assert n_multi > 0
    for k in torch.nonzero(~pos).flatten().tolist():
        gt = samples[int(rois[k, 0])].gt_instances
        assert bbox_overlaps(rois[k:k + 1, 1:], gt.bboxes).max() < 0.5
        assert y[k].sum() == 1
    # the head's loss_cls is eq. 3 averaged over the sampled RoIs
    per_box = naive_eq3(rec['score'].double(), y.double(), pad_bg(r))
    expect = (per_box * rec['w'].double()).sum() / rec['avg']
    torch.testing.assert_close(losses['loss_cls'].double(), expect, rtol=1e-5, atol=1e-6)
    assert rec['avg'] == rois.size(0)
    assert 'loss_bbox' in losses and torch.isfinite(losses['loss_bbox'])


def test_single_label_path_equals_mmdet_head(tmp_path):
    """Without multi-labels and r = 0 the concurrent heads reproduce mmdet's
    StandardRoIHead + Shared2FCBBoxHead + CrossEntropyLoss losses."""
    cfg = Config.fromfile(str(MAIN_CFG))
    ours_cfg = cfg.model.roi_head
    ours_cfg.bbox_head.loss_cls.r_file = None
    ours_cfg.train_cfg = cfg.model.train_cfg.rcnn
    ref_cfg = ours_cfg.copy()
    ref_cfg.type = 'StandardRoIHead'
    ref_cfg.bbox_head = dict(ours_cfg.bbox_head, type='Shared2FCBBoxHead',
                             loss_cls={'type': 'CrossEntropyLoss', 'use_sigmoid': False,
                                           'loss_weight': 1.0})
    torch.manual_seed(0)
    ours = MODELS.build(ours_cfg)
    torch.manual_seed(0)
    ref = MODELS.build(ref_cfg)
    ref.load_state_dict(ours.state_dict())
    x, proposals, samples = _roi_inputs(seed=1)
    for s in samples:
        del s.gt_instances.multi_labels
    torch.manual_seed(3)
    lo = ours.loss(x, copy.deepcopy(proposals), copy.deepcopy(samples))
    torch.manual_seed(3)
    lr = ref.loss(x, copy.deepcopy(proposals), copy.deepcopy(samples))
    for k in ('loss_cls', 'loss_bbox', 'acc'):
        torch.testing.assert_close(lo[k], lr[k])


def test_predict_uses_eq5_scores(tmp_path):
    r = _write_r(tmp_path / 'r.npy', 10, seed=2)
    head = _build_roi_head(tmp_path / 'r.npy')
    bh = head.bbox_head
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(6, 11, generator=g) * 3
    rois = torch.cat([torch.zeros(6, 1), torch.tensor([[10., 10., 40., 40.]]).repeat(6, 1)], 1)
    res = bh.predict_by_feat((rois,), (cls,), (torch.zeros(6, 40),),
                             [{'img_shape': (128, 128), 'scale_factor': (1., 1.)}],
                             rcnn_test_cfg=None)[0]
    rf = pad_bg(r)
    e = torch.exp(cls.double())
    expect = e / (e @ (1 - rf).T)
    torch.testing.assert_close(res.scores.double(), expect, rtol=1e-5, atol=1e-7)
    bh.loss_cls.test_mode = 'softmax'
    res = bh.predict_by_feat((rois,), (cls,), (torch.zeros(6, 40),),
                             [{'img_shape': (128, 128), 'scale_factor': (1., 1.)}],
                             rcnn_test_cfg=None)[0]
    torch.testing.assert_close(res.scores, torch.softmax(cls, -1))


def hand_coco():
    cats = [{'id': 1, 'name': 'animal', 'supercategory': 'none'},
            {'id': 2, 'name': 'dog', 'supercategory': 'animal'},
            {'id': 3, 'name': 'wolf', 'supercategory': 'animal'}]
    images = [{'id': i, 'file_name': f'{i}.png', 'width': 100, 'height': 100} for i in (1, 2, 3)]
    A, C = [10, 10, 30, 30], [50, 50, 40, 40]
    C2 = [51, 50, 39, 40]  # IoU with C = 0.975
    anns = [{'image_id': 1, 'category_id': 1, 'bbox': A},
            {'image_id': 1, 'category_id': 2, 'bbox': A},
            {'image_id': 1, 'category_id': 1, 'bbox': [60, 60, 20, 20]},
            {'image_id': 2, 'category_id': 2, 'bbox': C},
            {'image_id': 2, 'category_id': 3, 'bbox': C2},
            {'image_id': 2, 'category_id': 3, 'bbox': [0, 0, 10, 10], 'iscrowd': 1},
            {'image_id': 3, 'category_id': 3, 'bbox': [0, 0, 10, 10]}]
    for k, a in enumerate(anns, 1):
        a.update(id=k, area=a['bbox'][2] * a['bbox'][3], iscrowd=a.get('iscrowd', 0))
    return {'images': images, 'annotations': anns, 'categories': cats}


def test_estimator_on_hand_built_coco(tmp_path):
    coco = hand_coco()
    res = estimate_concurrent_rate(coco)
    # same-object rule (identical boxes): {animal, dog}, {animal}, {dog}, {wolf}
    # (C2 overlaps C at IoU 0.975 but is another box), {wolf}; crowd skipped
    assert res['num_objects'].tolist() == [2, 2, 2]
    np.testing.assert_allclose(res['r'], [[0, .5, 0], [.5, 0, 0], [0, 0, 0]])
    assert res['parents'] == {1: 0, 2: 0}
    assert top_pairs(res, 2)[0][0] == 0.5
    sub = multi_label_subset(coco)
    assert [im['id'] for im in sub['images']] == [1]
    assert all(a['image_id'] == 1 for a in sub['annotations'])
    # classes reordered / restricted
    part = estimate_concurrent_rate(coco, classes=['wolf', 'dog'])
    np.testing.assert_allclose(part['r'], [[0, 0], [0, 0]])
    with pytest.raises(ValueError, match='cat'):
        estimate_concurrent_rate(coco, classes=['dog', 'cat'])
    bad = hand_coco()
    bad['annotations'][0]['category_id'] = 42
    with pytest.raises(ValueError, match='category_id 42'):
        estimate_concurrent_rate(bad)
    p = tmp_path / 'bad.json'
    p.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match='category_id 42'):
        estimate_concurrent_rate(str(p))
    with pytest.raises(ValueError, match='iou_thr'):
        estimate_concurrent_rate(coco, iou_thr=0)


def test_estimator_cli_and_loss_loading(tmp_path):
    import importlib.util
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(hand_coco()))
    spec = importlib.util.spec_from_file_location(
        'cr_cli', REPO / 'tools/analysis_tools/concurrent_rate.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main([str(ann), '--out', str(tmp_path / 'r.json'), '--png', str(tmp_path / 'r.png'),
              '--multilabel-subset', str(tmp_path / 'sub.json')])
    assert (tmp_path / 'r.png').read_bytes()[:4] == b'\x89PNG'
    data = json.loads((tmp_path / 'r.json').read_text())
    assert data['classes'] == ['animal', 'dog', 'wolf']
    # the loss maps the file onto its own class order and applies the hierarchy
    loss = MODELS.build({'type': 'ConcurrentSoftmaxLoss', 'num_classes': 3,
                             'r_file': str(tmp_path / 'r.json'),
                             'classes': ['wolf', 'dog', 'animal'], 'hierarchy': 'concurrent'})
    assert loss.r[1, 0] == 0  # dog / wolf: two different boxes, never one object
    assert loss.r[0, 2] == 1 and loss.r[2, 1] == 1  # wolf/dog <-> animal: hierarchy
    loss0 = MODELS.build({'type': 'ConcurrentSoftmaxLoss', 'num_classes': 3,
                              'r_file': str(tmp_path / 'r.json'), 'hierarchy': 'zero'})
    assert loss0.r[0, 1] == 0 and loss0.r[1, 2] == 0
    cli.main([str(ann), '--out', str(tmp_path / 'r.npy')])
    assert np.load(tmp_path / 'r.npy').shape == (3, 3)


@pytest.mark.parametrize('name,train_mode,test_mode', [
    ('cs-loss-cs-test', 'concurrent', 'concurrent'),
    ('cs-loss-softmax-test', 'concurrent', 'softmax'),
    ('softmax-loss-cs-test', 'softmax', 'concurrent'),
    ('softmax-loss-softmax-test', 'softmax', 'softmax')])
def test_ablation_configs(name, train_mode, test_mode, tmp_path):
    path = CFG_DIR / f'faster-rcnn_r18-w16_fpn_{name}_8e_demo.py'
    cfg = Config.fromfile(str(path))
    lc = cfg.model.roi_head.bbox_head.loss_cls
    assert (lc.train_mode, lc.test_mode) == (train_mode, test_mode)
    assert cfg.custom_imports.imports == ['balancedet']
    assert cfg.train_pipeline[-1]['type'] == 'PackMultiLabelDetInputs'
    if name != 'cs-loss-cs-test':  # ablations override a few lines only
        body = [ln for ln in path.read_text().splitlines()
                if ln.strip() and not ln.startswith('#')]
        assert len(body) <= 5
    lc.r_file = None
    model = MODELS.build(cfg.model)
    assert type(model.roi_head).__name__ == 'ConcurrentSoftmaxRoIHead'
    assert model.roi_head.bbox_head.loss_cls.use_multi_hot == (train_mode == 'concurrent')


def test_config_pipeline_trains_and_predicts(demo_data_root, tmp_path):
    """Dataset -> PackMultiLabelDetInputs -> ConcurrentSoftmaxRoIHead, from the config."""
    from mmengine.dataset import pseudo_collate

    from balancedet.analysis.concurrent_rate import save_concurrent_rate
    root = str(demo_data_root)
    save_concurrent_rate(estimate_concurrent_rate(osp.join(root, 'annotations/train.json')),
                         str(tmp_path / 'r.json'))
    cfg = Config.fromfile(str(MAIN_CFG))
    cfg.model.roi_head.bbox_head.loss_cls.r_file = str(tmp_path / 'r.json')
    cfg.train_dataloader.dataset.data_root = root
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    multi, single = [], []
    for i in range(len(ds)):
        s = ds[i]
        ml = s['data_samples'].gt_instances.multi_labels
        (multi if len(ml) and (ml >= 0).sum(1).max() > 1 else single).append(s)
        if len(multi) >= 2 and len(single) >= 2:
            break
    batch = pseudo_collate(multi[:2] + single[:2])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    for key in ('loss_cls', 'loss_bbox', 'acc'):
        assert torch.isfinite(losses[key]).all(), key
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode='predict')
    assert len(out) == 4 and out[0].pred_instances.scores.max() <= 1


def test_hierarchy_zero_config(tmp_path):
    r = tmp_path / 'r.json'
    r.write_text(json.dumps({'classes': [f'c{i}' for i in range(10)],
                             'r': np.zeros((10, 10)).tolist(), 'parents': {'2': 0, '4': 1}}))
    losses = {}
    for name in ('cs-loss-cs-test', 'cs-loss-cs-test-hier-zero'):
        cfg = Config.fromfile(str(CFG_DIR / f'faster-rcnn_r18-w16_fpn_{name}_8e_demo.py'))
        cfg.model.roi_head.bbox_head.loss_cls.r_file = str(r)
        losses[name] = MODELS.build(cfg.model.roi_head.bbox_head).loss_cls
    assert losses['cs-loss-cs-test'].r[2, 0] == 1 and losses['cs-loss-cs-test'].r[1, 4] == 1
    assert losses['cs-loss-cs-test-hier-zero'].r.abs().sum() == 0


def test_main_config_reuses_the_base_and_the_head_sets_num_classes():
    """The config changes only the packing step of the base pipeline, names no
    classes, and the loss takes num_classes from the bbox head."""
    cfg = Config.fromfile(str(MAIN_CFG))
    base = Config.fromfile(str(REPO / 'configs/faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'))
    assert cfg.train_pipeline[:-1] == base.train_pipeline[:-1]
    assert cfg.train_dataloader.dataset.pipeline == cfg.train_pipeline
    assert 'classes' not in cfg and 'num_classes' not in cfg.model.roi_head.bbox_head.loss_cls
    head_cfg = cfg.model.roi_head.bbox_head
    head_cfg.loss_cls.r_file = None
    head = MODELS.build(head_cfg)
    assert head.loss_cls.num_classes == head.num_classes == 10
    with pytest.raises(ValueError, match='differs from the bbox head num_classes=10'):
        MODELS.build(dict(head_cfg, loss_cls=dict(head_cfg.loss_cls, num_classes=7)))


def test_runner_maps_r_file_onto_dataset_classes(demo_data_root, tmp_path):
    """A .json r_file whose classes are in another order than the dataset's is
    mapped by name onto the dataset's labels before training and testing."""
    from balancedet.apis.runner_setup import build_runner, load_config
    from balancedet.engine.multi_label_check_hook import MultiLabelTargetCheckHook
    cfg = load_config(str(MAIN_CFG), work_dir=str(tmp_path / 'work'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].update(num_workers=0, persistent_workers=False)
        cfg[key].dataset.data_root = str(demo_data_root) + '/'
    cfg.test_evaluator.ann_file = osp.join(demo_data_root, 'annotations/val.json')
    dataset = DATASETS.build(cfg.test_dataloader.dataset).metainfo['classes']
    names = list(dataset[3:] + dataset[:3])  # the file's order: rotated by 3
    rng = np.random.default_rng(0)
    r = rng.uniform(size=(10, 10)) * (rng.uniform(size=(10, 10)) < 0.5)
    np.fill_diagonal(r, 0)
    r_file = tmp_path / 'r.json'
    r_file.write_text(json.dumps({'classes': names, 'r': r.tolist(), 'parents': {'1': 0}}))
    cfg.model.roi_head.bbox_head.loss_cls.r_file = str(r_file)
    runner = build_runner(cfg)
    loss = runner.model.roi_head.bbox_head.loss_cls
    file_order = loss.r.clone()  # as built: the file's labels, hierarchy applied
    assert file_order[1, 0] == 1 and file_order[0, 1] == 1
    perm = [names.index(c) for c in dataset]  # dataset label -> file label
    expect = torch.as_tensor(r, dtype=torch.float32)[perm][:, perm]
    expect[4, 3] = expect[3, 4] = 1  # file labels 1 -> 0 are dataset labels 4 -> 3
    hook, = [h for h in runner.hooks if isinstance(h, MultiLabelTargetCheckHook)]
    for stage in ('before_train', 'before_test'):
        getattr(hook, stage)(runner)
        torch.testing.assert_close(loss.r, file_order[perm][:, perm])
        torch.testing.assert_close(loss.r, expect)
    # explicit classes that differ from the dataset's: an error naming both
    cfg.model.roi_head.bbox_head.loss_cls.classes = names
    runner = build_runner(cfg)
    with pytest.raises(ValueError, match=r"differ from the dataset classes \('round'.*"
                                         r'drop loss_cls.classes'):
        runner.call_hook('before_test')
