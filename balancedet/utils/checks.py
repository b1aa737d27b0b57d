"""Argument checks shared by every balancedet component.

Components call these once, when they are built, so that a typo in a config
fails at start-up with a message that names the component, the field, what
is allowed and -- where there is one -- the usual value.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence


def _where(owner: str, name: str) -> str:
    return f'{owner}: `{name}`' if owner else f'`{name}`'


def check_number(value, name: str, *, owner: str = '', integer: bool = False,
                 low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False,
                 allow_none: bool = False, fix: str = ''):
    """Return ``value`` (int or float) if it is a finite number in range.

    ``low``/``high`` bound the value, inclusive unless ``low_open`` /
    ``high_open``. Raises TypeError for a non-number (bools included) and
    ValueError for a NaN, an infinity or a value out of range.
    """
    if value is None and allow_none:
        return None
    kind = 'an int' if integer else 'a number'
    if low is not None and high is not None:
        wanted = f'{kind} in {"(" if low_open else "["}{low}, {high}{")" if high_open else "]"}'
    elif low is not None:
        wanted = f'{kind} {">" if low_open else ">="} {low}'
    elif high is not None:
        wanted = f'{kind} {"<" if high_open else "<="} {high}'
    else:
        wanted = kind
    hint = f'; {fix}' if fix else ''
    number_type = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, number_type):
        raise TypeError(f'{_where(owner, name)} must be {wanted}, got '
                        f'{type(value).__name__} ({value!r}){hint}')
    if not math.isfinite(value) or (
            low is not None and (value <= low if low_open else value < low)) or (
            high is not None and (value >= high if high_open else value > high)):
        raise ValueError(f'{_where(owner, name)} must be {wanted}, got {value!r}{hint}')
    return int(value) if integer else float(value)


def check_numbers(values, name: str, *, owner: str = '', **bounds) -> list:
    """A non-empty list of numbers, each passing :func:`check_number`."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise TypeError(f'{_where(owner, name)} must be a non-empty list of numbers, got '
                        f'{values!r}')
    return [check_number(v, f'{name}[{i}]', owner=owner, **bounds) for i, v in enumerate(values)]


def check_choice(value, name: str, choices, *, owner: str = ''):
    """Return ``value`` if it is one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f'{_where(owner, name)} must be one of {tuple(choices)}, got {value!r}')
    return value


def check_nms_cfg(cfg, where: str) -> None:
    """An ``nms`` entry of ``cfg`` (if any) needs an IoU threshold in (0, 1]."""
    nms = cfg.get('nms') if hasattr(cfg, 'get') else None
    if nms is None:
        return
    thr = nms.get('iou_threshold', nms.get('iou_thr'))
    if thr is None:
        raise ValueError(f"{where}.nms needs iou_threshold, e.g. nms=dict(type='nms', "
                         'iou_threshold=0.7)')
    check_number(thr, 'nms.iou_threshold', owner=where, low=0, low_open=True, high=1)
