"""Dynamic training scale (Li et al., ICIP 2017, section 3, remark (a)).

Li et al., "Do we really need more training data for object localization",
ICIP 2017: instead of training at one fixed input scale, every training image
is resized so that at least one of its ground-truth boxes falls inside the size
range covered by the anchors of some level, so that every image contributes
positive anchors and objects of every size are seen at every level.

``DynamicTrainScale`` picks a ground-truth box at random (among the non-ignored
ones), draws a target size log-uniformly inside ``anchor_range`` and resizes
the image (aspect ratio kept) by ``target / sqrt(w * h)``. The factor is kept
inside ``scale_range`` and below ``max_side``; when that makes the chosen box
unreachable, another box is tried, and if no box can be brought into range the
factor closest to the range is used. Resizing of the image, boxes, masks and
segmentation is done by mmdet's ``Resize``.
"""
from typing import Optional, Sequence

import numpy as np
from mmdet.datasets.transforms import Resize
from mmdet.registry import TRANSFORMS

from balancedet.utils import check_number


def _pair(value, name):
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) \
            or len(value) != 2:
        raise TypeError(f'DynamicTrainScale: {name} must be a (low, high) '
                        f'pair, got {value!r}')
    lo, hi = float(value[0]), float(value[1])
    if not 0 < lo <= hi:
        raise ValueError(f'DynamicTrainScale: {name} must satisfy 0 < low <= '
                         f'high, got {value!r}')
    return lo, hi


@TRANSFORMS.register_module()
class DynamicTrainScale(Resize):
    """Resize each image so that a ground-truth box fits the anchor sizes.

    Args:
        anchor_range (tuple[float, float]): object sizes (sqrt of box area, in
            pixels of the network input) covered by the anchors of the levels,
            e.g. (16, 512) for the paper's anchors.
        scale_range (tuple[float, float]): allowed resize factors relative to
            the loaded image. Defaults to (0.25, 4.0).
        max_side (int, optional): the longer side of the result never exceeds
            it (keeps CPU/GPU memory bounded). Defaults to None.
        max_tries (int): boxes tried before falling back. Defaults to 10.
        **kwargs: ``interpolation``, ``clip_object_border``, ``backend`` of
            mmdet's ``Resize``.
    """

    def __init__(self,
                 anchor_range: Sequence[float],
                 scale_range: Sequence[float] = (0.25, 4.0),
                 max_side: Optional[int] = None,
                 max_tries: int = 10,
                 **kwargs) -> None:
        for bad in ('scale', 'scale_factor', 'keep_ratio'):
            if bad in kwargs:
                raise ValueError(f'DynamicTrainScale: {bad} is chosen per image '
                                 'from anchor_range; remove it from the config')
        super().__init__(scale_factor=1.0, keep_ratio=False, **kwargs)
        self.anchor_range = _pair(anchor_range, 'anchor_range')
        self.scale_range = _pair(scale_range, 'scale_range')
        self.max_side = check_number(max_side, 'max_side', owner='DynamicTrainScale',
                                     integer=True, low=1, allow_none=True)
        self.max_tries = int(max_tries)

    def choose_factor(self, sizes: np.ndarray, img_hw) -> float:
        """Resize factor for an image whose gt boxes have ``sizes``."""
        f_lo, f_hi = self.scale_range
        if self.max_side is not None:
            f_hi = min(f_hi, self.max_side / max(img_hw))
            f_lo = min(f_lo, f_hi)
        # the output size is rounded to whole pixels, which moves the realised
        # factor by up to 0.5 / side; keep that margin inside the anchor range
        margin = 1.0 / max(1, min(img_hw))
        a_lo, a_hi = self.anchor_range
        sizes = sizes[sizes > 0]
        if sizes.size == 0:
            return float(np.exp(np.random.uniform(np.log(f_lo), np.log(f_hi))))
        order = np.random.permutation(sizes.size)[:self.max_tries]
        for idx in order:
            lo = max(a_lo * (1 + margin) / sizes[idx], f_lo)
            hi = min(a_hi * (1 - margin) / sizes[idx], f_hi)
            if lo <= hi:
                return float(np.exp(np.random.uniform(np.log(lo), np.log(hi))))
        # no box can be brought into range: take the factor nearest to it
        gap_lo, gap_hi = (np.minimum(np.abs(np.log(sizes * f / a_lo)),
                                     np.abs(np.log(sizes * f / a_hi))).min() for f in (f_lo, f_hi))
        return float(f_hi if gap_hi < gap_lo else f_lo)

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        sizes = np.zeros(0)
        boxes = results.get('gt_bboxes', None)
        if boxes is not None and len(boxes) > 0:
            t = np.asarray(getattr(boxes, 'tensor', boxes), dtype=np.float64).reshape(-1, 4)
            if 'gt_ignore_flags' in results:
                t = t[~np.asarray(results['gt_ignore_flags'], dtype=bool)]
            sizes = np.sqrt(np.clip(t[:, 2:] - t[:, :2], 0, None).prod(axis=1))
        f = self.choose_factor(sizes, (h, w))
        # mmdet's Resize does the rest at this image's scale (as RandomResize sets it)
        self.scale = (max(1, int(round(w * f))), max(1, int(round(h * f))))
        return super().transform(results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(anchor_range={self.anchor_range}, '
                f'scale_range={self.scale_range}, max_side={self.max_side})')
