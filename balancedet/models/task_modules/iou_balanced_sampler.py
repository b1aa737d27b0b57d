"""IoU-balanced sampling (sample-level balance of Libra R-CNN).

Pang et al., "Libra R-CNN: Towards Balanced Learning for Object Detection",
CVPR 2019, https://arxiv.org/abs/1904.02701, Sec. 3.1.

Random sampling picks each of the ``M`` negative candidates with probability
``p = N / M`` (Eq. 1).  IoU-balanced sampling splits the IoU range above
``floor_thr`` into ``K = num_bins`` equal intervals and draws ``N / K``
negatives from each, i.e. a candidate in bin ``k`` holding ``M_k`` candidates
is drawn with probability (Eq. 2)::

    p_k = N / K * 1 / M_k,   k in [0, K)

A ``floor_fraction`` of the negatives is drawn uniformly from candidates with
IoU below ``floor_thr``; any shortfall (a bin or the floor set holding too few
candidates) is refilled uniformly from the remaining negatives, so exactly
``min(N, M)`` negatives are returned.  Optionally positives are
instance-balanced: drawn as evenly as possible across ground-truth boxes.

Registered in ``TASK_UTILS`` as ``BalancedIoUSampler``.  It reproduces the
sampling distribution of mmdet 3.3's ``IoUBalancedNegSampler`` (tested
statistically) with these differences:

* tensor-native: "the first q members of a set in a random permutation" is
  a uniform draw without replacement, so stage 1 ranks each candidate within
  its bin (a one-hot cumulative sum) in one ``randperm`` order of the
  compacted negatives; the refill from the bins' leftovers draws in an
  independent order (uniform keys and one top-k without a floor set, a second
  ``randperm`` with one).  No numpy / Python ``set`` round trips, no host
  copy of the IoUs; it runs on whatever device the assignment lives on, and
  the only synchronisations are the ``nonzero`` that compacts the candidates
  (and, with a floor set, the masked select that returns the sample);
* ``sample()`` returns mmdet's ``SamplingResult`` without passing the indices
  through ``unique()`` (two sorts): they are distinct by construction;
* stateless: ``floor_thr=-1`` (no floor set, all negatives binned from IoU 0)
  means the same thing on every call, whereas mmdet rewrites ``self.floor_thr``
  to 0 on its first call, changing the sampling from the second call on.
  ``floor_thr=0, floor_fraction=0`` draws as mmdet does from then on (IoU-0
  negatives only as refill), i.e. as mmdet's published Libra models trained
  (``configs/libra_rcnn/*_coco.py``; tested against mmdet's steady state);
* the top bin is closed (a negative with the maximal IoU falls in the last
  bin instead of only being reachable by the random refill);
* optional fixed upper edge ``max_iou_thr`` for the bins (e.g. the assigner's
  ``neg_iou_thr``) instead of the maximum IoU over all proposals;
* instance-balanced positives by exact water-filling (every ground truth gets
  ``k`` samples before any gets ``k + 1``) instead of mmdet's rounded quota;
* invalid arguments raise ``ValueError``/``TypeError`` at build time.
"""
from __future__ import annotations

import functools

import torch
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.task_modules.samplers import BaseSampler, SamplingResult
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import BaseBoxes, cat_boxes
from mmengine.structures import InstanceData
from torch import Tensor

from balancedet.utils import check_number


