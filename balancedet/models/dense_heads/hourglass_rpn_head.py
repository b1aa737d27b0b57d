"""RPN head of the hourglass proposal network (Li et al., ICIP 2017, section 3).

Li et al., "Do we really need more training data for object localization",
ICIP 2017. The head runs on every level G^m of the conv-deconv body (eq. 1, see
``HourglassNeck``) with the anchors split by depth -- small sizes on the
shallow levels, large ones on the deep levels: mmdet's ``AnchorGenerator`` with
one ``base_sizes`` entry per level and shared ``scales`` (the paper's
{16, 32} / {64, 128} / {256, 512} is ``base_sizes=[16, 64, 256], scales=[1, 2]``;
its 30-anchor set uses ratios {0.15, 0.5, 1, 2, 6.7}) -- and implements:

* eq. 2, the per-level loss: ``L = sum_m [ 1/N^m sum_i L_cls(p_i, p_i*)
  + lambda 1/N^m sum_i p_i* L_reg(t_i, t_i*) ]``, i.e. every level is
  normalised by its own number of sampled anchors ``N^m`` instead of the
  number sampled over the whole image (``per_level_norm=True``);
* remark (c), the optional gray class: with ``gray_class=True`` the objectness
  classifier is a 3-way softmax (object / gray / background) trained on the
  gray anchors drawn by ``GrayClassSampler``; the proposal score is P(object);
* section 3, per-scale inference: the top ``nms_pre`` anchors of every level
  with score >= ``score_thr`` are concatenated and one NMS runs over all levels
  together (``nms_across_levels=True``; 0.7 in the paper) before keeping
  ``max_per_img``. Cross-scale merging is done by ``HourglassRPN``.

Remark (b), the negative cap, is the ``neg_pos_ub=2`` of the sampler in
``train_cfg`` (mmdet's ``RandomSampler`` or ``GrayClassSampler``).
"""
import copy
from typing import List

import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.models.utils import images_to_levels
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from balancedet.utils import check_nms_cfg

GRAY_LABEL = 1


