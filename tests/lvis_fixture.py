"""LVIS v1 fixture shared by the metric and analysis tests: generated data, detections,
and the values lvis-api 0.5.3 computed on them (numpy 1.23, once; kept here)."""
import json
import os.path as osp

import numpy as np
import pycocotools.mask as mask_utils

from balancedet.datasets.coco_lvis_generator import generate_tiny_lvis


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
