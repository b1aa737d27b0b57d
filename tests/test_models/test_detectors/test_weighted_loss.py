"""Tests of WeightedLossDetector (per-term loss weights for any detector)."""
import copy
import functools

import pytest
import torch
from conftest import REPO
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

import balancedet  # noqa: F401
from balancedet.models.detectors.weighted_loss_detector import (
    LossWeightSchedule,
    WeightedLossDetector,
)


@functools.lru_cache(maxsize=1)
def _faster_rcnn_cfg_cached():
    return Config.fromfile(str(REPO / 'configs/_base_/models/faster-rcnn_r18-w16_fpn.py')).model


def _faster_rcnn_cfg():
    return copy.deepcopy(_faster_rcnn_cfg_cached())


def _retinanet_cfg(tmp_path):
    p = tmp_path / 'retina.py'
    p.write_text(
        "_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'\n"
        "model = dict(backbone=dict(base_channels=16, init_cfg=None),\n"
        "    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),\n"
        "    bbox_head=dict(num_classes=10, in_channels=32, feat_channels=32,\n"
        "                   stacked_convs=1))\n")
    return Config.fromfile(str(p)).model


def _batch(model, seed=0):
    torch.manual_seed(seed)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64), (3, 64, 64)],
                          num_items=[3, 2], num_classes=10, with_mask=False)
    return model.data_preprocessor(data, True)


def _set_progress(epoch=0, it=0):
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', epoch)
    hub.update_info('iter', it)


def test_weighted_terms_equal_weight_times_raw():
    _set_progress()
    w = dict(loss_bbox=0.5, loss_rpn_cls=2.0)
    model = MODELS.build(dict(type='WeightedLossDetector', detector=_faster_rcnn_cfg(),
                              loss_weights=w))
    data = _batch(model)
    torch.manual_seed(1)
    out = model.loss(data['inputs'], data['data_samples'])
    torch.manual_seed(1)
    # reference: the unwrapped detector
    raw = model.detector.loss(data['inputs'], data['data_samples'])
    for key, value in raw.items():
        factor = w.get(key, 1.0)
        if isinstance(value, list):
            for a, b in zip(out[key], value):
                torch.testing.assert_close(a, b * factor)
        else:
            torch.testing.assert_close(out[key], value * factor)
    torch.testing.assert_close(out['raw_loss_bbox'], raw['loss_bbox'].mean())
    torch.testing.assert_close(out['raw_loss_rpn_cls'],
                               sum(v.mean() for v in raw['loss_rpn_cls']))
    assert out['weight_loss_bbox'].item() == 0.5

    # total = sum_k w_k * L_k, raw/weight entries are logged but not summed
    total, log_vars = model.parse_losses(out)
    expected = (raw['loss_cls'] + 0.5 * raw['loss_bbox']
                + sum(v.mean() for v in raw['loss_rpn_bbox'])
                + 2.0 * sum(v.mean() for v in raw['loss_rpn_cls']))
    torch.testing.assert_close(total, expected)
    assert 'raw_loss_bbox' in log_vars and 'weight_loss_rpn_cls' in log_vars
    torch.testing.assert_close(log_vars['loss'], expected)

    # gradients of the box head = 0.5 x the unweighted box-loss gradient
    p = model.detector.roi_head.bbox_head.fc_reg.weight
    model.zero_grad()
    torch.manual_seed(1)
    model.loss(data['inputs'], data['data_samples'])['loss_bbox'].backward()
    g_weighted = p.grad.clone()
    model.zero_grad()
    torch.manual_seed(1)
    model.detector.loss(data['inputs'], data['data_samples'])['loss_bbox'].backward()
    torch.testing.assert_close(g_weighted, 0.5 * p.grad)


def test_train_step_and_predict_through_wrapper():
    _set_progress()
    model = MODELS.build(dict(type='WeightedLossDetector', detector=_faster_rcnn_cfg(),
                              loss_weights=dict(loss_bbox=0.5)))
    assert model.with_rpn and model.roi_head is model.detector.roi_head
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64), (3, 64, 64)],
                          num_items=[3, 2], num_classes=10, with_mask=False)
    log_vars = model.train_step(data, optim)
    assert {'loss', 'loss_bbox', 'raw_loss_bbox', 'weight_loss_bbox'} <= set(log_vars)
    assert 'raw_loss_cls' not in log_vars  # only configured terms get extra logs
    summed = sum(v for k, v in log_vars.items() if k.startswith('loss_'))
    torch.testing.assert_close(log_vars['loss'], summed)
    model.eval()
    preds = model.val_step(data)
    assert len(preds) == 2 and hasattr(preds[0], 'pred_instances')


def test_any_detector_single_stage_and_patterns(tmp_path):
    _set_progress()
    model = MODELS.build(dict(type='WeightedLossDetector', detector=_retinanet_cfg(tmp_path),
                              loss_weights={'loss_b*': 0.25}))
    data = _batch(model)
    torch.manual_seed(1)
    out = model.loss(data['inputs'], data['data_samples'])
    torch.manual_seed(1)
    raw = model.detector.loss(data['inputs'], data['data_samples'])
    for a, b in zip(out['loss_bbox'], raw['loss_bbox']):
        torch.testing.assert_close(a, 0.25 * b)
    for a, b in zip(out['loss_cls'], raw['loss_cls']):
        torch.testing.assert_close(a, b)


