"""Concurrent softmax loss (train sigma*) and concurrent inference (sigma-dagger).

Implements Peng et al., "Large-Scale Object Detection in the Wild from
Imbalanced Multi-Labels", CVPR 2020:

* **Eq. 3** (training). For a box with multi-hot label ``y`` over the
  ``C + 1`` classifier outputs (``C`` foreground classes and mmdet's
  background at index ``C``) and label set ``K = {i : y_i = 1}``::

      sigma*_i = e^{z_i} / (sum_j (1 - y_j)(1 - r_ij) e^{z_j} + e^{z_i})
      L*       = - sum_i y_i log sigma*_i

  Other labels of the same box never suppress a label (``1 - y_j = 0``) and
  a class ``j`` that objects of class ``i`` are often *also* labelled as
  (concurrent rate ``r_ij``) suppresses it only by ``1 - r_ij``.
* **Eq. 4** (gradient), which the custom autograd function below implements
  in closed form (and ``tests/test_concurrent_softmax_loss.py`` checks
  against autograd of a naive eq. 3)::

      dL*/dz_i = sigma*_i - 1                         for i in K
      dL*/dz_j = sum_{k in K} (1 - r_kj) e^{z_j} / D_k  for j not in K

  where ``D_k`` is the denominator of ``sigma*_k``.
* **Eq. 5** (inference)::

      sigma-dagger_i = e^{z_i} / sum_j (1 - r_ij) e^{z_j}

  Training and inference activations are selected independently
  (``train_mode`` / ``test_mode``), giving the four combinations of the
  paper's Table 2.

``r`` is a ``C x C`` matrix, ``r[i, j]`` = probability that an object of
class ``i`` is (also) labelled as class ``j``; it is estimated from the
training annotations by :mod:`balancedet.analysis.concurrent_rate` and loaded
from the file given in ``r_file`` (``.json`` written by that tool or a
``.npy`` matrix).  The diagonal is ignored (``r_ii = 0``: a class always
competes with itself in eq. 5) and background rows/columns are 0.

Hierarchy (parent / leaf pairs)
-------------------------------
The paper's text sets ``r_ij = 0`` for hierarchy pairs, yet states that
members of a hierarchy must not suppress each other at inference.  With
``r_ij = 0`` a confident "dog" logit would push "animal" down in eq. 5, which
contradicts that intent; not suppressing requires ``1 - r_ij = 0``, i.e.
``r_ij = 1`` for every ancestor/descendant pair (both directions).  That is
the default, ``hierarchy='concurrent'``.  ``hierarchy='zero'`` reproduces the
literal text (``r_ij = 0``) and ``hierarchy='estimated'`` keeps whatever the
estimator measured for those pairs.  The hierarchy is read from the
``parents`` entry of the ``.json`` file (or the ``parents`` argument, a dict
child index -> parent index).

Numerics: everything is computed in float32 (half-precision inputs are
upcast, gradients are cast back) from a max-subtracted softmax; a (box,
label) pair whose ``-log p`` or denominator would underflow is recomputed
exactly as a weighted log-sum-exp with its own max, so large logits neither
overflow nor underflow.  Cost: one softmax, plus ``O(C + 1)`` per (box,
label) pair that is not plain cross-entropy (multi-label boxes, classes with
non-zero ``r``); no ``(N, C, C)`` tensor is built.
"""
import json
import os.path as osp
from collections.abc import Sequence

import numpy as np
import torch
from mmdet.models.losses.accuracy import accuracy
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

_HIERARCHY_MODES = ('concurrent', 'zero', 'estimated')
_MODES = ('concurrent', 'softmax')


def _ancestors(parents: dict[int, int], idx: int, num_classes: int) -> list:
    out, seen = [], {idx}
    while idx in parents:
        idx = parents[idx]
        if idx in seen:
            raise ValueError(f'parents: cycle in the class hierarchy at class {idx}; '
                             'parents must map child index -> parent index as a tree')
        if not 0 <= idx < num_classes:
            raise ValueError(f'parents: parent index {idx} is outside [0, {num_classes})')
        seen.add(idx)
        out.append(idx)
    return out


