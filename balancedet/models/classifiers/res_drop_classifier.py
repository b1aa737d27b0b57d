"""Classification variant of ResDropNet: three dense layers with dropout.

The base network (:class:`~balancedet.models.backbones.ResDropNet` by default)
is followed by global average pooling and three fully connected layers of
width ``num_classes``; ReLU and 25 % dropout (Srivastava et al., JMLR 2014,
Eq. 2) follow the first two. Trained with softmax cross-entropy
``-log(softmax(z)_y)`` on the image's class; predictions put the softmax
scores in ``pred_score`` of each data sample, which ``CLSLocMetric`` ranks
for its top-k classification errors.

The image class is read from the detection annotations (``gt_instances``) of
a single-class-per-image dataset (see ``balancedet/datasets/cls_loc.py``): the
most frequent label of the image's boxes, ties to the smaller label.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModel

from balancedet.utils import check_number


def image_labels(data_samples, device=None):
    """One class per image: the most frequent gt label (ties: smallest)."""
    labels = []
    for i, ds in enumerate(data_samples):
        gt = ds.gt_instances.labels
        if gt.numel() == 0:
            raise ValueError(f'ResDropClassifier: image {i} of the batch ('
                             f'{ds.metainfo.get("img_path", "?")}) has no gt box, hence no class;'
                             ' filter empty images (filter_cfg=dict(filter_empty_gt=True))')
        labels.append(int(torch.bincount(gt.long()).argmax()))
    return torch.tensor(labels, dtype=torch.long, device=device)


@MODELS.register_module()
class ResDropClassifier(BaseModel):
    """Image classifier: base network + GAP + three dense layers.

    Args:
        backbone (dict): Base network config; its last output is used.
        in_channels (int): Channels of that output.
        num_classes (int): Number of classes (= width of the dense layers).
        dropout (float): Dropout after the first two dense layers, in [0, 1).
            Defaults to 0.25.
        data_preprocessor (dict, optional): Built from mmdet's registry;
            defaults to ``DetDataPreprocessor`` with ImageNet mean/std.
        init_cfg (dict | list, optional): Initialisation config.
    """

    def __init__(self, backbone, in_channels, num_classes, dropout=0.25,
                 data_preprocessor=None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                     std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        check_number(num_classes, 'num_classes', owner='ResDropClassifier', integer=True, low=2)
        check_number(dropout, 'dropout', owner='ResDropClassifier', low=0, high=1, high_open=True)
        self.backbone = MODELS.build(backbone)
        self.num_classes = num_classes
        self.head = nn.Sequential(
            nn.Linear(in_channels, num_classes), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(num_classes, num_classes), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(num_classes, num_classes))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        feat = self.backbone(inputs)[-1]
        logits = self.head(F.adaptive_avg_pool2d(feat, 1).flatten(1))
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = image_labels(data_samples, logits.device)
            return dict(loss_cls=F.cross_entropy(logits, labels),
                        acc_top1=(logits.argmax(1) == labels).float().mean().detach() * 100)
        if mode == 'predict':
            scores = logits.softmax(-1)
            for ds, s in zip(data_samples, scores):
                ds.set_field(s.detach(), 'pred_score')
            return data_samples
        raise ValueError(f'ResDropClassifier: mode must be "tensor", "loss" or "predict", '
                         f'got {mode!r}')
