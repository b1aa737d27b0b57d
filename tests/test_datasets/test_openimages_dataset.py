"""Open Images: hierarchy DAG, same-object rule, multi-label datasets, bad input, r_ij."""
import csv
import json
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
from conftest import REPO
from mmengine.registry import init_default_scope

import balancedet  # noqa: F401
from balancedet.analysis.concurrent_rate import (
    estimate_concurrent_rate,
    estimate_concurrent_rate_openimages,
    read_openimages_boxes_fast,
)
from balancedet.datasets import (
    BalancedCocoDataset,
    OpenImagesChallengeMultiLabelDataset,
    OpenImagesMultiLabelDataset,
)
from balancedet.datasets.balanced_coco import DatasetError
from balancedet.datasets.hierarchy import ClassHierarchy, HierarchyError, read_label_file
from balancedet.datasets.openimages_generator import (
    HIERARCHY_FILE,
    LABEL_FILE,
    generate_openimages_dataset,
)
from balancedet.datasets.same_object import object_ids, object_label_sets
from balancedet.models.losses.concurrent_softmax_loss import load_concurrent_rate

ROOT = str(REPO)


@pytest.fixture(scope='module')
def real():
    classes, mids, m2l = read_label_file(LABEL_FILE)
    return classes, mids, m2l, ClassHierarchy.from_openimages_json(HIERARCHY_FILE, m2l, classes)


@pytest.fixture(scope='module')
def gen(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('oi_ds'))
    generate_openimages_dataset(root, num_train=24, num_val=6, seed=5)
    return root + '/'


def v6_kwargs(root, split='train', **kw):
    ann = 'oidv6-train-annotations-bbox.csv' if split == 'train' else \
        'validation-annotations-bbox.csv'
    out = dict(data_root=root, ann_file=f'annotations/{ann}',
               data_prefix=dict(img=f'OpenImages/{split}/'),
               label_file='annotations/class-descriptions-boxable.csv',
               hierarchy_file='annotations/bbox_labels_600_hierarchy.json',
               meta_file=f'annotations/{split}-image-metas.pkl',
               image_level_ann_file=f'annotations/{split}-annotations-human-imagelabels-'
               'boxable.csv', pipeline=[])
    out.update(kw)
    return out


def ch_kwargs(root, split='train', **kw):
    out = dict(data_root=root, ann_file=f'challenge2019/challenge-2019-{split}-detection-bbox.txt',
               data_prefix=dict(img='OpenImages/'),
               label_file='challenge2019/cls-label-description.csv',
               hierarchy_file='challenge2019/class_label_tree.np',
               meta_file=f'challenge2019/challenge-2019-{split}-metas.pkl', pipeline=[])
    out.update(kw)
    return out


# -- hierarchy -----------------------------------------------------------------
def test_real_hierarchy_matches_mmdet_and_has_a_dag(real):
    from mmdet.datasets import OpenImagesDataset
    classes, _, m2l, hier = real
    ref = OpenImagesDataset.__new__(OpenImagesDataset)
    ref._metainfo, ref.label_id_mapping, ref.backend_args = {'classes': classes}, m2l, None
    np.testing.assert_array_equal(hier.relation_matrix(), ref._get_relation_matrix(HIERARCHY_FILE))
    multi = [c for c, ps in hier.parents.items() if len(ps) > 1]
    assert len(multi) == 45
    tomato = classes.index('Tomato')
    assert {classes[p] for p in hier.parents_of(tomato)} == {'Fruit', 'Vegetable'}
    assert {'Fruit', 'Vegetable', 'Food'} <= {classes[a] for a in hier.ancestors(tomato)}
    wheel, bicycle = classes.index('Bicycle wheel'), classes.index('Bicycle')
    assert bicycle not in hier.ancestors(wheel) and hier.parts[wheel] == (bicycle, )
    dog, animal = classes.index('Dog'), classes.index('Animal')
    assert animal in hier.ancestors(dog) and dog in hier.descendants(animal)
    # Challenge layout round trip
    back = ClassHierarchy.from_class_label_tree(hier.class_label_tree(), classes)
    np.testing.assert_array_equal(back.ancestor_matrix, hier.ancestor_matrix)


