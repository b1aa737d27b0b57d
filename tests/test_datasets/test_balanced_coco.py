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


# --- bad data fails loudly and loses nothing (issue 14, data items) -------------------------

def _first_ann_of_image(coco, pos=0):
    img_id = coco['images'][pos]['id']
    return next(a for a in coco['annotations'] if a['image_id'] == img_id)


def test_duplicate_image_ids_are_an_error(data_copy):
    def dup(c):
        c['images'][4]['id'] = c['images'][2]['id']
    coco = edit(data_copy, dup)
    with pytest.raises(DatasetError, match=rf'train.json.*image id {coco["images"][2]["id"]} '
                                           r'appears twice \("images"\[2\] and \[4\]\)'):
        build(data_copy)


def test_duplicate_annotation_ids_are_an_error(data_copy):
    def dup(c):
        c['annotations'][7]['id'] = c['annotations'][1]['id']
    edit(data_copy, dup)
    with pytest.raises(DatasetError, match=r'annotation id .* appears twice'):
        build(data_copy)


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_box_is_an_error_naming_the_record(data_copy, value):
    def bad(c):
        c['annotations'][6]['bbox'][2] = value
    ann_id = edit(data_copy, bad)['annotations'][6]['id']
    with pytest.raises(DatasetError, match=rf'train.json.*non-finite.*record {ann_id}\b'):
        build(data_copy)


@pytest.mark.parametrize('bbox', [None, 'a,b,c,d', [1, 2, 3], [1, 2, 'x', 4], [1, 2, True, 4]])
def test_malformed_bbox_names_the_record(data_copy, bbox):
    def bad(c):
        c['annotations'][2]['bbox'] = bbox
    ann_id = edit(data_copy, bad)['annotations'][2]['id']
    with pytest.raises(DatasetError, match=rf'train.json.*annotation {ann_id} has bbox'):
        build(data_copy)


def test_non_dict_annotation_names_its_position(data_copy):
    edit(data_copy, lambda c: c['annotations'].insert(3, [1, 2, 3]))
    with pytest.raises(DatasetError, match=r'train.json.*"annotations"\[3\] is a list'):
        build(data_copy)


def test_missing_area_is_computed(data_copy):
    def drop_area(c):
        for a in c['annotations']:
            a.pop('area', None)
    coco = edit(data_copy, drop_area)
    ds = build(data_copy)
    n = sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds)))
    assert n == len(coco['annotations'])


def test_degenerate_boxes_dropped_with_one_counted_warning(data_copy):
    """Zero-size, under-1-px and fully outside boxes go, with their count and ids."""
    dropped = {}

    def bad(c):
        size = {im['id']: (im['width'], im['height']) for im in c['images']}
        anns = c['annotations']
        anns[0]['bbox'][2] = 0.0                                 # zero width
        anns[1]['bbox'][3] = 0.5                                 # under one pixel
        w, h = size[anns[2]['image_id']]
        anns[2]['bbox'] = [w + 3.0, 5.0, 10.0, 10.0]             # right of the image
        anns[3]['bbox'] = [-30.0, -40.0, 20.0, 30.0]             # above-left of it
        dropped.update({a['id']: a['image_id'] for a in anns[:4]})
    coco = edit(data_copy, bad)
    with pytest.warns(UserWarning, match=r'train.json.*dropped 4 box\(es\).*first record ids: '
                      + ', '.join(str(i) for i in dropped)) as record:
        ds = build(data_copy)
    assert sum('dropped' in str(w.message) for w in record) == 1
    kept = sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds)))
    assert kept == len(coco['annotations']) - 4
    # the reference: pycocotools sees every annotation; only the four are gone
    ref = COCO(str(data_copy / 'annotations/train.json'))
    assert len(ref.getAnnIds()) == kept + 4


def test_zero_images_after_filtering_names_file_and_filter(data_copy):
    edit(data_copy, lambda c: c.__setitem__('annotations', []))
    with pytest.raises(DatasetError, match=r'no image of .*train.json.* left after filtering'
                                           r'.*filter_empty_gt'):
        DATASETS.build(dict(type='BalancedCocoDataset', data_root=str(data_copy),
                            ann_file='annotations/train.json', data_prefix=dict(img='train/'),
                            pipeline=[], filter_cfg=dict(filter_empty_gt=True)))


def test_bad_image_size_names_the_image(data_copy):
    def bad(c):
        c['images'][1]['width'] = 0
    img_id = edit(data_copy, bad)['images'][1]['id']
    with pytest.raises(DatasetError, match=rf'image {img_id} has width 0'):
        build(data_copy)
