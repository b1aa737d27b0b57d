"""Samplers on Open Images: per-class image counts equal a direct count from the files."""
import csv

import numpy as np
import pytest
from conftest import REPO
from mmengine.registry import init_default_scope

import balancedet  # noqa: F401
from balancedet.datasets import OpenImagesChallengeMultiLabelDataset, OpenImagesMultiLabelDataset
from balancedet.datasets.hierarchy import ClassHierarchy, read_label_file
from balancedet.datasets.openimages_generator import generate_openimages_dataset
from balancedet.datasets.samplers.class_index import ClassImageIndex
from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    r = str(tmp_path_factory.mktemp('oi_smp'))
    generate_openimages_dataset(r, num_train=30, num_val=2, seed=7)
    return r + '/'


def direct_counts(root, count_descendants=False):
    """Images per class straight from the V6 CSV (csv module, hierarchy walked by hand)."""
    classes, _, m2l = read_label_file(root + 'annotations/class-descriptions-boxable.csv')
    hier = ClassHierarchy.from_openimages_json(
        root + 'annotations/bbox_labels_600_hierarchy.json', m2l, classes)
    images = {}
    with open(root + 'annotations/oidv6-train-annotations-bbox.csv') as f:
        for row in csv.DictReader(f):
            if row['XMin'] == row['XMax'] or row['YMin'] == row['YMax']:
                continue
            labels = {m2l[row['LabelName']]}
            if count_descendants:
                todo = list(labels)
                while todo:
                    for p in hier.parents_of(todo.pop()):
                        if p not in labels:
                            labels.add(p)
                            todo.append(p)
            for lab in labels:
                images.setdefault(lab, set()).add(row['ImageID'])
    return np.array([len(images.get(c, ())) for c in range(len(classes))])


@pytest.mark.parametrize('count_descendants', [False, True])
def test_class_counts_equal_csv_count(root, count_descendants):
    init_default_scope('mmdet')
    ds = OpenImagesMultiLabelDataset(
        data_root=root, ann_file='annotations/oidv6-train-annotations-bbox.csv',
        data_prefix=dict(img='OpenImages/train/'),
        label_file='annotations/class-descriptions-boxable.csv',
        hierarchy_file='annotations/bbox_labels_600_hierarchy.json',
        meta_file='annotations/train-image-metas.pkl', pipeline=[])
    ref = direct_counts(root, count_descendants)
    index = ClassImageIndex.from_dataset(ds, count_descendants=count_descendants)
    np.testing.assert_array_equal(index.counts, ref)
    sampler = SoftBalanceSampler(ds, lam=0.5, seed=0, count_descendants=count_descendants)
    np.testing.assert_array_equal(sampler.index.counts, ref)
    # the per-image loop path (no get_class_image_pairs) gives the same index
    sub = OpenImagesMultiLabelDataset(
        data_root=root, ann_file='annotations/oidv6-train-annotations-bbox.csv',
        data_prefix=dict(img='OpenImages/train/'),
        label_file='annotations/class-descriptions-boxable.csv',
        hierarchy_file='annotations/bbox_labels_600_hierarchy.json',
        meta_file='annotations/train-image-metas.pkl', pipeline=[], indices=list(range(30)))
    slow = ClassImageIndex.from_dataset(sub, count_descendants=count_descendants)
    np.testing.assert_array_equal(slow.images, index.images)
    if count_descendants:
        animal = ds.metainfo['classes'].index('Animal')
        assert index.counts[animal] > direct_counts(root)[animal]


def test_mmdet_class_aware_sampler_sees_multi_labels(root):
    from mmdet.datasets.samplers import ClassAwareSampler
    init_default_scope('mmdet')
    ds = OpenImagesChallengeMultiLabelDataset(
        data_root=root, ann_file='challenge2019/challenge-2019-train-detection-bbox.txt',
        data_prefix=dict(img='OpenImages/'), label_file='challenge2019/cls-label-description.csv',
        hierarchy_file='challenge2019/class_label_tree.np',
        meta_file='challenge2019/challenge-2019-train-metas.pkl', pipeline=[])
    ref = ClassImageIndex.from_dataset(ds)
    cas = ClassAwareSampler(ds, seed=0)
    for c in range(len(ds.metainfo['classes'])):
        assert sorted(cas.cat_dict.get(c, [])) == ref.images_of(c).tolist()


def test_sampling_stats_tool_on_openimages_config(root, tmp_path):
    import importlib.util
    import json
    import os.path as osp
    repo = str(REPO)
    spec = importlib.util.spec_from_file_location(
        'ss_cli', osp.join(repo, 'tools/analysis_tools/sampling_stats.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / 'counts.json'
    cli.main([osp.join(repo, 'configs/openimages/faster-rcnn_r50_fpn_softmax_1x_oi-v6.py'),
              '--count-descendants', '--counts-out', str(out), '--top', '3',
              '--cfg-options', f'train_dataloader.dataset.data_root={root}'])
    counts = json.loads(out.read_text())
    ref = direct_counts(root, count_descendants=True)
    assert list(counts.values()) == ref.tolist() and len(counts) == 601
