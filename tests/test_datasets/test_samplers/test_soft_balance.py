"""Soft-balance (Peng et al. 2020, eqs. 6-8) and ICIP 2017 samplers: maths, DDP, bad input."""
import math
import warnings

import numpy as np
import pytest
from mmdet.datasets.samplers import ClassAwareSampler
from mmdet.registry import DATA_SAMPLERS

import balancedet  # noqa: F401
from balancedet.datasets.samplers import class_index
from balancedet.datasets.samplers.class_index import ClassImageIndex
from balancedet.datasets.samplers.icip_samplers import ICIPStrategySampler
from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler, soft_balance_probs


class ToyDataset:
    """Minimal mmdet-like dataset: ``labels[i]`` are the box labels of image i."""

    def __init__(self, labels, classes=None, multi=None, ignore=None):
        self.labels = labels
        num = 1 + max((max(ls) for ls in labels if ls), default=0)
        self.metainfo = dict(classes=classes or tuple(f'c{k}' for k in range(num)))
        self.multi = multi or {}
        self.ignore = ignore or set()

    def __len__(self):
        return len(self.labels)

    def get_data_info(self, i):
        return dict(instances=[
            dict(bbox_label=lab, ignore_flag=int((i, j) in self.ignore),
                 multi_labels=self.multi.get((i, j), [lab]))
            for j, lab in enumerate(self.labels[i])])

    def get_cat_ids(self, i):
        return list(self.labels[i])


def long_tail_dataset(seed=0, counts=(400, 120, 40, 10, 3)):
    """Single-label images, ``counts[c]`` images of class c, shuffled."""
    labels = [[c] for c, n in enumerate(counts) for _ in range(n)]
    rng = np.random.default_rng(seed)
    return ToyDataset([labels[i] for i in rng.permutation(len(labels))])


def reference_probs(counts, lam):
    """Eqs. 6-8 written out literally (no log space)."""
    counts = np.asarray(counts, float)
    p_n = counts / counts.sum()
    p_a = np.full_like(p_n, 1.0 / len(counts))
    p_s = p_a ** lam * p_n ** (1 - lam)
    return p_s / p_s.sum()


# ----------------------------------------------------------------- index ---
def test_index_counts_multilabel_and_ignore():
    ds = ToyDataset([[0, 0, 1], [2], [], [1], [0]], classes=('a', 'b', 'c', 'd'),
                    multi={(1, 0): [2, 3]}, ignore={(4, 0)})
    index = ClassImageIndex.from_dataset(ds)
    # image 0 counts once for class 0; image 1's box carries labels 2 and 3;
    # image 4's only box is ignored; image 2 is unlabelled.
    assert [index.images_of(c).tolist() for c in range(4)] == [[0], [0, 3], [1], [1]]
    assert index.counts.tolist() == [1, 2, 1, 1]
    assert index.labelled_images().tolist() == [0, 1, 3]


def test_index_matches_mmdet_cat2imgs():
    ds = long_tail_dataset()
    ref = ClassAwareSampler(ds, seed=0).get_cat2imgs()
    index = ClassImageIndex.from_dataset(ds)
    for c, imgs in ref.items():
        assert index.images_of(c).tolist() == sorted(imgs)


def test_index_from_unsorted_pairs_equals_python_reference():
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 500, 5000)
    labs = rng.integers(0, 37, 5000)
    index = ClassImageIndex.from_pairs(imgs, labs, 500, 40)
    for c in range(40):
        assert index.images_of(c).tolist() == sorted({i for i, lab in zip(imgs, labs) if lab == c})
    with pytest.raises(ValueError, match='labels must lie in'):
        ClassImageIndex.from_pairs([0], [40], 1, 40)


# ----------------------------------------------------------------- maths ---
@pytest.mark.parametrize('lam', [0.0, 0.5, 0.7, 1.0, 1.5, 3.0])
def test_probs_follow_eqs_6_to_8(lam):
    counts = np.array([5000, 700, 90, 12, 1])
    np.testing.assert_allclose(soft_balance_probs(counts, lam), reference_probs(counts, lam),
                               rtol=1e-12)


def test_probs_limits_natural_and_class_aware():
    counts = np.array([30, 10, 0, 5])
    np.testing.assert_allclose(soft_balance_probs(counts, 0.0), [30 / 45, 10 / 45, 0, 5 / 45])
    np.testing.assert_allclose(soft_balance_probs(counts, 1.0), [1 / 3, 1 / 3, 0, 1 / 3])
    # lam > 1: the rarest class gets more than 1/C
    assert soft_balance_probs(counts, 1.5)[3] > 1 / 3
    # huge lam stays finite (log-space)
    p = soft_balance_probs(np.array([10 ** 6, 1]), 200.0)
    assert np.isfinite(p).all() and p[1] == pytest.approx(1.0)


