"""CLSLocMetric on hand-built cases whose errors are known.

IoU is also checked against mmdet's ``bbox_overlaps`` (independent code).
"""
import pytest
import torch
from mmdet.registry import METRICS

import balancedet  # noqa: F401

GT_BOX = [10., 10., 50., 50.]


def det_sample(gt_labels, gt_boxes, labels, scores, boxes):
    return dict(
        gt_instances=dict(labels=torch.tensor(gt_labels), bboxes=torch.tensor(gt_boxes).float()
                          .reshape(-1, 4)),
        pred_instances=dict(labels=torch.tensor(labels), scores=torch.tensor(scores).float(),
                            bboxes=torch.tensor(boxes).float().reshape(-1, 4)))


def evaluate(samples, classes=tuple('abcdefgh'), **kwargs):
    metric = METRICS.build(dict(type='CLSLocMetric', **kwargs))
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_known_cases():
    good = [10., 10., 50., 50.]   # IoU 1
    poor = [30., 30., 70., 70.]   # IoU 400/2800 = 0.14
    samples = [
        # 1: top-1 class right, box right -> all correct
        det_sample([2], [GT_BOX], [2, 5], [0.9, 0.1], [good, good]),
        # 2: top-1 class right but box poor; 2nd guess has no other box of class 2
        #    (the guess of a class uses its best-scoring box) -> loc wrong at 1 and 5
        det_sample([2], [GT_BOX], [2, 2, 1], [0.9, 0.8, 0.7], [poor, good, good]),
        # 3: true class 3rd distinct class -> cls wrong at 1, right at 5; box right
        det_sample([4], [GT_BOX], [0, 0, 1, 4], [0.9, 0.85, 0.8, 0.7],
                   [good, good, good, good]),
        # 4: true class 6th distinct class -> wrong at 1 and 5
        det_sample([7], [GT_BOX], [0, 1, 2, 3, 4, 7], [.9, .8, .7, .6, .5, .4], [good] * 6),
        # 5: no detection at all -> wrong everywhere
        det_sample([1], [GT_BOX], [], [], []),
    ]
    res = evaluate(samples)
    assert res['cls_loc/top1_cls_err'] == pytest.approx(100 * 3 / 5)
    assert res['cls_loc/top5_cls_err'] == pytest.approx(100 * 2 / 5)
    assert res['cls_loc/top1_loc_err'] == pytest.approx(100 * 4 / 5)
    assert res['cls_loc/top5_loc_err'] == pytest.approx(100 * 3 / 5)
    assert res['cls_loc/num_images'] == 5


def test_iou_threshold_boundary_and_several_gt_boxes():
    # the guessed box matches the *second* gt box of the true class
    gt = [[0., 0., 10., 10.], [20., 20., 60., 60.]]
    half = [20., 20., 60., 40.]  # IoU with 2nd gt box = 800/1600 = 0.5 exactly
    res = evaluate([det_sample([3, 3], gt, [3], [0.9], [half])], topk=(1, ))
    assert res['cls_loc/top1_loc_err'] == 0.0
    res = evaluate([det_sample([3, 3], gt, [3], [0.9], [half])], topk=(1, ), iou_thr=0.51)
    assert res['cls_loc/top1_loc_err'] == 100.0
    # a box matching a gt box of *another* class does not count
    res = evaluate([det_sample([5, 3], gt, [3], [0.9], [[0., 0., 10., 10.]])], topk=(1, ))
    assert res['cls_loc/top1_cls_err'] == 0.0 and res['cls_loc/top1_loc_err'] == 100.0


def test_classifier_scores_give_cls_errors_only():
    samples = []
    for true, order in [(0, [0, 1, 2, 3, 4, 5, 6, 7]), (5, [1, 2, 5, 0, 3, 4, 6, 7]),
                        (7, [0, 1, 2, 3, 4, 5, 6, 7])]:
        score = torch.zeros(8)
        score[torch.tensor(order)] = torch.linspace(1, 0.1, 8)
        samples.append(dict(gt_instances=dict(labels=torch.tensor([true]),
                                              bboxes=torch.tensor([GT_BOX])),
                            pred_score=score))
    res = evaluate(samples)
    assert res['cls_loc/top1_cls_err'] == pytest.approx(200 / 3)
    assert res['cls_loc/top5_cls_err'] == pytest.approx(100 / 3)
    assert 'cls_loc/top1_loc_err' not in res


def test_images_without_gt_are_skipped():
    samples = [det_sample([1], [GT_BOX], [1], [0.5], [GT_BOX]),
               det_sample([], [], [1], [0.5], [GT_BOX])]
    res = evaluate(samples, topk=(1, ))
    assert res['cls_loc/num_images'] == 1 and res['cls_loc/num_skipped'] == 1
    assert res['cls_loc/top1_loc_err'] == 0.0


def test_k_larger_than_classes():
    metric = METRICS.build(dict(type='CLSLocMetric', topk=(1, 5)))
    with pytest.raises(ValueError, match='only 3 classes'):
        metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    with pytest.raises(ValueError, match='only 4 classes'):
        METRICS.build(dict(type='CLSLocMetric', topk=(1, 5), num_classes=4))
    metric = METRICS.build(dict(type='CLSLocMetric', topk=(1, 5)))
    with pytest.raises(ValueError, match='pred_score'):
        metric.process({}, [dict(gt_instances=dict(labels=torch.tensor([0]),
                                                   bboxes=torch.tensor([GT_BOX])),
                                 pred_score=torch.rand(3))])


@pytest.mark.parametrize('topk', [0, (), (1, 0), (1.5, ), 'top5', (True, )])
def test_bad_topk(topk):
    with pytest.raises(ValueError, match='topk'):
        METRICS.build(dict(type='CLSLocMetric', topk=topk))


def test_bad_iou_thr_and_missing_predictions():
    with pytest.raises(ValueError, match='iou_thr'):
        METRICS.build(dict(type='CLSLocMetric', iou_thr=0))
    metric = METRICS.build(dict(type='CLSLocMetric', topk=(1, )))
    with pytest.raises(KeyError, match='pred_instances'):
        metric.process({}, [dict(gt_instances=dict(labels=torch.tensor([0]),
                                                   bboxes=torch.tensor([GT_BOX])))])
