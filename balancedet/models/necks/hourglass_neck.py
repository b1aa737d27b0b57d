"""Conv-deconv ("hourglass") body of Li et al., ICIP 2017, section 3, eq. 1.

Li et al., "Do we really need more training data for object localization",
ICIP 2017: the proposal network has a down path (here: the stages of any mmdet
backbone, optionally extended by ``num_extra_levels`` stride-2 convolutions, the
"deeper down-sample" of Table 2) and a mirrored up path in which pooling is
replaced by deconvolution (transposed convolution). At every level m the down
map F^m and the up map H^m are merged by eq. 1::

    G^m = sigma(w_F (x) F^m + w_H (x) H^m + b),    H^m = deconv(G^{m+1}),

with sigma = ReLU, ``w_F`` a 1x1 convolution (carrying the bias b), ``w_H`` a
3x3 convolution and the deconvolution a 4x4 stride-2 transposed convolution.
The deepest level has no up map: G^M = sigma(w_F (x) F^M + b). With
``up_path=False`` every level is G^m = sigma(w_F (x) F^m + b), which is the
"down-sample only" network of Table 2.
"""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from balancedet.utils import check_number


@MODELS.register_module()
class HourglassNeck(BaseModule):
    """Up path with deconvolutions and eq. 1 merges on top of a backbone.

    Args:
        in_channels (list[int]): channels of the backbone levels used as the
            down path, shallow to deep.
        out_channels (int): channels of every G^m.
        out_indices (list[int], optional): which levels (0 = shallowest input
            level; extra levels follow the backbone's) are returned, e.g. the
            three levels that carry anchors. Defaults to all levels.
        up_path (bool): build the deconvolution path (eq. 1). False gives
            the down-sample-only network. Defaults to True.
        num_extra_levels (int): stride-2 3x3 convolutions appended to the down
            path (deeper down-sampling). Defaults to 0.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 out_indices: Optional[Sequence[int]] = None,
                 up_path: bool = True,
                 num_extra_levels: int = 0,
                 init_cfg=dict(
                     type='Xavier',
                     layer=['Conv2d', 'ConvTranspose2d'],
                     distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, int) or not in_channels:
            raise ValueError('HourglassNeck: in_channels must be a non-empty '
                             'list with the channels of each backbone level, '
                             f'got {in_channels!r}')
        check_number(out_channels, 'out_channels', owner='HourglassNeck', integer=True, low=1)
        check_number(num_extra_levels, 'num_extra_levels', owner='HourglassNeck', integer=True,
                     low=0)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.up_path = up_path
        self.num_extra_levels = num_extra_levels
        self.num_levels = len(self.in_channels) + num_extra_levels
        out_indices = tuple(range(self.num_levels) if out_indices is None else out_indices)
        if not out_indices or any(
                not isinstance(i, int) or not 0 <= i < self.num_levels
                for i in out_indices) or len(set(out_indices)) != len(out_indices):
            raise ValueError(
                f'HourglassNeck: out_indices must be distinct ints in '
                f'[0, {self.num_levels}) (backbone levels + num_extra_levels), '
                f'got {out_indices!r}')
        self.out_indices = tuple(sorted(out_indices))

        down_channels = self.in_channels + [out_channels] * num_extra_levels
        self.extra_convs = nn.ModuleList(
            nn.Conv2d(c, out_channels, 3, stride=2, padding=1)
            for c in down_channels[len(self.in_channels) - 1:-1])
        # w_F (with the bias b of eq. 1) for every level of the down path
        self.lateral_convs = nn.ModuleList(
            nn.Conv2d(c, out_channels, 1, bias=True) for c in down_channels)
        # the up path only needs to reach the shallowest returned level
        self.deconvs = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        if up_path:
            for _ in range(self.out_indices[0], self.num_levels - 1):
                self.deconvs.append(
                    nn.ConvTranspose2d(out_channels, out_channels, 4, stride=2, padding=1))
                self.up_convs.append(
                    nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False))

    def forward(self, inputs: Tuple[Tensor]) -> Tuple[Tensor]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'HourglassNeck: got {len(inputs)} backbone levels but '
                f'in_channels lists {len(self.in_channels)}; make the '
                "backbone's out_indices match in_channels")
        downs: List[Tensor] = list(inputs)
        x = downs[-1]
        for conv in self.extra_convs:
            x = F.relu(conv(x))
            downs.append(x)
        lowest = self.out_indices[0]
        outs: List[Optional[Tensor]] = [None] * self.num_levels
        outs[-1] = g = F.relu(self.lateral_convs[-1](downs[-1]))
        for m in range(self.num_levels - 2, lowest - 1, -1):
            pre = self.lateral_convs[m](downs[m])
            if self.up_path:
                k = m - lowest
                h = self.deconvs[k](g)
                # crop (or zero-pad) the 2x up-sampled map to the down map's size
                h = F.pad(h, (0, downs[m].shape[-1] - h.shape[-1],
                              0, downs[m].shape[-2] - h.shape[-2]))
                pre = pre + self.up_convs[k](h)
            outs[m] = g = F.relu(pre)
        return tuple(outs[i] for i in self.out_indices)
