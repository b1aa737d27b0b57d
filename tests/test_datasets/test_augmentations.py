"""Augmentation suite: boxes stay consistent with the image; DropPixels.

Each geometric transform (mmdet's, reused by the suite) is applied to an image
showing one filled rectangle exactly covering its gt box; afterwards the box
must equal the extent of the rectangle's pixels in the transformed image (the
rotated/sheared rectangle's enclosing box is its pixel extent). DropPixels is
checked against the binomial law of its dropped-pixel count.
"""

import numpy as np
import pytest
import torch
from conftest import REPO
from mmcv.transforms import Compose
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes

import balancedet  # noqa: F401

SIZE = 128


def make_results(box=(40, 30, 80, 66), size=SIZE):
    img = np.zeros((size, size, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                gt_bboxes=HorizontalBoxes(torch.tensor([box], dtype=torch.float32)),
                gt_bboxes_labels=np.array([3]), gt_ignore_flags=np.array([False]))


def pixel_extent(img):
    ys, xs = np.nonzero(img[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


GEOMETRIC = [
    dict(type='RandomFlip', prob=1.0, direction='horizontal'),
    dict(type='RandomFlip', prob=1.0, direction='vertical'),
    dict(type='RandomFlip', prob=1.0, direction='diagonal'),
    dict(type='RandomCrop', crop_size=(96, 96)),
    dict(type='RandomShift', prob=1.0, max_shift_px=24),
    dict(type='Rotate', prob=1.0, min_mag=20.0, max_mag=20.0, img_border_value=0,
         interpolation='nearest'),
    dict(type='Rotate', prob=1.0, min_mag=45.0, max_mag=45.0, reversal_prob=0.0,
         img_border_value=0, interpolation='nearest'),
    dict(type='ShearX', prob=1.0, min_mag=15.0, max_mag=15.0, img_border_value=0,
         interpolation='nearest'),
    dict(type='ShearY', prob=1.0, min_mag=15.0, max_mag=15.0, img_border_value=0,
         interpolation='nearest'),
]


@pytest.mark.parametrize('cfg', GEOMETRIC, ids=lambda c: f'{c["type"]}-{c.get("direction", "")}'
                         f'{c.get("min_mag", "")}')
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_geometric_transform_keeps_box_on_object(cfg, seed):
    np.random.seed(seed)
    out = TRANSFORMS.build(cfg)(make_results())
    assert out is not None
    boxes = out['gt_bboxes'].numpy()
    assert boxes.shape == (1, 4) and out['gt_bboxes_labels'].tolist() == [3]
    assert out['img'].shape[:2] == tuple(out['img_shape'])
    np.testing.assert_allclose(boxes[0], pixel_extent(out['img']), atol=2.0)


def test_geometric_transforms_actually_move_the_box():
    # Guards the consistency test against transforms that silently do nothing.
    ref = np.array([40, 30, 80, 66], np.float32)
    for cfg in GEOMETRIC:
        if cfg['type'] in ('RandomCrop', 'RandomShift'):
            continue
        out = TRANSFORMS.build(cfg)(make_results())
        assert np.abs(out['gt_bboxes'].numpy()[0] - ref).max() > 3, cfg


@pytest.mark.parametrize('cfg', [dict(type='Brightness', prob=1.0, min_mag=1.5, max_mag=1.5),
                                 dict(type='Contrast', prob=1.0, min_mag=0.5, max_mag=0.5),
                                 dict(type='DropPixels', fraction=0.3)])
def test_photometric_transforms_leave_boxes(cfg):
    res = make_results()
    res['img'] = (res['img'] // 2 + 40).astype(np.uint8)
    before = res['img'].copy()
    out = TRANSFORMS.build(cfg)(res)
    np.testing.assert_array_equal(out['gt_bboxes'].numpy(), [[40, 30, 80, 66]])
    assert not np.array_equal(out['img'], before)


def test_rotation_pushing_every_box_out_keeps_or_skips_the_sample():
    """Documented rule: after a geometric transform, FilterAnnotations removes
    the boxes left with no area; ``keep_empty=False`` keeps the sample without
    boxes, ``keep_empty=True`` (the suite's choice) returns None, so the
    training dataset draws another image."""
    # On a 128x64 (w x h) canvas, a 90 deg turn about the centre maps the
    # tall box at the left edge (x < 20) onto rows y < -12: fully outside.
    rot = dict(type='Rotate', prob=1.0, min_mag=90.0, max_mag=90.0, img_border_value=0)
    res = make_results(box=(0, 0, 20, 60), size=64)
    res['img'] = np.zeros((64, 128, 3), np.uint8)
    res['img_shape'] = (64, 128)
    res['gt_bboxes'] = HorizontalBoxes(torch.tensor([[0, 0, 20, 60]], dtype=torch.float32))
    out = TRANSFORMS.build(rot)(res)
    wh = out['gt_bboxes'].widths * out['gt_bboxes'].heights
    assert float(wh[0]) == 0.0  # clipped to nothing, but not removed by Rotate

    keep = Compose([TRANSFORMS.build(rot),
                    TRANSFORMS.build(dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1),
                                          keep_empty=False))])
    res2 = dict(res, gt_bboxes=HorizontalBoxes(torch.tensor([[0, 0, 20, 60]],
                                                            dtype=torch.float32)),
                img=np.zeros((64, 128, 3), np.uint8))
    kept = keep(res2)
    assert kept is not None and len(kept['gt_bboxes']) == 0
    assert len(kept['gt_bboxes_labels']) == 0

    skip = Compose([TRANSFORMS.build(rot),
                    TRANSFORMS.build(dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1),
                                          keep_empty=True))])
    res3 = dict(res2, gt_bboxes=HorizontalBoxes(torch.tensor([[0, 0, 20, 60]],
                                                             dtype=torch.float32)),
                img=np.zeros((64, 128, 3), np.uint8))
    assert skip(res3) is None