@pytest.mark.parametrize('lam', [0.0, 0.5, 1.5])
def test_empirical_class_frequencies(lam):
    counts = (400, 120, 40, 10, 3)
    ds = long_tail_dataset(counts=counts)
    n = 200_000
    sampler = SoftBalanceSampler(ds, lam=lam, num_samples_per_epoch=n, seed=1)
    drawn = np.fromiter(iter(sampler), dtype=np.int64)
    assert drawn.size == n
    cls = np.array([ds.labels[i][0] for i in drawn])
    freq = np.bincount(cls, minlength=5) / n
    p = reference_probs(counts, lam)
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) < 5 * sigma + 1e-12), (freq, p)
    # images of a class are drawn uniformly: chi-square test on the largest class
    imgs0 = drawn[cls == 0]
    obs = np.bincount(imgs0, minlength=len(ds))[np.array([ds.labels[i] == [0]
                                                          for i in range(len(ds))])]
    exp = imgs0.size / counts[0]
    chi2 = ((obs - exp) ** 2 / exp).sum()
    dof = counts[0] - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof)


def test_lambda_one_matches_mmdet_class_aware_sampler():
    ds = long_tail_dataset()
    ours = np.fromiter(iter(SoftBalanceSampler(ds, lam=1.0, num_samples_per_epoch=50_000,
                                               seed=0)), dtype=np.int64)
    ref_sampler = ClassAwareSampler(ds, seed=0)
    ref = []
    for epoch in range(90):  # one mmdet epoch = len(ds) draws
        ref_sampler.set_epoch(epoch)
        ref.extend(ref_sampler)
    lab = np.array([lab[0] for lab in ds.labels])
    f_ours = np.bincount(lab[ours], minlength=5) / ours.size
    f_ref = np.bincount(lab[np.array(ref)], minlength=5) / len(ref)
    np.testing.assert_allclose(f_ref, 0.2, atol=0.01)
    np.testing.assert_allclose(f_ours, f_ref, atol=0.01)


def test_lambda_zero_is_uniform_over_single_label_images():
    ds = long_tail_dataset(counts=(60, 30, 10))
    n = 100_000
    drawn = np.fromiter(iter(SoftBalanceSampler(ds, lam=0.0, num_samples_per_epoch=n, seed=2)),
                        dtype=np.int64)
    obs = np.bincount(drawn, minlength=len(ds))
    exp = n / len(ds)
    chi2 = ((obs - exp) ** 2 / exp).sum()
    assert chi2 < (len(ds) - 1) + 6 * math.sqrt(2 * (len(ds) - 1))


def test_registered_and_buildable():
    ds = long_tail_dataset()
    s = DATA_SAMPLERS.build(dict(type='SoftBalanceSampler', lam=0.5, seed=0),
                            default_args=dict(dataset=ds))
    assert isinstance(s, SoftBalanceSampler) and len(s) == len(ds)
    s = DATA_SAMPLERS.build(dict(type='ICIPStrategySampler', strategy='base', seed=0),
                            default_args=dict(dataset=ds))
    assert isinstance(s, ICIPStrategySampler)


# ------------------------------------------------------------------ ICIP ---
def test_icip_base_is_class_ordered_permutation():
    ds = ToyDataset([[2], [0], [], [1, 0], [1], [2, 1]])
    order = list(ICIPStrategySampler(ds, strategy='base', seed=0))
    assert order == [1, 3, 4, 5, 0, 2]  # min labels: 0,0 | 1,1 | 2 | none


def test_icip_random_is_seeded_permutation():
    ds = long_tail_dataset()
    s = ICIPStrategySampler(ds, strategy='random', seed=4)
    a = list(s)
    assert sorted(a) == list(range(len(ds)))
    assert list(s) == a
    s.set_epoch(1)
    assert list(s) != a


@pytest.mark.parametrize('k', [1, 7, 50])
def test_icip_balanced_exactly_k_per_class(k):
    counts = (400, 120, 40, 10, 3)
    ds = long_tail_dataset(counts=counts)
    s = ICIPStrategySampler(ds, strategy='balanced', images_per_class=k, seed=0)
    drawn = np.array(list(s))
    assert drawn.size == len(s) == 5 * k
    lab = np.array([lab[0] for lab in ds.labels])[drawn]
    assert np.bincount(lab, minlength=5).tolist() == [k] * 5
    for c, n in enumerate(counts):
        per_img = np.bincount(drawn[lab == c], minlength=len(ds))
        per_img = per_img[np.array([lab[0] == c for lab in ds.labels])]
        # repeats only when the class has fewer than K images, and then evenly
        assert per_img.max() - per_img.min() <= 1
        assert per_img.max() == math.ceil(k / n)


