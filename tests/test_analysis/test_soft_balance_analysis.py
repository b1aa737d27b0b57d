"""Sampling statistics, effective-number weights and the analysis CLIs."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO

from balancedet.analysis.effective_number import (
    effective_number,
    effective_number_weights,
    instance_counts_from_coco,
)
from balancedet.analysis.sampling_stats import (
    format_sampling_stats,
    per_class_ap_vs_frequency,
    sampling_stats,
    summarise_ap,
)
from balancedet.datasets.demo_generator import generate_demo_dataset
from balancedet.datasets.samplers.class_index import ClassImageIndex
from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler

ROOT = str(REPO)


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MultiLabelToy:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.labels = []
        for _ in range(300):
            k = rng.integers(1, 3)
            self.labels.append(sorted(set(rng.choice(6, size=k, p=[.5, .2, .12, .1, .05, .03]))))
        self.metainfo = {'classes': tuple('abcdef')}

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, i):
        return [int(x) for x in self.labels[i]]


@pytest.mark.parametrize('lam', [0.0, 1.0])
def test_unseen_share_matches_monte_carlo(lam):
    ds = MultiLabelToy()
    sampler = SoftBalanceSampler(ds, lam=lam, seed=0)
    stats = sampling_stats(sampler.index, [lam])['per_lambda'][lam]
    epochs, unseen = 400, np.zeros(6)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        seen = np.zeros(len(ds), bool)
        seen[list(sampler)] = True
        for c in range(6):
            imgs = sampler.index.images_of(c)
            unseen[c] += (~seen[imgs]).mean()
    np.testing.assert_allclose(unseen / epochs, stats['unseen'], atol=0.02)
    # expected draws and over-sampling are N * P_s* and N * P_s* / n_i
    counts = sampler.index.counts
    p_ref = counts ** (1 - lam) / (counts ** (1 - lam)).sum()
    np.testing.assert_allclose(stats['expected_draws'], len(ds) * p_ref)
    np.testing.assert_allclose(stats['oversampling'], len(ds) * p_ref / counts)


def test_paper_figures_for_class_aware_sampling():
    """Open Images, lambda = 1: 99.13 % of person images unseen (paper, sec. 4.2)."""
    counts = np.r_[398_000, np.full(498, 500), 14]
    labels = np.repeat(np.arange(500), counts)
    imgs = np.arange(labels.size)  # one label per image is enough here
    index = ClassImageIndex.from_pairs(imgs, labels, labels.size, 500)
    s = sampling_stats(index, [1.0], epoch_length=1_740_000)['per_lambda'][1.0]
    draws = 1_740_000 / 500
    assert s['expected_draws'][0] == pytest.approx(draws)
    assert round(100 * s['unseen_paper'][0], 2) == 99.13
    assert s['unseen_paper'][0] == pytest.approx((1 - 1 / 398_000) ** draws)
    assert s['oversampling'][-1] == pytest.approx(draws / 14)  # ~250x


def test_stats_bad_input_and_report():
    index = ClassImageIndex.from_pairs([0, 1, 1], [0, 0, 1], 3, 3)
    with pytest.raises(ValueError, match='epoch_length must be >= 1'):
        sampling_stats(index, [1.0], epoch_length=0)
    with pytest.raises(ValueError, match='`lam` must be a number >= 0'):
        sampling_stats(index, [-1.0])
    stats = sampling_stats(index, [0.0, 1.0])
    assert np.isnan(stats['per_lambda'][1.0]['unseen'][2])  # class without images
    text = format_sampling_stats(stats, ('x', 'y', 'z'))
    assert 'most frequent class: x' in text and 'rarest class: y' in text


def test_effective_number_weights_formula():
    counts = np.array([1000, 100, 10, 1])
    for beta in (0.9, 0.99, 0.999):
        raw = np.array([(1 - beta) / (1 - beta ** n) for n in counts])
        np.testing.assert_allclose(effective_number_weights(counts, beta), raw * 4 / raw.sum())
    np.testing.assert_allclose(effective_number(counts, 0.999),
                               [(1 - 0.999 ** n) / 0.001 for n in counts])
    assert effective_number_weights(counts, 0.0) == [1.0] * 4
    inv = 1 / counts
    np.testing.assert_allclose(effective_number_weights(counts, 1 - 1e-9), inv * 4 / inv.sum(),
                               rtol=1e-4)
    assert effective_number_weights(counts, 0.9, background_weight=1.0)[-1] == 1.0
    with pytest.raises(ValueError, match=r'beta. must be a number in \[0, 1\)'):
        effective_number_weights(counts, 1.0)
    with pytest.raises(ValueError, match='classes \\[1\\] have no training sample'):
        effective_number_weights([3, 0], 0.9)


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('sb_analysis'))
    generate_demo_dataset(root, num_train=60, num_val=0, seed=2)
    return root


def test_instance_counts_from_coco(demo_root):
    ann = osp.join(demo_root, 'annotations', 'train.json')
    classes, counts = instance_counts_from_coco(ann)
    with open(ann) as f:
        coco = json.load(f)
    ids = sorted(c['id'] for c in coco['categories'])
    ref = [sum(a['category_id'] == i for a in coco['annotations']) for i in ids]
    assert counts.tolist() == ref and len(classes) == len(ids)


def test_cli_tools(demo_root, tmp_path, capsys):
    cfg = osp.join(ROOT, 'configs', 'faster_rcnn', 'faster-rcnn_r18-w16_fpn_8e_demo.py')
    png = str(tmp_path / 'stats.png')
    load_tool('sampling_stats').main([
        cfg, '--lams', '0', '1', '--png', png, '--cfg-options',
        f'train_dataloader.dataset.data_root={demo_root}/'])
    out = capsys.readouterr().out
    assert osp.getsize(png) > 1000 and 'rarest oversampling' in out
    ann = osp.join(demo_root, 'annotations', 'train.json')
    load_tool('effective_num_weights').main([ann, '--beta', '0.99', '--background-weight', '1'])
    out = capsys.readouterr().out
    weights = json.loads(out.strip().splitlines()[-1].split('=', 1)[1])
    assert len(weights) == 11 and weights[-1] == 1.0 and sum(weights[:-1]) == pytest.approx(10,
                                                                                           abs=1e-3)
    # ap-vs-frequency: a text log and a json scalars line
    log = tmp_path / 'test.log'
    log.write_text('Epoch(test) [25/25]  coco/circle_precision: 0.4000  coco/star_precision: '
                   '0.1000  coco/ring_precision: -1.0000  coco/bbox_mAP: 0.2000\n')
    js = tmp_path / 'scalars.json'
    js.write_text(json.dumps({'coco/circle_precision': 0.5, 'coco/star_precision': 0.3,
                              'coco/ring_precision': 0.2}) + '\n')
    png2 = str(tmp_path / 'ap.png')
    load_tool('ap_vs_frequency').main([ann, f'base={log}', f'sb={js}', '--png', png2])
    out = capsys.readouterr().out
    assert osp.getsize(png2) > 1000
    circle = next(line for line in out.splitlines() if line.startswith('circle'))
    assert circle.split()[-2:] == ['40.0', '50.0']
    ring = next(line for line in out.splitlines() if line.startswith('ring'))
    assert ring.split()[-2:] == ['-', '20.0']  # -1 (no AP) is dropped


def test_ap_pairs_drop_missing_and_sort():
    names, counts, aps = per_class_ap_vs_frequency({'a': 0.1, 'b': -1, 'c': 0.3},
                                                   np.array([5, 50, 500]), ['a', 'b', 'c'])
    assert names == ['c', 'a'] and counts.tolist() == [500, 5] and aps.tolist() == [0.3, 0.1]
    with pytest.raises(ValueError, match='classwise=True'):
        per_class_ap_vs_frequency({}, np.array([1]), ['a'])


def test_summarise_ap_rarest_third():
    classes = ['a', 'b', 'c', 'd', 'e', 'f']
    counts = np.array([100, 3, 50, 1, 20, 10])  # rarest third: d (1), b (3)
    s = summarise_ap({'a': 0.6, 'b': 0.2, 'c': 0.5, 'd': -1, 'e': 0.3, 'f': 0.1}, counts, classes)
    assert s['rare_classes'] == ['d', 'b'] and s['rare_missing'] == ['d']
    assert s['rare_mAP'] == pytest.approx(0.2)
    assert s['mAP'] == pytest.approx(np.mean([0.6, 0.2, 0.5, 0.3, 0.1]))
