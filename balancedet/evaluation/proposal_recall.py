"""Proposal recall metric: AR@N over IoU 0.5:0.95 and Recall@IoU at N proposals.

Implements the proposal evaluation used by Li et al., "Do we really need more
training data for object localization", ICIP 2017 (Tables 2-3 report average
recall), in the form of Hosang et al., "What makes for effective detection
proposals?", TPAMI 2016: for each image the top-N proposals (by score) are
matched one-to-one to the ground-truth boxes greedily, always taking the remaining
(gt, proposal) pair with the highest IoU; recall at IoU threshold ``t`` is the
fraction of all ground-truth boxes of the data set whose matched IoU is ``>= t``,
and average recall (AR) is the mean of the recall over ``t`` in
``{0.50, 0.55, ..., 0.95}`` (a discrete form of Hosang et al.'s
``AR = 2 * integral_{0.5}^{1} recall(o) do``).

This is the same matching as mmdet's ``eval_recalls``, whose ``np.array`` over
per-image IoU matrices of different shapes raises under numpy >= 1.24; here
every image is handled on its own, so ragged inputs are fine.

Ground truth comes either from a COCO ``ann_file`` (crowd boxes are skipped, as in
mmdet's ``proposal_fast``) or from the ``gt_instances`` / ``instances`` carried by
the data samples (``ignore_flag`` boxes are skipped). Identical boxes annotated
with several categories (multi-label annotations) are counted once, because a
proposal has no class.
"""
from collections.abc import Sequence
from typing import Dict, List, Optional

import numpy as np
import torch
from mmdet.registry import METRICS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger

from balancedet.utils import check_numbers, to_numpy

DEFAULT_IOU_THRS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


def greedy_matched_ious(ious: np.ndarray) -> np.ndarray:
    """One-to-one greedy matching on an IoU matrix (num_gts, num_proposals).

    Returns, for every ground-truth box, the IoU of the proposal it is matched
    to (0 when proposals run out before it gets one).
    """
    matched = np.zeros(ious.shape[0], dtype=np.float64)
    work = ious.astype(np.float64, copy=True)
    # every step takes the best remaining pair and strikes out its row and
    # column (IoUs are >= 0, so a struck-out -1 is never the best)
    for _ in range(min(work.shape)):
        g, p = divmod(int(np.argmax(work)), work.shape[1])
        matched[g] = work[g, p]
        work[g, :] = -1.0
        work[:, p] = -1.0
    return matched


