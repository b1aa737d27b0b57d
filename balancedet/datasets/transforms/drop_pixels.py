"""DropPixels: set a random fraction of the pixels to random colours.

The "drop pixels" augmentation of the small-dataset augmentation suite this
track reproduces: each pixel is replaced, independently with probability
``fraction``, by a colour drawn uniformly from ``[0, 255]^C`` (salt-and-pepper
noise generalised to colours; in the notation of dropout, Srivastava et al.,
JMLR 2014, Eq. 2, ``y~ = r * y + (1 - r) * u`` with ``r ~ Bernoulli(1 - p)``
per pixel and ``u ~ U[0, 255]^C``). Boxes, masks and labels are untouched
(the transform is photometric), so it is box-aware by construction.

``fraction`` is either a number (always that fraction) or a ``(low, high)``
range sampled uniformly per image; both must lie in [0, 1].
"""
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS

from balancedet.utils import check_number, check_numbers


@TRANSFORMS.register_module()
class DropPixels(BaseTransform):
    """Replace a random fraction of the pixels by random colours.

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        fraction (float | tuple[float, float]): Fraction of pixels dropped,
            or a range sampled per image. Defaults to 0.05.
        prob (float): Probability of applying the transform. Defaults to 1.0.
    """

    def __init__(self, fraction=0.05, prob=1.0):
        pair = fraction if isinstance(fraction, (list, tuple)) else (fraction, fraction)
        if len(pair) != 2:
            raise ValueError('DropPixels: fraction must be a number or a (low, high) pair, '
                             f'got {fraction!r}')
        low, high = check_numbers(pair, 'fraction', owner='DropPixels', low=0, high=1,
                                  fix='e.g. fraction=0.05 drops 5 % of the pixels')
        if low > high:
            raise ValueError(f'DropPixels: fraction must lie in [0, 1] (with low <= high), got '
                             f'{fraction!r}; e.g. fraction=0.05 drops 5 % of the pixels')
        self.fraction = (low, high)
        self.prob = check_number(prob, 'prob', owner='DropPixels', low=0, high=1)

    @cache_randomness
    def _sample(self, shape):
        if np.random.rand() >= self.prob:
            return None
        p = np.random.uniform(*self.fraction) if self.fraction[0] < self.fraction[1] \
            else self.fraction[0]
        mask = np.random.rand(*shape[:2]) < p
        colours = np.random.randint(0, 256, size=(int(mask.sum()), ) + tuple(shape[2:]))
        return mask, colours

    def transform(self, results):
        img = results['img']
        sample = self._sample(img.shape)
        if sample is not None:
            results['img'] = img = img.copy()
            img[sample[0]] = sample[1].astype(img.dtype)
        return results

    def __repr__(self):
        return f'{self.__class__.__name__}(fraction={self.fraction}, prob={self.prob})'
