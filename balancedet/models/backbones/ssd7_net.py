"""SSD7Net: the seven-layer base network of the small "SSD7" detector.

SSD7 is the compact SSD variant of the ``ssd_keras`` project (P. Ferrari,
github.com/pierluigiferrari/ssd_keras, ``keras_ssd7.py``) used as the plain
SSD baseline by the study this track reproduces. Seven 3x3 convolutions (the
first 5x5) of widths 32-48-64-64-48-48-32, each followed by batch norm and
ELU; a 2x2 max-pool follows each of the first six. SSD's multi-box heads
(Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, Eq. (1)-(3)
for the loss, implemented by mmdet's ``SSDHead``) read the outputs of layers
4-7, i.e. strides 8, 16, 32 and 64.
"""
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmengine.model import BaseModule


@MODELS.register_module()
class SSD7Net(BaseModule):
    """Seven-layer SSD7 base network.

    Args:
        in_channels (int): Input image channels. Defaults to 3.
        channels (Sequence[int]): Widths of the seven layers.
        out_indices (Sequence[int]): Layers (0-based) whose outputs (before
            their max-pool) are returned. Defaults to ``(3, 4, 5, 6)``.
        norm_cfg (dict): Defaults to ``dict(type='BN')``.
        act_cfg (dict): Defaults to ``dict(type='ELU')``.
        init_cfg (dict | list, optional): Initialisation config.
    """

    def __init__(self, in_channels=3, channels=(32, 48, 64, 64, 48, 48, 32),
                 out_indices=(3, 4, 5, 6), norm_cfg=None, act_cfg=None, init_cfg=None):
        super().__init__(init_cfg)
        channels = tuple(channels)
        if len(channels) != 7 or min(channels) < 1:
            raise ValueError(f'SSD7Net: channels must be 7 positive widths, got {channels}')
        out_indices = tuple(out_indices)
        if not out_indices or any(not 0 <= i < 7 for i in out_indices):
            raise ValueError(f'SSD7Net: out_indices {out_indices} must name layers in [0, 6]')
        norm_cfg = norm_cfg or dict(type='BN')
        act_cfg = act_cfg or dict(type='ELU')
        self.out_indices = out_indices
        self.layers = nn.ModuleList(
            ConvModule(c_in, c, 5 if i == 0 else 3, padding=2 if i == 0 else 1,
                       norm_cfg=norm_cfg, act_cfg=act_cfg)
            for i, (c_in, c) in enumerate(zip((in_channels, ) + channels, channels)))
        self.pool = nn.MaxPool2d(2, 2)
        self.out_channels = [channels[i] for i in out_indices]

    def forward(self, x):
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
            if i < 6:
                x = self.pool(x)
        return tuple(outs)
