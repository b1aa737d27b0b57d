"""Weighted-component loss: per-term loss weights for any mmdet detector.

Libra R-CNN (Pang et al., CVPR 2019, https://arxiv.org/abs/1904.02701)
balances the objective of a multi-task detector, Eq. 4::

    L = L_cls + lambda * L_loc

and shows that the balance between the terms matters (Sec. 3.3).  This
module generalises the single ``lambda`` to one weight per loss term::

    L = sum_k w_k(t) * L_k

where ``k`` runs over the names of the loss dict returned by the wrapped
detector (``loss_rpn_cls``, ``loss_rpn_bbox``, ``loss_cls``, ``loss_bbox``,
``s0.loss_cls`` ...) and ``w_k(t)`` is a constant or a piecewise
(step or linear) schedule over epochs or iterations.

Registered in ``MODELS`` as ``WeightedLossDetector``: a wrapper that builds
any detector from ``detector=dict(...)`` and re-weights the terms of its
``loss()`` output, so no head has to be edited.  The logs keep the weighted
terms under their own names (they make up the total ``loss``), and add
``raw_<name>`` (unweighted value) and ``weight_<name>`` (current weight),
which are not summed into the total.  Names are exact loss keys or
``fnmatch`` patterns (``'s*.loss_bbox'``).  Malformed weights or schedules
raise at build time. A name matching no loss key of the detector raises on
the first ``loss()`` call, before the first optimizer step (the loss keys
exist only once the detector has run). The wrapped model's parameters live
under the ``detector.`` prefix of the state dict; attributes the wrapper does
not define (``roi_head``, ``with_rpn`` ...) are forwarded to the detector.

Example::

    model = dict(
        type='WeightedLossDetector',
        detector=dict(type='FasterRCNN', ...),
        loss_weights=dict(
            loss_bbox=0.5,
            loss_rpn_cls=dict(by_epoch=True, points=[(0, 1.0), (6, 0.5)],
                              interpolation='linear')))
"""
from __future__ import annotations

import bisect
import fnmatch
from collections.abc import Sequence

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.utils import is_list_of
from torch import Tensor

from balancedet.utils import check_choice, check_number

RAW_PREFIX = 'raw_'
WEIGHT_PREFIX = 'weight_'
_INTERPOLATIONS = ('step', 'linear')


class LossWeightSchedule:
    """A loss weight: a constant or a piecewise schedule.

    Args:
        name (str): The loss name (for error messages).
        spec (float | dict): A number >= 0, or
            ``dict(points=[(t0, w0), (t1, w1), ...], by_epoch=True,
            interpolation='step' | 'linear')`` with strictly increasing
            ``t`` (epochs or iterations, 0-based) and weights >= 0.  Before
            ``t0`` the weight is ``w0``, after the last point it stays at the
            last weight; ``'step'`` holds ``w_i`` on ``[t_i, t_{i+1})``.
    """

    def __init__(self, name: str, spec: float | dict) -> None:
        self.name = name
        if not isinstance(spec, dict):  # a constant: one point, held for ever
            spec = dict(points=[(0., spec)])
        for key in spec:
            check_choice(key, f'key of the schedule of {name!r}',
                         ('points', 'by_epoch', 'interpolation'), owner='WeightedLossDetector')
        points = spec.get('points')
        if not isinstance(points, (list, tuple)) or len(points) == 0:
            raise ValueError(f'WeightedLossDetector: schedule of {name!r} needs a '
                             f'non-empty `points=[(t, weight), ...]`, got {points!r}')
        self.ts, self.ws = [], []
        for p in points:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise ValueError(f'WeightedLossDetector: schedule point {p!r} of '
                                 f'{name!r} must be a pair (t, weight)')
            self.ts.append(self._number(p[0], 't'))
            self.ws.append(self._number(p[1], 'weight'))
        if any(b <= a for a, b in zip(self.ts, self.ts[1:])):
            raise ValueError(f'WeightedLossDetector: schedule of {name!r} needs '
                             f'strictly increasing t, got {self.ts}')
        self.by_epoch = spec.get('by_epoch', True)
        if not isinstance(self.by_epoch, bool):
            raise TypeError(f'WeightedLossDetector: `by_epoch` of {name!r} must be a '
                            f'bool, got {self.by_epoch!r}')
        self.interpolation = check_choice(
            spec.get('interpolation', 'step'), f'interpolation of {name!r}',
            _INTERPOLATIONS, owner='WeightedLossDetector')

    def _number(self, value, field: str) -> float:
        return check_number(value, f'{field} of {self.name!r}', owner='WeightedLossDetector',
                            low=0, fix='a weight is a number >= 0 or a schedule dict')

    def __call__(self, epoch: int, it: int) -> float:
        t = float(epoch if self.by_epoch else it)
        ts, ws = self.ts, self.ws
        i = max(bisect.bisect_right(ts, t) - 1, 0)  # last point at or before t
        if self.interpolation == 'step' or t <= ts[0] or i == len(ts) - 1:
            return ws[i]
        return ws[i] + (t - ts[i]) / (ts[i + 1] - ts[i]) * (ws[i + 1] - ws[i])


