"""Soft-balance sampling (Peng et al., CVPR 2020, section 4.2, eqs. 6-8).

Junran Peng, Xingyuan Bu, Ming Sun, Zhaoxiang Zhang, Tieniu Tan, Junjie Yan,
"Large-scale Object Detection in the Wild from Imbalanced Multi-Labels",
CVPR 2020.

With ``n_i`` the number of training images that contain class ``i`` (see
:mod:`balancedet.datasets.samplers.class_index` for the counting rules) and
``C`` the number of classes that occur in at least one image:

* eq. 6, natural sampling: ``P_n(i) = n_i / sum_j n_j``;
* eq. 7, class-aware sampling: ``P_a(i) = 1 / C``;
* eq. 8, soft-balance: ``P_s(i) = P_a(i)^lam * P_n(i)^(1 - lam)``,
  normalised to ``P_s*(i) = P_s(i) / sum_j P_s(j)``.

``lam = 0`` is natural sampling, ``lam = 1`` class-aware sampling and
``lam > 1`` over-samples rare classes even more than class-aware sampling.
An epoch draws ``num_samples_per_epoch`` times (default: the dataset length)
a class ``i ~ P_s*`` and then an image containing ``i`` uniformly at random.

Documented behaviour for awkward input:

* classes that no image contains get probability 0 and are named in one
  warning when the sampler is built;
* images without labels are never drawn (they belong to no class);
* ``lam < 0``, a non-numeric ``lam``, ``num_samples_per_epoch < 1`` raise.

Under DDP all ranks draw the same global sequence (``seed``, ``epoch``) and
keep disjoint interleaved shares; see :class:`ClassIndexSamplerBase`.
"""
from __future__ import annotations

import math

import numpy as np
from mmdet.registry import DATA_SAMPLERS

from balancedet.utils import check_number

from .class_index import ClassIndexSamplerBase


def soft_balance_probs(counts, lam: float) -> np.ndarray:
    """Normalised soft-balance class probabilities ``P_s*`` (eqs. 6-8).

    Args:
        counts (array-like): ``n_i``, images per class; classes with
            ``n_i = 0`` get probability 0 and do not count in ``C``.
        lam (float): lambda >= 0.

    Returns:
        np.ndarray: float64 probabilities summing to 1.
    """
    lam = check_lambda(lam)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or np.any(counts < 0):
        raise ValueError('counts must be a 1-D array of non-negative image counts')
    valid = counts > 0
    if not valid.any():
        raise ValueError('every class has n_i = 0 images; nothing to sample')
    p_n = counts[valid] / counts[valid].sum()                    # eq. 6
    log_p_a = -math.log(int(valid.sum()))                        # eq. 7
    log_p_s = lam * log_p_a + (1.0 - lam) * np.log(p_n)          # eq. 8 (log space)
    p_s = np.exp(log_p_s - log_p_s.max())
    probs = np.zeros_like(counts)
    probs[valid] = p_s / p_s.sum()                               # normalisation, P_s*
    return probs


def check_lambda(lam) -> float:
    return check_number(lam, 'lam', low=0,
                        fix='0: natural sampling, 1: class-aware, >1: stronger re-balancing')


@DATA_SAMPLERS.register_module()
class SoftBalanceSampler(ClassIndexSamplerBase):
    """Soft-balance sampler of Peng et al. (CVPR 2020), eqs. 6-8.

    Args:
        dataset: a detection dataset (``get_data_info`` with ``instances``,
            or ``get_cat_ids``) whose ``metainfo`` lists ``classes``.
        lam (float): lambda of eq. 8; 0 natural, 1 class-aware. Default 1.
        num_samples_per_epoch (int, optional): draws per epoch over all
            ranks; ``None`` means ``len(dataset)``.
        seed (int, optional): shared seed; ``None`` syncs a random one.
        round_up (bool): give every rank the same number of indices.
        count_descendants (bool): count a class for every image containing it
            or a hierarchy descendant (``metainfo['parents']``). Default False.
    """

    def __init__(self, dataset, lam: float = 1.0, num_samples_per_epoch: int | None = None,
                 seed: int | None = None, round_up: bool = True,
                 count_descendants: bool = False) -> None:
        self.count_descendants = bool(count_descendants)
        self.lam = check_lambda(lam)
        self.num_samples_per_epoch = check_number(
            num_samples_per_epoch, 'num_samples_per_epoch', integer=True, low=1, allow_none=True,
            fix='use None for one dataset length per epoch')
        super().__init__(dataset, seed=seed, round_up=round_up)
        self.index = self._build_index(dataset)
        self.class_probs = soft_balance_probs(self.index.counts, self.lam)
        self._valid = np.flatnonzero(self.class_probs > 0)
        self._cdf = np.cumsum(self.class_probs[self._valid])
        self._cdf /= self._cdf[-1]

    def _epoch_length(self) -> int:
        return self.num_samples_per_epoch or super()._epoch_length()

    def _global_indices(self, rng: np.random.Generator) -> np.ndarray:
        """``total_size`` draws: a class ``i ~ P_s*``, then an image of it uniformly."""
        size = self.total_size
        # u < 1 == cdf[-1], so the class position is always < len(self._valid)
        cls = self._valid[np.searchsorted(self._cdf, rng.random(size), side='right')]
        counts = self.index.counts[cls]
        within = (rng.random(size) * counts).astype(np.int64)
        np.minimum(within, counts - 1, out=within)
        return self.index.images[self.index.offsets[cls] + within]
