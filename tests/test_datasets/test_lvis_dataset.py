"""BalancedLVISDataset reads LVIS v1 files without the lvis package; COCO/LVIS mix-ups."""
import json
import os.path as osp

import pytest

import balancedet  # noqa: F401
from balancedet.datasets.balanced_coco import BalancedCocoDataset, DatasetError
from balancedet.datasets.coco_lvis_generator import generate_tiny_coco, generate_tiny_lvis
from balancedet.datasets.lvis import BalancedLVISDataset


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    lvis = str(tmp_path_factory.mktemp('lvis_ds'))
    generate_tiny_lvis(lvis, num_train=6, num_val=3, img_size=64, seed=1)
    coco = str(tmp_path_factory.mktemp('coco_ds'))
    generate_tiny_coco(coco, num_train=3, num_val=1, img_size=64, seed=1)
    return lvis + '/', coco + '/'


def lvis_ds(root, ann='annotations/lvis_v1_train.json', **kw):
    return BalancedLVISDataset(data_root=root, ann_file=ann, data_prefix=dict(img=''),
                               pipeline=[], **kw)


def test_reads_lvis_v1_like_a_plain_loop(roots):
    root, _ = roots
    ds = lvis_ds(root)
    with open(root + 'annotations/lvis_v1_train.json') as f:
        raw = json.load(f)
    assert len(ds.metainfo['classes']) == 1203 and len(ds) == len(raw['images'])
    assert ds.metainfo['classes'][0] == 'aerosol_can'
    assert ds.metainfo['frequency'] == [c['frequency'] for c in raw['categories']]
    for i, img in enumerate(raw['images']):
        info = ds.get_data_info(i)
        # the file is coco_url without the host, under data_root
        assert info['img_path'] == root + img['coco_url'].split('cocodataset.org/')[1]
        assert osp.isfile(info['img_path'])
        anns = [a for a in raw['annotations'] if a['image_id'] == img['id']]
        got = [(inst['bbox_label'], inst['bbox']) for inst in info['instances']]
        want = [(a['category_id'] - 1, [a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                        a['bbox'][1] + a['bbox'][3]]) for a in anns]
        assert got == want
        assert all(inst['ignore_flag'] == 0 and inst['mask'] for inst in info['instances'])
        assert ds.get_cat_ids(i) == [a['category_id'] - 1 for a in anns]


def test_format_mix_ups_are_refused(roots):
    lvis, coco = roots
    with pytest.raises(DatasetError, match='is in LVIS format.*BalancedLVISDataset'):
        BalancedCocoDataset(data_root=lvis, ann_file='annotations/lvis_v1_train.json',
                            data_prefix=dict(img=''), pipeline=[])
    with pytest.raises(DatasetError, match='is not in LVIS format.*BalancedCocoDataset'):
        lvis_ds(coco, ann='annotations/instances_train2017.json')


def test_frequency_optional_for_the_dataset(roots, tmp_path):
    root, _ = roots
    with open(root + 'annotations/lvis_v1_train.json') as f:
        raw = json.load(f)
    for c in raw['categories']:
        del c['frequency']
    path = tmp_path / 'nofreq.json'
    path.write_text(json.dumps(raw))
    ds = lvis_ds(root, ann=str(path))
    assert ds.metainfo['frequency'] == [None] * 1203


def test_mmdet_lvis_dataset_needs_the_lvis_package(roots):
    from mmdet.datasets import LVISV1Dataset
    root, _ = roots
    with pytest.raises((ImportError, AttributeError), match='lvis|float'):
        LVISV1Dataset(data_root=root, ann_file='annotations/lvis_v1_train.json',
                      data_prefix=dict(img=''), pipeline=[])


def test_generators_write_the_real_layouts(roots):
    lvis, coco = roots
    with open(lvis + 'annotations/lvis_v1_val.json') as f:
        val = json.load(f)
    cats = val['categories']
    assert len(cats) == 1203 and [c['id'] for c in cats] == list(range(1, 1204))
    assert {c['frequency'] for c in cats} == {'r', 'c', 'f'}
    present = {}
    for a in val['annotations']:
        present.setdefault(a['image_id'], set()).add(a['category_id'])
        assert 'iscrowd' not in a
    for img in val['images']:
        assert 'file_name' not in img
        assert img['coco_url'].startswith('http://images.cocodataset.org/val2017/')
        assert not set(img['neg_category_ids']) & present.get(img['id'], set())
        assert set(img['not_exhaustive_category_ids']) <= present.get(img['id'], set())
    with open(coco + 'annotations/instances_train2017.json') as f:
        train = json.load(f)
    ids = [c['id'] for c in train['categories']]
    assert len(ids) == 80 and ids[-1] == 90 and 12 not in ids
    assert all(osp.isfile(coco + 'train2017/' + img['file_name']) for img in train['images'])