def load_concurrent_rate(r: str | Sequence | np.ndarray | Tensor | None,
                         num_classes: int | None = None,
                         classes: Sequence[str] | None = None,
                         parents: dict | None = None,
                         hierarchy: str = 'concurrent') -> Tensor:
    """Load and validate a concurrent-rate matrix, apply the hierarchy rule.

    Args:
        r: path to a ``.json`` (written by ``tools/analysis_tools/
            concurrent_rate.py``) or ``.npy`` file, an array-like ``(C, C)``,
            or None for all zeros (needs ``num_classes``).
        num_classes: expected ``C``; checked against the matrix.
        classes: class names in label order.  With a ``.json`` file the
            file's classes are mapped onto this order by name (file classes
            that are not in ``classes`` raise ValueError).
        parents: child index -> parent index; overrides the file's.
        hierarchy: one of ``'concurrent'``, ``'zero'``, ``'estimated'``.

    Returns:
        Tensor: float32 ``(C, C)`` with zero diagonal.
    """
    if hierarchy not in _HIERARCHY_MODES:
        raise ValueError(f'hierarchy must be one of {_HIERARCHY_MODES}, got {hierarchy!r}')
    file_parents = None
    if r is None:
        if num_classes is None:
            raise ValueError('r_file is None: pass num_classes so that r = 0 can be built')
        mat = np.zeros((num_classes, num_classes), dtype=np.float64)
    elif isinstance(r, str):
        if not osp.isfile(r):
            raise FileNotFoundError(f'r_file: {r!r} does not exist; create it with '
                                    'tools/analysis_tools/concurrent_rate.py')
        if r.endswith('.npy'):
            mat = np.load(r).astype(np.float64)
        elif r.endswith('.json'):
            with open(r) as f:
                data = json.load(f)
            if 'r' not in data:
                raise ValueError(f'r_file: {r!r} has no "r" entry; expected the json '
                                 'written by tools/analysis_tools/concurrent_rate.py')
            mat = np.asarray(data['r'], dtype=np.float64)
            file_classes = data.get('classes')
            if file_classes is not None and mat.ndim == 2 and len(file_classes) == len(mat):
                if data.get('parents') is not None:
                    file_parents = {file_classes[int(k)]: file_classes[int(v)]
                                    for k, v in data['parents'].items()}
                if classes is not None:
                    unknown = [c for c in file_classes if c not in classes]
                    if unknown:
                        raise ValueError(
                            f'r_file: {r!r} names classes that are not in the model\'s '
                            f'classes: {unknown[:10]}; regenerate it from the annotation '
                            'file the model is trained on')
                    pos = [file_classes.index(c) if c in file_classes else -1
                           for c in classes]
                    new = np.zeros((len(classes), len(classes)))
                    for a, pa in enumerate(pos):
                        for b, pb in enumerate(pos):
                            if pa >= 0 and pb >= 0:
                                new[a, b] = mat[pa, pb]
                    mat = new
                    if file_parents is not None:
                        file_parents = {classes.index(c): classes.index(p)
                                        for c, p in file_parents.items()
                                        if c in classes and p in classes}
                elif file_parents is not None:
                    file_parents = {file_classes.index(c): file_classes.index(p)
                                    for c, p in file_parents.items()}
        else:
            raise ValueError(f'r_file: {r!r} must end with .json or .npy')
    else:
        if isinstance(r, Tensor):
            r = r.detach().cpu().numpy()
        mat = np.asarray(r, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f'r must be a square (C, C) matrix, got shape {tuple(mat.shape)}')
    if num_classes is not None and mat.shape[0] != num_classes:
        raise ValueError(f'r has shape {tuple(mat.shape)} but the head has num_classes='
                         f'{num_classes}; r must be ({num_classes}, {num_classes}) '
                         '(foreground classes only, no background row)')
    if not np.all(np.isfinite(mat)) or mat.min() < 0 or mat.max() > 1:
        raise ValueError('r must hold probabilities in [0, 1] (no NaN/inf); got values in '
                         f'[{np.nanmin(mat):.4g}, {np.nanmax(mat):.4g}]')
    mat = mat.copy()
    np.fill_diagonal(mat, 0.0)
    if parents is None:
        parents = file_parents
    if parents and hierarchy != 'estimated':
        c = mat.shape[0]
        parents = {int(k): int(v) for k, v in parents.items()}
        for k in parents:
            if not 0 <= k < c:
                raise ValueError(f'parents: child index {k} is outside [0, {c})')
        value = 1.0 if hierarchy == 'concurrent' else 0.0
        for child in parents:
            for anc in _ancestors(parents, child, c):
                mat[child, anc] = value
                mat[anc, child] = value
    return torch.as_tensor(mat, dtype=torch.float32)


