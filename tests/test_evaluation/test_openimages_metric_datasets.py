"""FastOpenImagesMetric on the data samples mmdet 3.3's own Open Images datasets produce.

Tiny annotation files are written for mmdet's ``OpenImagesDataset`` (V6 CSV, the real 601-class
hierarchy ``bbox_labels_600_hierarchy.json``) and ``OpenImagesChallengeDataset`` (txt boxes,
``class_label_tree.np``); the samples are what ``PackDetInputs(meta_keys=(..., 'instances',
'image_level_labels'))`` hands the evaluator. This documents the field each dataset writes:
V6 ``is_group_of``, Challenge ``is_group_ofs`` (on which mmdet's own metric fails).
"""
import copy
import csv
import pickle

import numpy as np
import pytest
import torch
from conftest import REPO
from mmdet.datasets import OpenImagesChallengeDataset, OpenImagesDataset
from test_openimages_metric import assert_same, run_mmdet, run_ours

OI_META = REPO / 'balancedet' / 'data' / 'openimages'  # the shipped copies (CC BY 4.0)


def _boxes(rng, n):
    xy = rng.uniform(0, 0.7, (n, 2))
    wh = rng.uniform(0.05, 0.3, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def _predictions(rng, infos, num_classes):
    """Jittered copies of each image's boxes (some relabelled) + random boxes, pixel coords."""
    out = []
    for info in infos:
        gt = np.array([i['bbox'] for i in info['instances']], np.float32).reshape(-1, 4)
        lab = np.array([i['bbox_label'] for i in info['instances']], np.int64)
        k = 3 * len(gt)
        src = rng.integers(0, len(gt), k)
        wh = np.concatenate([gt[src, 2:] - gt[src, :2]] * 2, 1)
        b = gt[src] + rng.normal(0, 0.1, (k, 4)) * wh
        lb = lab[src].copy()
        flip = rng.random(k) < 0.3
        lb[flip] = rng.integers(0, num_classes, int(flip.sum()))
        r = _boxes(rng, 20) * np.array([info['width'], info['height']] * 2)
        boxes = np.concatenate([b, r]).astype(np.float32)
        labels = np.concatenate([lb, rng.integers(0, num_classes, 20)])
        scores = np.round(rng.random(labels.size), 2).astype(np.float32)  # with ties
        out.append(dict(bboxes=torch.from_numpy(boxes), scores=torch.from_numpy(scores),
                        labels=torch.from_numpy(labels)))
    return out


def _samples(ds, preds):
    """What the evaluator receives: PackDetInputs' meta keys + the model's pred_instances."""
    out = []
    for i, pred in enumerate(preds):
        info = ds.get_data_info(i)
        s = {k: info[k] for k in ('img_id', 'img_path', 'instances', 'image_level_labels')}
        s['pred_instances'] = pred
        out.append(s)
    return out


def test_mmdet_v6_dataset_samples(tmp_path):
    rng = np.random.default_rng(0)
    with open(OI_META / 'class-descriptions-boxable.csv') as f:
        mids = [row[0] for row in csv.reader(f)]
    # classes with a deep hierarchy chain are the interesting ones; pick from all
    used = rng.choice(len(mids), 60, replace=False)
    ann = [['ImageID', 'Source', 'LabelName', 'Confidence', 'XMin', 'XMax', 'YMin', 'YMax',
            'IsOccluded', 'IsTruncated', 'IsGroupOf', 'IsDepiction', 'IsInside']]
    lvl = [['ImageID', 'Source', 'LabelName', 'Confidence']]
    metas = []
    for k in range(40):
        img = f'{k:016x}'
        n = int(rng.integers(1, 8))
        for b, c in zip(_boxes(rng, n), rng.choice(used, n)):
            ann.append([img, 'xclick', mids[c], 1, b[0], b[2], b[1], b[3], 0, 0,
                        int(rng.random() < 0.3), 0, 0])
        for c in rng.choice(used, 4):
            lvl.append([img, 'verification', mids[c], int(rng.random() < 0.5)])
        metas.append(dict(filename=f'validation/{img}.jpg', ori_shape=(480, 640, 3)))
    for name, rows in (('ann.csv', ann), ('lvl.csv', lvl)):
        with open(tmp_path / name, 'w', newline='') as f:
            csv.writer(f).writerows(rows)
    with open(tmp_path / 'metas.pkl', 'wb') as f:
        pickle.dump(metas, f)
    ds = OpenImagesDataset(
        data_root=str(tmp_path), ann_file='ann.csv', data_prefix=dict(img='validation/'),
        label_file=str(OI_META / 'class-descriptions-boxable.csv'),
        hierarchy_file=str(OI_META / 'bbox_labels_600_hierarchy.json'),
        meta_file='metas.pkl', image_level_ann_file='lvl.csv', test_mode=True, pipeline=[],
        lazy_init=False)
    meta = ds.metainfo
    assert len(meta['classes']) == 601 and meta['RELATION_MATRIX'].shape == (601, 601)
    inst = ds.get_data_info(0)['instances'][0]
    assert 'is_group_of' in inst and 'is_group_ofs' not in inst
    samples = _samples(ds, _predictions(rng, [ds.get_data_info(i) for i in range(len(ds))],
                                        601))
    ours, m = run_ours(samples, meta)
    ref, per_thr = run_mmdet(samples, meta)
    assert 0.05 < ref['mAP'] < 0.99
    assert_same(ours, m, ref, per_thr, meta['classes'])


def test_mmdet_challenge_dataset_samples(tmp_path):
    """mmdet's Challenge dataset writes ``is_group_ofs``: mmdet's metric raises KeyError,
    ours reads it and equals mmdet's metric on the same samples with the key renamed."""
    rng = np.random.default_rng(1)
    C = 30
    parent = np.full(C, -1)
    parent[5:] = [rng.integers(0, c) for c in range(5, C)]
    tree = np.eye(C + 1, dtype=np.int64)  # row/col 0: the root, cut off by mmdet ([1:, 1:])
    for c in range(C):
        p = parent[c]
        while p >= 0:
            tree[c + 1, p + 1] = 1
            p = parent[p]
    with open(tmp_path / 'class_label_tree.np', 'wb') as f:
        np.save(f, tree)
    with open(tmp_path / 'labels.csv', 'w', newline='') as f:
        csv.writer(f).writerows([[f'/m/c{c}', f'class {c}', c + 1] for c in range(C)])
    lines, lvl, metas = [], [['ImageID', 'LabelName', 'Confidence']], []
    for k in range(40):
        img = f'img{k:04d}'
        n = int(rng.integers(1, 8))
        lines += [f'validation/{img}.jpg', '480 640', str(n)]
        for b, c in zip(_boxes(rng, n), rng.integers(0, C, n)):
            lines.append(f'{c + 1} {b[0]} {b[1]} {b[2]} {b[3]} {int(rng.random() < 0.4)}')
        for c in rng.integers(0, C, 3):
            lvl.append([img, f'/m/c{c}', int(rng.random() < 0.5)])
        metas.append(dict(filename=f'validation/{img}.jpg', ori_shape=(480, 640, 3)))
    (tmp_path / 'ann.txt').write_text('\n'.join(lines) + '\n')
    with open(tmp_path / 'lvl.csv', 'w', newline='') as f:
        csv.writer(f).writerows(lvl)
    with open(tmp_path / 'metas.pkl', 'wb') as f:
        pickle.dump(metas, f)
    ds = OpenImagesChallengeDataset(
        data_root=str(tmp_path), ann_file='ann.txt', data_prefix=dict(img=''),
        label_file='labels.csv', hierarchy_file='class_label_tree.np', meta_file='metas.pkl',
        image_level_ann_file='lvl.csv', test_mode=True, pipeline=[], lazy_init=False)
    meta = ds.metainfo
    assert meta['dataset_type'] == 'oid_challenge' and meta['RELATION_MATRIX'].shape == (C, C)
    inst = ds.get_data_info(0)['instances'][0]
    assert 'is_group_ofs' in inst and 'is_group_of' not in inst
    samples = _samples(ds, _predictions(rng, [ds.get_data_info(i) for i in range(len(ds))], C))
    assert any(i['is_group_ofs'] for s in samples for i in s['instances'])
    with pytest.raises(KeyError, match='is_group_of'):
        run_mmdet(samples, meta)
    renamed = copy.deepcopy(samples)
    for s in renamed:
        for i in s['instances']:
            i['is_group_of'] = i.pop('is_group_ofs')
    ours, m = run_ours(samples, meta)
    ref, per_thr = run_mmdet(renamed, meta)
    assert 0.05 < ref['mAP'] < 0.99
    assert_same(ours, m, ref, per_thr, meta['classes'])
