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
  a uniform draw without replacement, so each stage is a masked cumulative
  sum over one ``randperm`` order (the refill stages use a second,
  independent order); no numpy / Python ``set`` round trips, no host copy of
  the IoUs, and it runs on whatever device the assignment lives on (the only
  synchronisation is the ``nonzero`` that sizes each output);
* stateless: ``floor_thr=-1`` (no floor set, all negatives binned from IoU 0)
  means the same thing on every call, whereas mmdet rewrites ``self.floor_thr``
  to 0 on its first call, changing the sampling from the second call on;
* the top bin is closed (a negative with the maximal IoU falls in the last
  bin instead of only being reachable by the random refill);
* optional fixed upper edge ``max_iou_thr`` for the bins (e.g. the assigner's
  ``neg_iou_thr``) instead of the maximum IoU over all proposals;
* instance-balanced positives by exact water-filling (every ground truth gets
  ``k`` samples before any gets ``k + 1``) instead of mmdet's rounded quota;
* invalid arguments raise ``ValueError``/``TypeError`` at build time.
"""
from __future__ import annotations

import torch
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.task_modules.samplers import BaseSampler
from mmdet.registry import TASK_UTILS
from torch import Tensor


def _ranks_in_groups(groups: Tensor, num_groups: int) -> Tensor:
    """Rank (0-based) of each element among the elements of its group, in
    the order of the tensor.  ``groups`` holds integers in [0, num_groups)."""
    # a stable sort keeps the tensor order inside each group
    sorted_groups, order = torch.sort(groups, stable=True)
    counts = torch.bincount(groups, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    rank_sorted = torch.arange(groups.numel(), device=groups.device) - starts[sorted_groups]
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
        name = type(self).__name__
        if isinstance(num, bool) or not isinstance(num, int) or num < 0:
            raise ValueError(f'{name}: `num` must be an int >= 0, got {num!r}')
        if not isinstance(pos_fraction, (int, float)) or not 0 <= pos_fraction <= 1:
            raise ValueError(f'{name}: `pos_fraction` must be in [0, 1], got '
                             f'{pos_fraction!r}')
        if not isinstance(floor_thr, (int, float)) or not (
                floor_thr == -1 or 0 <= floor_thr < 1):
            raise ValueError(f'{name}: `floor_thr` must be -1 (no floor set) or in '
                             f'[0, 1), got {floor_thr!r}')
        if not isinstance(floor_fraction, (int, float)) or not 0 <= floor_fraction <= 1:
            raise ValueError(f'{name}: `floor_fraction` must be in [0, 1], got '
                             f'{floor_fraction!r}; e.g. floor_fraction=0')
        if floor_thr == -1 and floor_fraction > 0:
            raise ValueError(f'{name}: `floor_fraction`={floor_fraction} needs a floor '
                             f'set; set `floor_thr` >= 0 or floor_fraction=0')
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
            raise ValueError(f'{name}: `num_bins` must be an int >= 1, got '
                             f'{num_bins!r}; e.g. num_bins=3')
        if max_iou_thr is not None and (
                not isinstance(max_iou_thr, (int, float))
                or not max(floor_thr, 0) < max_iou_thr <= 1):
            raise ValueError(f'{name}: `max_iou_thr` must be None or in '
                             f'(max(floor_thr, 0), 1], got {max_iou_thr!r}')
        if not isinstance(pos_balance, bool):
            raise TypeError(f'{name}: `pos_balance` must be a bool, got '
                            f'{type(pos_balance).__name__}')
        # `context` is passed by mmdet's RoI heads, `rng` by mmdet's tests
        unknown = set(kwargs) - {'rng', 'context'}
        if unknown:
            raise TypeError(f'{name}: unexpected arguments {sorted(unknown)}')
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
        pos_inds = pos_inds.index_select(0, torch.randperm(m, device=pos_inds.device))
        if not self.pos_balance:
            return pos_inds[:num_expected]
        # instance balance by water-filling: order by (rank of the sample
        # within its ground truth, random) and keep the first num_expected
        rank = _ranks_in_groups(gt_inds.index_select(0, pos_inds), assign_result.num_gts + 1)
        key = rank * m + torch.arange(m, device=pos_inds.device)
        top = torch.topk(key, num_expected, largest=False, sorted=False).indices
        return pos_inds.index_select(0, top)

    # ------------------------------------------------------------------ #
    # negatives
    # ------------------------------------------------------------------ #
    def _sample_neg(self, assign_result: AssignResult, num_expected: int,
                    **kwargs) -> Tensor:
        """Sample ``min(num_expected, #negatives)`` negative indices."""
        gt_inds = assign_result.gt_inds
        n = gt_inds.numel()
        num_expected = max(int(num_expected), 0)
        device = gt_inds.device
        if n == 0 or num_expected == 0:
            return gt_inds.new_zeros((0, ), dtype=torch.long)
        max_overlaps = assign_result.max_overlaps
        num_bins = self.num_bins
        num_iou_expected = int(num_expected * (1 - self.floor_fraction))
        per_bin = num_iou_expected // num_bins

        # work in a random order: "the first q members of a set in this
        # order" is a uniform draw of q members without replacement
        perm = torch.randperm(n, device=device)
        # (index_select / masked_select: several times cheaper than
        # advanced indexing for these small tensors on CPU)
        iou = max_overlaps.index_select(0, perm)
        is_neg = (gt_inds == 0).index_select(0, perm)

        # candidate sets (Eq. 2): binned set above the floor, floor set below
        lower = max(self.floor_thr, 0.)
        if self.floor_thr > 0:
            binned = is_neg & (iou >= self.floor_thr)
            floor = is_neg & (iou < self.floor_thr)
        elif self.floor_thr == 0:
            binned = is_neg & (iou > 0)
            floor = is_neg & (iou == 0)
        else:
            binned, floor = is_neg, None

        # stage 1: each bin keeps its first `per_bin` members ...
        if num_bins > 1:
            if self.max_iou_thr is None:
                upper = max_overlaps.max()
            else:
                upper = max_overlaps.new_tensor(self.max_iou_thr)
            # inner edges lower + k * interval, as mmdet computes them; the
            # first bin is open below, the last one closed above
            steps = torch.arange(1, num_bins, device=device, dtype=iou.dtype)
            edges = lower + steps * ((upper - lower) / num_bins)
            above = torch.cat([binned[None, :], iou[None, :] >= edges[:, None]])
            in_bin = torch.cat([above[:-1] & ~above[1:], above[-1:]]) & binned
            picked = in_bin & (in_bin.cumsum(1) <= per_bin)
            take = picked[0]
            for k in range(1, num_bins):
                take = take | picked[k]
        else:
            take = binned & (binned.cumsum(0) <= per_bin)
        # ... and the bins' shortfall is refilled uniformly from the binned
        # leftovers.  Which members a bin left over depends on `perm`, so the
        # refill draws in a second, independent random order.
        perm2 = torch.randperm(n, device=device)
        leftover = (binned & ~take).index_select(0, perm2)
        need = num_iou_expected - take.sum()
        refilled = leftover & (leftover.cumsum(0) <= need)
        if floor is None:
            # no floor set: every negative was binned, nothing left to add
            return torch.cat([perm.masked_select(take),
                              perm.index_select(0, perm2.masked_select(refilled))])
        take[perm2] |= refilled
        # stage 2: the floor set gets what the binned stage did not use
        need = num_expected - take.sum()
        take = take | (floor & (floor.cumsum(0) <= need))
        # stage 3: top up from the negatives not taken yet (only one of the
        # two sets can have any left), continuing the second random order
        rest = (is_neg & ~take).index_select(0, perm2)
        need = num_expected - take.sum()
        take[perm2] |= rest & (rest.cumsum(0) <= need)
        return perm.masked_select(take)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num={self.num}, pos_fraction='
                f'{self.pos_fraction}, floor_thr={self.floor_thr}, floor_fraction='
                f'{self.floor_fraction}, num_bins={self.num_bins}, max_iou_thr='
                f'{self.max_iou_thr}, pos_balance={self.pos_balance})')


__all__ = ['BalancedIoUSampler']
