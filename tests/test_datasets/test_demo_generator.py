"""The embedded demo dataset: long tail, hierarchy, multi-labels, determinism."""
import hashlib
import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from pycocotools.coco import COCO

from balancedet.datasets.demo_generator import DEMO_CLASSES, generate_demo_dataset, kind_frequencies


@pytest.fixture(scope='module')
def default_train(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_default')
    paths = generate_demo_dataset(str(root), num_val=0)
    return root, COCO(paths['train'])


def test_long_tail_ratio_at_least_100(default_train):
    _, coco = default_train
    counts = Counter(a['category_id'] for a in coco.dataset['annotations'])
    assert set(counts) == set(coco.getCatIds()), 'every category must occur'
    assert max(counts.values()) / min(counts.values()) >= 100


def test_frequency_law_is_geometric():
    f = kind_frequencies(400.0, 7)
    assert f.sum() == pytest.approx(1.0)
    assert f[0] / f[-1] == pytest.approx(400.0)
    ratios = f[:-1] / f[1:]
    assert np.allclose(ratios, ratios[0])


def test_hierarchy_via_supercategory(default_train):
    _, coco = default_train
    cats = coco.loadCats(coco.getCatIds())
    names = {c['name'] for c in cats}
    parents = {c['name']: c['supercategory'] for c in cats if c['supercategory'] in names}
    assert set(parents.values()) == {'round', 'angular'}
    assert parents['circle'] == 'round' and parents['star'] == 'angular'
    # parents are categories too, linked to a root that is not a category
    assert all(c['supercategory'] not in names for c in cats if c['name'] in ('round', 'angular'))
    assert [c['name'] for c in sorted(cats, key=lambda c: c['id'])] == list(DEMO_CLASSES)


def test_explicit_and_implicit_multilabels(default_train):
    _, coco = default_train
    names = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
    by_box = defaultdict(set)
    for a in coco.dataset['annotations']:
        by_box[(a['image_id'], tuple(a['bbox']))].add(names[a['category_id']])
    multi = [labels for labels in by_box.values() if len(labels) > 1]
    assert len(multi) > 50, 'explicit multi-labels: same box, several category ids'
    assert all(len(labels & {'round', 'angular'}) == 1 for labels in multi)
    singles = Counter(next(iter(labels)) for labels in by_box.values() if len(labels) == 1)
    # implicit: the confusable pair gets both labels at random, and some
    # objects carry their parent category only
    assert singles['square'] > 30 and singles['tile'] > 30
    assert 0.5 < singles['square'] / singles['tile'] < 2.0
    assert singles['round'] + singles['angular'] > 20


def test_images_without_boxes_exist(default_train):
    _, coco = default_train
    empty = [i for i in coco.getImgIds() if not coco.getAnnIds(imgIds=[i])]
    assert 0 < len(empty) < 0.1 * len(coco.getImgIds())


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob('*')):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_deterministic_and_seed_dependent(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    kw = dict(num_train=20, num_val=5, img_size=64, max_object_size=24)
    generate_demo_dataset(str(a), seed=3, **kw)
    generate_demo_dataset(str(b), seed=3, **kw)
    generate_demo_dataset(str(c), seed=4, **kw)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_parameters_change_the_data(tmp_path):
    paths = generate_demo_dataset(str(tmp_path), num_train=30, num_val=0, img_size=96,
                                  max_object_size=40, explicit_multilabel=0.0, parent_only=0.0,
                                  label_noise=0.0)
    coco = json.load(open(paths['train']))
    assert len(coco['images']) == 30
    assert all(i['width'] == 96 for i in coco['images'])
    boxes = Counter((a['image_id'], tuple(a['bbox'])) for a in coco['annotations'])
    assert max(boxes.values()) == 1, 'no explicit multi-labels when disabled'
    names = {c['id']: c['name'] for c in coco['categories']}
    assert not {names[a['category_id']] for a in coco['annotations']} & {'round', 'angular'}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w > 0 and h > 0


@pytest.mark.parametrize('kwargs, field', [
    (dict(tail_ratio=0.5), 'tail_ratio'),
    (dict(label_noise=1.5), 'label_noise'),
    (dict(num_train=0), 'num_train'),
    (dict(min_object_size=50, max_object_size=40), 'min_object_size'),
])
def test_bad_parameters(tmp_path, kwargs, field):
    with pytest.raises(ValueError, match=field):
        generate_demo_dataset(str(tmp_path), **kwargs)
