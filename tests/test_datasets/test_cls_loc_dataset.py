"""CLS-LOC conversion of the demo dataset: one class per image, rule checked
against the source annotations; erased pixels; loading and bad input."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

import balancedet  # noqa: F401
from balancedet.datasets import BalancedCocoDataset
from balancedet.datasets.cls_loc import choose_image_class, convert_to_cls_loc


@pytest.fixture(scope='module')
def cls_loc_root(demo_data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('cls_loc')
    stats = convert_to_cls_loc(str(demo_data_root), str(out))
    return out, stats


def _load(root, split):
    with open(osp.join(root, 'annotations', f'{split}.json')) as f:
        return json.load(f)


def test_one_class_per_image_by_largest_area(demo_data_root, cls_loc_root):
    out, stats = cls_loc_root
    for split in ('train', 'val'):
        src, dst = _load(demo_data_root, split), _load(out, split)
        parents = {c['supercategory'] for c in src['categories']}
        leaf_ids = {c['id'] for c in src['categories'] if c['name'] not in parents}
        assert {c['id'] for c in dst['categories']} == leaf_ids
        src_anns, dst_anns = {}, {}
        for a in src['annotations']:
            src_anns.setdefault(a['image_id'], []).append(a)
        for a in dst['annotations']:
            dst_anns.setdefault(a['image_id'], []).append(a)
        kept_ids = {i['id'] for i in dst['images']}
        n_expected = 0
        for img in src['images']:
            leaf = [a for a in src_anns.get(img['id'], []) if a['category_id'] in leaf_ids]
            if not leaf:
                assert img['id'] not in kept_ids
                continue
            n_expected += 1
            # independent rule: total area per class, argmax (ties: count, then id)
            area = {}
            for a in leaf:
                c = a['category_id']
                area[c] = area.get(c, 0) + a['bbox'][2] * a['bbox'][3]
            best = max(area.values())
            cands = [c for c in area if area[c] == best]
            got = dst_anns[img['id']]
            assert len({a['category_id'] for a in got}) == 1
            assert got[0]['category_id'] in cands
            cls = got[0]['category_id']
            exp_boxes = {tuple(a['bbox']) for a in leaf if a['category_id'] == cls}
            assert sorted(tuple(a['bbox']) for a in got) == sorted(exp_boxes)
        assert stats[split]['num_images'] == n_expected == len(dst['images'])
        assert stats[split]['dropped_images'] == len(src['images']) - n_expected
        assert len({a['id'] for a in dst['annotations']}) == len(dst['annotations'])


def test_choose_image_class_ties():
    a = dict(category_id=7, bbox=[0, 0, 4, 4])
    b = dict(category_id=3, bbox=[0, 0, 2, 8])
    c = dict(category_id=5, bbox=[0, 0, 2, 4])
    assert choose_image_class([a, b]) == 3            # equal area and count: smaller id
    assert choose_image_class([a, c, c]) == 5         # equal area 16: more boxes wins
    assert choose_image_class([a, c]) == 7            # larger area
    assert choose_image_class([]) is None


def test_other_objects_erased_kept_ones_intact(demo_data_root, cls_loc_root):
    out, _ = cls_loc_root
    src, dst = _load(demo_data_root, 'train'), _load(out, 'train')
    kept = {}
    for a in dst['annotations']:
        kept.setdefault(a['image_id'], []).append(a['bbox'])
    checked = 0
    for img in dst['images']:
        others = [a['bbox'] for a in src['annotations']
                  if a['image_id'] == img['id'] and a['bbox'] not in kept[img['id']]]
        if not others:
            continue
        a = cv2.imread(osp.join(demo_data_root, 'train', img['file_name'])).astype(int)
        b = cv2.imread(osp.join(out, 'train', img['file_name'])).astype(int)
        keep_mask = np.zeros(a.shape[:2], bool)
        for x, y, w, h in kept[img['id']]:
            keep_mask[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = True
        other_mask = np.zeros(a.shape[:2], bool)
        for x, y, w, h in others:  # default margin: 2 px
            other_mask[max(int(y) - 2, 0):int(np.ceil(y + h)) + 2,
                       max(int(x) - 2, 0):int(np.ceil(x + w)) + 2] = True
        assert (a[keep_mask] == b[keep_mask]).all()
        assert (a[~(keep_mask | other_mask)] == b[~(keep_mask | other_mask)]).all()
        erased = other_mask & ~keep_mask
        if erased.sum() > 50:
            assert (a[erased] != b[erased]).any()
            checked += 1
    assert checked > 0


def test_dataset_loads_with_balanced_coco(cls_loc_root):
    out, stats = cls_loc_root
    ds = BalancedCocoDataset(data_root=str(out), ann_file='annotations/val.json',
                             data_prefix=dict(img='val/'), pipeline=[], test_mode=True)
    assert len(ds) == stats['val']['num_images']
    assert len(ds.metainfo['classes']) == 8 and ds.metainfo['parents'] == {}
    for i in range(len(ds)):
        labels = {inst['bbox_label'] for inst in ds.get_data_info(i)['instances']}
        assert len(labels) == 1


def test_bad_input(demo_data_root, tmp_path):
    with pytest.raises(ValueError, match='out_root must differ'):
        convert_to_cls_loc(str(demo_data_root), str(demo_data_root))
    with pytest.raises(ValueError, match='margin'):
        convert_to_cls_loc(str(demo_data_root), str(tmp_path / 'out'), margin=-1)
    with pytest.raises(ValueError, match='does not exist'):
        convert_to_cls_loc(str(tmp_path / 'nothing'), str(tmp_path / 'out'))
