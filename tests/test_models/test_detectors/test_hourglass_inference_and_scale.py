"""HourglassRPN multi-scale inference and DynamicTrainScale."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from mmcv.ops import nms
from mmdet.models.detectors import RPN
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes, bbox_overlaps
from mmengine.config import Config
from mmengine.registry import init_default_scope

import balancedet  # noqa: F401

BASE = str(REPO / 'configs/_base_/models/hourglass-rpn_r18-w16.py')
init_default_scope('mmdet')


def _model(**kw):
    cfg = Config.fromfile(BASE).model
    cfg.test_cfg.rpn.max_per_img = 200
    cfg.update(kw)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    return model


def _sample(h, w, sf):
    meta = dict(img_shape=(h, w), ori_shape=(round(h / sf), round(w / sf)),
                scale_factor=(sf, sf), pad_shape=(h, w), batch_input_shape=(h, w))
    return DetDataSample(metainfo=meta)


def _image(h, w, pad=128):
    torch.manual_seed(1)
    x = torch.zeros(1, 3, pad, pad)
    x[..., :h, :w] = torch.randn(1, 3, h, w)
    return x


def test_single_native_scale_equals_mmdet_rpn():
    model = _model(test_scales=[96], inter_scale_nms=dict(type='nms', iou_threshold=1.0),
                   max_per_img=200)
    x = _image(96, 128)
    with torch.no_grad():
        ours = model.predict(x, [_sample(96, 128, 0.5)])[0].pred_instances
        # mmdet's RPN on the same image padded to the size divisor (32)
        ref = RPN.predict(model, x[..., :96, :128].contiguous(),
                          [_sample(96, 128, 0.5)])[0].pred_instances
    torch.testing.assert_close(ours.bboxes, ref.bboxes)
    torch.testing.assert_close(ours.scores, ref.scores)


def test_multi_scale_merge_matches_reference():
    model = _model(test_scales=[64, 96, 160], max_per_img=150)
    h, w, sf = 96, 128, 0.5
    x = _image(h, w)
    with torch.no_grad():
        ours = model.predict(x, [_sample(h, w, sf)])[0].pred_instances
        boxes, scores = [], []
        for s in (64, 96, 160):
            f = s / min(h, w)
            nh, nw = round(h * f), round(w * f)
            xi = F.interpolate(x[..., :h, :w], size=(nh, nw), mode='bilinear',
                               align_corners=False)
            ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
            xi = F.pad(xi, (0, pw - nw, 0, ph - nh))
            ds = DetDataSample(metainfo=dict(
                img_shape=(nh, nw), pad_shape=(ph, pw), batch_input_shape=(ph, pw),
                scale_factor=(sf * nw / w, sf * nh / h)))
            r = RPN.predict(model, xi, [ds])[0].pred_instances
            boxes.append(r.bboxes)
            scores.append(r.scores)
        boxes, scores = torch.cat(boxes), torch.cat(scores)
        _, keep = nms(boxes, scores, 0.5)
        keep = keep[:150]
    torch.testing.assert_close(ours.bboxes, boxes[keep])
    torch.testing.assert_close(ours.scores, scores[keep])
    assert len(ours) <= 150
    iou = bbox_overlaps(ours.bboxes, ours.bboxes) - torch.eye(len(ours))
    assert iou.max() <= 0.5 + 1e-6
    # boxes are in the original image frame (ori 192 x 256)
    assert ours.bboxes[:, 2].max() <= 256 + 1e-3 and ours.bboxes[:, 3].max() <= 192 + 1e-3


@pytest.mark.parametrize('kw, err, match', [
    (dict(test_scales=[]), ValueError, 'test_scales is empty'),
    (dict(test_scales=[128, -1]), ValueError, 'test_scales'),
    (dict(inter_scale_nms=dict(type='nms', iou_threshold=0.0)), ValueError,
     r'inter_scale: .nms.iou_threshold. must be a number in \(0, 1\]'),
    (dict(inter_scale_nms=dict(type='nms', iou_threshold=1.2)), ValueError,
     r'iou_threshold. must be a number in \(0, 1\]'),
    (dict(test_scale_mode='long_side'), ValueError, 'test_scale_mode'),
    (dict(max_per_img=0), ValueError, 'max_per_img'),
])
def test_detector_bad_config(kw, err, match):
    cfg = Config.fromfile(BASE).model
    cfg.update(kw)
    with pytest.raises(err, match=match):
        MODELS.build(cfg)


def test_detector_levels_must_match_anchor_levels():
    cfg = Config.fromfile(BASE).model
    cfg.neck.out_indices = (1, 2)
    with pytest.raises(ValueError, match='neck returns 2 levels'):
        MODELS.build(cfg)


def test_detector_bad_inner_nms():
    cfg = Config.fromfile(BASE).model
    cfg.test_cfg.rpn.nms.iou_threshold = 2.0
    with pytest.raises(ValueError, match=r'iou_threshold. must be a number in \(0, 1\]'):
        MODELS.build(cfg)


# --------------------------------------------------------------- DynamicTrainScale
def _results(boxes, ignore=None, hw=(100, 120)):
    boxes = np.asarray(boxes, dtype=np.float32)
    return dict(img=np.zeros((*hw, 3), np.uint8), img_shape=hw, ori_shape=hw,
                gt_bboxes=HorizontalBoxes(torch.from_numpy(boxes)),
                gt_ignore_flags=np.zeros(len(boxes), bool) if ignore is None
                else np.asarray(ignore, bool),
                gt_bboxes_labels=np.zeros(len(boxes), np.int64))


def _sizes(b):
    b = b.tensor.numpy()
    return np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))


def test_dynamic_scale_puts_a_box_in_anchor_range():
    t = TRANSFORMS.build(dict(type='DynamicTrainScale', anchor_range=(40, 60),
                              scale_range=(0.25, 8.0)))
    np.random.seed(0)
    boxes = [[0, 0, 4, 4], [10, 10, 30, 30], [5, 5, 95, 95]]
    factors = []
    for _ in range(50):
        r = t.transform(_results(boxes))
        s = _sizes(r['gt_bboxes'])
        assert ((s >= 40 - 1e-3) & (s <= 60 + 1e-3)).any()
        fw, fh = r['scale_factor']
        assert r['img'].shape[:2] == (round(100 * fh), round(120 * fw))
        assert r['img_shape'] == r['img'].shape[:2]
        expected = np.asarray(boxes, np.float32) * np.array([fw, fh, fw, fh])
        np.testing.assert_allclose(r['gt_bboxes'].tensor.numpy(), expected, rtol=1e-5)
        factors.append(fw)
    assert np.std(np.log(factors)) > 0.1  # random across calls


def test_dynamic_scale_ignores_ignored_boxes_and_respects_limits():
    t = TRANSFORMS.build(dict(type='DynamicTrainScale', anchor_range=(40, 60),
                              scale_range=(0.5, 2.0), max_side=200))
    np.random.seed(1)
    for _ in range(20):
        # only the ignored box could be brought in range: the other must be
        # pushed as close as allowed, i.e. the largest allowed factor
        r = t.transform(_results([[0, 0, 50, 50], [0, 0, 5, 5]], ignore=[True, False]))
        fw, _ = r['scale_factor']
        assert fw == pytest.approx(200 / 120, rel=1e-2)
        assert max(r['img'].shape[:2]) <= 200


@pytest.mark.parametrize('kw, err', [
    (dict(anchor_range=(60, 40)), ValueError),
    (dict(anchor_range=(0, 40)), ValueError),
    (dict(anchor_range=40), TypeError),
    (dict(anchor_range=(16, 64), scale=(128, 128)), ValueError),
    (dict(anchor_range=(16, 64), max_side=-5), ValueError),
])
def test_dynamic_scale_bad_config(kw, err):
    with pytest.raises(err, match='DynamicTrainScale'):
        TRANSFORMS.build(dict(type='DynamicTrainScale', **kw))
