"""ImageNet CLS-LOC metric: top-k classification and localization error.

Russakovsky et al., "ImageNet Large Scale Visual Recognition Challenge",
IJCV 2015, Sec. 4.1 (image classification, Eq. 1) and Sec. 4.2 (single-object
localization, Eq. 2). An algorithm makes up to k guesses ``(c_j, b_j)`` per
image; with true class ``C`` and ground-truth boxes ``B_m`` of that class:

* classification error (Eq. 1): ``min_j d(c_j, C)``, ``d = 0`` iff ``c_j == C``;
* localization error (Eq. 2): ``min_j max(d(c_j, C), min_m f(b_j, B_m))``,
  ``f = 0`` iff ``IoU(b_j, B_m) >= 0.5``;

averaged over the images and reported in percent for every k in ``topk``.

Guesses from a detector (``pred_instances``): the detections are ranked by
score; the j-th guess is the j-th *distinct* class in that order, with the box
of that class's highest-scoring detection. Guesses from a classifier (a
``pred_score`` vector of per-class scores, no boxes): the k highest classes;
then only the classification errors are reported.

The true class(es) and boxes come from the data sample's ``gt_instances``,
which must be in the original image's coordinates, like the predictions (load
annotations after ``Resize`` in the test pipeline, as the demo configs do).
An image with several gt classes counts a guess of any of them as correct; an
image without gt boxes is skipped (and counted in ``num_skipped``).
"""
from collections.abc import Sequence

import numpy as np
from mmdet.evaluation.functional import bbox_overlaps
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from balancedet.utils import check_number, to_numpy


def rank_guesses(bboxes, scores, labels, max_k):
    """Top ``max_k`` ``(class, box)`` guesses from a detector's output."""
    order = np.argsort(-to_numpy(scores), kind='stable')
    bboxes, labels = to_numpy(bboxes).reshape(-1, 4), to_numpy(labels)
    guesses, seen = [], set()
    for i in order:
        c = int(labels[i])
        if c not in seen:
            seen.add(c)
            guesses.append((c, bboxes[i].astype(np.float64)))
            if len(guesses) == max_k:
                break
    return guesses


@METRICS.register_module()
class CLSLocMetric(BaseMetric):
    """Top-k classification and localization error (ILSVRC CLS-LOC).

    Args:
        topk (Sequence[int]): The k values. Defaults to ``(1, 5)``.
        iou_thr (float): IoU a guessed box needs with a gt box of the true
            class. Defaults to 0.5.
        num_classes (int, optional): Number of classes, to check ``topk`` at
            build time; otherwise checked against ``dataset_meta['classes']``
            (or the length of ``pred_score``) when known.
        collect_device, prefix: see :class:`mmengine.evaluator.BaseMetric`.
    """

    default_prefix = 'cls_loc'

    def __init__(self, topk=(1, 5), iou_thr=0.5, num_classes=None, collect_device='cpu',
                 prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(topk, int):
            topk = (topk, )
        if (not isinstance(topk, Sequence) or not topk
                or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                           for k in topk)):
            raise ValueError(f'CLSLocMetric: topk must be a positive int or a non-empty sequence '
                             f'of positive ints, e.g. (1, 5); got {topk!r}')
        self.iou_thr = check_number(iou_thr, 'iou_thr', owner='CLSLocMetric', low=0,
                                    low_open=True, high=1)
        self.topk = tuple(sorted(set(topk)))
        self.num_classes = num_classes
        if num_classes is not None:
            self._check_k(num_classes, 'num_classes')

    def _check_k(self, num_classes, source):
        if max(self.topk) > num_classes:
            raise ValueError(
                f'CLSLocMetric: topk={self.topk} asks for {max(self.topk)} guesses but there '
                f'are only {num_classes} classes ({source}); use k <= {num_classes}, '
                f'e.g. topk=(1, {min(5, num_classes)})')

    @property
    def dataset_meta(self):
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta):
        self._dataset_meta = meta
        if meta and meta.get('classes') is not None:
            self._check_k(len(meta['classes']), "dataset_meta['classes']")

    def process(self, data_batch, data_samples):
        max_k = max(self.topk)
        for ds in data_samples:
            gt = ds['gt_instances']
            gt_boxes = to_numpy(gt['bboxes']).reshape(-1, 4).astype(np.float64)
            gt_labels = to_numpy(gt['labels']).reshape(-1).astype(np.int64)
            if 'pred_instances' in ds:
                pred = ds['pred_instances']
                guesses, with_boxes = rank_guesses(pred['bboxes'], pred['scores'],
                                                   pred['labels'], max_k), True
            elif 'pred_score' in ds:
                score = to_numpy(ds['pred_score']).reshape(-1)
                self._check_k(score.shape[0], 'length of pred_score')
                guesses = [(int(c), None) for c in np.argsort(-score, kind='stable')[:max_k]]
                with_boxes = False
            else:
                raise KeyError('CLSLocMetric needs `pred_instances` (detector) or `pred_score` '
                               f'(classifier) in each data sample; got keys {sorted(ds)}')
            self.results.append(dict(gt_boxes=gt_boxes, gt_labels=gt_labels, guesses=guesses,
                                     with_boxes=with_boxes))

    def image_errors(self, result):
        """Per-k ``(cls_err, loc_err)`` (0 or 1; loc_err None without boxes)."""
        true = set(result['gt_labels'].tolist())
        cls_ok = [c in true for c, _ in result['guesses']]
        gt_boxes, gt_labels = result['gt_boxes'], result['gt_labels']
        loc_ok = [c in true and box is not None and bool(
            (bbox_overlaps(box[None], gt_boxes[gt_labels == c]) >= self.iou_thr).any())
            for c, box in result['guesses']]
        return {k: (int(not any(cls_ok[:k])),
                    int(not any(loc_ok[:k])) if result['with_boxes'] else None)
                for k in self.topk}

    def compute_metrics(self, results):
        logger = MMLogger.get_current_instance()
        valid = [r for r in results if len(r['gt_labels'])]
        skipped = len(results) - len(valid)
        if skipped:
            logger.warning(f'CLSLocMetric: {skipped} image(s) without gt boxes skipped')
        if not valid:
            raise ValueError('CLSLocMetric: no image with a ground-truth box to evaluate; the '
                             'test pipeline must load annotations (LoadAnnotations)')
        errors = [self.image_errors(r) for r in valid]
        kinds = ('cls', 'loc') if all(r['with_boxes'] for r in valid) else ('cls', )
        metrics = {f'top{k}_{name}_err': 100.0 * float(np.mean([e[k][j] for e in errors]))
                   for j, name in enumerate(kinds) for k in self.topk}
        metrics['num_images'] = len(valid)
        metrics['num_skipped'] = skipped
        return metrics