class _ConcurrentSoftmaxNLL(torch.autograd.Function):
    """Per-(box, label) eq. 3 loss with the closed-form eq. 4 backward.

    With ``p = softmax(z)`` and ``W_pj = (1 - y_j)(1 - r_ij)`` (``W_pi = 1``)
    for pair ``p = (box n, label i)``: ``D_p = sum_j W_pj p_nj`` and
    ``loss_p = -log p_ni + log D_p``.  "Plain" pairs (single-label box whose
    class has ``r_i. = 0``, e.g. background) have ``D_p = 1``: plain
    cross-entropy, no per-pair work.  Pairs whose ``D_p`` underflows are
    recomputed exactly in the log domain with a per-pair max.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, rows: Tensor, cols: Tensor, rc: Tensor,
                plain_cls: Tensor) -> Tensor:
        # rows/cols: (box, label) pairs sorted by box (as from nonzero()).
        n = logits.size(0)
        p = torch.softmax(logits, dim=1)
        p_lab = p[rows, cols]
        loss = -torch.log(p_lab)
        small = p_lab < 1e-30  # log p would lose precision: exact log-softmax
        if bool(small.any()):
            s = small.nonzero(as_tuple=True)[0]
            loss[s] = torch.logsumexp(logits[rows[s]], dim=1) - logits[rows[s], cols[s]]
        row_count = torch.bincount(rows, minlength=n)
        multi_row = row_count[rows] > 1
        cx = (~plain_cls[cols] | multi_row).nonzero(as_tuple=True)[0]
        q = None
        if cx.numel():
            r_c, c_c = rows[cx], cols[cx]
            w = rc.index_select(0, c_c)  # (Pc, C1): 1 - r_ij
            mc = multi_row[cx].nonzero(as_tuple=True)[0]
            if mc.numel():  # (1 - y_j): zero the box's other labels
                start = torch.cumsum(row_count, 0) - row_count  # first pair of each box
                first = start[r_c[mc]]
                cnt = row_count[r_c[mc]]
                for k in range(int(cnt.max())):
                    ok = k < cnt
                    other = cols[(first + k).clamp(max=rows.numel() - 1)]
                    ok &= other != c_c[mc]
                    w[mc[ok], other[ok]] = 0.0
            if r_c.numel() == n:  # every box is one complex pair, in order
                q = w.mul_(p)
            else:
                q = w.mul_(p.index_select(0, r_c))
            d = q.sum(dim=1)
            tiny = d < 1e-30
            q.div_(d.clamp_min(1e-30)[:, None])  # sigma* weights (eq. 4)
            loss[cx] += torch.log(d.clamp_min(1e-30))
            if bool(tiny.any()):  # exact weighted log-sum-exp, per-pair max
                t = tiny.nonzero(as_tuple=True)[0]
                z = logits.index_select(0, r_c[t])
                wt = rc.index_select(0, c_c[t])  # w now holds q: rebuild
                lab = torch.zeros_like(wt, dtype=torch.bool)
                same = rows[None, :] == r_c[t][:, None]  # (T, P): pairs of the box
                ti, pj = same.nonzero(as_tuple=True)
                lab[ti, cols[pj]] = True
                wt = wt.masked_fill(lab, 0.0)
                wt.scatter_(1, c_c[t][:, None], 1.0)
                zm = z.masked_fill(wt <= 0, float('-inf'))
                m = zm.max(dim=1, keepdim=True).values
                et = torch.exp(zm - m) * wt
                dt = et.sum(dim=1, keepdim=True)
                q[t] = et / dt
                zi = z.gather(1, c_c[t][:, None])
                loss[cx[t]] = (m + torch.log(dt) - zi).squeeze(1)
        ctx.save_for_backward(p, rows, cols, cx, q if q is not None else p.new_zeros(0))
        return loss

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        p, rows, cols, cx, q = ctx.saved_tensors
        n = p.size(0)
        # eq. 4: d loss_p / d z_j = q_pj - [j == i_p]; plain pairs: q_p = p_n
        if cx.numel() == rows.numel() == n:  # all complex, one pair per box
            grad = q * grad_out[:, None]
        else:
            g_plain = grad_out.clone()
            g_plain[cx] = 0
            g_row = grad_out.new_zeros(n).index_add_(0, rows, g_plain)
            grad = p * g_row[:, None]
            if cx.numel():
                grad.index_add_(0, rows[cx], q * grad_out[cx][:, None])
        grad.index_put_((rows, cols), -grad_out, accumulate=True)
        return grad, None, None, None, None


@MODELS.register_module()
class ConcurrentSoftmaxLoss(nn.Module):
    """Concurrent softmax loss (eq. 3/4) and inference activation (eq. 5).

    Plugs into mmdet's ``BBoxHead`` through the same loss-side hooks as
    ``SeesawLoss`` (``custom_cls_channels``, ``custom_activation``,
    ``custom_accuracy``): ``get_activation`` gives the test-time scores.
    Multi-hot targets come from :class:`ConcurrentSoftmaxBBoxHead` (the stock
    head only passes one integer label per RoI, which this loss also accepts).

    Args:
        num_classes (int): number of foreground classes ``C``.
        r_file (str | array | None): concurrent rates, see
            :func:`load_concurrent_rate`; None means ``r = 0``.
        classes (Sequence[str], optional): class names in label order, used
            to map and validate a ``.json`` ``r_file``.
        parents (dict, optional): child index -> parent index (overrides the
            hierarchy stored in the ``.json`` file).
        hierarchy (str): ``'concurrent'`` (default, ``r = 1`` between
            ancestors and descendants), ``'zero'`` (paper text, ``r = 0``) or
            ``'estimated'``.  See the module docstring.
        train_mode (str): ``'concurrent'`` (eq. 3) or ``'softmax'``
            (cross-entropy on the single assigned label).
        test_mode (str): ``'concurrent'`` (eq. 5) or ``'softmax'``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight (float): weight of the loss.
    """

    def __init__(self,
                 num_classes: int,
                 r_file: str | Sequence | None = None,
                 classes: Sequence[str] | None = None,
                 parents: dict | None = None,
                 hierarchy: str = 'concurrent',
                 train_mode: str = 'concurrent',
                 test_mode: str = 'concurrent',
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) \
                or num_classes < 1:
            raise TypeError(f'num_classes must be a positive int, got {num_classes!r}')
        for name, val in (('train_mode', train_mode), ('test_mode', test_mode)):
            if val not in _MODES:
                raise ValueError(f'{name} must be one of {_MODES}, got {val!r}')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        if classes is not None:
            classes = list(classes)
            if len(classes) != num_classes:
                raise ValueError(f'classes has {len(classes)} names but num_classes='
                                 f'{num_classes}; pass the dataset metainfo classes')
        self.num_classes = num_classes
        self.train_mode = train_mode
        self.test_mode = test_mode
        self.reduction = reduction
        self.loss_weight = loss_weight
        r = load_concurrent_rate(r_file, num_classes, classes, parents, hierarchy)
        c1 = num_classes + 1
        rc = torch.ones(c1, c1)
        rc[:num_classes, :num_classes] -= r
        self.register_buffer('r', r, persistent=False)
        self.register_buffer('one_minus_r', rc, persistent=False)
        # classes whose row of r is zero: single-label boxes reduce to softmax CE
        self.register_buffer('plain_class', (rc == 1).all(dim=1), persistent=False)
        # mmdet BBoxHead hooks (see SeesawLoss)
        self.custom_cls_channels = True
        self.custom_activation = True
        self.custom_accuracy = True
        self.use_sigmoid = False

    @property
    def use_multi_hot(self) -> bool:
        """Whether the bbox head should pass multi-hot targets."""
        return self.train_mode == 'concurrent'

    def get_cls_channels(self, num_classes: int) -> int:
        if num_classes != self.num_classes:
            raise ValueError(f'loss_cls.num_classes={self.num_classes} differs from the '
                             f'bbox head num_classes={num_classes}; set them equal')
        return num_classes + 1

    def _label_pairs(self, labels: Tensor, c1: int):
        """(box, label) index pairs, sorted by box, from indices or multi-hot."""
        if labels.dim() == 1:
            if labels.numel() and (labels.min() < 0 or labels.max() >= c1):
                raise ValueError(f'labels must lie in [0, {c1 - 1}] (background = '
                                 f'{c1 - 1}), got [{int(labels.min())}, {int(labels.max())}]')
            return torch.arange(labels.size(0), device=labels.device), labels.long()
        if labels.dim() == 2 and labels.size(1) == c1:
            rows, cols = labels.bool().nonzero(as_tuple=True)
            if labels.size(0) and (rows.numel() < labels.size(0) or bool(
                    (torch.bincount(rows, minlength=labels.size(0)) == 0).any())):
                raise ValueError('multi-hot labels: every row needs at least one label '
                                 '(use the background column for negatives)')
            return rows, cols
        raise ValueError(f'labels must be (N,) class indices or (N, {c1}) multi-hot, '
                         f'got shape {tuple(labels.shape)}')

    def concurrent_nll(self, cls_score: Tensor, labels: Tensor) -> Tensor:
        """Per-box eq. 3 loss ``-sum_i y_i log sigma*_i`` (N,), float32."""
        c1 = self.num_classes + 1
        if cls_score.dim() != 2 or cls_score.size(1) != c1:
            raise ValueError(f'cls_score must be (N, {c1}), got {tuple(cls_score.shape)}')
        rows, cols = self._label_pairs(labels, c1)
        logits = cls_score.float()
        rc = self.one_minus_r.to(logits.device)
        plain = self.plain_class.to(logits.device)
        pair_loss = _ConcurrentSoftmaxNLL.apply(logits, rows, cols, rc, plain)
        if labels.dim() == 1:
            return pair_loss
        return pair_loss.new_zeros(cls_score.size(0)).index_add(0, rows, pair_loss)

    def forward(self,
                cls_score: Tensor,
                labels: Tensor,
                label_weights: Tensor | None = None,
                avg_factor: float | None = None,
                reduction_override: str | None = None) -> Tensor:
        """Weighted, reduced loss.

        Args:
            cls_score (Tensor): logits ``(N, C + 1)``.
            labels (Tensor): ``(N,)`` indices (background = ``C``) or
                ``(N, C + 1)`` multi-hot.
            label_weights (Tensor, optional): ``(N,)`` per-box weights.
            avg_factor (float, optional): normaliser for ``'mean'``.
            reduction_override (str, optional): overrides ``reduction``.
        """
        reduction = reduction_override if reduction_override else self.reduction
        if self.train_mode == 'softmax':
            if labels.dim() == 2:
                raise ValueError("train_mode='softmax' takes (N,) labels; multi-hot "
                                 "targets need train_mode='concurrent'")
            loss = torch.nn.functional.cross_entropy(
                cls_score.float(), labels, reduction='none')
        else:
            loss = self.concurrent_nll(cls_score, labels)
        if label_weights is not None:
            label_weights = label_weights.float()
        loss = weight_reduce_loss(loss, label_weights, reduction, avg_factor)
        return self.loss_weight * loss

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Test-time scores ``(N, C + 1)``: eq. 5 or softmax (``test_mode``)."""
        if self.test_mode == 'softmax':
            return torch.softmax(cls_score.float(), dim=-1).to(cls_score.dtype)
        return self.concurrent_scores(cls_score)

    def concurrent_scores(self, cls_score: Tensor) -> Tensor:
        """Eq. 5: ``e^{z_i} / sum_j (1 - r_ij) e^{z_j}``."""
        z = cls_score.float()
        rc = self.one_minus_r.to(z.device)
        m = z.max(dim=-1, keepdim=True).values
        e = torch.exp(z - m)
        denom = e @ rc.t()  # denom[n, i] = sum_j rc[i, j] e_j  (rc[i, i] = 1)
        scores = e / denom
        # exp underflow (z_i far below a non-competing max): exact log domain
        bad = (denom < 1e-30).any(dim=-1)
        if bool(bad.any()):
            zb = z[bad]
            lse = torch.logsumexp(zb[:, None, :] + torch.log(rc)[None], dim=-1)
            scores[bad] = torch.exp(zb - lse)
        return scores.to(cls_score.dtype)

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Top-1 accuracy; with multi-hot labels a hit is any label of the box."""
        if labels.dim() == 1:
            return {'acc': accuracy(cls_score, labels)}
        if labels.size(0) == 0:
            return {'acc': cls_score.new_tensor([0.0])}
        pred = cls_score.argmax(dim=1)
        hit = labels.bool().gather(1, pred[:, None]).float()
        return {'acc': hit.mean().view(1) * 100.0}  # shape (1,) like mmdet's accuracy
