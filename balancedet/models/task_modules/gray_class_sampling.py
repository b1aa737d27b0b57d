"""Gray class for RPN training (Li et al., ICIP 2017, section 3, remark (c)).

Li et al., "Do we really need more training data for object localization",
ICIP 2017, section 3 (training remarks): besides foreground and background, anchors whose best
IoU with the ground truth falls in a middle band get a third, "gray" label, so
that the objectness classifier is not forced to call half-overlapping anchors
either object or background; the number of sampled gray anchors is half the
number of sampled positives + negatives, and negatives are capped at twice the
positives (remark (b)). Where the paper is silent the thresholds follow the
authors' public code (hli2020/zoom_network): foreground IoU >= 0.6, background
IoU < 0.15, gray IoU in [0.25, 0.49], gray count = floor((fg + bg) / 2).

``GrayBandMaxIoUAssigner`` is mmdet's ``MaxIoUAssigner`` (fg/bg/ignore) that also
marks the gray band; ``GrayClassSampler`` is mmdet's ``RandomSampler``
(which already implements the negative cap via ``neg_pos_ub``) that draws the gray
anchors and exposes them as ``sampling_result.gray_inds``.
"""
from typing import Optional, Sequence

import torch
from mmdet.models.task_modules.assigners import AssignResult, MaxIoUAssigner
from mmdet.models.task_modules.samplers import RandomSampler, SamplingResult
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from balancedet.utils import check_number

GRAY_MASK_KEY = 'gray_mask'


@TASK_UTILS.register_module()
class GrayBandMaxIoUAssigner(MaxIoUAssigner):
    """MaxIoU assigner that also marks ignored anchors of a middle IoU band.

    An anchor is gray when it is neither positive nor negative (``gt_inds``
    is -1) and its best IoU with any gt lies in ``gray_iou_range`` (both ends
    included). The mask is stored as the extra property ``'gray_mask'`` of the
    returned :class:`AssignResult`.

    Args:
        pos_iou_thr (float): IoU >= this is foreground. Defaults to 0.6.
        neg_iou_thr (float): IoU < this is background. Defaults to 0.15.
        gray_iou_range (tuple[float, float]): gray band. Defaults to
            (0.25, 0.49).
        min_pos_iou, match_low_quality, ...: as in mmdet's ``MaxIoUAssigner``.
    """

    def __init__(self,
                 pos_iou_thr: float = 0.6,
                 neg_iou_thr: float = 0.15,
                 gray_iou_range: Sequence[float] = (0.25, 0.49),
                 min_pos_iou: float = 0.3,
                 match_low_quality: bool = True,
                 **kwargs) -> None:
        if isinstance(neg_iou_thr, tuple):
            raise ValueError('GrayBandMaxIoUAssigner: neg_iou_thr must be a '
                             'single float (background is IoU < neg_iou_thr)')
        if len(gray_iou_range) != 2:
            raise ValueError('GrayBandMaxIoUAssigner: gray_iou_range must be '
                             f'(low, high), got {gray_iou_range!r}')
        lo, hi = float(gray_iou_range[0]), float(gray_iou_range[1])
        if not 0 <= neg_iou_thr <= lo <= hi < pos_iou_thr <= 1:
            raise ValueError(
                'GrayBandMaxIoUAssigner: need 0 <= neg_iou_thr <= '
                'gray_iou_range[0] <= gray_iou_range[1] < pos_iou_thr <= 1, got '
                f'neg_iou_thr={neg_iou_thr}, gray_iou_range={gray_iou_range}, '
                f'pos_iou_thr={pos_iou_thr}')
        super().__init__(pos_iou_thr=pos_iou_thr, neg_iou_thr=neg_iou_thr,
                         min_pos_iou=min_pos_iou, match_low_quality=match_low_quality, **kwargs)
        self.gray_iou_range = (lo, hi)

    def assign(self,
               pred_instances: InstanceData,
               gt_instances: InstanceData,
               gt_instances_ignore: Optional[InstanceData] = None,
               **kwargs) -> AssignResult:
        result = super().assign(pred_instances, gt_instances,
                                gt_instances_ignore, **kwargs)
        lo, hi = self.gray_iou_range
        ov = result.max_overlaps
        gray = (result.gt_inds == -1) & (ov >= lo) & (ov <= hi)
        result.set_extra_property(GRAY_MASK_KEY, gray)
        return result


@TASK_UTILS.register_module()
class GrayClassSampler(RandomSampler):
    """Random fg/bg sampler (negatives capped) that also samples gray anchors.

    After the usual positive/negative sampling, ``floor(gray_ratio *
    (num_pos + num_neg))`` anchors are drawn at random from the gray band
    (fewer if the band has fewer) and stored as ``sampling_result.gray_inds``.
    Needs the ``'gray_mask'`` produced by :class:`GrayBandMaxIoUAssigner`.

    Args:
        num (int): fg + bg samples per image. Defaults to 256.
        pos_fraction (float): Defaults to 0.5.
        neg_pos_ub (float): negatives <= neg_pos_ub * positives (the paper's
            negative cap). Defaults to 2.
        gray_ratio (float): gray samples per fg+bg sample. Defaults to 0.5.
    """

    def __init__(self,
                 num: int = 256,
                 pos_fraction: float = 0.5,
                 neg_pos_ub: float = 2,
                 gray_ratio: float = 0.5,
                 add_gt_as_proposals: bool = False,
                 **kwargs) -> None:
        if add_gt_as_proposals:
            raise ValueError('GrayClassSampler: add_gt_as_proposals=True is not '
                             'supported (gray indices refer to the anchors); set '
                             'add_gt_as_proposals=False')
        self.gray_ratio = check_number(gray_ratio, 'gray_ratio', owner='GrayClassSampler', low=0)
        super().__init__(num=num, pos_fraction=pos_fraction, neg_pos_ub=neg_pos_ub,
                         add_gt_as_proposals=False, **kwargs)

    def sample(self, assign_result: AssignResult, pred_instances: InstanceData,
               gt_instances: InstanceData, **kwargs) -> SamplingResult:
        gray_mask = assign_result.get_extra_property(GRAY_MASK_KEY)
        if gray_mask is None:
            raise ValueError('GrayClassSampler needs an assigner that marks the '
                             "gray band, e.g. assigner=dict(type="
                             "'GrayBandMaxIoUAssigner')")
        result = super().sample(assign_result, pred_instances, gt_instances,
                                **kwargs)
        gallery = torch.nonzero(gray_mask, as_tuple=False).view(-1)
        num_gray = min(int(self.gray_ratio * (result.pos_inds.numel() + result.neg_inds.numel())),
                       gallery.numel())
        gray_inds = (self.random_choice(gallery, num_gray) if num_gray > 0
                     else gallery.new_zeros((0, )))
        result.gray_inds = gray_inds.unique()
        return result
