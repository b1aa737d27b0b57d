"""BalancedLVISMetric / evaluate_lvis give lvis-api's numbers on numpy 2.

The expected values were computed once with lvis-api 0.5.3 (``LVISEval``; numpy 1.23.5,
as 1.24 removed the ``np.float`` it calls; pycocotools 2.0.11) in a throwaway environment,
on exactly the files that :func:`write_fixture` writes (fixed seeds), with::

    gt = LVIS('gt.json'); dt = LVISResults(gt, 'bbox.json')   # max_dets=300
    e = LVISEval(gt, dt, 'bbox'); e.run(); e.get_results()
    # per class: e.eval['precision'][:, :, k, 0] mean over entries > -1
"""
import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from lvis_fixture import EXPECTED, EXPECTED_PER_CLASS, make_detections, write_fixture  # noqa: F401
from mmengine.structures import InstanceData

import balancedet  # noqa: F401
from balancedet.datasets.balanced_coco import DatasetError
from balancedet.evaluation.lvis_metric import BalancedLVISMetric, evaluate_lvis, per_class_ap


@pytest.fixture(scope='module')
def fixture(tmp_path_factory):
    return write_fixture(tmp_path_factory.mktemp('lvis_metric'))


@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_equal_to_lvis_api(fixture, iou_type):
    gt, bbox, segm = fixture
    res = evaluate_lvis(gt, bbox if iou_type == 'bbox' else segm, iou_type)
    for key, value in EXPECTED[iou_type].items():
        assert res[key] == pytest.approx(value, abs=1e-12), key
    ap = per_class_ap(res['precision'])
    for cat_id, value in EXPECTED_PER_CLASS[iou_type].items():
        assert ap[res['cat_ids'].index(int(cat_id))] == pytest.approx(value, abs=1e-12)
    # classes without ground truth in the split have no AP
    with_gt = {a['category_id'] for a in gt['annotations']}
    assert np.isnan(ap[[k for k, c in enumerate(res['cat_ids']) if c not in with_gt]]).all()


def test_metric_through_mmdet_interface(fixture, tmp_path):
    gt, bbox, segm = fixture
    ann_file = str(tmp_path / 'gt.json')
    with open(ann_file, 'w') as f:
        json.dump(gt, f)
    metric = BalancedLVISMetric(ann_file=ann_file, metric=['bbox', 'segm'], classwise=True)
    names = [c['name'] for c in sorted(gt['categories'], key=lambda c: c['id'])]
    metric.dataset_meta = dict(classes=tuple(names))
    samples = []
    for img in gt['images']:
        mine = [k for k, d in enumerate(bbox) if d['image_id'] == img['id']]
        inst = InstanceData()
        b = np.array([bbox[k]['bbox'] for k in mine], dtype=np.float64).reshape(-1, 4)
        inst.bboxes = torch.from_numpy(np.c_[b[:, :2], b[:, :2] + b[:, 2:]])
        inst.scores = torch.tensor([bbox[k]['score'] for k in mine], dtype=torch.float64)
        inst.labels = torch.tensor([bbox[k]['category_id'] - 1 for k in mine])
        inst.masks = torch.from_numpy(np.stack(
            [mask_utils.decode(segm[k]['segmentation']) for k in mine]).astype(bool))
        samples.append(dict(img_id=img['id'], pred_instances=inst))
    metric.process({}, samples)
    out = metric.evaluate(len(samples))
    for iou_type in ('bbox', 'segm'):
        for key in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf'):
            # mmdet's LVISMetric rounds to 3 decimals; float32 boxes -> tolerance 1e-3
            assert out[f'lvis/{iou_type}_{key}'] == pytest.approx(
                EXPECTED[iou_type][key], abs=1.5e-3), (iou_type, key)
        for cat_id, value in EXPECTED_PER_CLASS[iou_type].items():
            key = f'lvis/{iou_type}_AP/{names[int(cat_id) - 1]}'
            assert out[key] == pytest.approx(value, abs=1.5e-3)
    # no key for a class without ground truth in the split
    with_gt = {a['category_id'] for a in gt['annotations']}
    assert not [k for k in out if '_AP/' in k and names.index(k.split('/', 2)[2]) + 1
                not in with_gt]


def test_lvis_package_is_not_needed(fixture, tmp_path):
    """mmdet's LVISMetric cannot run here (no working `lvis`); ours imports nothing of it."""
    import sys

    from mmdet.evaluation.metrics import LVISMetric
    assert 'lvis' not in sys.modules
    with pytest.raises(RuntimeError, match='lvis'):
        LVISMetric(ann_file=str(tmp_path / 'any.json'))


def test_bad_input(tmp_path, fixture):
    gt, _, _ = fixture
    bad = json.loads(json.dumps(gt))
    for c in bad['categories'][:3]:
        del c['frequency']
    path = tmp_path / 'nofreq.json'
    path.write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r'3 of 1203 categories have no valid "frequency"'):
        BalancedLVISMetric(ann_file=str(path))
    coco = dict(images=[dict(id=1, file_name='a.jpg', width=4, height=4)], annotations=[],
                categories=[dict(id=1, name='a')])
    path = tmp_path / 'coco.json'
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match='not in LVIS format.*BalancedCocoDataset'):
        BalancedLVISMetric(ann_file=str(path))
    with pytest.raises(ValueError, match='needs `ann_file`'):
        BalancedLVISMetric(ann_file=None)
