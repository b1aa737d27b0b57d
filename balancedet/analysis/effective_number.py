"""Class weights from the effective number of samples (Cui et al., CVPR 2019).

Yin Cui, Menglin Jia, Tsung-Yi Lin, Yang Song, Serge Belongie,
"Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.

* Effective number of ``n`` samples (Definition 1 / Proposition 1):
  ``E_n = (1 - beta^n) / (1 - beta)``, ``beta in [0, 1)``.
* Class-balanced loss (section 4): the loss of a sample of class ``y`` is
  weighted by ``alpha_y ∝ 1 / E_{n_y} = (1 - beta) / (1 - beta^{n_y})``, the
  weights normalised so that they sum to the number of classes ``C``.

``beta = 0`` gives equal weights, ``beta -> 1`` inverse class frequency.
In balancedet this is the loss-level peer of soft-balance sampling: the
weights go to the classification loss's ``class_weight`` (mmdet's
``CrossEntropyLoss``); for a softmax R-CNN head that list has ``C + 1``
entries, the last one (background) is ``background_weight``.

``n_y`` counts training *instances* (boxes; crowd boxes excluded) of the
training split, read from a COCO file or a built dataset, after the
dataset's own filtering when a dataset is given.
"""
import math

import numpy as np

from balancedet.datasets.balanced_coco import category_labels, read_coco_annotations
from balancedet.utils import check_number


def effective_number(counts, beta):
    """``E_n = (1 - beta^n) / (1 - beta)`` element-wise (``n`` for beta -> 1)."""
    beta = check_number(beta, 'beta', low=0, high=1, high_open=True,
                        fix='0.9, 0.99, 0.999, 0.9999 in the paper')
    counts = np.asarray(counts, dtype=np.float64)
    if beta == 0:
        return np.where(counts > 0, 1.0, 0.0)
    return -np.expm1(counts * math.log(beta)) / (1.0 - beta)


def effective_number_weights(counts, beta=0.999, background_weight=None):
    """Class-balanced weights ``alpha_i``, normalised to sum to ``C``.

    Args:
        counts (array-like): samples per class; all must be >= 1.
        beta (float): in [0, 1).
        background_weight (float, optional): appended as a last entry (for
            softmax heads with a background class); not normalised.

    Returns:
        list[float]
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError('counts must be a non-empty 1-D list of per-class sample counts')
    bad = np.flatnonzero(counts < 1).tolist()
    if bad:
        raise ValueError(f'classes {bad} have no training sample, so their effective number is 0 '
                         'and the weight infinite; drop them from metainfo.classes or add data')
    inv = 1.0 / effective_number(counts, beta)
    return (inv * counts.size / inv.sum()).tolist() + (
        [] if background_weight is None else [float(background_weight)])


def instance_counts_from_coco(ann_file, classes=None):
    """Per-class instance counts of a COCO file (crowd excluded).

    ``classes`` (names, label order) defaults to all categories by id.
    Returns ``(classes, counts)``.
    """
    coco = read_coco_annotations(ann_file)
    classes, id2label = category_labels(coco['categories'], classes)
    labels = [id2label[a['category_id']] for a in coco['annotations']
              if not a.get('iscrowd', 0) and a['category_id'] in id2label]
    return list(classes), np.bincount(labels, minlength=len(classes)).astype(np.int64)
