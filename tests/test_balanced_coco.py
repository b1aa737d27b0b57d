"""BalancedCocoDataset: clear errors on bad input, multi-labels, hierarchy."""
import json
import shutil
from collections import defaultdict

import pytest
from mmdet.registry import DATASETS
from pycocotools.coco import COCO

import balancedet  # noqa: F401
from balancedet.datasets import DatasetError


def build(root, ann='annotations/train.json', prefix='train/', **kw):
    return DATASETS.build(dict(type='BalancedCocoDataset', data_root=str(root), ann_file=ann,
                               data_prefix=dict(img=prefix), pipeline=[],
                               filter_cfg=dict(filter_empty_gt=False), **kw))


@pytest.fixture
def data_copy(demo_data_root, tmp_path):
    root = tmp_path / 'd'
    shutil.copytree(demo_data_root, root)
    return root


def edit(root, fn, name='train.json'):
    path = root / 'annotations' / name
    coco = json.loads(path.read_text())
    fn(coco)
    path.write_text(json.dumps(coco))
    return coco


def test_classes_and_multilabels_match_pycocotools(demo_data_root):
    ds = build(demo_data_root)
    coco = COCO(str(demo_data_root / 'annotations/train.json'))
    cats = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c['id'])
    assert ds.metainfo['classes'] == tuple(c['name'] for c in cats)
    label_of = {c['id']: i for i, c in enumerate(cats)}
    assert len(ds) == len(coco.getImgIds()), 'images without boxes are kept'
    n_multi = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[info['img_id']]))
        expected = defaultdict(set)
        for a in anns:
            expected[tuple(a['bbox'])].add(label_of[a['category_id']])
        assert len(info['instances']) == len(anns), 'every label of a box stays an instance'
        for inst in info['instances']:
            x1, y1, x2, y2 = inst['bbox']
            want = sorted(expected[(x1, y1, x2 - x1, y2 - y1)])
            assert inst['multi_labels'] == want
            n_multi += len(want) > 1
    assert n_multi > 0


def test_parents_from_supercategory(demo_data_root):
    ds = build(demo_data_root)
    classes = ds.metainfo['classes']
    parents = {classes[c]: classes[p] for c, p in ds.metainfo['parents'].items()}
    assert parents['circle'] == 'round' and parents['ring'] == 'round'
    assert parents['tile'] == 'angular' and 'round' not in parents


def test_subset_of_classes(demo_data_root):
    ds = build(demo_data_root, metainfo=dict(classes=('circle', 'square')))
    labels = {inst['bbox_label'] for i in range(len(ds))
              for inst in ds.get_data_info(i)['instances']}
    assert labels == {0, 1}


def test_unknown_class_in_metainfo(demo_data_root):
    with pytest.raises(DatasetError, match="'hexagon'.*metainfo.classes"):
        build(demo_data_root, metainfo=dict(classes=('circle', 'hexagon')))


def test_missing_annotation_file(demo_data_root):
    with pytest.raises(DatasetError, match='nope.json.*does not exist'):
        build(demo_data_root, ann='annotations/nope.json')


def test_malformed_json(data_copy):
    (data_copy / 'annotations/train.json').write_text('{"images": [')
    with pytest.raises(DatasetError, match='train.json.*not valid JSON'):
        build(data_copy)


def test_missing_section(data_copy):
    edit(data_copy, lambda c: c.pop('categories'))
    with pytest.raises(DatasetError, match='"categories"'):
        build(data_copy)


def test_unknown_category_id_names_record(data_copy):
    def bad(c):
        c['annotations'][3]['category_id'] = 99
    coco = edit(data_copy, bad)
    ann = coco['annotations'][3]
    with pytest.raises(DatasetError, match=rf'annotation {ann["id"]} .*category_id 99'):
        build(data_copy)


def test_negative_box_names_record(data_copy):
    def bad(c):
        c['annotations'][5]['bbox'][2] = -4.0
    ann_id = edit(data_copy, bad)['annotations'][5]['id']
    with pytest.raises(DatasetError, match=rf'annotation {ann_id} .*negative'):
        build(data_copy)


def test_missing_image_file(data_copy):
    (data_copy / 'train' / '000002.png').unlink()
    with pytest.raises(DatasetError, match='000002.png'):
        build(data_copy)
    build(data_copy, check_image_files=False)  # opt-out for remote storage
