"""Per-class image index shared by the class-based samplers.

The index answers "which images contain class ``c``" for every class, in the
compressed sparse row (CSR) layout: ``images[offsets[c]:offsets[c + 1]]`` are
the (sorted, unique) dataset indices of the images that contain class ``c``
and ``counts[c] = n_c`` is their number. It is built once, vectorised with
numpy, from flat ``(image index, label)`` pairs, so an Open-Images-sized
dataset (1.74 M images, 500 classes, ~12 M labels) is indexed in well under a
second (see ``benchmarks/bench_soft_balance.py``).

Counting rules (they define ``n_i`` in Peng et al., CVPR 2020, eq. 6):

* an image counts once per class however many boxes of that class it has;
* a multi-label box counts for every label it carries (the instance's
  ``bbox_label`` and every entry of its ``multi_labels``);
* instances with ``ignore_flag == 1`` (COCO crowd regions) are not counted;
* images without any (non-ignored) label appear in no class list, so the
  class-based samplers never draw them.

Indices are *dataset* indices, i.e. positions after the dataset's own
``filter_cfg`` (``filter_empty_gt``, ``min_size``) has been applied, which is
what ``dataset[idx]`` expects.

This module also holds :class:`ClassIndexSamplerBase`, the DDP plumbing the
samplers share: every rank builds the same global sequence from
``seed + epoch`` and keeps the positions ``rank, rank + world_size, ...``.
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from .wrapper_check import check_no_rebalancing_wrapper


class ClassImageIndex:
    """CSR per-class image index.

    Use :meth:`from_pairs` (flat arrays) or :meth:`from_dataset` (an mmdet
    dataset) rather than the constructor.

    Attributes:
        offsets (np.ndarray): int64, shape ``(num_classes + 1,)``.
        images (np.ndarray): int64 dataset indices, grouped by class, each
            group sorted ascending without duplicates.
        counts (np.ndarray): int64, ``n_c`` per class.
        num_images (int): number of images of the dataset (labelled or not).
        classes (tuple | None): class names, used in warnings.
    """

    def __init__(self, offsets, images, num_images, classes=None):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.images = np.asarray(images, dtype=np.int64)
        self.counts = np.diff(self.offsets)
        self.num_images = int(num_images)
        self.classes = tuple(classes) if classes is not None else None

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    def images_of(self, cls: int) -> np.ndarray:
        """Dataset indices of the images containing class ``cls``."""
        return self.images[self.offsets[cls]:self.offsets[cls + 1]]

    def class_name(self, cls: int) -> str:
        if self.classes is not None and cls < len(self.classes):
            return f'{self.classes[cls]!r} (label {cls})'
        return f'label {cls}'

    def empty_classes(self) -> np.ndarray:
        """Label indices of the classes that no image contains."""
        return np.flatnonzero(self.counts == 0)

    def labelled_images(self) -> np.ndarray:
        """Sorted dataset indices of the images with at least one label."""
        seen = np.zeros(self.num_images, dtype=bool)
        seen[self.images] = True
        return np.flatnonzero(seen)

    def primary_class(self) -> np.ndarray:
        """Smallest label of every image, ``-1`` for unlabelled images."""
        primary = np.full(self.num_images, -1, dtype=np.int64)
        labels = np.repeat(np.arange(self.num_classes), self.counts)
        # Write classes from the last to the first so the smallest one wins.
        primary[self.images[::-1]] = labels[::-1]
        return primary

    @classmethod
    def from_pairs(cls, img_inds, labels, num_images: int, num_classes: int,
                   classes: Sequence[str] | None = None) -> ClassImageIndex:
        """Build the index from flat ``(image index, label)`` pairs.

        Pairs may repeat (several boxes of one class in an image) and may come
        in any order; the work is one stable sort by label (a radix sort for
        label dtypes up to 16 bits) plus linear passes. Consecutive repeats of
        a pair are dropped before the sort, so files that list an image's
        boxes grouped by class sort only their unique pairs.
        """
        img_inds = np.asarray(img_inds)
        labels = np.asarray(labels)
        if img_inds.shape != labels.shape or img_inds.ndim != 1:
            raise ValueError('img_inds and labels must be 1-D arrays of the same length, got '
                             f'shapes {img_inds.shape} and {labels.shape}')
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if img_inds.size:
            if img_inds.min() < 0 or img_inds.max() >= num_images:
                raise ValueError(f'image indices must lie in [0, {num_images}), got range '
                                 f'[{img_inds.min()}, {img_inds.max()}]')
            if labels.min() < 0 or labels.max() >= num_classes:
                raise ValueError(f'labels must lie in [0, {num_classes}), got range '
                                 f'[{labels.min()}, {labels.max()}]; does the dataset metainfo '
                                 "list all 'classes'?")
        # Sort by image first when needed so every class group ends up sorted.
        if np.any(img_inds[1:] < img_inds[:-1]):
            order = np.argsort(img_inds, kind='stable')
            img_inds, labels = img_inds[order], labels[order]
        fresh = _differs_from_previous(img_inds, labels)  # cheap, shrinks the sort
        img_inds, labels = img_inds[fresh], labels[fresh]
        lab_dtype = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int64
        order = np.argsort(labels.astype(lab_dtype, copy=False), kind='stable')
        sorted_imgs = img_inds[order].astype(np.int64, copy=False)
        sorted_labs = labels[order]
        keep = _differs_from_previous(sorted_imgs, sorted_labs)
        images = sorted_imgs[keep]
        counts = np.bincount(sorted_labs[keep], minlength=num_classes)
        return cls(np.r_[0, np.cumsum(counts)], images, num_images, classes)

    @classmethod
    def from_dataset(cls, dataset, count_descendants: bool = False) -> ClassImageIndex:
        """Build the index from an mmdet/mmengine detection dataset.

        Reads ``dataset.get_data_info(i)['instances']`` (``bbox_label``,
        ``multi_labels``, ``ignore_flag``) when the data info has
        ``instances``, else ``dataset.get_cat_ids(i)`` (as mmdet's
        ``ClassAwareSampler`` does; e.g. video datasets). ``dataset.metainfo['classes']`` gives the
        number of classes. A dataset too large for a per-image Python loop
        (Open Images) can provide ``get_class_image_pairs()`` returning the
        flat ``(image indices, labels)`` arrays, already following the
        counting rules above; it is then used instead.

        With ``count_descendants=True`` an image also counts for every
        hierarchy ancestor of its labels (a class is counted for every image
        containing it *or a descendant*, as the Open Images metric expands
        ground truths); the hierarchy is ``metainfo['parents']`` (label ->
        parent or list of parents, a DAG).
        """
        classes = getattr(dataset, 'metainfo', {}).get('classes', None)
        if not classes:
            raise ValueError("the dataset's metainfo has no 'classes'; class-based samplers need "
                             'the class list to build the per-class image index')
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        num_images = len(dataset)
        if hasattr(dataset, 'get_class_image_pairs'):
            img_inds, labels = dataset.get_class_image_pairs()
        else:
            use_info = hasattr(dataset, 'get_data_info')
            if not (use_info or hasattr(dataset, 'get_cat_ids')):
                raise TypeError(f'{type(dataset).__name__} has neither get_data_info() nor '
                                'get_cat_ids(); class-based samplers need one of them')
            per_image = []
            for i in range(num_images):
                info = dataset.get_data_info(i) if use_info else None
                if info is not None and 'instances' in info:
                    per_image.append([lab for inst in info['instances']
                                      if not inst.get('ignore_flag', 0)
                                      for lab in (inst['bbox_label'],
                                                  *inst.get('multi_labels', ()))])
                else:
                    per_image.append(list(dataset.get_cat_ids(i)))
            labels = np.fromiter(itertools.chain.from_iterable(per_image), dtype=np.int64)
            img_inds = np.repeat(np.arange(num_images), [len(x) for x in per_image])
        if count_descendants:
            img_inds, labels = _with_ancestors(dataset, img_inds, labels)
        return cls.from_pairs(img_inds, labels, num_images, len(classes), classes)


def _differs_from_previous(img_inds, labels) -> np.ndarray:
    """Mask of the pairs that are not a repeat of the pair just before them."""
    fresh = np.ones(img_inds.size, dtype=bool)
    np.not_equal(img_inds[1:], img_inds[:-1], out=fresh[1:])
    fresh[1:] |= labels[1:] != labels[:-1]
    return fresh


def _with_ancestors(dataset, img_inds, labels):
    """The pairs plus ``(img, ancestor)`` for every ancestor of each label, from
    ``dataset.metainfo['parents']`` (vectorised: CSR ancestor lists, no
    ``(N, C)`` matrix)."""
    from balancedet.datasets.hierarchy import ClassHierarchy
    meta = getattr(dataset, 'metainfo', {})
    parents = meta.get('parents')
    if parents is None:
        raise ValueError('count_descendants=True needs a class hierarchy: the dataset\'s '
                         "metainfo has no 'parents' (OpenImagesMultiLabelDataset and "
                         'BalancedCocoDataset with supercategory links provide it)')
    anc = ClassHierarchy(meta['classes'], parents, source="metainfo['parents']").ancestor_matrix
    n_anc = anc.sum(axis=1)
    img_inds, labels = np.asarray(img_inds), np.asarray(labels, dtype=np.int64)
    reps = n_anc[labels]
    pos = concat_ranges(np.r_[0, np.cumsum(n_anc)][labels], reps)
    return (np.concatenate([img_inds, np.repeat(img_inds, reps)]),
            np.concatenate([labels, np.nonzero(anc)[1][pos]]))


def concat_ranges(starts, lengths) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(np.asarray(starts, dtype=np.int64), lengths) + (np.arange(first.size) - first)


class ClassIndexSamplerBase(Sampler):
    """DDP-aware sampler over a global per-epoch sequence.

    Subclasses implement :meth:`_global_indices` (the whole epoch, identical on
    every rank because it only depends on ``seed`` and ``epoch``). Rank ``r``
    of ``W`` yields positions ``r, r + W, r + 2W, ...`` of that sequence, so
    the ranks' shares are disjoint and their union is the epoch. With
    ``round_up=True`` (default) the sequence is padded by repeating its head
    so that every rank gets ``ceil(N / W)`` indices (mmengine's
    ``DefaultSampler`` convention); with ``round_up=False`` ranks get
    ``ceil((N - r) / W)`` and nothing is repeated.

    Args:
        dataset: the dataset to sample from.
        seed (int, optional): shared random seed; ``None`` draws one and
            broadcasts it from rank 0.
        round_up (bool): pad to a multiple of the world size.
    """

    def __init__(self, dataset, seed: int | None = None, round_up: bool = True) -> None:
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.round_up = bool(round_up)
        self.epoch = 0

    # -- to be provided by subclasses -------------------------------------
    def _epoch_length(self) -> int:
        return len(self.dataset)  # (never 0: an empty dataset fails in _build_index)

    def _global_indices(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    # -- shared plumbing ----------------------------------------------------
    def _build_index(self, dataset) -> ClassImageIndex:
        check_no_rebalancing_wrapper(dataset, type(self).__name__)  # see wrapper_check.py
        index = ClassImageIndex.from_dataset(
            dataset, count_descendants=getattr(self, 'count_descendants', False))
        empty = index.empty_classes()
        if empty.size:
            names = ', '.join(index.class_name(c) for c in empty[:5])  # first few only
            names += f', ... ({empty.size - 5} more)' if empty.size > 5 else ''
            warnings.warn(f'{type(self).__name__}: {empty.size} class(es) appear in no training '
                          f'image and are skipped: {names}', stacklevel=3)
        if empty.size == index.num_classes:
            raise ValueError(f'{type(self).__name__}: no training image carries a label, so a '
                             'class-based sampler has nothing to draw; check the annotations or '
                             'the filter_cfg of the dataset')
        return index

    def global_indices(self) -> np.ndarray:
        """The whole epoch's sequence before sharding (same on every rank)."""
        return self._global_indices(np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch]))

    @property
    def total_size(self) -> int:
        return self.num_samples * self.world_size if self.round_up else self._epoch_length()

    @property
    def num_samples(self) -> int:
        n = self._epoch_length()
        if self.round_up:
            return math.ceil(n / self.world_size)
        return math.ceil((n - self.rank) / self.world_size)

    def __iter__(self) -> Iterator[int]:
        indices = self.global_indices()
        if self.round_up and indices.size < self.total_size:
            indices = np.resize(indices, self.total_size)  # repeats the head
        return iter(indices[self.rank:self.total_size:self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the sequence is a function of ``seed + epoch``."""
        self.epoch = int(epoch)