# ------------------------------------------------------------------- DDP ---
def _ranked(monkeypatch, world, make):
    samplers = []
    for rank in range(world):
        monkeypatch.setattr(class_index, 'get_dist_info', lambda r=rank: (r, world))
        samplers.append(make())
    return samplers


@pytest.mark.parametrize('world', [1, 2, 3])
@pytest.mark.parametrize('round_up', [True, False])
@pytest.mark.parametrize('make', [
    lambda ds, ru: SoftBalanceSampler(ds, lam=0.7, seed=11, round_up=ru),
    lambda ds, ru: ICIPStrategySampler(ds, strategy='balanced', images_per_class=9, seed=11,
                                       round_up=ru),
    lambda ds, ru: ICIPStrategySampler(ds, strategy='random', seed=11, round_up=ru),
])
def test_ranks_partition_the_global_sequence(monkeypatch, world, round_up, make):
    ds = long_tail_dataset(counts=(30, 12, 5, 2))  # 49 images: not divisible by 2 or 3
    for epoch in (0, 3):
        samplers = _ranked(monkeypatch, world, lambda: make(ds, round_up))
        for s in samplers:
            s.set_epoch(epoch)
        shares = [list(s) for s in samplers]
        glob = samplers[0].global_indices().tolist()
        assert all(s.global_indices().tolist() == glob for s in samplers)
        assert [len(x) for x in shares] == [len(s) for s in samplers]
        # re-interleave the shares: position p of the epoch went to rank p % world
        total = sum(len(x) for x in shares)
        merged = [shares[p % world][p // world] for p in range(total)]
        if round_up:
            assert total == math.ceil(len(glob) / world) * world
            assert merged == (glob * 2)[:total]  # padding repeats the head only
        else:
            assert merged == glob
        assert len({(r, p) for r in range(world) for p in range(len(shares[r]))}) == total
    # set_epoch changes the sequence
    s = make(ds, round_up)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    assert list(s) != e0


# ------------------------------------------------------------- bad input ---
def test_bad_lambda_and_lengths():
    ds = long_tail_dataset()
    with pytest.raises(ValueError, match='`lam` must be a number >= 0'):
        SoftBalanceSampler(ds, lam=-0.1, seed=0)
    with pytest.raises(TypeError, match='`lam` must be a number'):
        SoftBalanceSampler(ds, lam='1', seed=0)
    with pytest.raises(ValueError, match='`num_samples_per_epoch` must be an int >= 1'):
        SoftBalanceSampler(ds, num_samples_per_epoch=0, seed=0)
    with pytest.raises(ValueError, match='`images_per_class` must be an int >= 1'):
        ICIPStrategySampler(ds, strategy='balanced', images_per_class=0, seed=0)
    with pytest.raises(TypeError, match='`images_per_class` must be an int'):
        ICIPStrategySampler(ds, strategy='balanced', images_per_class=2.5, seed=0)
    with pytest.raises(ValueError, match='`strategy` must be one of'):
        ICIPStrategySampler(ds, strategy='shuffle', seed=0)


def test_empty_classes_warn_once_and_unlabelled_images_never_drawn():
    ds = ToyDataset([[0], [], [2], [0], []], classes=('a', 'ghost', 'c', 'phantom'))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        s = SoftBalanceSampler(ds, lam=1.0, num_samples_per_epoch=5000, seed=0)
    msgs = [str(w.message) for w in rec if 'skipped' in str(w.message)]
    assert len(msgs) == 1 and "'ghost'" in msgs[0] and "'phantom'" in msgs[0]
    drawn = set(s)
    assert drawn == {0, 2, 3}
    assert s.class_probs.tolist() == [0.5, 0.0, 0.5, 0.0]
    with pytest.warns(UserWarning, match='ghost'):
        b = ICIPStrategySampler(ds, strategy='balanced', images_per_class=3, seed=0)
    assert set(b) <= {0, 2, 3} and len(b) == 6


def test_no_labels_at_all_raises():
    ds = ToyDataset([[], []], classes=('a', 'b'))
    with pytest.raises(ValueError, match='no training image carries a label'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        SoftBalanceSampler(ds, seed=0)


def test_dataset_without_classes_raises():
    ds = long_tail_dataset()
    ds.metainfo = {}
    with pytest.raises(ValueError, match="no 'classes'"):
        SoftBalanceSampler(ds, seed=0)