def brute_ancestors(parents, i):
    out, todo = set(), list(parents.get(i, ()))
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(parents.get(p, ()))
    return out


def test_hierarchy_closure_vs_brute_force_and_cycles(tmp_path):
    rng = np.random.default_rng(0)
    parents = {i: sorted(set(rng.integers(0, i, rng.integers(1, 3)).tolist()))
               for i in range(1, 40)}
    h = ClassHierarchy([f'c{i}' for i in range(40)], parents)
    for i in range(40):
        assert set(h.ancestors(i)) == brute_ancestors(parents, i)
    with pytest.raises(HierarchyError, match=r"cycle: 'a' \(label 0\) -> 'b' \(label 1\)"):
        ClassHierarchy(['a', 'b', 'c'], {0: [1], 1: [2], 2: [0]}, source='h.json')
    # a cycle through the json file names the file
    tree = {'LabelName': '/m/0bl9f', 'Subcategory': [
        {'LabelName': '/m/a', 'Subcategory': [{'LabelName': '/m/b', 'Subcategory': [
            {'LabelName': '/m/a'}]}]}]}
    p = tmp_path / 'cyc.json'
    p.write_text(json.dumps(tree))
    with pytest.raises(HierarchyError, match='cyc.json.*cycle'):
        ClassHierarchy.from_openimages_json(str(p), {'/m/a': 0, '/m/b': 1}, ['A', 'B'])
    with pytest.raises(HierarchyError, match=r'lacks.*/m/zz'):
        tree['Subcategory'].append({'LabelName': '/m/zz'})
        p.write_text(json.dumps(tree))
        ClassHierarchy.from_openimages_json(str(p), {'/m/a': 0, '/m/b': 1}, ['A', 'B'])
    # COCO supercategory is one source of the same structure
    cats = [{'id': 1, 'name': 'animal'}, {'id': 2, 'name': 'dog', 'supercategory': 'animal'}]
    assert ClassHierarchy.from_coco_categories(cats, ['animal', 'dog']).ancestors(1) == [0]


# -- same-object rule -------------------------------------------------------------
def test_same_object_rule_vs_dict_grouping():
    rng = np.random.default_rng(1)
    boxes = np.round(rng.random((2000, 4)), 1)  # many exact repeats
    imgs = rng.integers(0, 30, 2000)
    obj, num = object_ids(boxes, imgs)
    ref = {}
    for k, (b, i) in enumerate(zip(boxes.tolist(), imgs.tolist())):
        ref.setdefault((i, *b), []).append(k)
    assert num == len(ref)
    for members in ref.values():
        assert len(set(obj[members].tolist())) == 1
    assert obj[0] == 0 and np.all(np.diff(np.maximum.accumulate(obj)) <= 1)  # first appearance
    # IoU 0.97 is *not* the same object; -0.0 == 0.0 is
    assert object_label_sets([[0, 0, 10, 10], [0, 0, 10, 10.3], [-0.0, 0, 10, 10]],
                             [1, 2, 3]) == [[1, 3], [2], [1, 3]]


def test_balanced_coco_uses_the_rule(tmp_path):
    images = [{'id': 1, 'file_name': 'a.png', 'width': 50, 'height': 50}]
    anns = [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [1, 1, 20, 20]},
            {'id': 2, 'image_id': 1, 'category_id': 2, 'bbox': [1, 1, 20, 20]},
            {'id': 3, 'image_id': 1, 'category_id': 2, 'bbox': [1, 1, 20, 20.5]}]
    for a in anns:
        a.update(area=400, iscrowd=0)
    coco = {'images': images, 'annotations': anns,
            'categories': [{'id': 1, 'name': 'x'}, {'id': 2, 'name': 'y'}]}
    p = tmp_path / 'a.json'
    p.write_text(json.dumps(coco))
    init_default_scope('mmdet')
    ds = BalancedCocoDataset(ann_file=str(p), data_prefix=dict(img=str(tmp_path)), pipeline=[],
                             check_image_files=False)
    assert [i['multi_labels'] for i in ds.get_data_info(0)['instances']] == [[0, 1], [0, 1], [1]]
    r = estimate_concurrent_rate(coco)['r']
    np.testing.assert_allclose(r, [[0, 1], [0.5, 0]])  # objects {x, y}, {y}