@functools.lru_cache(maxsize=None)
def _bin_fractions(num_bins: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Inner bin edges of [0, 1]: k / num_bins for k = 1 .. num_bins - 1 (read-only)."""
    return torch.arange(1, num_bins, device=device, dtype=dtype) / num_bins


@functools.lru_cache(maxsize=256)
def _group_rows(num_groups: int, device: torch.device) -> Tensor:
    """Column vector 0 .. num_groups - 1 (read-only), for one-hot comparisons."""
    return torch.arange(num_groups, device=device)[:, None]


# one-hot ranking allocates (groups x elements) int64; beyond this many
# elements ranks come from a stable sort instead
_ONE_HOT_LIMIT = 1 << 22


def _ranks_in_groups(groups: Tensor, num_groups: int) -> Tensor:
    """1-based rank of each element among the elements of its group, in the
    order of the tensor.  ``groups`` holds integers in [0, num_groups)."""
    if num_groups * groups.numel() <= _ONE_HOT_LIMIT:
        rows = _group_rows(num_groups, groups.device)
        return (groups == rows).cumsum(1).gather(0, groups[None]).view(-1)
    # a stable sort keeps the tensor order inside each group
    sorted_groups, order = torch.sort(groups, stable=True)
    counts = torch.bincount(groups, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    rank_sorted = torch.arange(1, groups.numel() + 1, device=groups.device) - starts[sorted_groups]
    return torch.empty_like(rank_sorted).scatter_(0, order, rank_sorted)


@TASK_UTILS.register_module()
class BalancedIoUSampler(BaseSampler):
    """IoU-balanced negative sampler with optional instance-balanced positives.

    Args:
        num (int): Total number of samples per image.
        pos_fraction (float): Fraction of positives, in [0, 1].
        floor_thr (float): IoU below which negatives form the random "floor"
            set. ``-1`` disables the floor set (all negatives are binned from
            IoU 0). ``0`` puts exactly-zero-IoU negatives in the floor set.
            Defaults to -1.
        floor_fraction (float): Fraction of negatives drawn from the floor set,
            in [0, 1]. Defaults to 0.
        num_bins (int): Number of equal IoU bins, >= 1. Defaults to 3.
        max_iou_thr (float, optional): Upper edge of the IoU bins. ``None``
            (default, as mmdet) uses the maximum IoU over all proposals of the
            image; a number (e.g. the assigner's ``neg_iou_thr``) spreads the
            bins evenly over the negative range.
        pos_balance (bool): Instance-balanced positives. Defaults to False
            (uniform random positives).
        neg_pos_ub (int): Upper bound of negatives per positive, -1 for none.
        add_gt_as_proposals (bool): Add ground truths as proposals.
    """

    def __init__(self,
                 num: int,
                 pos_fraction: float,
                 floor_thr: float = -1,
                 floor_fraction: float = 0.,
                 num_bins: int = 3,
                 max_iou_thr: float | None = None,
                 pos_balance: bool = False,
                 neg_pos_ub: int = -1,
                 add_gt_as_proposals: bool = True,
                 **kwargs) -> None:
        owner = type(self).__name__
        check_number(num, 'num', owner=owner, integer=True, low=0)
        check_number(pos_fraction, 'pos_fraction', owner=owner, low=0, high=1)
        if floor_thr != -1:
            check_number(floor_thr, 'floor_thr', owner=owner, low=0, high=1, high_open=True,
                         fix='-1 disables the floor set')
        check_number(floor_fraction, 'floor_fraction', owner=owner, low=0, high=1,
                     fix='e.g. floor_fraction=0')
        if floor_thr == -1 and floor_fraction > 0:
            raise ValueError(f'{owner}: `floor_fraction`={floor_fraction} needs a floor '
                             f'set; set `floor_thr` >= 0 or floor_fraction=0')
        check_number(num_bins, 'num_bins', owner=owner, integer=True, low=1, fix='e.g. num_bins=3')
        check_number(max_iou_thr, 'max_iou_thr', owner=owner, low=max(floor_thr, 0),
                     low_open=True, high=1, allow_none=True,
                     fix='its lower bound is max(floor_thr, 0); None: the largest IoU')
        if not isinstance(pos_balance, bool):
            raise TypeError(f'{owner}: `pos_balance` must be a bool, got '
                            f'{type(pos_balance).__name__}')
        # `context` is passed by mmdet's RoI heads, `rng` by mmdet's tests
        unknown = set(kwargs) - {'rng', 'context'}
        if unknown:
            raise TypeError(f'{owner}: unexpected arguments {sorted(unknown)}')
        super().__init__(
            num=num,
            pos_fraction=pos_fraction,
            neg_pos_ub=neg_pos_ub,
            add_gt_as_proposals=add_gt_as_proposals)
        self.floor_thr = float(floor_thr)
        self.floor_fraction = float(floor_fraction)
        self.num_bins = num_bins
        self.max_iou_thr = None if max_iou_thr is None else float(max_iou_thr)
        self.pos_balance = pos_balance

    def sample(self, assign_result: AssignResult, pred_instances: InstanceData,
               gt_instances: InstanceData, **kwargs) -> SamplingResult:
        """Sample positives and negatives into mmdet's ``SamplingResult``.

        The contract of ``BaseSampler.sample``: with ``add_gt_as_proposals``
        the ground truths are prepended to the priors (and to
        ``assign_result``, in place, as mmdet does); ``num * pos_fraction``
        positives at most; the rest negatives, at most ``neg_pos_ub`` per
        positive.  Unlike the base class it does not pass the indices through
        ``unique()``: both stages return distinct indices by construction (a
        tested property), and the two sorts cost as much as a sampling stage.
        """
        priors = pred_instances.priors
        gt_bboxes = gt_instances.bboxes
        if len(priors.shape) < 2:
            priors = priors[None, :]
        is_gt = priors.new_zeros((priors.shape[0], ), dtype=torch.uint8)
        if self.add_gt_as_proposals and len(gt_bboxes) > 0:
            as_priors = gt_bboxes
            if isinstance(gt_bboxes, BaseBoxes) and isinstance(priors, BaseBoxes):
                as_priors = gt_bboxes.convert_to(type(priors))
            priors = cat_boxes([as_priors, priors], dim=0)
            assign_result.add_gt_(gt_instances.labels)
            is_gt = torch.cat([is_gt.new_ones((len(as_priors), )), is_gt])
        pos_inds = self._sample_pos(assign_result, int(self.num * self.pos_fraction))
        num_neg = self.num - pos_inds.numel()
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(1, pos_inds.numel())))
        neg_inds = self._sample_neg(assign_result, num_neg)
        return SamplingResult(pos_inds=pos_inds, neg_inds=neg_inds, priors=priors,
                              gt_bboxes=gt_bboxes, assign_result=assign_result,
                              gt_flags=is_gt)

    # ------------------------------------------------------------------ #
    # positives
    # ------------------------------------------------------------------ #
    def _sample_pos(self, assign_result: AssignResult, num_expected: int,
                    **kwargs) -> Tensor:
        """Sample ``min(num_expected, #positives)`` positive indices."""
        gt_inds = assign_result.gt_inds
        num_expected = max(int(num_expected), 0)
        # positives are few: compact them first (the output size is theirs)
        pos_inds = torch.nonzero(gt_inds > 0).view(-1)
        m = pos_inds.numel()
        if m <= num_expected:
            return pos_inds
        order = torch.randperm(m, device=pos_inds.device)
        if not self.pos_balance:
            return pos_inds.index_select(0, order[:num_expected])
        pos_inds = pos_inds.index_select(0, order)
        # instance balance by water-filling: in the random order, the r-th
        # sample of a ground truth has rank r; keeping the num_expected
        # smallest ranks gives every ground truth k samples before any gets
        # k + 1.  Ties at the last rank are broken by position, so the random
        # order decides which ground truths get one more.
        rank = _ranks_in_groups(gt_inds.index_select(0, pos_inds), assign_result.num_gts + 1)
        top = torch.topk(rank, num_expected, largest=False, sorted=False).indices
        return pos_inds.index_select(0, top)

    # ------------------------------------------------------------------ #
    # negatives
    # ------------------------------------------------------------------ #
    def _groups(self, iou: Tensor, max_overlaps: Tensor) -> Tensor:
        """Group of each negative's IoU (Eq. 2's sets): with a floor set, 0 is
        the floor and 1..K the IoU bins; without one, 0..K-1 the bins.  The
        top edge is ``max_iou_thr`` or, as in mmdet, the largest IoU of any
        proposal (``max_overlaps``)."""
        lower = max(self.floor_thr, 0.)
        # inner edges lower + (k / K) * (upper - lower), none for one bin; the
        # first bin is open below, the last one closed above
        edges = _bin_fractions(self.num_bins, iou.device, iou.dtype)
        if self.num_bins > 1:
            if self.max_iou_thr is None:
                upper = max_overlaps.max()
            else:
                upper = iou.new_tensor(self.max_iou_thr)
            edges = edges * (upper - lower) + lower if lower else edges * upper
        if self.floor_thr >= 0:
            # floor_thr > 0: the floor is IoU < floor_thr; floor_thr == 0: the
            # floor is IoU == 0 (the next float above 0 is the edge)
            first = iou.new_tensor([self.floor_thr])
            if self.floor_thr == 0:
                first = torch.nextafter(first, iou.new_ones(()))
            edges = torch.cat([first, edges])
        # right=True: an IoU equal to an edge belongs to the bin above it
        return torch.bucketize(iou, edges, right=True)

    def _sample_neg(self, assign_result: AssignResult, num_expected: int,
                    **kwargs) -> Tensor:
        """Sample ``min(num_expected, #negatives)`` negative indices."""
        gt_inds = assign_result.gt_inds
        num_expected = max(int(num_expected), 0)
        # compact the negatives (this sizes the output: the one host sync)
        neg_inds = torch.nonzero(gt_inds == 0).view(-1)
        m = neg_inds.numel()
        if m <= num_expected:
            return neg_inds
        device = neg_inds.device
        has_floor = self.floor_thr >= 0
        num_iou_expected = int(num_expected * (1 - self.floor_fraction))
        per_bin = num_iou_expected // self.num_bins

        # work in a random order: "the first q members of a set in this
        # order" is a uniform draw of q members without replacement
        perm = neg_inds.index_select(0, torch.randperm(m, device=device))
        # (index_select: several times cheaper than advanced indexing for
        # these small tensors on CPU)
        max_overlaps = assign_result.max_overlaps
        groups = self._groups(max_overlaps.index_select(0, perm), max_overlaps)
        rank = _ranks_in_groups(groups, self.num_bins + has_floor)
        # stage 1: each bin keeps its first `per_bin` members
        over_quota = rank > per_bin
        if not has_floor:
            # Every negative is binned.  The bins' shortfall is refilled
            # uniformly from their leftovers: which members a bin left over
            # depends on `perm`, so the refill order is an independent uniform
            # key.  Key in [0, 1): stage 1, [1, 2): leftovers; the smallest
            # keys are the sample.
            key = torch.rand(m, device=device).add_(over_quota)
            top = torch.topk(key, num_expected, largest=False, sorted=False).indices
            return perm.index_select(0, top)
        floor = groups == 0
        take = ~floor & ~over_quota
        # the bins' shortfall is refilled uniformly from the binned leftovers,
        # in a second, independent random order
        perm2 = torch.randperm(m, device=device)
        leftover = (~floor & over_quota).index_select(0, perm2)
        need = num_iou_expected - take.sum()
        take[perm2] |= leftover & (leftover.cumsum(0) <= need)
        # stage 2: the floor set gets what the binned stage did not use (its
        # members' ranks are in the uniform order `perm`)
        need = num_expected - take.sum()
        take |= floor & (rank <= need)
        # stage 3: top up from the negatives not taken yet (only one of the
        # two sets can have any left), continuing the second random order
        rest = (~take).index_select(0, perm2)
        need = num_expected - take.sum()
        take[perm2] |= rest & (rest.cumsum(0) <= need)
        return perm.masked_select(take)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num={self.num}, pos_fraction='
                f'{self.pos_fraction}, floor_thr={self.floor_thr}, floor_fraction='
                f'{self.floor_fraction}, num_bins={self.num_bins}, max_iou_thr='
                f'{self.max_iou_thr}, pos_balance={self.pos_balance})')


__all__ = ['BalancedIoUSampler']