@MODELS.register_module()
class WeightedLossDetector(BaseDetector):
    """Wraps any detector and weights each of its loss terms by name.

    Args:
        detector (dict): Config of the wrapped detector (any mmdet detector).
        loss_weights (dict): ``{name_or_pattern: weight_or_schedule}``, see
            :class:`LossWeightSchedule`.  Terms not listed keep weight 1.
        init_cfg (dict, optional): Initialisation config of the wrapper.
    """

    def __init__(self,
                 detector: dict,
                 loss_weights: dict,
                 init_cfg: dict | None = None) -> None:
        if not isinstance(detector, dict) or 'type' not in detector:
            raise TypeError('WeightedLossDetector: `detector` must be a config dict '
                            f'with a `type`, got {detector!r}')
        if not isinstance(loss_weights, dict) or not loss_weights:
            raise ValueError('WeightedLossDetector: `loss_weights` must be a non-empty '
                             'dict {loss_name: weight}, e.g. dict(loss_bbox=0.5), got '
                             f'{loss_weights!r}')
        schedules = {}
        for name, spec in loss_weights.items():
            if not isinstance(name, str) or 'loss' not in name:
                raise ValueError(
                    f'WeightedLossDetector: loss name {name!r} in `loss_weights` is not '
                    f'a loss term (mmengine only sums keys containing "loss"); use the '
                    f'detector loss keys, e.g. loss_cls, loss_bbox, loss_rpn_cls')
            schedules[name] = LossWeightSchedule(name, spec)
        super().__init__(data_preprocessor=None, init_cfg=init_cfg)
        self.detector = MODELS.build(detector)
        if not isinstance(self.detector, BaseModel):
            raise TypeError('WeightedLossDetector: the wrapped `detector` must be an '
                            f'mmengine BaseModel, got {type(self.detector).__name__}')
        # share the wrapped detector's pre-processor (runner calls ours)
        self.data_preprocessor = self.detector.data_preprocessor
        self.loss_weights = schedules
        self._checked_names = False

    def __getattr__(self, name: str):
        # expose the wrapped detector's heads and flags (roi_head, with_rpn ...)
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == 'detector':
                raise
            return getattr(super().__getattr__('detector'), name)

    # ------------------------------------------------------------------ #
    def _match(self, keys: Sequence[str]) -> dict[str, str]:
        """Map loss keys to the configured name (exact match first)."""
        mapping = {}
        for key in keys:
            hits = [key] if key in self.loss_weights else [
                p for p in self.loss_weights if fnmatch.fnmatchcase(key, p)]
            if len(hits) > 1:
                raise ValueError(f'WeightedLossDetector: loss {key!r} matches several '
                                 f'patterns {hits}; make them disjoint')
            if hits:
                mapping[key] = hits[0]
        if not self._checked_names:
            unknown = [n for n in self.loss_weights if n not in mapping.values()]
            if unknown:
                raise ValueError(
                    f'WeightedLossDetector: unknown loss names {unknown} in `loss_weights`;'
                    f' {type(self.detector).__name__} returns the losses '
                    f'{sorted(k for k in keys if "loss" in k)}')
            self._checked_names = True
        return mapping

    def current_weights(self) -> dict[str, float]:
        """The weight of every configured name at the current epoch/iter."""
        hub = MessageHub.get_current_instance()
        epoch, it = int(hub.get_info('epoch', 0)), int(hub.get_info('iter', 0))
        return {n: s(epoch, it) for n, s in self.loss_weights.items()}

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        """Wrapped detector's losses with each term multiplied by its weight,
        plus detached ``raw_<name>`` and ``weight_<name>`` entries."""
        losses = self.detector.loss(batch_inputs, batch_data_samples)
        mapping = self._match([k for k in losses if 'loss' in k])
        weights = self.current_weights()
        out, extra = {}, {}
        for key, value in losses.items():
            if key not in mapping:
                out[key] = value
                continue
            w = weights[mapping[key]]
            if isinstance(value, Tensor):
                out[key], raw = value * w, value.detach().mean()
            elif is_list_of(value, Tensor):
                out[key], raw = [v * w for v in value], sum(v.detach().mean() for v in value)
            else:
                raise TypeError(f'WeightedLossDetector: loss {key!r} is not a tensor or '
                                f'list of tensors')
            extra[RAW_PREFIX + key] = raw
            extra[WEIGHT_PREFIX + key] = torch.tensor(w, device=raw.device)
        out.update(extra)
        return out

    def parse_losses(self, losses: dict) -> tuple[Tensor, dict]:
        """Sum the (weighted) loss terms; log raw values and weights aside."""
        logged = {k: v for k, v in losses.items()
                  if k.startswith((RAW_PREFIX, WEIGHT_PREFIX))}
        terms = {k: v for k, v in losses.items() if k not in logged}
        loss, log_vars = super().parse_losses(terms)
        log_vars.update({k: v.detach() for k, v in logged.items()})
        return loss, log_vars

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        return self.detector.predict(batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        return self.detector._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: Tensor):
        return self.detector.extract_feat(batch_inputs)
