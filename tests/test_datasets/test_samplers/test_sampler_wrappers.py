"""No double re-balancing: class-based samplers over dataset wrappers."""
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.dataset import ClassBalancedDataset, ConcatDataset, RepeatDataset

import balancedet  # noqa: F401
from balancedet.datasets.balanced_coco import BalancedCocoDataset
from balancedet.datasets.coco_lvis_generator import generate_tiny_coco
from balancedet.datasets.samplers.class_index import ClassImageIndex
from balancedet.datasets.samplers.icip_samplers import ICIPStrategySampler
from balancedet.datasets.samplers.soft_balance_sampler import SoftBalanceSampler
from balancedet.engine.hybrid_schedule_hook import HybridScheduleHook


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('wrappers'))
    generate_tiny_coco(root, num_train=16, num_val=0, img_size=64, seed=2)
    return root


def make(root):
    return BalancedCocoDataset(data_root=root + '/',
                               ann_file='annotations/instances_train2017.json',
                               data_prefix=dict(img='train2017/'), pipeline=[])


def brute_counts(root):
    """Images per class straight from the file (crowd boxes not counted)."""
    with open(root + '/annotations/instances_train2017.json') as f:
        d = json.load(f)
    ids = [c['id'] for c in sorted(d['categories'], key=lambda c: c['id'])]
    per = [set() for _ in ids]
    for a in d['annotations']:
        if not a['iscrowd']:
            per[ids.index(a['category_id'])].add(a['image_id'])
    return np.array([len(s) for s in per])


@pytest.mark.parametrize('sampler', [lambda ds: SoftBalanceSampler(ds, lam=0.5, seed=0),
                                     lambda ds: ICIPStrategySampler(ds, strategy='balanced',
                                                                    seed=0)],
                         ids=['soft-balance', 'icip'])
def test_refused_over_class_balanced_dataset(coco, sampler):
    inner = make(coco)
    cbd = ClassBalancedDataset(inner, oversample_thr=0.3)
    # the reason: through the wrapper the repeated copies would count as extra images
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        through = ClassImageIndex.from_dataset(cbd).counts
    assert (through >= brute_counts(coco)).all() and (through > brute_counts(coco)).any()
    with pytest.raises(ValueError, match=r'over ClassBalancedDataset\(oversample_thr=0.3\) at '
                                         r'train_dataloader.dataset would re-balance twice.*'
                                         r'Drop the ClassBalancedDataset wrapper'):
        sampler(cbd)
    class Wrapper:  # a see-through wrapper (like mmdet's MultiImageMixDataset)
        def __init__(self, dataset):
            self.dataset, self.metainfo = dataset, dataset.metainfo

        def __len__(self):
            return len(self.dataset)

        def get_data_info(self, idx):
            return self.dataset.get_data_info(idx)

    with pytest.raises(ValueError, match=r'at train_dataloader.dataset.dataset would'):
        sampler(Wrapper(cbd))


def test_seen_through_concat_and_repeat(coco):
    counts = brute_counts(coco)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        concat = SoftBalanceSampler(ConcatDataset([make(coco), make(coco)]), lam=0.5, seed=0)
        repeat = SoftBalanceSampler(RepeatDataset(make(coco), times=3), lam=0.5, seed=0)
        plain = SoftBalanceSampler(make(coco), lam=0.5, seed=0)
    np.testing.assert_array_equal(plain.index.counts, counts)
    np.testing.assert_array_equal(concat.index.counts, 2 * counts)
    np.testing.assert_array_equal(repeat.index.counts, 3 * counts)
    # eq. 8 with n_i scaled by a constant: the class probabilities do not change
    np.testing.assert_allclose(repeat.class_probs, plain.class_probs, rtol=1e-12)
    np.testing.assert_allclose(concat.class_probs, plain.class_probs, rtol=1e-12)
    assert len(repeat) == 3 * len(plain)


def test_refused_when_it_cannot_see_through(coco):
    class Opaque:
        metainfo = dict(classes=('a', ))

        def __len__(self):
            return 1

    with pytest.raises(ValueError, match='cannot see through Opaque.*get_cat_ids'):
        SoftBalanceSampler(Opaque(), lam=1.0, seed=0)


def test_hybrid_hook_refuses_before_training(coco):
    hook = HybridScheduleHook(switch_epoch=1, sampler=dict(type='SoftBalanceSampler', lam=0.5))
    cbd = ClassBalancedDataset(make(coco), oversample_thr=1e-3)
    runner = SimpleNamespace(
        train_loop=SimpleNamespace(max_epochs=2, run_epoch=None,
                                   dataloader=SimpleNamespace(dataset=cbd)),
        param_schedulers=[])
    with pytest.raises(ValueError, match='SoftBalanceSampler over ClassBalancedDataset'):
        hook.before_train(runner)
    runner.train_loop.dataloader.dataset = make(coco)
    hook.before_train(runner)  # the plain dataset is fine


def test_empty_class_warning_is_summarised(coco):
    with pytest.warns(UserWarning, match=r'appear in no training image') as rec:
        SoftBalanceSampler(make(coco), lam=0.5, seed=0)
    msg = [str(w.message) for w in rec if 'no training image' in str(w.message)][0]
    num_empty = int((brute_counts(coco) == 0).sum())
    assert msg.startswith(f'SoftBalanceSampler: {num_empty} class(es)')
    assert f'... ({num_empty - 5} more)' in msg and msg.count('(label ') == 5
