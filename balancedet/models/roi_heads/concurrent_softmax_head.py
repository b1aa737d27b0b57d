"""RoI and bbox heads that train the concurrent softmax on multi-hot targets.

Peng et al., "Large-Scale Object Detection in the Wild from Imbalanced
Multi-Labels", CVPR 2020, eq. 3 needs, for every sampled RoI, the multi-hot
label ``y`` of the ground truth it is matched to.  mmdet's loss-side hooks
(``custom_cls_channels`` / ``custom_activation`` / ``custom_accuracy``, used
by ``SeesawLoss``) give the loss the RoI's single integer label only, because
``SamplingResult`` carries ``pos_gt_labels`` and not the ground truth's other
labels.  So two thin subclasses carry them:

* :class:`ConcurrentSoftmaxRoIHead` (``StandardRoIHead``) attaches
  ``pos_gt_multi_labels = gt_instances.multi_labels[pos_assigned_gt_inds]``
  to each sampling result (``gt_instances.multi_labels`` is packed by
  :class:`~balancedet.datasets.transforms.PackMultiLabelDetInputs`).
* :class:`ConcurrentSoftmaxBBoxHead` (``Shared2FCBBoxHead``) builds the
  ``(num_rois, C + 1)`` multi-hot target (background RoIs: column ``C``) and
  passes it to ``loss_cls``; box regression, ``acc`` and the returned
  ``bbox_targets`` use mmdet's integer labels unchanged.

Inference (eq. 5, ``test_mode``) needs no subclass: the stock head calls
``loss_cls.get_activation``.  With a ``loss_cls`` whose
``use_multi_hot`` is False (e.g. ``ConcurrentSoftmaxLoss(train_mode='softmax')``
or ``CrossEntropyLoss``) and with single-label data, both heads behave exactly
like their mmdet parents.
"""

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import InstanceList
from mmengine.logging import print_log
from torch import Tensor

from balancedet.models.losses.concurrent_softmax_loss import ConcurrentSoftmaxLoss


@MODELS.register_module()
class ConcurrentSoftmaxRoIHead(StandardRoIHead):
    """``StandardRoIHead`` that hands each RoI's ground-truth multi-labels to
    the bbox head (see module docstring)."""

    def loss(self, x: tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: list[DetDataSample]) -> dict:
        self._batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        try:
            return super().loss(x, rpn_results_list, batch_data_samples)
        finally:
            self._batch_gt_instances = None

    def bbox_loss(self, x: tuple[Tensor], sampling_results: list[SamplingResult]) -> dict:
        gts = getattr(self, '_batch_gt_instances', None)
        if gts is not None:
            for res, gt in zip(sampling_results, gts):
                if 'multi_labels' in gt:
                    res.pos_gt_multi_labels = gt.multi_labels[res.pos_assigned_gt_inds]
        return super().bbox_loss(x, sampling_results)


@MODELS.register_module()
class ConcurrentSoftmaxBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` that gives ``loss_cls`` multi-hot targets when
    ``loss_cls.use_multi_hot`` is True (see module docstring).  A
    ``ConcurrentSoftmaxLoss`` config without ``num_classes`` gets the head's."""

    _warned_single = False

    def __init__(self, *args, **kwargs) -> None:
        loss = kwargs.get('loss_cls')
        kind = loss.get('type') if isinstance(loss, dict) else None
        kind = MODELS.get(kind) if isinstance(kind, str) else kind
        if isinstance(kind, type) and issubclass(kind, ConcurrentSoftmaxLoss) \
                and 'num_classes' not in loss:
            kwargs['loss_cls'] = dict(loss, num_classes=kwargs.get('num_classes', 80))
        super().__init__(*args, **kwargs)

    def get_multi_hot_targets(self, sampling_results: list[SamplingResult]) -> Tensor:
        """``(sum num_rois, C + 1)`` bool targets, in ``get_targets`` order
        (per image: positives then negatives)."""
        out = []
        for res in sampling_results:
            num_pos, lab = res.pos_priors.size(0), res.pos_gt_labels.long()[:, None]
            y = lab.new_zeros(num_pos + res.neg_priors.size(0), self.num_classes + 1,
                              dtype=torch.bool)
            y[num_pos:, self.num_classes] = True
            if num_pos:
                ml = getattr(res, 'pos_gt_multi_labels', None)
                if ml is None:
                    if not ConcurrentSoftmaxBBoxHead._warned_single:
                        print_log('ConcurrentSoftmaxBBoxHead: ground truths carry no '
                                  'multi_labels (use ConcurrentSoftmaxRoIHead and '
                                  'PackMultiLabelDetInputs); training on single labels',
                                  logger='current', level=30)
                        ConcurrentSoftmaxBBoxHead._warned_single = True
                    ml = lab
                ml = ml.to(y.device).long()
                if ml.numel() and int(ml.max()) >= self.num_classes:
                    raise ValueError(f'multi_labels hold label {int(ml.max())} but the head '
                                     f'has num_classes={self.num_classes}')
                # the box's own label, and its multi-labels (padding -1: own label again)
                y[:num_pos].scatter_(1, torch.cat([lab, torch.where(ml >= 0, ml, lab)], 1),
                                     True)
            out.append(y)
        return torch.cat(out, 0)

    def loss_and_target(self,
                        cls_score: Tensor,
                        bbox_pred: Tensor,
                        rois: Tensor,
                        sampling_results: list[SamplingResult],
                        rcnn_train_cfg,
                        concat: bool = True,
                        reduction_override: str | None = None) -> dict:
        if not getattr(self.loss_cls, 'use_multi_hot', False):
            return super().loss_and_target(cls_score, bbox_pred, rois, sampling_results,
                                           rcnn_train_cfg, concat, reduction_override)
        if not concat:
            raise ValueError('ConcurrentSoftmaxBBoxHead needs concat=True targets')
        targets = self.get_targets(sampling_results, rcnn_train_cfg, concat=True)
        # box regression: mmdet's own path, on the integer labels
        losses = super().loss(None, bbox_pred, rois, *targets,
                              reduction_override=reduction_override)
        if cls_score is not None and cls_score.numel() > 0:
            multi_hot = self.get_multi_hot_targets(sampling_results)
            losses['loss_cls'] = self.loss_cls(
                cls_score, multi_hot, targets[1],
                avg_factor=max(torch.sum(targets[1] > 0).float().item(), 1.),
                reduction_override=reduction_override)
            losses.update(self.loss_cls.get_accuracy(cls_score, multi_hot))
        return {'loss_bbox': losses, 'bbox_targets': targets}
