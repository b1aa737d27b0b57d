"""The one rule for which annotated boxes a dataset keeps.

Every reader of annotation files in balancedet (``BalancedCocoDataset``, the
Open Images dataset, the r_ij estimator, the analysis tools) applies
:func:`check_boxes`, so a box counts -- or does not -- the same way
everywhere:

* a box with a non-finite coordinate (NaN, +-inf) is an **error** naming the
  file and the record: it is a broken file, not a degenerate object, and an
  infinite box would otherwise become an image-wide box;
* a box narrower or lower than ``min_size`` pixels (``x2 - x1 < min_size``,
  zero-size boxes included), or one that lies completely outside the image,
  is **dropped**; the caller reports all drops of one file in a single
  warning (:func:`warn_dropped`: the count and the first few record ids).

``min_size=1`` with pixel boxes matches what mmdet's ``CocoDataset`` keeps
(it discards boxes under one pixel and boxes without overlap with the image,
silently); balancedet drops exactly those, with a count.
"""
from __future__ import annotations

import warnings

import numpy as np


class DatasetError(ValueError):
    """Raised for bad dataset input; the message names the file and record."""


class DroppedBoxesWarning(UserWarning):
    """Boxes of a file were dropped by the box rule (count and first ids)."""


def check_boxes(xyxy, width, height, *, source: str, record_ids, min_size: float = 1.0):
    """Validate boxes and return the mask of the boxes to keep.

    Args:
        xyxy (array-like): ``(N, 4)`` boxes ``x1, y1, x2, y2`` in pixels.
        width, height (float or array-like): image size, scalars or ``(N,)``.
        source (str): the file the boxes come from (named in errors).
        record_ids (sequence): one id per box (annotation id, CSV row, ...).
        min_size (float): smallest kept width and height.

    Returns:
        np.ndarray: ``(N,)`` bool, False for boxes to drop.

    Raises:
        DatasetError: a coordinate is not finite; names the first record.
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(boxes).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DatasetError(
            f'{source}: {len(bad)} box(es) with a non-finite coordinate, first: record '
            f'{record_ids[bad[0]]!r} box {boxes[bad[0]].tolist()}; fix or remove the record')
    big_enough = (boxes[:, 2:] - boxes[:, :2] >= min_size).all(axis=1)
    inside = (boxes[:, 0] < np.asarray(width, dtype=np.float64)) & (boxes[:, 2:] > 0).all(axis=1) \
        & (boxes[:, 1] < np.asarray(height, dtype=np.float64))
    return big_enough & inside


def warn_dropped(source: str, dropped_ids, reason: str, first: int = 5) -> None:
    """One warning for all boxes of ``source`` dropped by :func:`check_boxes`."""
    dropped_ids = list(dropped_ids)
    if not dropped_ids:
        return
    more = ', ...' if len(dropped_ids) > first else ''
    warnings.warn(f'{source}: dropped {len(dropped_ids)} box(es) {reason}; first record ids: '
                  f'{", ".join(map(repr, dropped_ids[:first]))}{more}', DroppedBoxesWarning,
                  stacklevel=2)
