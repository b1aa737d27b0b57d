"""ResDropNet: a small residual network with dropout, base of a modified SSD.

A 7x7, 64-channel stride-2 stem with batch norm, ReLU, 10 % dropout and a
2x2 max-pool, then bottleneck residual stages modelled on ResNet-50 (He et
al., "Deep Residual Learning for Image Recognition", CVPR 2016): by default
one block 64-64-128, three blocks 64-64-256 and four blocks 128-128-512 (the
last stage at stride 2, like ResNet-50's conv3_x). Each block computes Eq. (1)
of He et al., ``y = F(x, {W_i}) + x``, with ``F`` the 1x1-3x3-1x1 bottleneck,
or Eq. (2), ``y = F(x, {W_i}) + W_s x``, with a 1x1 projection ``W_s`` when the
width or the stride changes. Dropout is the unit dropping of Srivastava et
al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting", JMLR
2014 (Eq. 2 there: ``r ~ Bernoulli(p)``, ``y~ = r * y``, rescaled at training
time by 1 / (1 - p)).

``widen_factor`` scales every width (for CPU-sized experiments); the stage
outputs named by ``out_indices`` are returned, e.g. to an ``SSDNeck`` that adds
SSD's extra layers (Liu et al., "SSD: Single Shot MultiBox Detector", ECCV
2016), or to :class:`~balancedet.models.classifiers.res_drop_classifier.ResDropClassifier`.
"""
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from balancedet.utils import check_number

#: (mid width, out width, number of blocks, stride) of each stage.
DEFAULT_STAGES = ((64, 128, 1, 1), (64, 256, 3, 1), (128, 512, 4, 2))


class ResDropBottleneck(BaseModule):
    """1x1 (in->mid) - 3x3 (mid->mid, stride) - 1x1 (mid->out) residual block."""

    def __init__(self, in_channels, mid_channels, out_channels, stride=1, norm_cfg=None,
                 init_cfg=None):
        super().__init__(init_cfg)
        norm_cfg = norm_cfg or dict(type='BN')
        self.conv1 = ConvModule(in_channels, mid_channels, 1, norm_cfg=norm_cfg)
        self.conv2 = ConvModule(mid_channels, mid_channels, 3, stride=stride, padding=1,
                                norm_cfg=norm_cfg)
        self.conv3 = ConvModule(mid_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.shortcut = ConvModule(in_channels, out_channels, 1, stride=stride,
                                   norm_cfg=norm_cfg, act_cfg=None) \
            if stride != 1 or in_channels != out_channels else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


@MODELS.register_module()
class ResDropNet(BaseModule):
    """Small residual network with a dropout stem (see module docstring).

    Args:
        in_channels (int): Input image channels. Defaults to 3.
        stem_channels (int): Width of the 7x7 stem. Defaults to 64.
        stem_dropout (float): Dropout probability after the stem, in [0, 1).
            Defaults to 0.1.
        stages (Sequence[tuple]): ``(mid, out, num_blocks, stride)`` per stage.
            Defaults to :data:`DEFAULT_STAGES`.
        widen_factor (float): Multiplies every width. Defaults to 1.0.
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Defaults to the last stage.
        norm_cfg (dict): Normalisation layers. Defaults to ``dict(type='BN')``.
        norm_eval (bool): Keep batch-norm layers in eval mode while training.
            Defaults to False.
        init_cfg (dict | list, optional): Initialisation config.
    """

    def __init__(self, in_channels=3, stem_channels=64, stem_dropout=0.1, stages=DEFAULT_STAGES,
                 widen_factor=1.0, out_indices=None, norm_cfg=None, norm_eval=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        check_number(stem_dropout, 'stem_dropout', owner='ResDropNet', low=0, high=1,
                     high_open=True)
        check_number(widen_factor, 'widen_factor', owner='ResDropNet', low=0, low_open=True)
        stages = tuple(tuple(s) for s in stages)
        if not stages or any(len(s) != 4 or min(s) < 1 for s in stages):
            raise ValueError('ResDropNet: stages must be a non-empty list of (mid, out, '
                             f'num_blocks, stride) tuples of positive ints, got {stages}')
        out_indices = (len(stages) - 1, ) if out_indices is None else tuple(out_indices)
        if not out_indices or any(not 0 <= i < len(stages) for i in out_indices):
            raise ValueError(f'ResDropNet: out_indices {out_indices} must name stages in '
                             f'[0, {len(stages) - 1}]')
        norm_cfg = norm_cfg or dict(type='BN')

        def width(c):
            return max(1, int(round(c * widen_factor)))

        self.out_indices = out_indices
        self.norm_eval = norm_eval
        stem = width(stem_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False),
            build_norm_layer(norm_cfg, stem)[1],
            nn.ReLU(inplace=True),
            nn.Dropout(stem_dropout),
            nn.MaxPool2d(2, 2))
        self.stages = nn.ModuleList()
        self.out_channels = []
        channels = stem
        for mid, out, num_blocks, stride in stages:
            self.stages.append(nn.Sequential(*(
                ResDropBottleneck(channels if b == 0 else width(out), width(mid), width(out),
                                  stride=stride if b == 0 else 1, norm_cfg=norm_cfg)
                for b in range(num_blocks))))
            channels = width(out)
            self.out_channels.append(channels)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
