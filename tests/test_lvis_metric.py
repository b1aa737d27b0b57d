"""BalancedLVISMetric / evaluate_lvis give lvis-api's numbers on numpy 2.

The expected values were computed once with lvis-api 0.5.3 (``LVISEval``; numpy 1.23.5,
as 1.24 removed the ``np.float`` it calls; pycocotools 2.0.11) in a throwaway environment,
on exactly the files that :func:`write_fixture` writes (fixed seeds), with::

    gt = LVIS('gt.json'); dt = LVISResults(gt, 'bbox.json')   # max_dets=300
    e = LVISEval(gt, dt, 'bbox'); e.run(); e.get_results()
    # per class: e.eval['precision'][:, :, k, 0] mean over entries > -1
"""
import json
import os.path as osp

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.structures import InstanceData

import balancedet  # noqa: F401
from balancedet.datasets.balanced_coco import DatasetError
from balancedet.datasets.coco_lvis_generator import generate_tiny_lvis
from balancedet.evaluation.lvis_metric import BalancedLVISMetric, evaluate_lvis, per_class_ap


def make_detections(gt, seed=0):
    """Detections exercising every federated rule: jittered true positives, duplicates,
    false positives of annotated, negative, not-exhaustive and unverified categories,
    and one image with more than 300 detections."""
    rng = np.random.default_rng(seed)
    anns_of = {}
    for a in gt['annotations']:
        anns_of.setdefault(a['image_id'], []).append(a)
    dets = []
    for img in gt['images']:
        size = img['width']
        anns = anns_of.get(img['id'], [])
        candidates = [a['category_id'] for a in anns] + img['neg_category_ids'] + \
            img['not_exhaustive_category_ids'] + [int(rng.integers(20, 1200))]
        for a in anns:
            for _ in range(int(rng.integers(0, 3))):
                x, y, w, h = (np.array(a['bbox']) + rng.normal(0, 3, 4)).tolist()
                dets.append((img, a['category_id'], [x, y, max(w, 2), max(h, 2)]))
        num_fp = 330 if img['id'] == gt['images'][0]['id'] else int(rng.integers(1, 6))
        for _ in range(num_fp):
            w, h = (float(v) for v in rng.uniform(4, size / 2, 2))
            x, y = float(rng.uniform(0, size - w)), float(rng.uniform(0, size - h))
            dets.append((img, int(rng.choice(candidates)), [x, y, w, h]))
    bbox, segm = [], []
    for img, cat, (x, y, w, h) in dets:
        x, y = max(x, 0.0), max(y, 0.0)
        w, h = min(w, img['width'] - x), min(h, img['height'] - y)
        score = float(rng.uniform(0.01, 1.0))
        bbox.append(dict(image_id=img['id'], category_id=cat, bbox=[x, y, w, h], score=score))
        mask = np.zeros((img['height'], img['width']), dtype=np.uint8, order='F')
        mask[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = 1
        mask[int(y):int(y + h / 3), int(x):int(x + w / 3)] = 0  # not a plain box
        rle = mask_utils.encode(mask)
        rle['counts'] = rle['counts'].decode()
        segm.append(dict(image_id=img['id'], category_id=cat, bbox=[x, y, w, h], score=score,
                         segmentation=rle))
    return bbox, segm


def write_fixture(root):
    paths = generate_tiny_lvis(str(root), num_train=4, num_val=12, img_size=128,
                               num_classes=6, max_objects=4, seed=3)
    with open(paths['val']) as f:
        gt = json.load(f)
    bbox, segm = make_detections(gt, seed=4)
    for name, rs in (('bbox', bbox), ('segm', segm)):
        with open(osp.join(str(root), f'{name}.json'), 'w') as f:
            json.dump(rs, f)
    return gt, bbox, segm


# lvis-api 0.5.3 on the fixture (full precision)
EXPECTED = {
    'bbox': {
        'AP': 0.17749638828001515,
        'AP50': 0.2514165535679123,
        'AP75': 0.21265194755908193,
        'APs': 0.08214285714285713,
        'APm': 0.2266754731459265,
        'APl': -1.0,
        'APr': 0.20468046804680468,
        'APc': 0.2550447776661724,
        'APf': 0.07276391912706838,
        'AR@300': 0.4684722222222222,
        'ARs@300': 0.7,
        'ARm@300': 0.39799999999999996,
        'ARl@300': -1.0,
    },
    'segm': {
        'AP': 0.14262043472961186,
        'AP50': 0.25059314514011305,
        'AP75': 0.19572671552869572,
        'APs': 0.05776166902404525,
        'APm': 0.18312491023827657,
        'APl': -1.0,
        'APr': 0.16192619261926192,
        'APc': 0.2087949171728767,
        'APf': 0.05714019439669695,
        'AR@300': 0.3531944444444444,
        'ARs@300': 0.5,
        'ARm@300': 0.3046666666666667,
        'ARl@300': -1.0,
    },
}
EXPECTED_PER_CLASS = {
    'bbox': {
        1: 0.12443556945278854,
        2: 0.021092268801348218,
        3: 0.028901436520463637,
        4: 0.48118811881188117,
        5: 0.07272727272727271,
        6: 0.3366336633663366,
    },
    'segm': {
        1: 0.10007141470449564,
        2: 0.01420897408889825,
        3: 0.019570032365555396,
        4: 0.39801980198019804,
        5: 0.05454545454545454,
        6: 0.26930693069306927,
    },
}


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