def test_unknown_loss_name_raises_before_the_first_optimizer_step():
    model = MODELS.build(dict(type='WeightedLossDetector', detector=_faster_rcnn_cfg(),
                              loss_weights=dict(loss_bboxx=0.5)))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64), (3, 64, 64)],
                          num_items=[3, 2], num_classes=10, with_mask=False)
    with pytest.raises(ValueError, match=r"unknown loss names \['loss_bboxx'\].*'loss_bbox'"):
        model.train_step(data, optim)
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k]), f'{k} changed before the error'
    # a pattern that matches nothing is as unknown as a misspelt name
    model = MODELS.build(dict(type='WeightedLossDetector', detector=_faster_rcnn_cfg(),
                              loss_weights={'s*.loss_bbox': 0.5}))
    with pytest.raises(ValueError, match=r"s\*\.loss_bbox"):
        model.loss(*_batch(model).values())


def test_schedule_values():
    hub = MessageHub.get_current_instance()
    lin = LossWeightSchedule('loss_bbox', dict(points=[(2, 1.0), (6, 0.0)],
                                               interpolation='linear'))
    step = LossWeightSchedule('loss_bbox', dict(points=[(0, 1.0), (3, 0.5), (5, 0.25)]))
    per_iter = LossWeightSchedule('loss_bbox', dict(points=[(0, 0.0), (100, 1.0)],
                                                    by_epoch=False, interpolation='linear'))
    assert [lin(e, 0) for e in (0, 2, 3, 5, 6, 9)] == [1.0, 1.0, 0.75, 0.25, 0.0, 0.0]
    assert [step(e, 0) for e in (0, 2, 3, 4, 5, 8)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert per_iter(7, 25) == pytest.approx(0.25) and per_iter(0, 1000) == 1.0
    model = WeightedLossDetector(detector=_faster_rcnn_cfg(),
                                 loss_weights=dict(loss_bbox=dict(points=[(0, 1.0), (4, 0.5)]),
                                                   loss_cls=2))
    hub.update_info('epoch', 5)
    assert model.current_weights() == dict(loss_bbox=0.5, loss_cls=2.0)
    hub.update_info('epoch', 1)
    assert model.current_weights() == dict(loss_bbox=1.0, loss_cls=2.0)
    _set_progress()


@pytest.mark.parametrize('loss_weights,match', [
    (dict(loss_bbox=-1), 'loss_bbox'), (dict(loss_bbox='half'), 'loss_bbox'),
    (dict(acc=0.5), 'acc'), ({}, 'loss_weights'), (dict(loss_bbox=float('inf')), 'loss_bbox'),
    (dict(loss_bbox=dict(points=[(3, 1.0), (1, 0.5)])), 'increasing'),
    (dict(loss_bbox=dict(points=[])), 'points'),
    (dict(loss_bbox=dict(points=[(0, 1.0)], interpolation='cubic')), 'interpolation'),
    (dict(loss_bbox=dict(points=[(0, 1.0)], by_epoch='yes')), 'by_epoch'),
    (dict(loss_bbox=dict(points=[(0, 1.0)], begin=3)), 'begin')])
def test_bad_configs_raise_at_build(loss_weights, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MODELS.build(dict(type='WeightedLossDetector', detector=_faster_rcnn_cfg(),
                          loss_weights=loss_weights))


def test_bad_detector_raises():
    with pytest.raises(TypeError, match='detector'):
        MODELS.build(dict(type='WeightedLossDetector', detector='FasterRCNN',
                          loss_weights=dict(loss_bbox=0.5)))


def test_libra_configs_build_with_the_right_components():
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    root = REPO / 'configs/libra_rcnn'
    expect = {  # config: (BFP?, balanced L1?, IoU sampler?)
        'faster-rcnn_r18-w16_fpn_iou-balanced-sampler_8e_demo.py': (False, False, True),
        'faster-rcnn_r18-w16_fpn-bfp_8e_demo.py': (True, False, False),
        'faster-rcnn_r18-w16_fpn_balanced-l1_8e_demo.py': (False, True, False),
        'faster-rcnn_r18-w16_fpn-bfp_iou-balanced-sampler_8e_demo.py': (True, False, True),
        'libra-faster-rcnn_r18-w16_fpn_8e_demo.py': (True, True, True),
        'libra-faster-rcnn_r18-w16_fpn_half-bbox-weight_8e_demo.py': (True, True, True),
    }
    for name, (bfp, bl1, sampler) in expect.items():
        model_cfg = Config.fromfile(str(root / name)).model
        model_cfg = model_cfg.get('detector', model_cfg)
        necks = model_cfg.neck if isinstance(model_cfg.neck, list) else [model_cfg.neck]
        assert any(n.type == 'BalancedFeaturePyramid' for n in necks) == bfp, name
        assert (model_cfg.roi_head.bbox_head.loss_bbox.type == 'BalancedL1LossV2') == bl1
        assert (model_cfg.train_cfg.rcnn.sampler.type == 'BalancedIoUSampler') == sampler
    # the full Libra model builds with the three components in place
    libra = root / 'libra-faster-rcnn_r18-w16_fpn_8e_demo.py'
    det = MODELS.build(Config.fromfile(str(libra)).model)
    assert type(det.neck[1]).__name__ == 'BalancedFeaturePyramid'
    assert type(det.roi_head.bbox_head.loss_bbox).__name__ == 'BalancedL1LossV2'
    assert type(det.roi_head.bbox_sampler).__name__ == 'BalancedIoUSampler'
    half = MODELS.build(Config.fromfile(
        str(root / 'libra-faster-rcnn_r18-w16_fpn_half-bbox-weight_8e_demo.py')).model)
    assert isinstance(half, WeightedLossDetector)
    assert half.current_weights() == {'loss_bbox': 0.5}
