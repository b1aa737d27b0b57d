"""Data-ordering strategies of Li et al., ICIP 2017 (Table 4): base, random, balanced.

The three strategies compared in Table 4 of the ICIP 2017 paper on class
imbalance in detector training (cited by Peng et al., CVPR 2020, section
4.2, as the data strategies soft-balance sampling improves on):

* ``base`` -- images in class order: every image once per epoch, grouped by
  its smallest label (ties, i.e. images of the same class, in dataset order);
  images without labels come last. Deterministic; ``seed``/``epoch`` unused.
* ``random`` -- every image once per epoch in a random order (``seed +
  epoch``), like a shuffled ``DefaultSampler``.
* ``balanced`` -- exactly ``K = images_per_class`` images of every class per
  epoch, shuffled: a class with ``n_c >= K`` images contributes ``K`` distinct
  ones drawn without replacement; a class with ``n_c < K`` contributes all its
  images ``K // n_c`` times plus ``K % n_c`` distinct others. The epoch length
  is ``K * C`` (``C`` = classes occurring in some image). Images without labels
  are never drawn; classes no image contains are skipped with one warning.

All three share the DDP behaviour of :class:`ClassIndexSamplerBase`.
"""
from __future__ import annotations

import numpy as np
from mmdet.registry import DATA_SAMPLERS

from balancedet.utils import check_choice, check_number

from .class_index import ClassIndexSamplerBase, concat_ranges

ICIP_STRATEGIES = ('base', 'random', 'balanced')


@DATA_SAMPLERS.register_module()
class ICIPStrategySampler(ClassIndexSamplerBase):
    """Base / random / balanced data strategies of Li et al. (ICIP 2017, Table 4).

    Args:
        dataset: a detection dataset whose ``metainfo`` lists ``classes``.
        strategy (str): ``'base'``, ``'random'`` or ``'balanced'``.
        images_per_class (int, optional): ``K`` for ``'balanced'``; ``None``
            means ``max(1, round(len(dataset) / C))`` so an epoch has about
            the dataset's length. Ignored by the other strategies.
        seed (int, optional): shared seed; ``None`` syncs a random one.
        round_up (bool): give every rank the same number of indices.
    """

    def __init__(self, dataset, strategy: str = 'balanced',
                 images_per_class: int | None = None, seed: int | None = None,
                 round_up: bool = True) -> None:
        self.strategy = check_choice(strategy, 'strategy', ICIP_STRATEGIES)
        self.images_per_class = check_number(
            images_per_class, 'images_per_class', integer=True, low=1, allow_none=True,
            fix='give K >= 1 images per class per epoch, or None for len(dataset) / C')
        super().__init__(dataset, seed=seed, round_up=round_up)
        self.index = self._build_index(dataset)
        self._valid = np.flatnonzero(self.index.counts > 0)
        if self.images_per_class is None:
            self.images_per_class = max(1, round(len(dataset) / len(self._valid)))
        if strategy == 'base':
            primary = self.index.primary_class()
            primary[primary < 0] = self.index.num_classes  # unlabelled last
            self._base_order = np.argsort(primary, kind='stable')

    def _epoch_length(self) -> int:
        if self.strategy == 'balanced':
            return self.images_per_class * len(self._valid)
        return super()._epoch_length()

    def _global_indices(self, rng: np.random.Generator) -> np.ndarray:
        if self.strategy == 'base':
            return self._base_order
        if self.strategy == 'random':
            return rng.permutation(len(self.dataset))
        return balanced_epoch(self.index, self._valid, self.images_per_class, rng)


def balanced_epoch(index, classes, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` images of each class in ``classes`` (see module docstring), shuffled."""
    counts = index.counts[classes]
    # Random rank of every image inside its class list: sort random keys per class.
    owner = np.repeat(np.arange(len(classes)), counts)
    members = concat_ranges(index.offsets[classes], counts)
    shuffled = members[np.lexsort((rng.random(members.size), owner))]  # per class, shuffled
    # Output slot j of class c takes the (j mod n_c)-th shuffled image of c.
    slot_owner = np.repeat(np.arange(len(classes)), k)
    slot = np.tile(np.arange(k), len(classes))
    picks = shuffled[(np.cumsum(counts) - counts)[slot_owner] + slot % counts[slot_owner]]
    return index.images[picks][rng.permutation(picks.size)]
