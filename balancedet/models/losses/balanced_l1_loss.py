"""Balanced L1 loss (objective-level balance of Libra R-CNN).

Pang et al., "Libra R-CNN: Towards Balanced Learning for Object Detection",
CVPR 2019, https://arxiv.org/abs/1904.02701, Sec. 3.3.

The loss is defined through its gradient (Eq. 7)::

    dL_b/dx = alpha * ln(b * |x| / beta + 1)   if |x| < beta
            = gamma                            otherwise

with the continuity constraint (Eq. 9) ``alpha * ln(b + 1) = gamma``, i.e.
``b = exp(gamma / alpha) - 1``.  Integrating gives (Eq. 8, generalised to a
threshold ``beta``; the paper uses ``beta = 1``)::

    L_b(x) = alpha / b * (b|x| + beta) * ln(b|x|/beta + 1) - alpha|x|  if |x| < beta
           = gamma * |x| + gamma * beta / b - alpha * beta             otherwise

Registered as ``BalancedL1LossV2``.  Differences from mmdet 3.3's
``BalancedL1Loss``: identical values for ``beta = 1`` (the paper's setting),
but for ``beta != 1`` mmdet integrates ``(b|x| + 1)`` instead of
``(b|x| + beta)``, so its gradient is neither ``alpha*ln(b|x|/beta + 1)``
inside ``beta`` nor continuous at ``|x| = beta``; this implementation keeps
Eq. 7 exactly for every ``beta``.  Arguments are validated at build time with
clear errors, ``log1p`` is used for accuracy at small ``|x|``, and the
constant ``b`` is computed once.
"""
from __future__ import annotations

import math

import torch
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

from balancedet.utils import check_choice, check_number

_REDUCTIONS = ('none', 'mean', 'sum')


def balanced_l1_loss(pred: Tensor,
                     target: Tensor,
                     beta: float = 1.0,
                     alpha: float = 0.5,
                     gamma: float = 1.5) -> Tensor:
    """Element-wise balanced L1 loss (Eq. 8 of Libra R-CNN), no reduction.

    Args:
        pred (Tensor): Predictions, any shape.
        target (Tensor): Regression targets, same shape as ``pred`` (checked
            by ``BalancedL1LossV2.forward``).
        beta (float): Threshold between the log and the linear regime.
        alpha (float): Promotion factor of inliers (gradient scale).
        gamma (float): Gradient bound of outliers.

    Returns:
        Tensor: Loss with the shape of ``pred``.
    """
    b = math.exp(gamma / alpha) - 1.0
    x = torch.abs(pred - target)
    inlier = alpha / b * (b * x + beta) * torch.log1p(b * x / beta) - alpha * x
    outlier = gamma * x + (gamma * beta / b - alpha * beta)
    return torch.where(x < beta, inlier, outlier)


@MODELS.register_module()
class BalancedL1LossV2(nn.Module):
    """Balanced L1 loss of Libra R-CNN (Eqs. 7-9), see the module docstring.

    Args:
        alpha (float): Promotion factor of small (inlier) gradients, > 0.
            Defaults to 0.5.
        gamma (float): Upper bound of the gradient for outliers, > 0.
            Defaults to 1.5.
        beta (float): Switch point between the two regimes, > 0.
            Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight (float): Multiplier of the loss, >= 0. Defaults to 1.0.
    """

    def __init__(self,
                 alpha: float = 0.5,
                 gamma: float = 1.5,
                 beta: float = 1.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        owner = type(self).__name__
        self.alpha, self.gamma, self.beta = (
            check_number(v, n, owner=owner, low=0, low_open=True, fix=f'e.g. use {n}=1.0')
            for n, v in (('alpha', alpha), ('gamma', gamma), ('beta', beta)))
        check_choice(reduction, 'reduction', _REDUCTIONS, owner=owner)
        check_number(loss_weight, 'loss_weight', owner=owner, low=0)
        self.reduction = reduction
        self.loss_weight = float(loss_weight)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Tensor | None = None,
                avg_factor: float | None = None,
                reduction_override: str | None = None,
                **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Predictions, shape (N, 4) or any shape.
            target (Tensor): Targets, same shape as ``pred``.
            weight (Tensor, optional): Element-wise weight broadcastable to
                ``pred`` (e.g. (N, 4) or (N, 1)) or sample-wise of shape (N, ).
            avg_factor (float, optional): Normaliser for ``'mean'``.
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            Tensor: The loss.
        """
        check_choice(reduction_override, 'reduction_override', (None, ) + _REDUCTIONS,
                     owner='BalancedL1LossV2')
        reduction = reduction_override if reduction_override else self.reduction
        if pred.shape != target.shape:
            raise ValueError(f'BalancedL1LossV2: `pred` {tuple(pred.shape)} and `target` '
                             f'{tuple(target.shape)} must have the same shape')
        if avg_factor is not None and reduction == 'sum':
            raise ValueError('BalancedL1LossV2: `avg_factor` cannot be used with reduction '
                             "'sum' (use 'mean', or drop avg_factor)")
        if target.numel() == 0:
            # keep the graph connected for empty batches
            return pred.sum() * 0
        loss = balanced_l1_loss(
            pred, target, beta=self.beta, alpha=self.alpha, gamma=self.gamma)
        if weight is not None:
            if weight.dim() == 1 and loss.dim() > 1 and weight.shape[0] == loss.shape[0]:
                # sample-wise weight of shape (N, )
                weight = weight.view(-1, *([1] * (loss.dim() - 1)))
            weight = weight.expand_as(loss)
        loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        return self.loss_weight * loss
