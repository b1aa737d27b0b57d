"""Tests for balancedet.evaluation.proposal_recall against independent references."""
import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import recall as mmdet_recall
from mmdet.registry import METRICS
from mmengine.structures import InstanceData

import balancedet  # noqa: F401
from balancedet.evaluation.proposal_recall import ProposalRecallMetric, proposal_recalls

THRS = np.round(np.arange(0.5, 0.951, 0.05), 2)


def _rand_boxes(rng, n, size=128):
    xy = rng.uniform(0, size * 0.8, (n, 2))
    wh = rng.uniform(4, size * 0.4, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def _iou_py(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def _brute_force(gts, props, nums, thrs):
    """Greedy one-to-one matching written as a walk over all (gt, proposal)
    pairs in decreasing IoU order, pure python, IoU computed here."""
    out = np.zeros((len(nums), len(thrs)))
    total = sum(len(g) for g in gts)
    for k, n in enumerate(nums):
        best = []
        for gt, prop in zip(gts, props):
            top = prop[:n]
            pairs = sorted(((_iou_py(g, p), i, j) for i, g in enumerate(gt)
                            for j, p in enumerate(top)), reverse=True)
            used_g, used_p, got = set(), set(), {}
            for iou, i, j in pairs:
                if i in used_g or j in used_p:
                    continue
                used_g.add(i)
                used_p.add(j)
                got[i] = iou
            best += [got.get(i, 0.0) for i in range(len(gt))]
        best = np.asarray(best)
        for t, thr in enumerate(thrs):
            out[k, t] = (best >= thr).sum() / total
    return out


def _make_case(seed, ragged=True):
    rng = np.random.default_rng(seed)
    gts, props = [], []
    for i in range(6):
        ng = int(rng.integers(1, 7)) if ragged else 4
        npr = int(rng.integers(5, 40)) if ragged else 30
        gt = _rand_boxes(rng, ng)
        # proposals: jittered copies of the gts mixed with random boxes
        jit = np.repeat(gt, 3, 0) + rng.normal(0, 4, (3 * ng, 4))
        jit[:, 2:] = np.maximum(jit[:, 2:], jit[:, :2] + 1)
        prop = np.concatenate([jit, _rand_boxes(rng, npr)])
        rng.shuffle(prop)
        gts.append(gt)
        props.append(prop)
    return gts, props


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_brute_force_and_mmdet(seed):
    gts, props = _make_case(seed)
    nums = [1, 3, 10, 50]
    ours = proposal_recalls(gts, props, nums, THRS)
    np.testing.assert_allclose(ours, _brute_force(gts, props, nums, THRS), atol=1e-9)
    # mmdet's own matching, fed an object array so ragged shapes are allowed
    all_ious = np.empty(len(gts), dtype=object)
    for i, (g, p) in enumerate(zip(gts, props)):
        all_ious[i] = mmdet_recall.bbox_overlaps(g, p[:max(nums)])
    ref = mmdet_recall._recalls(all_ious, np.array(nums), THRS)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_ragged_inputs():
    gts, props = _make_case(3)
    assert proposal_recalls(gts, props, [10], [0.5]).shape == (1, 1)


@pytest.mark.xfail(strict=True, raises=ValueError, reason="mmdet 3.3's eval_recalls fails on "
                   'ragged per-image inputs under numpy 2; XPASS = mmdet fixed it')
def test_mmdet_eval_recalls_on_ragged_inputs():
    gts, props = _make_case(3)
    mmdet_recall.eval_recalls(gts, props, [10], 0.5)


def test_scores_rank_proposals():
    gt = [np.array([[0., 0., 10., 10.]])]
    # the perfect box has the lowest score: AR@1 must be 0, AR@2 must be 1
    props = [np.array([[50., 50., 60., 60., 0.9], [0., 0., 10., 10., 0.1]])]
    r = proposal_recalls(gt, props, [1, 2], [0.5])
    np.testing.assert_allclose(r[:, 0], [0.0, 1.0])


def test_metric_end_to_end_and_dedup():
    metric = METRICS.build(dict(type='ProposalRecallMetric',
                                proposal_nums=(1, 2), recall_at=((0.5, 2), )))
    metric.dataset_meta = {}
    pred = InstanceData(
        bboxes=torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 34.]]),
        scores=torch.tensor([0.9, 0.8]))
    gt = InstanceData(bboxes=torch.tensor(
        [[0., 0., 10., 10.], [0., 0., 10., 10.], [20., 20., 30., 30.]]))
    sample = dict(pred_instances=pred, gt_instances=gt, img_id=0,
                  scale_factor=(1.0, 1.0))
    metric.process({}, [sample])
    res = metric.evaluate(1)
    # after dedup there are 2 gts; the second is matched at IoU 10*10/(10*14)
    iou2 = 100 / 140
    exp_ar2 = np.mean([1.0 + (iou2 >= t) for t in THRS]) / 2
    assert res['proposal/AR@1'] == pytest.approx(0.5)
    assert res['proposal/AR@2'] == pytest.approx(exp_ar2)
    assert res['proposal/Recall@0.5@2'] == pytest.approx(1.0)


def test_metric_gt_rescaled_to_original_frame():
    metric = ProposalRecallMetric(proposal_nums=(1, ), recall_at=())
    metric.dataset_meta = {}
    pred = InstanceData(bboxes=torch.tensor([[0., 0., 10., 10.]]),
                        scores=torch.tensor([1.0]))
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 20., 20.]]))  # resized x2
    metric.process({}, [dict(pred_instances=pred, gt_instances=gt, img_id=0,
                             scale_factor=(2.0, 2.0))])
    assert metric.evaluate(1)['proposal/AR@1'] == pytest.approx(1.0)


@pytest.mark.parametrize('kwargs', [
    dict(proposal_nums=()), dict(proposal_nums=(0, )), dict(iou_thrs=(0.5, 1.5)),
    dict(recall_at=((0.0, 300), )), dict(recall_at=((0.5, 0), ))])
def test_bad_config(kwargs):
    with pytest.raises(ValueError, match='ProposalRecallMetric'):
        ProposalRecallMetric(**kwargs)


def test_metric_reads_coco_ann_file(tmp_path):
    import json
    anns = [dict(id=1, image_id=7, category_id=1, bbox=[0, 0, 10, 10], area=100, iscrowd=0),
            # same box, second category (multi-label): counted once
            dict(id=2, image_id=7, category_id=2, bbox=[0, 0, 10, 10], area=100, iscrowd=0),
            dict(id=3, image_id=7, category_id=1, bbox=[30, 30, 20, 10], area=200, iscrowd=0),
            # crowd boxes are not proposals' targets
            dict(id=4, image_id=7, category_id=1, bbox=[60, 60, 5, 5], area=25, iscrowd=1)]
    coco = dict(images=[dict(id=7, file_name='a.jpg', width=100, height=100)],
                annotations=anns,
                categories=[dict(id=1, name='a'), dict(id=2, name='b')])
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(coco))
    metric = ProposalRecallMetric(proposal_nums=(1, 2), recall_at=(), ann_file=str(path))
    metric.dataset_meta = {}
    pred = InstanceData(bboxes=torch.tensor([[30., 30., 50., 40.], [0., 0., 10., 10.]]),
                        scores=torch.tensor([0.9, 0.8]))
    metric.process({}, [dict(pred_instances=pred, img_id=7)])
    res = metric.evaluate(1)
    assert res['proposal/AR@1'] == pytest.approx(0.5)
    assert res['proposal/AR@2'] == pytest.approx(1.0)