@MODELS.register_module()
class HourglassRPNHead(RPNHead):
    """RPN head with per-level loss normalisation, gray class and cross-level
    NMS.

    Args:
        in_channels (int): channels of every input level.
        per_level_norm (bool): eq. 2 normalisation. Defaults to True.
        gray_class (bool): add the gray class (needs a softmax ``loss_cls`` and
            ``GrayBandMaxIoUAssigner`` + ``GrayClassSampler`` in train_cfg).
            Defaults to False.
        nms_across_levels (bool): one NMS over all levels of an image (paper)
            instead of mmdet's per-level NMS. Defaults to True.
        **kwargs: as mmdet's ``RPNHead`` (anchor_generator, loss_cls, ...).
            ``test_cfg`` may carry ``score_thr`` (default 0).
    """

    def __init__(self,
                 in_channels: int,
                 per_level_norm: bool = True,
                 gray_class: bool = False,
                 nms_across_levels: bool = True,
                 **kwargs) -> None:
        num_classes = kwargs.pop('num_classes', 1)
        if num_classes != 1:
            raise ValueError('HourglassRPNHead: num_classes must be 1 (object '
                             f'proposals), got {num_classes}')
        loss_cls = kwargs.get('loss_cls', None)
        if gray_class and (loss_cls is None
                           or loss_cls.get('use_sigmoid', False)):
            raise ValueError(
                'HourglassRPNHead: gray_class=True needs a softmax '
                "loss_cls, e.g. loss_cls=dict(type='CrossEntropyLoss', "
                'use_sigmoid=False, loss_weight=1.0)')
        super().__init__(in_channels=in_channels, num_classes=1, **kwargs)
        check_nms_cfg(self.test_cfg, 'HourglassRPNHead.test_cfg')
        self.per_level_norm = per_level_norm
        self.gray_class = gray_class
        self.nms_across_levels = nms_across_levels
        if gray_class:
            if self.train_cfg is not None and not hasattr(
                    self.sampler, 'gray_ratio'):
                raise ValueError(
                    'HourglassRPNHead: gray_class=True needs '
                    "train_cfg.sampler=dict(type='GrayClassSampler', ...) and "
                    "train_cfg.assigner=dict(type='GrayBandMaxIoUAssigner')")
            # object (0), gray (1), background (2 == num_classes)
            self.num_classes = 2
            self.cls_out_channels = 3
            self._init_layers()

    # ------------------------------------------------------------------ train
    def _get_targets_single(self, flat_anchors, valid_flags, gt_instances,
                            img_meta, gt_instances_ignore=None,
                            unmap_outputs=True) -> tuple:
        out = super()._get_targets_single(flat_anchors, valid_flags,
                                          gt_instances, img_meta,
                                          gt_instances_ignore, unmap_outputs)
        if not self.gray_class:
            return out
        labels, label_weights = out[0], out[1]
        sampling_result = out[-1]
        gray = getattr(sampling_result, 'gray_inds', None)
        if gray is None:
            raise ValueError('HourglassRPNHead: gray_class=True but the sampler '
                             "gave no gray_inds; use type='GrayClassSampler'")
        if gray.numel() > 0:
            if unmap_outputs:
                inside = anchor_inside_flags(flat_anchors, valid_flags,
                                             img_meta['img_shape'][:2],
                                             self.train_cfg['allowed_border'])
                gray = torch.nonzero(inside, as_tuple=False).view(-1)[gray]
            labels[gray] = GRAY_LABEL
            label_weights[gray] = 1.0
        return out

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        if not self.per_level_norm:
            return super().loss_by_feat(cls_scores, bbox_preds,
                                        batch_gt_instances, batch_img_metas,
                                        batch_gt_instances_ignore)
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        device = cls_scores[0].device
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=device)
        (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list,
         _) = self.get_targets(
             anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
             batch_gt_instances_ignore=batch_gt_instances_ignore)
        num_level_anchors = [a.size(0) for a in anchor_list[0]]
        all_anchor_list = images_to_levels(
            [cat_boxes(a) for a in anchor_list], num_level_anchors)
        losses_cls, losses_bbox = [], []
        for lvl in range(len(cls_scores)):
            # N^m of eq. 2: anchors sampled on this level (fg + bg [+ gray])
            n_m = (label_weights_list[lvl] > 0).sum().float().clamp(min=1.0)
            loss_cls, loss_bbox = self.loss_by_feat_single(
                cls_scores[lvl], bbox_preds[lvl], all_anchor_list[lvl],
                labels_list[lvl], label_weights_list[lvl],
                bbox_targets_list[lvl], bbox_weights_list[lvl], avg_factor=n_m)
            losses_cls.append(loss_cls)
            losses_bbox.append(loss_bbox)
        return dict(loss_rpn_cls=losses_cls, loss_rpn_bbox=losses_bbox)

    # -------------------------------------------------------------- inference
    def _predict_by_feat_single(self,
                                cls_score_list: List[Tensor],
                                bbox_pred_list: List[Tensor],
                                score_factor_list: List[Tensor],
                                mlvl_priors: List[Tensor],
                                img_meta: dict,
                                cfg: ConfigDict,
                                rescale: bool = False,
                                with_nms: bool = True) -> InstanceData:
        cfg = copy.deepcopy(self.test_cfg if cfg is None else cfg)
        nms_pre = cfg.get('nms_pre', -1)
        score_thr = cfg.get('score_thr', 0.0)
        reg_dim = self.bbox_coder.encode_size
        boxes, scores, level_ids = [], [], []
        for lvl, (cls_score, bbox_pred, priors) in enumerate(
                zip(cls_score_list, bbox_pred_list, mlvl_priors)):
            logits = cls_score.permute(1, 2, 0).reshape(-1, self.cls_out_channels)
            if self.use_sigmoid_cls:
                score = logits[:, 0].sigmoid()
            else:
                score = logits.softmax(-1)[:, 0]  # P(object)
            deltas = bbox_pred.permute(1, 2, 0).reshape(-1, reg_dim)
            keep = torch.nonzero(score >= score_thr, as_tuple=False).view(-1)
            if 0 < nms_pre < keep.numel():
                top = score[keep].topk(nms_pre).indices
                keep = keep[top]
            score, deltas, priors = score[keep], deltas[keep], priors[keep]
            boxes.append(self.bbox_coder.decode(
                priors, deltas, max_shape=img_meta['img_shape']))
            scores.append(score)
            level_ids.append(score.new_full(
                (score.numel(), ), 0 if self.nms_across_levels else lvl,
                dtype=torch.long))
        results = InstanceData()
        results.bboxes = torch.cat(boxes)
        results.scores = torch.cat(scores)
        results.level_ids = torch.cat(level_ids)
        return self._bbox_post_process(
            results=results, cfg=cfg, rescale=rescale, img_meta=img_meta)
