"""Balanced Feature Pyramid (feature-level balance of Libra R-CNN).

Pang et al., "Libra R-CNN: Towards Balanced Learning for Object Detection",
CVPR 2019, https://arxiv.org/abs/1904.02701, Sec. 3.2.

The ``L`` pyramid levels ``{C_l}`` are rescaled to the size of the refine
level (max-pooling for the finer levels, nearest interpolation for the
coarser ones), averaged into the balanced semantic feature (Eq. 3)::

    C = 1 / L * sum_{l = l_min}^{l_max} C_l

refined (identity, a 3x3 convolution, or an embedded-Gaussian non-local
block), rescaled back with the reverse operations and added to every level
as a residual.

The computation is mmdet's ``BFP``, which this class subclasses (same
forward, same state-dict keys). It adds argument checks at build time with
errors naming the field and the fix, and makes the non-local block's channel
``reduction`` and ``use_scale`` configurable (the defaults are mmdet's).
"""
from __future__ import annotations

from mmcv.cnn.bricks import NonLocal2d
from mmdet.models.necks import BFP
from mmdet.registry import MODELS

from balancedet.utils import check_choice, check_number


@MODELS.register_module()
class BalancedFeaturePyramid(BFP):
    """Balanced Feature Pyramid neck (Libra R-CNN, Eq. 3).

    Used after an FPN: ``neck=[dict(type='FPN', ...),
    dict(type='BalancedFeaturePyramid', in_channels=..., num_levels=...)]``.

    Args:
        in_channels (int): Channels of every input level.
        num_levels (int): Number of input levels, >= 1.
        refine_level (int): Index (0 = finest) of the level whose resolution
            the features are gathered at; ``0 <= refine_level < num_levels``.
            Defaults to 2.
        refine_type (str, optional): ``None``, ``'conv'`` or ``'non_local'``.
        nonlocal_reduction (int): Channel reduction of the non-local block.
            Defaults to 1 (as the paper / mmdet).
        nonlocal_use_scale (bool): Scale the non-local affinities by
            ``1/sqrt(C)``. Defaults to False (as mmdet).
        conv_cfg, norm_cfg, init_cfg: as mmdet's ``BFP``.
    """

    def __init__(self, in_channels: int, num_levels: int, refine_level: int = 2,
                 refine_type: str | None = None, nonlocal_reduction: int = 1,
                 nonlocal_use_scale: bool = False, conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None, init_cfg=None) -> None:
        owner = type(self).__name__
        check_number(in_channels, 'in_channels', owner=owner, integer=True, low=1)
        check_number(num_levels, 'num_levels', owner=owner, integer=True, low=1)
        check_number(refine_level, 'refine_level', owner=owner, integer=True, low=0,
                     high=num_levels - 1, fix='it indexes the pyramid of num_levels levels')
        check_number(nonlocal_reduction, 'nonlocal_reduction', owner=owner, integer=True, low=1)
        check_choice(refine_type, 'refine_type', (None, 'conv', 'non_local'), owner=owner)
        kwargs = {} if init_cfg is None else dict(init_cfg=init_cfg)
        super().__init__(in_channels, num_levels, refine_level, refine_type,
                         conv_cfg=conv_cfg, norm_cfg=norm_cfg, **kwargs)
        if refine_type == 'non_local' and (nonlocal_reduction, nonlocal_use_scale) != (1, False):
            self.refine = NonLocal2d(in_channels, reduction=nonlocal_reduction,
                                     use_scale=bool(nonlocal_use_scale), conv_cfg=conv_cfg,
                                     norm_cfg=norm_cfg, mode='embedded_gaussian')
