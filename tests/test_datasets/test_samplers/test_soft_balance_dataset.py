"""Per-class index on the real BalancedCocoDataset: post-filter indices, multi-labels."""
import json
import os.path as osp
import warnings

import numpy as np
import pytest
from mmdet.datasets.samplers import ClassAwareSampler
from mmdet.registry import DATASETS

import balancedet  # noqa: F401
from balancedet.datasets.demo_generator import generate_demo_dataset
from balancedet.datasets.samplers.class_index import ClassImageIndex
from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('soft_balance_demo'))
    generate_demo_dataset(root, num_train=120, num_val=0, seed=5, empty_fraction=0.2)
    return root


def build(root, filter_empty):
    return DATASETS.build(dict(
        type='BalancedCocoDataset', data_root=root, ann_file='annotations/train.json',
        data_prefix=dict(img='train/'), pipeline=[],
        filter_cfg=dict(filter_empty_gt=filter_empty, min_size=0)))


def reference_index(root, dataset):
    """Label sets straight from the COCO json, keyed by the dataset's img_id order."""
    with open(osp.join(root, 'annotations', 'train.json')) as f:
        coco = json.load(f)
    cat2label = {c['id']: i for i, c in enumerate(sorted(coco['categories'],
                                                         key=lambda c: c['id']))}
    labels = {}
    for ann in coco['annotations']:
        if not ann.get('iscrowd', 0):
            labels.setdefault(ann['image_id'], set()).add(cat2label[ann['category_id']])
    per_class = {c: [] for c in cat2label.values()}
    for idx in range(len(dataset)):
        for c in labels.get(dataset.get_data_info(idx)['img_id'], ()):
            per_class[c].append(idx)
    return per_class, len(coco['images']), labels


@pytest.mark.parametrize('filter_empty', [True, False])
def test_index_uses_post_filter_indices(demo_root, filter_empty):
    ds = build(demo_root, filter_empty)
    per_class, num_raw, labels = reference_index(demo_root, ds)
    num_empty = num_raw - len(labels)
    assert num_empty > 0  # the fixture has empty images to filter
    assert len(ds) == (num_raw - num_empty if filter_empty else num_raw)
    index = ClassImageIndex.from_dataset(ds)
    for c, imgs in per_class.items():
        assert index.images_of(c).tolist() == imgs
    # mmdet's own per-class lists (from get_cat_ids) agree: duplicated multi-label
    # instances are kept by BalancedCocoDataset, so every label is an instance.
    for c, imgs in ClassAwareSampler(ds, seed=0).get_cat2imgs().items():
        assert index.images_of(c).tolist() == imgs
    # every drawn index really holds an image with labels
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sampler = SoftBalanceSampler(ds, lam=1.0, num_samples_per_epoch=3000, seed=0)
    drawn = np.unique(list(sampler))
    img_ids = [ds.get_data_info(i)['img_id'] for i in drawn]
    assert all(labels.get(i) for i in img_ids)


def test_multilabel_boxes_count_for_every_label(demo_root):
    ds = build(demo_root, True)
    index = ClassImageIndex.from_dataset(ds)
    found = 0
    for idx in range(len(ds)):
        for inst in ds.get_data_info(idx)['instances']:
            for lab in inst['multi_labels']:
                assert idx in index.images_of(lab)
            found += len(inst['multi_labels']) > 1
    assert found > 0  # the demo data has explicit multi-label boxes


class _VideoLikeDataset:
    """The shape of mmdet's video datasets: data info without ``instances``."""

    metainfo = dict(classes=('a', 'b', 'c'))

    def __init__(self):
        self.cats = [[0, 0], [2], [], [1, 2], [0]]

    def __len__(self):
        return len(self.cats)

    def get_data_info(self, idx):
        return dict(video_id=idx, images=[dict(frame_id=0)], video_length=1)

    def get_cat_ids(self, idx):
        return self.cats[idx]


def test_index_falls_back_to_get_cat_ids_like_class_aware_sampler():
    ds = _VideoLikeDataset()
    index = ClassImageIndex.from_dataset(ds)
    ref = ClassAwareSampler(ds, seed=0)  # mmdet's sampler reads get_cat_ids()
    for c in range(3):
        np.testing.assert_array_equal(index.images_of(c), sorted(set(ref.cat_dict[c])))
    sampler = SoftBalanceSampler(ds, lam=0.5, seed=0)
    assert set(iter(sampler)) <= {0, 1, 3, 4}