# -- datasets ----------------------------------------------------------------------
def csv_objects(root, split='train'):
    """Direct count from the files: {(image, box): set of labels}."""
    _, _, m2l = read_label_file(osp.join(root, 'annotations', 'class-descriptions-boxable.csv'))
    name = 'oidv6-train-annotations-bbox.csv' if split == 'train' else \
        'validation-annotations-bbox.csv'
    out = {}
    with open(osp.join(root, 'annotations', name)) as f:
        for r in csv.DictReader(f):
            key = (r['ImageID'], *(float(r[k]) for k in ('XMin', 'YMin', 'XMax', 'YMax')))
            out.setdefault(key, set()).add(m2l[r['LabelName']])
    return out


def test_v6_dataset_one_instance_per_object(gen):
    init_default_scope('mmdet')
    ds = OpenImagesMultiLabelDataset(**v6_kwargs(gen))
    ref = csv_objects(gen)
    classes = ds.metainfo['classes']
    hier = ds.hierarchy
    got = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        w, h = info['width'], info['height']
        for inst in info['instances']:
            b = inst['bbox']
            key = (info['img_id'], *(round(v, 9) for v in (b[0] / w, b[1] / h, b[2] / w,
                                                           b[3] / h)))
            got[key] = set(inst['multi_labels'])
            assert inst['bbox_label'] in inst['multi_labels']
            # most specific: no other label of the object descends from it
            assert not any(inst['bbox_label'] in hier.ancestors(x) for x in inst['multi_labels'])
            assert isinstance(inst['is_group_of'], bool)
    ref = {(k[0], *(round(v, 9) for v in k[1:])): v for k, v in ref.items()}
    assert got == ref
    assert any(len(v) > 1 for v in got.values())
    assert ds.metainfo['multi_label'] and len(classes) == 601
    assert any(ds.get_data_info(i)['instances'][0]['is_group_of'] or
               any(x['is_group_of'] for x in ds.get_data_info(i)['instances'])
               for i in range(len(ds)))
    # image-level labels kept, verified present (1) and absent (0)
    conf = np.concatenate([ds.get_data_info(i)['confidences'] for i in range(len(ds))])
    assert set(conf.tolist()) == {0.0, 1.0}
    # eval view: one instance per (object, label) = mmdet's rows minus exact repeats
    from mmdet.datasets import OpenImagesDataset
    ev = OpenImagesMultiLabelDataset(**v6_kwargs(gen), test_mode=True)
    mm = OpenImagesDataset(**v6_kwargs(gen))
    for i in range(len(ev)):
        a = sorted((x['bbox_label'], *x['bbox']) for x in ev.get_data_info(i)['instances'])
        b = sorted(set((x['bbox_label'], *x['bbox']) for x in mm.get_data_info(i)['instances']))
        assert a == b


def test_expand_ancestors_and_challenge(gen):
    init_default_scope('mmdet')
    ds = OpenImagesMultiLabelDataset(**v6_kwargs(gen), expand_ancestors=True)
    hier = ds.hierarchy
    for i in range(len(ds)):
        for inst in ds.get_data_info(i)['instances']:
            assert inst['multi_labels'] == hier.expand(inst['multi_labels'])
    ch = OpenImagesChallengeMultiLabelDataset(**ch_kwargs(gen))
    from mmdet.datasets import OpenImagesChallengeDataset
    mm = OpenImagesChallengeDataset(**ch_kwargs(gen))
    assert len(ch.metainfo['classes']) == 500
    np.testing.assert_array_equal(ch.metainfo['RELATION_MATRIX'], mm.metainfo['RELATION_MATRIX'])
    assert len(ch) == len(mm)
    for i in range(len(ch)):
        labs = sorted(lab for x in ch.get_data_info(i)['instances'] for lab in x['multi_labels'])
        ref = {}
        for x in mm.get_data_info(i)['instances']:
            ref.setdefault(tuple(x['bbox']), set()).add(x['bbox_label'])
        assert labs == sorted(lab for s in ref.values() for lab in s)


