"""CompatSSDHead: mmdet's ``SSDHead`` that can predict under mmdet 3.3.

SSD (Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016; loss Eq. (1)-
(3) implemented by mmdet's ``SSDHead``). In mmdet 3.3.0,
``BaseDenseHead._predict_by_feat_single`` reads ``self.loss_cls``, which
``SSDHead`` never creates (it computes its softmax loss inline), so every
validation/test of an SSD raises ``AttributeError: 'SSDHead' object has no
attribute 'loss_cls'`` (open-mmlab/mmdetection issues #11305, #11780). This
subclass only defines ``loss_cls = None``; scores then come from the softmax
over the classes, exactly as in mmdet < 3.3. Training is unchanged.
"""
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS


@MODELS.register_module()
class CompatSSDHead(SSDHead):
    """``SSDHead`` with ``loss_cls = None`` so that ``predict`` works."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_cls = None