def proposal_recalls(gts: Sequence[np.ndarray],
                     proposals: Sequence[np.ndarray],
                     proposal_nums: Sequence[int],
                     iou_thrs: Sequence[float],
                     scores: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
    """Recall table of shape (len(proposal_nums), len(iou_thrs)).

    Args:
        gts: per image, ground-truth boxes (n_i, 4) in xyxy.
        proposals: per image, proposals (k_i, 4) or (k_i, 5) (5th column is the
            score). They are ranked by score when scores are available,
            otherwise the given order is the ranking.
        proposal_nums: numbers N of top proposals to evaluate.
        iou_thrs: IoU thresholds.
        scores: optional per-image scores (k_i,), overriding a 5th column.
    """
    if len(gts) != len(proposals):
        raise ValueError(f'gts and proposals must list the same images, got '
                         f'{len(gts)} and {len(proposals)} entries')
    nums = [int(n) for n in proposal_nums]
    thrs = np.asarray(iou_thrs, dtype=np.float64)
    total = sum(int(np.asarray(g).reshape(-1, 4).shape[0]) for g in gts)
    matched = np.zeros((len(nums), total), dtype=np.float64)
    col = 0
    for i, (gt, prop) in enumerate(zip(gts, proposals)):
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        prop = np.asarray(prop, dtype=np.float64)
        prop = prop if prop.ndim == 2 else prop.reshape(-1, 4)
        s = prop[:, 4] if prop.shape[1] == 5 else None
        if scores is not None:
            s = np.asarray(scores[i], dtype=np.float64).reshape(-1)
        if s is not None:
            prop = prop[np.argsort(-s, kind='stable')]
        ious = bbox_overlaps(torch.from_numpy(gt),
                             torch.from_numpy(prop[:max(nums, default=0), :4])).numpy()
        for k, n in enumerate(nums):
            matched[k, col:col + gt.shape[0]] = greedy_matched_ious(ious[:, :n])
        col += gt.shape[0]
    if total == 0:
        return np.zeros((len(nums), thrs.size))
    return (matched[:, :, None] >= thrs[None, None, :]).sum(1) / float(total)


@METRICS.register_module()
class ProposalRecallMetric(BaseMetric):
    """Class-agnostic proposal recall (AR@N over IoU 0.5:0.95, Recall@IoU@N).

    Args:
        proposal_nums (Sequence[int]): N for the AR@N entries.
            Defaults to (10, 100, 300, 500, 1000).
        iou_thrs (Sequence[float]): thresholds averaged for AR.
            Defaults to 0.50:0.05:0.95.
        recall_at (Sequence[tuple]): extra single-threshold recalls, as
            ``(iou_thr, N)`` pairs, reported as ``Recall@{iou}@{N}``.
            Defaults to ((0.5, 300), ).
        ann_file (str, optional): COCO annotation file to read ground truth
            from. When None, ground truth is read from the data samples
            (``gt_instances`` or ``instances``).
        dedup_gts (bool): count identical ground-truth boxes of one image once
            (multi-label annotations). Defaults to True.
    """
    default_prefix: Optional[str] = 'proposal'

    def __init__(self,
                 proposal_nums: Sequence[int] = (10, 100, 300, 500, 1000),
                 iou_thrs: Sequence[float] = DEFAULT_IOU_THRS,
                 recall_at: Sequence[Sequence] = ((0.5, 300), ),
                 ann_file: Optional[str] = None,
                 dedup_gts: bool = True,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(proposal_nums, int):
            proposal_nums = (proposal_nums, )
        proposal_nums = tuple(proposal_nums)
        iou_thrs = tuple(float(t) for t in np.atleast_1d(iou_thrs))
        if not proposal_nums or not iou_thrs:
            raise ValueError('ProposalRecallMetric: proposal_nums and iou_thrs must not be '
                             'empty, e.g. proposal_nums=(100, 300), iou_thrs=(0.5, ); got '
                             f'{proposal_nums!r}, {iou_thrs!r}')
        check_numbers(proposal_nums, 'proposal_nums', owner='ProposalRecallMetric',
                      integer=True, low=1)
        check_numbers(iou_thrs, 'iou_thrs', owner='ProposalRecallMetric', low=0, low_open=True,
                      high=1)
        checked = []
        for item in recall_at:
            if len(item) != 2 or not 0 < float(item[0]) <= 1 or int(item[1]) <= 0:
                raise ValueError('ProposalRecallMetric: recall_at entries must be '
                                 '(iou_thr in (0, 1], N > 0) pairs, e.g. '
                                 f'((0.5, 300),), got {item!r}')
            checked.append((float(item[0]), int(item[1])))
        self.proposal_nums = proposal_nums
        self.iou_thrs = iou_thrs
        self.recall_at = tuple(checked)
        self.dedup_gts = dedup_gts
        self._coco = None
        if ann_file is not None:
            from mmdet.datasets.api_wrappers import COCO
            with get_local_path(ann_file, backend_args=backend_args) as path:
                self._coco = COCO(path)

    def _gt_from_coco(self, img_id) -> np.ndarray:
        anns = self._coco.load_anns(self._coco.get_ann_ids(img_ids=[img_id]))
        boxes = [[x, y, x + w, y + h] for a in anns if not (a.get('iscrowd', 0) or a.get('ignore'))
                 for x, y, w, h in [a['bbox']] if w > 0 and h > 0]
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    @staticmethod
    def _gt_from_sample(sample: dict) -> np.ndarray:
        if 'gt_instances' in sample and 'bboxes' in sample['gt_instances']:
            b = to_numpy(sample['gt_instances']['bboxes'])
            return np.asarray(b, dtype=np.float64).reshape(-1, 4)
        if 'instances' in sample:
            boxes = [ins['bbox'] for ins in sample['instances']
                     if not ins.get('ignore_flag', 0)]
            return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        raise ValueError(
            'ProposalRecallMetric: no ground truth found; give ann_file=... '
            '(COCO json) or keep LoadAnnotations in the test pipeline so that '
            'data samples carry gt_instances')

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_instances']
            scores = pred.get('scores', None)
            if self._coco is not None:
                gt = self._gt_from_coco(sample['img_id'])
            else:
                gt = self._gt_from_sample(sample)
                # ground truth in the data sample is in the input image frame
                # when the pipeline resized it; predictions are rescaled to the
                # original frame, so bring the gt back there too.
                if 'gt_instances' in sample and 'scale_factor' in sample:
                    sf = np.asarray(sample['scale_factor'], dtype=np.float64)
                    gt = gt / np.tile(sf, 2)[None, :]
            if self.dedup_gts:
                gt = np.unique(gt, axis=0)
            self.results.append((gt, np.asarray(to_numpy(pred['bboxes']), dtype=np.float64),
                                 None if scores is None else to_numpy(scores)))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        logger: MMLogger = MMLogger.get_current_instance()
        gts = [r[0] for r in results]
        props = [r[1] for r in results]
        scores = None
        if all(r[2] is not None for r in results):
            scores = [r[2] for r in results]
        nums = sorted(set(self.proposal_nums) | {n for _, n in self.recall_at})
        thrs = sorted(set(self.iou_thrs) | {t for t, _ in self.recall_at})
        table = proposal_recalls(gts, props, nums, thrs, scores=scores)
        ar_cols = [thrs.index(t) for t in self.iou_thrs]
        out = {f'AR@{n}': float(table[nums.index(n), ar_cols].mean()) for n in self.proposal_nums}
        out.update({f'Recall@{t:g}@{n}': float(table[nums.index(n), thrs.index(t)])
                    for t, n in self.recall_at})
        logger.info('proposal recall over %d images, %d gt boxes: %s', len(gts),
                    sum(g.shape[0] for g in gts),
                    ', '.join(f'{k}={v:.4f}' for k, v in out.items()))
        return out