def test_pipeline_that_drops_multi_labels_fails(gen):
    init_default_scope('mmdet')
    pipe = [dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]
    with pytest.raises(DatasetError, match='PackDetInputs cannot carry multi-hot'):
        OpenImagesMultiLabelDataset(**v6_kwargs(gen, pipeline=pipe))
    OpenImagesMultiLabelDataset(**v6_kwargs(gen, pipeline=pipe), test_mode=True)  # eval: fine


def test_plain_heads_fail_before_training(gen):
    from mmdet.registry import MODELS

    from balancedet.engine.multi_label_check_hook import check_multi_label_model
    init_default_scope('mmdet')
    ds = OpenImagesMultiLabelDataset(**v6_kwargs(gen))
    import mmdet
    from mmengine.config import Config
    base = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_',
                                    'models', 'faster-rcnn_r50_fpn.py')).model
    base['backbone'].update(depth=18, init_cfg=None)
    base['neck']['in_channels'] = [64, 128, 256, 512]
    base['roi_head']['bbox_head']['num_classes'] = 601
    with pytest.raises(TypeError, match='RoI head StandardRoIHead'):
        check_multi_label_model(MODELS.build(base), ds)
    base['roi_head']['type'] = 'ConcurrentSoftmaxRoIHead'
    with pytest.raises(TypeError, match='bbox head Shared2FCBBoxHead'):
        check_multi_label_model(MODELS.build(base), ds)
    base['roi_head']['bbox_head']['type'] = 'ConcurrentSoftmaxBBoxHead'
    with pytest.raises(TypeError, match='loss CrossEntropyLoss'):
        check_multi_label_model(MODELS.build(base), ds)
    base['roi_head']['bbox_head']['loss_cls'] = dict(type='ConcurrentSoftmaxLoss',
                                                     num_classes=601)
    check_multi_label_model(MODELS.build(base), ds)  # concurrent: fine


def _copy(gen, tmp_path):
    dst = str(tmp_path / 'oi') + '/'
    shutil.copytree(gen, dst)
    return dst


def _edit_csv(path, fn):
    with open(path) as f:
        lines = f.read().splitlines()
    with open(path, 'w') as f:
        f.write('\n'.join(fn(lines)) + '\n')


@pytest.mark.parametrize('case,match', [
    ('renamed_column', r"column\(s\) \['XMin'\] missing"),
    ('unknown_mid', r'row 3: LabelName .*/m/nope.* not in the label file'),
    ('outside', r'row 2: box .* outside \[0, 1\]'),
    ('flipped', r'row 2: box .* xmin > xmax'),
    ('metas', r'does not match annotation file'),
    ('hierarchy_unknown', r'names 1 class\(es\) that the label file lacks'),
])
def test_bad_input(gen, tmp_path, case, match):
    root = _copy(gen, tmp_path)
    ann = root + 'annotations/oidv6-train-annotations-bbox.csv'

    def field(lines, row, col, val):
        parts = lines[row - 1].split(',')
        parts[col] = val
        lines[row - 1] = ','.join(parts)
        return lines
    if case == 'renamed_column':
        _edit_csv(ann, lambda ls: [ls[0].replace('XMin', 'X_Min')] + ls[1:])
    elif case == 'unknown_mid':
        _edit_csv(ann, lambda ls: field(ls, 3, 2, '/m/nope'))
    elif case == 'outside':
        _edit_csv(ann, lambda ls: field(ls, 2, 5, '1.5'))
    elif case == 'flipped':
        _edit_csv(ann, lambda ls: field(field(ls, 2, 4, '0.9'), 2, 5, '0.1'))
    elif case == 'metas':
        p = root + 'annotations/train-image-metas.pkl'
        metas = pickle.load(open(p, 'rb'))
        pickle.dump(metas[:-1], open(p, 'wb'))
    elif case == 'hierarchy_unknown':
        p = root + 'annotations/bbox_labels_600_hierarchy.json'
        tree = json.load(open(p))
        tree['Subcategory'].append({'LabelName': '/m/not_in_labels'})
        json.dump(tree, open(p, 'w'))
    init_default_scope('mmdet')
    with pytest.raises(DatasetError, match=match):
        OpenImagesMultiLabelDataset(**v6_kwargs(root))
    if case in ('renamed_column', 'unknown_mid', 'outside', 'flipped'):
        # the r_ij estimator's fast reader applies the same checks
        with pytest.raises(DatasetError, match=match):
            estimate_concurrent_rate_openimages(ann, root + 'annotations/'
                                                'class-descriptions-boxable.csv')


