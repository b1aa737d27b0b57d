"""ap_vs_frequency.py on LVIS, COCO and Open Images metric output."""
import importlib.util
import json
import os.path as osp
import warnings

import numpy as np
import pytest
from conftest import REPO
from lvis_fixture import EXPECTED, write_fixture

from balancedet.analysis.sampling_stats import frequency_group_ap, summarise_ap
from balancedet.datasets.coco_lvis_generator import generate_tiny_lvis
from balancedet.evaluation.lvis_metric import evaluate_lvis, per_class_ap

ROOT = str(REPO)


def tool():
    spec = importlib.util.spec_from_file_location(
        'ap_vs_frequency', osp.join(ROOT, 'tools', 'analysis_tools', 'ap_vs_frequency.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def lvis(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('apfreq'))
    paths = generate_tiny_lvis(root, num_train=12, num_val=0, img_size=64, num_classes=9,
                               seed=5)
    with open(paths['train']) as f:
        return paths['train'], json.load(f)


def brute(train):
    """Training images per category name, and its frequency, by a plain loop."""
    imgs = {c['name']: set() for c in train['categories']}
    name_of = {c['id']: c['name'] for c in train['categories']}
    for a in train['annotations']:
        imgs[name_of[a['category_id']]].add(a['image_id'])
    return {n: len(s) for n, s in imgs.items()}, {c['name']: c['frequency']
                                                   for c in train['categories']}


def test_groups_match_the_lvis_metric():
    """APr / APc / APf from per-class APs = lvis-api's values on the metric's fixture."""
    import tempfile
    gt, bbox, _ = write_fixture(tempfile.mkdtemp())
    res = evaluate_lvis(gt, bbox, 'bbox')
    cats = sorted(gt['categories'], key=lambda c: c['id'])
    ap = {c['name']: float(a) for c, a in zip(cats, per_class_ap(res['precision']))
          if np.isfinite(a)}
    g = frequency_group_ap(ap, [c['name'] for c in cats], [c['frequency'] for c in cats])
    for k in ('APr', 'APc', 'APf'):
        assert g[k] == pytest.approx(EXPECTED['bbox'][k], abs=1e-12)


def test_lvis_run_json(lvis, tmp_path, capsys):
    ann, train = lvis
    counts, freq = brute(train)
    rng = np.random.default_rng(0)
    with_images = [n for n, c in counts.items() if c > 0]
    ap = {n: float(rng.uniform(0, 1)) for n in with_images}
    # an mmengine test-run json: one object per line, the metrics in the last
    run = tmp_path / 'run.json'
    record = {f'lvis/bbox_AP/{n}': v for n, v in ap.items()}
    record.update({'lvis/bbox_AP': 0.1, 'lvis/segm_AP/other': 0.9, 'step': 1})
    run.write_text(json.dumps({'lr': 0.1}) + '\n' + json.dumps(record) + '\n')
    png = str(tmp_path / 'ap.png')
    with pytest.warns(UserWarning) as rec:
        tool().main([ann, f'sb={run}', '--png', png])
    out = capsys.readouterr().out
    assert osp.getsize(png) > 1000
    # classes without training images: one warning, count and the first few names only
    msg = [str(w.message) for w in rec if 'no training image' in str(w.message)]
    num_untrained = len(counts) - len(with_images)
    assert len(msg) == 1 and f'{num_untrained} class(es)' in msg[0]
    assert f'... ({num_untrained - 5} more)' in msg[0] and len(msg[0]) < 400
    # the reference: plain means over the groups, and the rarest third of the trained classes
    row = next(line for line in out.splitlines() if line.startswith('| sb |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert float(cells[1]) == pytest.approx(100 * np.mean(list(ap.values())), abs=0.051)
    order = sorted(with_images, key=lambda n: counts[n])  # stable: names in id order
    rare = order[:max(1, round(len(with_images) / 3))]
    assert float(cells[2].split()[0]) == pytest.approx(
        100 * np.mean([ap[n] for n in rare]), abs=0.051)
    for cell, group in zip(cells[3:6], 'rcf'):
        vals = [ap[n] for n in with_images if freq[n] == group]
        assert float(cell.split()[0]) == pytest.approx(100 * np.mean(vals), abs=0.051)
        assert f'({len(vals)} classes)' in cell
    assert 'nan' not in out


def test_summarise_ap_leaves_out_untrained_classes():
    classes = ['a', 'b', 'c', 'd', 'e', 'f']
    counts = np.array([100, 0, 50, 0, 20, 10])
    s = summarise_ap({'a': 0.6, 'c': 0.5, 'e': 0.3, 'f': 0.1}, counts, classes)
    # rarest third of the 4 trained classes: round(4 / 3) = 1 -> f
    assert s['rare_classes'] == ['f'] and s['rare_mAP'] == pytest.approx(0.1)
    assert s['no_train_images'] == ['b', 'd'] and np.isfinite(s['rare_mAP'])


def test_openimages_keys_with_spaces_and_count_mapping(tmp_path, capsys):
    counts = {'Man': 900, 'Coffee cup': 3, 'Traffic light': 40}
    counts_file = tmp_path / 'counts.json'
    counts_file.write_text(json.dumps(counts))
    run = tmp_path / 'oi.json'
    run.write_text(json.dumps({'openimages/mAP': 0.3, 'openimages/AP/Man': 0.5,
                               'openimages/AP/Coffee cup': 0.1,
                               'openimages/AP/Traffic light': 0.3}) + '\n')
    tool().main([str(counts_file), str(run), '--png', str(tmp_path / 'oi.png')])
    out = capsys.readouterr().out
    cup = next(line for line in out.splitlines() if line.startswith('Coffee cup'))
    assert cup.split()[-2:] == ['3', '10.0']
    assert 'APr' not in out  # no frequency groups without LVIS's frequency


def test_coco_classwise_json(tmp_path, capsys):
    ann = tmp_path / 'train.json'
    ann.write_text(json.dumps({
        'images': [{'id': 1, 'file_name': 'a.jpg', 'width': 8, 'height': 8}],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [0, 0, 2, 2]}],
        'categories': [{'id': 1, 'name': 'traffic light'}]}))
    run = tmp_path / 'coco.json'
    run.write_text(json.dumps({'coco/traffic light_precision': 0.25, 'coco/bbox_mAP': 0.2})
                   + '\n')
    tool().main([str(ann), str(run), '--png', str(tmp_path / 'c.png')])
    assert '25.0' in capsys.readouterr().out


def test_bad_input(lvis, tmp_path):
    ann, train = lvis
    t = tool()
    coco = tmp_path / 'coco.json'
    coco.write_text(json.dumps({'images': [], 'annotations': [],
                                'categories': [{'id': 1, 'name': 'a'}]}))
    run = tmp_path / 'run.json'
    run.write_text(json.dumps({'coco/a_precision': 0.5}) + '\n')
    with pytest.raises(ValueError, match='--groups lvis needs the categories\' "frequency"'):
        t.main([str(coco), str(run), '--png', str(tmp_path / 'x.png'), '--groups', 'lvis'])
    partial = json.loads(json.dumps(train))
    for c in partial['categories'][:7]:
        del c['frequency']
    bad = tmp_path / 'partial.json'
    bad.write_text(json.dumps(partial))
    with pytest.raises(ValueError, match=r'categories without "frequency" \(7: '):
        t.main([str(bad), str(run), '--png', str(tmp_path / 'x.png')])
    empty = tmp_path / 'empty.json'
    empty.write_text(json.dumps({'coco/bbox_mAP': 0.1}) + '\n')
    with pytest.raises(ValueError, match='holds no per-class AP.*classwise=True'):
        t.main([ann, str(empty), '--png', str(tmp_path / 'x.png')])
    with pytest.raises(ValueError, match='none of its 1 per-class AP names is a class'):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            t.main([ann, str(run), '--png', str(tmp_path / 'x.png')])
