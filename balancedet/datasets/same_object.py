"""The one rule that decides which annotated boxes are the same object.

Peng et al., "Large-Scale Object Detection in the Wild from Imbalanced
Multi-Labels", CVPR 2020, train on *objects* with a set of labels ``L``
(eq. 3's multi-hot ``y``) and estimate the concurrent rate ``r_ij`` (Sec. 3.2)
on those same objects.  Every part of balancedet that needs "the objects of
an image" calls this module: the Open Images dataset
(:class:`~balancedet.datasets.OpenImagesMultiLabelDataset`),
:class:`~balancedet.datasets.BalancedCocoDataset`'s ``multi_labels`` and the
estimator :mod:`balancedet.analysis.concurrent_rate`, so ``r`` is measured on
exactly the objects whose targets it weights.

**Rule: two annotations are the same object if and only if they belong to the
same image and their four box coordinates are equal, as numbers read from the
annotation file** (Open Images ``XMin, XMax, YMin, YMax`` normalised floats;
COCO ``[x, y, w, h]``).  Each object's label set is the set of labels of its
annotations (a label repeated on the same box counts once).

Why identical coordinates and not an IoU threshold:

* In the formats balancedet reads, an explicit multi-label is written as the
  *same* box repeated once per label: Open Images writes one CSV row per
  (box, label) with the coordinates copied (a Dog box verified as Animal is
  two rows with identical ``XMin..YMax``), and multi-label COCO files repeat
  the ``bbox`` with another ``category_id``.  Equality finds all of them.
* An IoU threshold merges *different* objects that overlap strongly (people
  in a crowd, a cup on a saucer, group-of boxes over their members at
  IoU ~0.9), and is not transitive (A~B, B~C, A!~C), so the grouping depends
  on an arbitrary connected-components choice; equality is an equivalence
  relation and needs no choice.
* Equality costs one sort (``O(N log N)``, vectorised), so the same function
  runs on 12 M Open Images boxes; a pairwise IoU does not.
* Implicit multi-labels (two annotators drawing slightly different boxes for
  Dog and Animal) are left as separate objects; the hierarchy covers the
  Dog -> Animal case anyway (``hierarchy='concurrent'`` and the metric's
  ancestor expansion).

Coordinates are compared before any scaling to pixels; scaling both boxes of
a pair by the same image size preserves equality, so calling the rule on
pixel boxes of one image gives the same groups.
"""
from __future__ import annotations

import numpy as np

SAME_OBJECT_RULE = ('same image and identical box coordinates (as read from the annotation '
                    'file); labels of one object are the union of its annotations\' labels')


def object_ids(boxes, image_ids=None) -> tuple[np.ndarray, int]:
    """Group annotations into objects by the rule of this module.

    Args:
        boxes: ``(N, 4)`` box coordinates (any fixed convention).
        image_ids: ``(N,)`` image key per annotation (ints, or any array
            ``np.unique`` can sort); None when all boxes are of one image.

    Returns:
        tuple: ``(obj, num_objects)``; ``obj[k]`` is the object index of
        annotation ``k``, objects numbered in order of first appearance.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    if np.any(np.signbit(boxes) & (boxes == 0)):
        boxes = boxes + 0.0  # -0.0 == 0.0: one bit pattern for equal numbers
    cols = [boxes[:, k].view(np.uint64) for k in range(4)]
    if image_ids is not None:
        image_ids = np.asarray(image_ids)
        if image_ids.shape != (n, ):
            raise ValueError(f'image_ids must have shape ({n},), got {image_ids.shape}')
        if image_ids.dtype.kind not in 'iub':
            image_ids = np.unique(image_ids, return_inverse=True)[1].reshape(-1)
        cols.append(image_ids.astype(np.int64, copy=False).view(np.uint64))
    # one 64-bit hash of the whole key, sorted; equal keys have equal
    # hashes, so each object is a run of the sorted order.  A hash collision
    # is detected (a run holding different keys) and answered by an exact
    # lexicographic sort, so the grouping is exact in every case.
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over='ignore'):
        for k, col in enumerate(cols):
            h ^= col + np.uint64(0x9E3779B97F4A7C15 + k)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
    def same_key(order):  # each sorted row has the key of the row before it
        same = np.ones(n - 1, dtype=bool)
        for col in cols:
            cs = col[order]
            same &= cs[1:] == cs[:-1]
        return same

    order = np.argsort(h)  # (not stable: runs are found by key, not by position)
    hs = h[order]
    same_hash = hs[1:] == hs[:-1]
    del h, hs
    same = same_key(order)
    if np.any(same_hash & ~same):  # collision: exact sort instead
        order = np.lexsort(cols[::-1])
        same = same_key(order)
    new = np.r_[True, ~same]
    group_sorted = np.cumsum(new) - 1
    # number objects by first appearance: the smallest annotation index of each run
    first = np.minimum.reduceat(order, np.flatnonzero(new))
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    group = np.empty(n, dtype=np.int64)
    group[order] = rank[group_sorted]
    return group, int(first.size)


def object_label_sets(boxes, labels, image_ids=None) -> list[list[int]]:
    """Per annotation, the sorted label set of its object (the ``multi_labels``
    of :class:`~balancedet.datasets.BalancedCocoDataset`)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    obj, num = object_ids(boxes, image_ids)
    pairs = np.unique(np.stack([obj, labels], axis=1), axis=0)  # by object, then label
    bounds = np.searchsorted(pairs[:, 0], np.arange(num + 1)).tolist()
    sets = [pairs[a:b, 1].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
    return [sets[o] for o in obj.tolist()]


def pairs_within_objects(obj, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(a, b)``, ``a != b``, of every two rows of one object.

    ``obj`` holds each row's object index with the rows sorted by object (so
    an object's rows are one range ``start .. start + size``)."""
    from balancedet.datasets.samplers.class_index import concat_ranges
    size = np.bincount(obj, minlength=num_objects)
    rows = np.flatnonzero(size[obj] > 1)
    reps = size[obj[rows]]
    a = np.repeat(rows, reps)
    b = concat_ranges((np.cumsum(size) - size)[obj[rows]], reps)
    keep = a != b
    return a[keep], b[keep]