def test_zero_size_boxes_dropped_with_count(gen, tmp_path):
    root = _copy(gen, tmp_path)
    ann = root + 'annotations/oidv6-train-annotations-bbox.csv'

    def zero(lines):
        parts = lines[1].split(',')
        parts[5] = parts[4]  # XMax = XMin
        lines[1] = ','.join(parts)
        return lines
    _edit_csv(ann, zero)
    init_default_scope('mmdet')
    with pytest.warns(UserWarning, match=r"dropped 1 box\(es\) under 1 pixel.*'row 2'"):
        ds = OpenImagesMultiLabelDataset(**v6_kwargs(root))
    # the edited row is a box of its own now (XMax changed): one object fewer
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == \
        len(csv_objects(root)) - 1
    with pytest.warns(UserWarning, match=r"dropped 1 box\(es\) of zero size.*'row 2'"):
        estimate_concurrent_rate_openimages(ann, root + 'annotations/'
                                            'class-descriptions-boxable.csv')


# -- r_ij from Open Images files -----------------------------------------------------------
def test_rate_from_csv_equals_brute_force_and_dag_pairs(gen, tmp_path):
    ann = gen + 'annotations/oidv6-train-annotations-bbox.csv'
    lab = gen + 'annotations/class-descriptions-boxable.csv'
    hier_file = gen + 'annotations/bbox_labels_600_hierarchy.json'
    res = estimate_concurrent_rate_openimages(ann, lab, hier_file)
    objs = csv_objects(gen)
    c = 601
    n, co = np.zeros(c), np.zeros((c, c))
    for labels in objs.values():
        for i in labels:
            n[i] += 1
            for j in labels:
                if i != j:
                    co[i, j] += 1
    np.testing.assert_allclose(res['r'], co / np.maximum(n, 1)[:, None])
    # Fig. 3b: share of a parent's objects without a descendant label, brute force
    classes, _, m2l = read_label_file(lab)
    hier = ClassHierarchy.from_openimages_json(hier_file, m2l, classes)
    for p in np.flatnonzero(hier.is_parent_class()):
        with_p = [s for s in objs.values() if p in s]
        if with_p:
            alone = sum(not (set(hier.descendants(p)) & s) for s in with_p)
            assert res['parent_without_leaf'][p] == pytest.approx(alone / len(with_p))
    # the loss makes every ancestor pair of the DAG concurrent (Tomato -> Vegetable, Food)
    from balancedet.analysis.concurrent_rate import save_concurrent_rate
    out = str(tmp_path / 'r.json')
    save_concurrent_rate(res, out)
    r = load_concurrent_rate(out, 601, hierarchy='concurrent')
    t = classes.index('Tomato')
    for name in ('Fruit', 'Vegetable', 'Food'):
        a = classes.index(name)
        assert r[t, a] == 1 and r[a, t] == 1
    zero = load_concurrent_rate(out, 601, hierarchy='zero')
    assert zero[t, classes.index('Vegetable')] == 0
    # the fast reader equals Python's csv + float on every row
    img, labels, coords, dropped = read_openimages_boxes_fast(ann, m2l)
    rows = list(csv.DictReader(open(ann)))
    assert dropped.size == 0 and len(rows) == len(labels)
    np.testing.assert_array_equal(labels, [m2l[r['LabelName']] for r in rows])
    np.testing.assert_array_equal(coords, [[float(r[k]) for k in ('XMin', 'YMin', 'XMax',
                                                                   'YMax')] for r in rows])
    ids = [r['ImageID'] for r in rows]
    assert all((img[a] == img[b]) == (ids[a] == ids[b]) for a in range(0, len(ids), 7)
               for b in range(len(ids)))