def test_drop_pixels_fraction_follows_binomial_law():
    np.random.seed(0)
    img = np.full((200, 200, 3), 7, np.uint8)
    out = TRANSFORMS.build(dict(type='DropPixels', fraction=0.2))(dict(img=img.copy()))
    changed = (out['img'] != 7).any(-1)
    n, p = img.shape[0] * img.shape[1], 0.2
    # a dropped pixel keeps colour (7,7,7) with probability 256**-3: negligible
    assert abs(changed.sum() - n * p) < 5 * np.sqrt(n * p * (1 - p))
    # random colours: roughly uniform over [0, 255]
    vals = out['img'][changed].astype(np.float64)
    assert abs(vals.mean() - 127.5) < 3 and vals.min() < 10 and vals.max() > 245
    # untouched pixels are unchanged
    assert (out['img'][~changed] == 7).all()


def test_drop_pixels_zero_one_and_prob():
    img = np.full((32, 32, 3), 7, np.uint8)
    out = TRANSFORMS.build(dict(type='DropPixels', fraction=0.0))(dict(img=img.copy()))
    np.testing.assert_array_equal(out['img'], img)
    out = TRANSFORMS.build(dict(type='DropPixels', fraction=0.5, prob=0.0))(dict(img=img.copy()))
    np.testing.assert_array_equal(out['img'], img)
    np.random.seed(3)
    out = TRANSFORMS.build(dict(type='DropPixels', fraction=1.0))(dict(img=img.copy()))
    assert (out['img'] != 7).any(-1).mean() > 0.99
    gray = np.full((32, 32), 7, np.uint8)
    out = TRANSFORMS.build(dict(type='DropPixels', fraction=(0.4, 0.6)))(dict(img=gray.copy()))
    assert out['img'].shape == gray.shape and 0.3 < (out['img'] != 7).mean() < 0.7


@pytest.mark.parametrize('fraction', [-0.1, 1.5, (0.2, 1.2), (0.6, 0.4), (0.1, 0.2, 0.3)])
def test_drop_pixels_bad_fraction(fraction):
    with pytest.raises(ValueError, match='fraction'):
        TRANSFORMS.build(dict(type='DropPixels', fraction=fraction))


def test_drop_pixels_bad_types():
    with pytest.raises(TypeError, match='fraction'):
        TRANSFORMS.build(dict(type='DropPixels', fraction='0.1'))
    with pytest.raises(ValueError, match='prob'):
        TRANSFORMS.build(dict(type='DropPixels', fraction=0.1, prob=2))


def test_augmentation_suite_pipeline_from_config():
    """The suite of the aug config runs end to end and keeps boxes in the image."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')  # as the runner does: RandomApply builds its children
    cfg = Config.fromfile(str(REPO / 'configs/ssd_cls_loc/ssd_ssd7net_augsuite_8e_demo-cls-loc.py'))
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    types += [t['type'] for step in pipeline for t in step.get('transforms', [])]
    for name in ('RandomFlip', 'RandomCrop', 'RandomShift', 'Rotate', 'ShearX', 'Brightness',
                 'Contrast', 'DropPixels', 'FilterAnnotations'):
        assert name in types, name
    steps = Compose([TRANSFORMS.build(t) for t in pipeline
                     if t['type'] not in ('LoadImageFromFile', 'LoadAnnotations',
                                          'PackDetInputs')])
    np.random.seed(0)
    n_none = 0
    for _ in range(20):
        out = steps(make_results())
        if out is None:
            n_none += 1
            continue
        b = out['gt_bboxes'].numpy()
        h, w = out['img'].shape[:2]
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
        assert ((b[:, 2] - b[:, 0]) > 1).all() and ((b[:, 3] - b[:, 1]) > 1).all()
    assert n_none < 20
