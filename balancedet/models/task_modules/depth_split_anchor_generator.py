"""Anchors split by network depth (Li et al., ICIP 2017, section 3).

Li et al., "Do we really need more training data for object localization",
ICIP 2017: instead of placing every anchor on one feature map, small anchors are
attached to the high-resolution (shallow) level of the conv-deconv network and
large anchors to the deepest level. The paper's default split is
{16, 32} / {64, 128} / {256, 512} pixels with aspect ratios {0.5, 1, 2}, and its
30-anchor set uses ratios {0.15, 0.5, 1, 2, 6.7} with sizes 16 -> 512 growing by
x2 (6 sizes x 5 ratios). Each level's anchors feed that level's term of the
per-level loss (eq. 2, see ``HourglassRPNHead``).

``DepthSplitAnchorGenerator`` is mmdet's ``AnchorGenerator`` with one list of
absolute anchor sizes (square-root of the area, in input pixels) per level.
"""
from typing import List, Sequence

import torch
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import TASK_UTILS

#: the paper's default size split over three levels (section 3)
PAPER_LEVEL_SIZES = ((16, 32), (64, 128), (256, 512))
#: aspect ratios (h / w) of the paper's 30-anchor set (Table 3)
PAPER_30_RATIOS = (0.15, 0.5, 1.0, 2.0, 6.7)


def _check_positive_list(value, name: str) -> List[float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f'DepthSplitAnchorGenerator: {name} must be a list of '
                        f'positive numbers, got {type(value).__name__}')
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ValueError(f'DepthSplitAnchorGenerator: every entry of {name} '
                             f'must be a positive number, got {value!r}')
        out.append(float(v))
    if not out:
        raise ValueError(f'DepthSplitAnchorGenerator: {name} is empty; give at '
                         'least one value')
    return out


@TASK_UTILS.register_module()
class DepthSplitAnchorGenerator(AnchorGenerator):
    """Anchor generator with a different set of anchor sizes on every level.

    Args:
        strides (list[int]): stride of each feature level, shallow to deep.
        level_sizes (list[list[float]]): anchor sizes (sqrt of area, pixels of
            the network input) of each level; ``len(level_sizes)`` must equal
            ``len(strides)``. Defaults to the paper's
            ``((16, 32), (64, 128), (256, 512))``.
        ratios (list[float]): aspect ratios (h / w) used on every level.
        scale_major (bool): ordering of the base anchors, as in mmdet.
        center_offset (float): anchor centre offset within a cell, as in mmdet.
    """

    def __init__(self,
                 strides: Sequence[int],
                 level_sizes: Sequence[Sequence[float]] = PAPER_LEVEL_SIZES,
                 ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 scale_major: bool = True,
                 center_offset: float = 0.,
                 use_box_type: bool = False) -> None:
        strides = list(strides) if isinstance(strides, Sequence) else strides
        if not isinstance(strides, list) or not strides:
            raise ValueError('DepthSplitAnchorGenerator: strides must be a '
                             f'non-empty list, got {strides!r}')
        if isinstance(level_sizes, (str, bytes)) or not isinstance(
                level_sizes, Sequence) or len(level_sizes) == 0:
            raise ValueError('DepthSplitAnchorGenerator: level_sizes must be a '
                             'non-empty list with one list of anchor sizes per '
                             f'level, got {level_sizes!r}')
        if len(level_sizes) != len(strides):
            raise ValueError(
                'DepthSplitAnchorGenerator: level_sizes has '
                f'{len(level_sizes)} entries but there are {len(strides)} '
                f'levels (strides={strides}); give one list of anchor sizes '
                'per feature level')
        self.level_sizes = [
            _check_positive_list(s, f'level_sizes[{i}]')
            for i, s in enumerate(level_sizes)
        ]
        _check_positive_list(ratios, 'ratios')
        # the parent stores a shared ``scales``; per-level sizes are used in
        # gen_base_anchors below, so a neutral placeholder is passed here.
        super().__init__(
            strides=strides,
            ratios=list(ratios),
            scales=[1.0],
            scale_major=scale_major,
            center_offset=center_offset,
            use_box_type=use_box_type)

    def gen_base_anchors(self) -> List[torch.Tensor]:
        anchors = []
        for base_size, sizes in zip(self.base_sizes, self.level_sizes):
            scales = torch.tensor(sizes, dtype=torch.float32) / float(base_size)
            anchors.append(
                self.gen_single_level_base_anchors(
                    base_size, scales=scales, ratios=self.ratios, center=None))
        return anchors

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(strides={self.strides}, '
                f'level_sizes={self.level_sizes}, '
                f'ratios={self.ratios.tolist()})')