def test_concurrent_rate_cli_on_openimages(gen, tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'cr_cli', osp.join(ROOT, 'tools/analysis_tools/concurrent_rate.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    ann = gen + 'annotations/oidv6-train-annotations-bbox.csv'
    args = [ann, '--hierarchy', gen + 'annotations/bbox_labels_600_hierarchy.json',
            '--label-file', gen + 'annotations/class-descriptions-boxable.csv']
    cli.main(args + ['--out', str(tmp_path / 'r.json'), '--png', str(tmp_path / 'a.png'),
                     '--parent-png', str(tmp_path / 'b.png')])
    data = json.loads((tmp_path / 'r.json').read_text())
    assert len(data['classes']) == 601 and 'parent_without_leaf' in data
    assert (tmp_path / 'b.png').read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(SystemExit):
        cli.main(args + ['--out', ann])  # never overwrites its input
    with pytest.raises(SystemExit):
        cli.main([ann, '--out', str(tmp_path / 'x.json')])  # CSV needs --label-file
    # Challenge txt input
    ch = gen + 'challenge2019/'
    cli.main([ch + 'challenge-2019-train-detection-bbox.txt', '--label-file',
              ch + 'cls-label-description.csv', '--hierarchy', ch + 'class_label_tree.np',
              '--out', str(tmp_path / 'c.json')])
    assert len(json.loads((tmp_path / 'c.json').read_text())['classes']) == 500


def test_mmdet_openimages_dataset_packs_multi_hot(gen):
    """mmdet's OpenImagesDataset (one instance per CSV row) + PackMultiLabelDetInputs:
    the rows of one Dog + Animal box both arrive with both labels (same-object rule)."""
    from mmdet.datasets import OpenImagesDataset
    init_default_scope('mmdet')
    pipe = [dict(type='LoadAnnotations', with_bbox=True), dict(type='PackMultiLabelDetInputs')]
    ds = OpenImagesDataset(**v6_kwargs(gen, pipeline=pipe))
    classes = ds.metainfo['classes']
    dog, animal = classes.index('Dog'), classes.index('Animal')
    hits = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        labels = {}
        for inst in info['instances']:
            labels.setdefault(tuple(inst['bbox']), set()).add(inst['bbox_label'])
        if not any({dog, animal} <= v for v in labels.values()):
            continue
        gt = ds[i]['data_samples'].gt_instances
        boxes, labs = gt.bboxes.tensor.tolist(), gt.labels.tolist()
        ref = {}
        for box, lab in zip(boxes, labs):  # independent grouping: a dict on the boxes
            ref.setdefault(tuple(box), set()).add(lab)
        for box, ml in zip(boxes, gt.multi_labels.tolist()):
            got = {x for x in ml if x >= 0}
            assert got == ref[tuple(box)]
            hits += dog in got and animal in got
    assert hits >= 2  # both rows of a Dog + Animal box


def test_build_runner_registers_the_multi_label_check(tmp_path):
    from balancedet.apis.runner_setup import build_runner, load_config
    from balancedet.engine.multi_label_check_hook import MultiLabelTargetCheckHook
    cfg = load_config(osp.join(ROOT, 'configs/faster_rcnn/faster-rcnn_r18-w16_fpn_8e_demo.py'),
                      work_dir=str(tmp_path))
    cfg.default_hooks.pop('multi_label_check')  # a config without it still gets it
    runner = build_runner(cfg)
    assert sum(isinstance(h, MultiLabelTargetCheckHook) for h in runner.hooks) == 1
