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
import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.registry import MODELS

from balancedet.utils import check_choice, check_nms_cfg

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
        check_choice(kwargs.pop('num_classes', 1), 'num_classes', (1, ), owner='HourglassRPNHead')
        loss_cls = kwargs.get('loss_cls', None)
        if gray_class and (loss_cls is None or loss_cls.get('use_sigmoid', False)):
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
            if self.train_cfg is not None and not hasattr(self.sampler, 'gray_ratio'):
                raise ValueError(
                    'HourglassRPNHead: gray_class=True needs '
                    "train_cfg.sampler=dict(type='GrayClassSampler', ...) and "
                    "train_cfg.assigner=dict(type='GrayBandMaxIoUAssigner')")
            # object (0), gray (1), background (2 == num_classes)
            self.num_classes = 2
            self.cls_out_channels = 3
            self._init_layers()

    # ------------------------------------------------------------------ train
    def _get_targets_single(self, flat_anchors, valid_flags, gt_instances, img_meta,
                            gt_instances_ignore=None, unmap_outputs=True) -> tuple:
        out = super()._get_targets_single(flat_anchors, valid_flags, gt_instances, img_meta,
                                          gt_instances_ignore, unmap_outputs)
        if not self.gray_class:
            return out
        labels, label_weights = out[0], out[1]
        gray = getattr(out[-1], 'gray_inds', None)
        if gray is None:
            raise ValueError('HourglassRPNHead: gray_class=True but the sampler '
                             "gave no gray_inds; use type='GrayClassSampler'")
        if gray.numel() > 0:
            if unmap_outputs:  # gray_inds index the anchors inside the image
                inside = anchor_inside_flags(flat_anchors, valid_flags, img_meta['img_shape'][:2],
                                             self.train_cfg['allowed_border'])
                gray = torch.nonzero(inside, as_tuple=False).view(-1)[gray]
            labels[gray] = GRAY_LABEL
            label_weights[gray] = 1.0
        return out

    def loss_by_feat_single(self, cls_score, bbox_pred, anchors, labels, label_weights,
                            bbox_targets, bbox_weights, avg_factor) -> tuple:
        if self.per_level_norm:
            # N^m of eq. 2: anchors sampled on this level (fg + bg [+ gray])
            avg_factor = (label_weights > 0).sum().float().clamp(min=1.0)
        return super().loss_by_feat_single(cls_score, bbox_pred, anchors, labels, label_weights,
                                           bbox_targets, bbox_weights, avg_factor)

    # -------------------------------------------------------------- inference
    def _predict_by_feat_single(self, cls_score_list, *args, **kwargs):
        if not self.gray_class:
            return super()._predict_by_feat_single(cls_score_list, *args, **kwargs)
        # P(object) of the 3-way softmax is the 2-way softmax over (object,
        # logaddexp(gray, background)), which mmdet's RPNHead scores as usual
        two_way = [torch.stack((s[0::3], s[1::3].logaddexp(s[2::3])), 1).flatten(0, 1)
                   for s in cls_score_list]
        self.cls_out_channels = 2
        try:
            return super()._predict_by_feat_single(two_way, *args, **kwargs)
        finally:
            self.cls_out_channels = 3

    def _bbox_post_process(self, results, cfg, rescale=False, with_nms=True, img_meta=None):
        # the top nms_pre of every level (mmdet) with score >= score_thr, then
        # one NMS over all levels together (all level ids 0)
        results = results[results.scores >= cfg.get('score_thr', 0.0)]
        if self.nms_across_levels:
            results.level_ids = torch.zeros_like(results.level_ids)
        return super()._bbox_post_process(results, cfg, rescale, with_nms, img_meta)
