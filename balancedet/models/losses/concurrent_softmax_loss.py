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
``parents`` entry of the ``.json`` file (or the ``parents`` argument): a dict
child index -> parent index or list of parent indices, i.e. a DAG
(:class:`~balancedet.datasets.hierarchy.ClassHierarchy`; Open Images has 45
classes with several parents).  The options hold for **every** ancestor /
descendant pair of the DAG (Tomato -> Vegetable, Tomato -> Food, ...), not
only for direct parents.

Numerics: everything is computed in float32 (half-precision inputs are
upcast, gradients are cast back) from a max-subtracted softmax; a (box,
label) pair whose ``-log p`` or denominator would underflow, or whose
denominator would lose precision to cancellation, is recomputed exactly as a
weighted log-sum-exp with its own max, so large logits neither overflow nor
underflow.  Cost: one softmax and one dense gradient pass, like
cross-entropy, plus ``O(K)`` per (box, label) pair, ``K`` the largest number
of non-zeros in a row of ``r`` (``r`` is stored row-compressed); no
``(N, C, C)`` or per-pair ``(C + 1)`` tensor is built except for the rare
pairs recomputed exactly.
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
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from balancedet.utils.checks import check_choice

_HIERARCHY_MODES = ('concurrent', 'zero', 'estimated')
_MODES = ('concurrent', 'softmax')


def _as_parent_lists(parents) -> dict[int, list[int]]:
    """``{child: parent}`` or ``{child: [parents]}`` (json keys may be str)."""
    return {int(k): [int(x) for x in ([v] if isinstance(v, (int, np.integer, str)) else v)]
            for k, v in parents.items()}


def _hierarchy_pairs(parents: dict, num_classes: int) -> np.ndarray:
    """Every (descendant, ancestor) pair of the DAG given by ``parents``."""
    from balancedet.datasets.hierarchy import ClassHierarchy, HierarchyError
    parents = _as_parent_lists(parents)
    for k, vs in parents.items():
        for what, i in [('child', k)] + [('parent', v) for v in vs]:
            if not 0 <= i < num_classes:
                raise ValueError(f'parents: {what} index {i} is outside [0, {num_classes})')
    try:
        hier = ClassHierarchy([str(i) for i in range(num_classes)], parents,
                              source='parents')
    except HierarchyError as err:
        raise ValueError(f'parents: {err}') from None
    return hier.ancestor_pairs()


def _read_json(path: str, source: str):
    """``(r, classes, parents)`` of a json written by the estimator."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f'{source} is not valid JSON ({err}); regenerate it with '
                         'tools/analysis_tools/concurrent_rate.py') from None
    if not isinstance(data, dict) or 'r' not in data:
        raise ValueError(f'{source} has no "r" entry; expected the json '
                         'written by tools/analysis_tools/concurrent_rate.py')
    try:
        mat = np.asarray(data['r'], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{source}: "r" is not a numeric (C, C) matrix') from None
    return mat, data.get('classes'), data.get('parents')


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
    check_choice(hierarchy, 'hierarchy', _HIERARCHY_MODES)
    names = file_parents = None
    source = f'r_file {r!r}' if isinstance(r, str) else 'r'
    if r is None:
        if num_classes is None:
            raise ValueError('r_file is None: pass num_classes so that r = 0 can be built')
        mat = np.zeros((num_classes, num_classes))
    elif isinstance(r, str):
        if not osp.isfile(r):
            raise FileNotFoundError(f'r_file: {r!r} does not exist; create it with '
                                    'tools/analysis_tools/concurrent_rate.py')
        if r.endswith('.npy'):
            mat = np.load(r).astype(np.float64)
        elif r.endswith('.json'):
            mat, names, file_parents = _read_json(r, source)
        else:
            raise ValueError(f'r_file: {r!r} must end with .json or .npy')
    else:
        mat = np.array(r.detach().cpu() if isinstance(r, Tensor) else r, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.shape[0] == 0:
        raise ValueError(f'{source} must be a non-empty square (C, C) matrix, got shape '
                         f'{tuple(mat.shape)}')
    if names is None:
        file_parents = None  # a hierarchy is read only with the class names it refers to
    elif len(names) != len(mat):
        raise ValueError(f'{source}: "classes" has {len(names)} names but "r" is '
                         f'{mat.shape[0]} x {mat.shape[1]}; regenerate the file')
    elif classes is not None:
        unknown = [c for c in names if c not in classes]
        if unknown:
            raise ValueError(f'r_file: {r!r} names classes that are not in the model\'s '
                             f'classes: {unknown[:10]}; regenerate it from the annotation '
                             'file the model is trained on')
        # file label k -> label pos[k] of ``classes``; classes the file lacks get r = 0
        pos = np.array([list(classes).index(c) for c in names])
        new = np.zeros((len(classes), ) * 2)
        new[np.ix_(pos, pos)] = mat
        mat = new
        if file_parents is not None:
            file_parents = {int(pos[k]): pos[vs].tolist()
                            for k, vs in _as_parent_lists(file_parents).items()}
    if num_classes is not None and mat.shape[0] != num_classes:
        raise ValueError(f'{source} has shape {tuple(mat.shape)} but the head has num_classes='
                         f'{num_classes}; r must be ({num_classes}, {num_classes}) '
                         '(foreground classes only, no background row)')
    if not np.all(np.isfinite(mat)) or mat.min() < 0 or mat.max() > 1:
        raise ValueError(f'{source} must hold probabilities in [0, 1] (no NaN/inf); got values '
                         f'in [{np.nanmin(mat):.4g}, {np.nanmax(mat):.4g}]')
    np.fill_diagonal(mat, 0.0)  # (mat is a fresh array whichever way r came)
    parents = file_parents if parents is None else parents
    if parents and hierarchy != 'estimated':
        # every ancestor pair of the DAG (several parents per class), both ways
        pairs = _hierarchy_pairs(parents, mat.shape[0])
        mat[pairs[:, 0], pairs[:, 1]] = mat[pairs[:, 1], pairs[:, 0]] = \
            1.0 if hierarchy == 'concurrent' else 0.0
    return torch.as_tensor(mat, dtype=torch.float32)


def sparse_rows(r: Tensor) -> tuple[Tensor, Tensor]:
    """Row-compressed ``r`` for gathers: ``(idx, val)`` of shape ``(C, K)``, K the
    largest number of non-zeros in a row; ``val[i, k] = r[i, idx[i, k]]`` and
    rows with fewer non-zeros are padded with ``val = 0`` at the row's own
    column (``r_ii = 0``: never a real non-zero of row ``i``)."""
    nz = r != 0
    k = int(nz.sum(dim=1).max())
    # stable sort puts each row's non-zero columns first, in column order
    order = torch.sort((~nz).to(torch.uint8), dim=1, stable=True).indices[:, :k]
    val = r.gather(1, order)
    own = torch.arange(r.size(0), device=r.device)[:, None].expand_as(order)
    return torch.where(val == 0, own, order), val


def _flat_nonzero(mask: Tensor) -> Tensor:
    """Sorted flat positions of the True entries of a bool tensor.

    A multi-hot target is mostly zeros: scanning it 8 bytes at a time and
    expanding only the non-zero words costs about a third of ``nonzero()`` on
    the bytes (which is as slow as a softmax of the same shape on CPU)."""
    b = mask.reshape(-1).view(torch.uint8)
    n8 = b.numel() // 8 * 8
    if n8 == 0 or b.storage_offset() % 8:
        return b.nonzero().view(-1)
    words = b[:n8].view(torch.int64).nonzero().view(-1)
    cand = (words[:, None] * 8 + torch.arange(8, device=b.device)).view(-1)
    hits = cand.masked_select(b.index_select(0, cand).bool())
    if n8 < b.numel():
        hits = torch.cat([hits, b[n8:].nonzero().view(-1) + n8])
    return hits


def _exact(x, rows, cols, e, multi_hot, r_idx, r_val, log_domain: bool):
    """Pairs ``e`` recomputed exactly from their box's row of ``x``.

    ``log_domain=False`` (``x = p``; for pairs whose ``T - sum r p`` cancels):
    ``D = sum_j W_j p_nj`` summed directly (non-negative terms); returns
    ``W p / D`` (the pairs' gradient rows) and ``D``.  ``log_domain=True``
    (``x`` = logits; for pairs whose ``p_ni`` underflows): eq. 3 as a weighted
    log-sum-exp with the pair's own max, exact whatever the magnitudes: terms
    with weight 0 (the box's other labels, ``r_ij = 1``) are set to ``-inf``
    before the max; returns ``W p / D`` and the pairs' losses.  Either way the
    weights ``1 - r_ij`` touch the row's non-zeros only (padding points at
    column ``i``, ``r_ii = 0``)."""
    r_e, c_e = rows.index_select(0, e), cols.index_select(0, e)[:, None]
    q = x.index_select(0, r_e)
    x_lab = q.gather(1, c_e)
    if multi_hot is not None:  # (1 - y_j): the box's other labels drop out
        q.masked_fill_(multi_hot.index_select(0, r_e), float('-inf') if log_domain else 0.0)
        q.scatter_(1, c_e, x_lab)
    idx, val = r_idx.index_select(0, c_e.view(-1)), r_val.index_select(0, c_e.view(-1))
    if log_domain:
        q.scatter_(1, idx, q.gather(1, idx).masked_fill_(val >= 1, float('-inf')))
        m = q.max(dim=1, keepdim=True).values
        q = q.sub_(m).exp_()
    q.scatter_(1, idx, q.gather(1, idx).mul_(1.0 - val))
    den = q.sum(dim=1, keepdim=True)
    return q.div_(den), (m + torch.log(den) - x_lab if log_domain else den).view(-1)


class _ConcurrentSoftmaxNLL(torch.autograd.Function):
    """Per-(box, label) eq. 3 loss with the closed-form eq. 4 backward.

    With ``p = softmax(z)`` and, for the pair ``(box n, label i)``, the weights
    ``W_j = (1 - y_j)(1 - r_ij)`` (``W_i = 1``), the denominator of eq. 3
    over ``e^{z_n}`` is ``D = sum_j W_j p_nj``, so ``loss = log D - log p_ni``.
    ``r`` is sparse in practice (concurrent labels are a few pairs per
    class), so ``D`` is evaluated as

        D = T_n - sum_{j : r_ij > 0, y_j = 0} r_ij p_nj,
        T_n = p_ni + sum_{j : y_j = 0} p_nj  (= 1 for a single-label box)

    with one gather of the row's non-zeros: ``O(K)`` per pair instead of
    ``O(C)``.  Eq. 4's gradient ``sum_pairs (W p / D) - y`` is likewise a
    dense ``p * sum(1/D)`` plus a sparse correction and the label entries.
    Where that is not exact, a pair is recomputed and its gradient row
    replaces its terms: ``D`` summed directly over the row when the
    subtracted mass exceeds half of ``T`` (e.g. a confident parent class with
    ``r = 1`` over a weak leaf), a weighted log-sum-exp of the logits with
    their own max when ``p_ni`` underflows.  ``T`` of a multi-label box whose
    labels hold more than half the probability is summed directly.
    The backward builds the gradient in the saved softmax's storage.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, rows: Tensor, cols: Tensor, multi_hot: Tensor | None,
                r_idx: Tensor, r_val: Tensor, r_any: Tensor) -> Tensor:
        # rows/cols: (box, label) pairs sorted by box; multi_hot: (N, C1) bool,
        # None when every box has one label (then rows = arange(N))
        n, c1 = logits.shape
        p = torch.softmax(logits, dim=1)
        p_flat = p.view(-1)
        lab = rows * c1 + cols
        p_lab = p_flat.index_select(0, lab)
        # sparse suppression: r_ij p_nj over the non-zeros j of row i, for the
        # pairs whose class has any (not background, not an unrelated class)
        sp = r_any.index_select(0, cols).nonzero().view(-1)
        cols_s = cols.index_select(0, sp)
        flat = (rows.index_select(0, sp) * c1)[:, None] + r_idx.index_select(0, cols_s)
        val = r_val.index_select(0, cols_s)
        # (index_select of the flattened indices: several times faster than
        # advanced indexing on CPU)
        flat_1d = flat.view(-1)
        if multi_hot is not None:  # (1 - y_j): a box's labels never suppress each other
            val = val.masked_fill(multi_hot.view(-1).index_select(0, flat_1d).view_as(flat), 0.0)
        rp = p_flat.index_select(0, flat_1d).view_as(flat).mul_(val)
        sub = p.new_zeros(rows.numel()).index_copy_(0, sp, rp.sum(dim=1))
        if multi_hot is None:
            total = torch.ones_like(p_lab)
        else:
            lab_mass = p.new_zeros(n).index_add_(0, rows, p_lab)
            rest = 1.0 - lab_mass  # probability outside the box's labels
            # boxes where 1 - lab_mass would cancel: the rest summed directly
            heavy = ((lab_mass > 0.5) & (torch.bincount(rows, minlength=n) > 1)).nonzero().view(-1)
            rest[heavy] = p.index_select(0, heavy).masked_fill_(
                multi_hot.index_select(0, heavy), 0.0).sum(dim=1)
            total = rest.index_select(0, rows) + p_lab
        d = total - sub
        loss = torch.log(d) - torch.log(p_lab)
        # exact recomputation of the pairs where that is not exact: in
        # probability space when only the subtraction is at fault (then
        # D >= p_ni >= 1e-30 is a sum of non-negative terms), in the log domain
        # when p_ni itself underflows; their gradient rows replace their terms
        underflow = p_lab < 1e-30
        cancel = (((sub > 0.5 * total) | (d < 1e-30)) & ~underflow).nonzero().view(-1)
        under = underflow.nonzero().view(-1)
        q_c, d_c = _exact(p, rows, cols, cancel, multi_hot, r_idx, r_val, log_domain=False)
        loss[cancel] = torch.log(d_c) - torch.log(p_lab.index_select(0, cancel))
        if multi_hot is None:
            # one pair per box: with the exact D the closed-form gradient is
            # exact too (its sparse entries are p_nj - r_ij p_nj = 0 for r = 1)
            d[cancel] = d_c
            cancel, q_c = cancel[:0], q_c[:0]
        q_u, loss[under] = _exact(logits, rows, cols, under, multi_hot, r_idx, r_val,
                                  log_domain=True)
        exact, q = torch.cat([cancel, under]), torch.cat([q_c, q_u])
        d[exact] = 1.0  # unused below: their gradient comes from q
        ctx.save_for_backward(p, rows, cols, lab, flat, rp, d, exact, q, sp)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        p, rows, cols, lab, flat, rp, d, exact, q, sp = ctx.saved_tensors
        n = p.size(0)
        # eq. 4 per pair: W p_n / D - e_i; summed over the box's pairs
        s = grad_out / d
        lab_grad = p.view(-1).index_select(0, lab).mul_(s).sub_(grad_out)
        s[exact] = 0.0
        coef = s if rows.numel() == n else p.new_zeros(n).index_add_(0, rows, s)
        # the gradient is built in the softmax's storage, which nothing reads
        # after this: one (N, C + 1) allocation less.  A second backward
        # through the same graph (retain_graph=True) is refused by autograd's
        # check of the saved tensors' versions instead of silently reusing it.
        grad = p.mul_(coef[:, None])
        # (1 - r_ij): the non-zeros of r take r_ij p_nj / D off
        grad.view(-1).index_add_(0, flat.view(-1), (rp * -s.index_select(0, sp)[:, None]).view(-1))
        g_e = grad_out.index_select(0, exact)
        # sigma*_i - 1 = -(sum of the row's other terms): no cancellation
        lab_grad[exact] = -q.scatter(1, cols.index_select(0, exact)[:, None], 0.0).sum(
            dim=1).mul_(g_e)
        grad.index_add_(0, rows.index_select(0, exact), q.mul_(g_e[:, None]))
        # label entries hold only their own pair's term: q_pi - 1
        grad.view(-1).index_put_((lab, ), lab_grad)
        return grad, None, None, None, None, None, None


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
            to map and validate a ``.json`` ``r_file``.  Left None, the
            dataset's classes are used: :meth:`bind_classes`, called by
            :class:`~balancedet.engine.MultiLabelTargetCheckHook` before
            training and testing, maps the file onto them.
        parents (dict, optional): child index -> parent index or list of
            parent indices (a DAG; overrides the hierarchy stored in the
            ``.json`` file).
        hierarchy (str): ``'concurrent'`` (default, ``r = 1`` between
            ancestors and descendants), ``'zero'`` (paper text, ``r = 0``) or
            ``'estimated'``.  See the module docstring.
        train_mode (str): ``'concurrent'`` (eq. 3) or ``'softmax'``
            (cross-entropy on the single assigned label).
        test_mode (str): ``'concurrent'`` (eq. 5) or ``'softmax'``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight (float): weight of the loss.
    """

    # mmdet BBoxHead hooks (see SeesawLoss)
    custom_cls_channels = custom_activation = custom_accuracy = True
    use_sigmoid = False

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
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise TypeError(f'num_classes must be a positive int, got {num_classes!r}')
        self.train_mode = check_choice(train_mode, 'train_mode', _MODES)
        self.test_mode = check_choice(test_mode, 'test_mode', _MODES)
        self.reduction = check_choice(reduction, 'reduction', ('none', 'mean', 'sum'))
        self.num_classes, self.loss_weight = num_classes, loss_weight
        self.r_file, self.parents, self.hierarchy = r_file, parents, hierarchy
        self.classes = None if classes is None else self._checked(classes)
        self._set_r(load_concurrent_rate(r_file, num_classes, self.classes, parents, hierarchy))

    def _checked(self, classes: Sequence[str]) -> list[str]:
        classes = list(classes)
        if len(classes) != self.num_classes:
            raise ValueError(f'classes has {len(classes)} names but num_classes='
                             f'{self.num_classes}; pass the dataset metainfo classes')
        return classes

    def _set_r(self, r: Tensor) -> None:
        # r row-compressed, with the background's zero row and column, for eq. 3
        r_idx, r_val = sparse_rows(F.pad(r, (0, 1, 0, 1)))
        for name, buf in dict(r=r, r_idx=r_idx, r_val=r_val, r_any=(r_val > 0).any(dim=1)).items():
            self.register_buffer(name, buf, persistent=False)

    def bind_classes(self, classes: Sequence[str]) -> None:
        """Map a ``.json`` ``r_file`` (and its hierarchy) onto ``classes``,
        the dataset's label order, by name; file classes missing from
        ``classes`` raise ValueError, as do explicit ``classes`` that differ."""
        classes = list(classes)
        if self.classes is not None:
            if self.classes != classes:
                raise ValueError(
                    f'loss_cls.classes {tuple(self.classes)} differ from the dataset classes '
                    f'{tuple(classes)}; drop loss_cls.classes (the dataset\'s are then used) or '
                    'list the dataset\'s classes in their order')
        elif isinstance(self.r_file, str) and self.r_file.endswith('.json'):
            self.classes = self._checked(classes)
            self._set_r(load_concurrent_rate(self.r_file, self.num_classes, self.classes,
                                             self.parents, self.hierarchy).to(self.r.device))

    @property
    def use_multi_hot(self) -> bool:
        """Whether the bbox head should pass multi-hot targets."""
        return self.train_mode == 'concurrent'

    def get_cls_channels(self, num_classes: int) -> int:
        if num_classes != self.num_classes:
            raise ValueError(f'loss_cls.num_classes={self.num_classes} differs from the '
                             f'bbox head num_classes={num_classes}; set them equal')
        return num_classes + 1

    def concurrent_nll(self, cls_score: Tensor, labels: Tensor) -> Tensor:
        """Per-box eq. 3 loss ``-sum_i y_i log sigma*_i`` (N,), float32."""
        c1 = self.num_classes + 1
        if cls_score.dim() != 2 or cls_score.size(1) != c1:
            raise ValueError(f'cls_score must be (N, {c1}), got {tuple(cls_score.shape)}')
        if labels.dim() == 1:
            n = labels.size(0)
            if labels.numel() and (labels.min() < 0 or labels.max() >= c1):
                raise ValueError(f'labels must lie in [0, {c1 - 1}] (background = '
                                 f'{c1 - 1}), got [{int(labels.min())}, {int(labels.max())}]')
            rows, cols = torch.arange(n, device=labels.device), labels.long()
        elif labels.dim() == 2 and labels.size(1) == c1:
            # (box, label) pairs sorted by box: flat positions, then divmod
            labels, n = labels.bool(), labels.size(0)
            flat = _flat_nonzero(labels)
            rows = torch.div(flat, c1, rounding_mode='floor')
            cols = flat - rows * c1
            if n and (rows.numel() < n or bool((torch.bincount(rows, minlength=n) == 0).any())):
                raise ValueError('multi-hot labels: every row needs at least one label '
                                 '(use the background column for negatives)')
        else:
            raise ValueError(f'labels must be (N,) class indices or (N, {c1}) multi-hot, '
                             f'got shape {tuple(labels.shape)}')
        dev = cls_score.device
        # one label per box (always so for (N,) labels): no (1 - y_j) masking
        multi_hot = labels if rows.numel() > n else None
        pair_loss = _ConcurrentSoftmaxNLL.apply(
            cls_score.float(), rows, cols, multi_hot, self.r_idx.to(dev), self.r_val.to(dev),
            self.r_any.to(dev))
        if multi_hot is None:
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
        if self.train_mode == 'concurrent':
            loss = self.concurrent_nll(cls_score, labels)
        elif labels.dim() == 2:
            raise ValueError("train_mode='softmax' takes (N,) labels; multi-hot "
                             "targets need train_mode='concurrent'")
        else:
            loss = F.cross_entropy(cls_score.float(), labels, reduction='none')
        loss = weight_reduce_loss(loss, None if label_weights is None else label_weights.float(),
                                  reduction_override or self.reduction, avg_factor)
        return self.loss_weight * loss

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Test-time scores ``(N, C + 1)``: eq. 5 or softmax (``test_mode``)."""
        if self.test_mode == 'softmax':
            return torch.softmax(cls_score.float(), dim=-1).to(cls_score.dtype)
        return self.concurrent_scores(cls_score)

    def concurrent_scores(self, cls_score: Tensor) -> Tensor:
        """Eq. 5: ``e^{z_i} / sum_j (1 - r_ij) e^{z_j}``."""
        z = cls_score.float()
        # 1 - r_ij, and 1 on the diagonal and the background row / column
        rc = 1.0 - F.pad(self.r, (0, 1, 0, 1)).to(z.device)
        e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
        denom = e @ rc.t()  # denom[n, i] = sum_j rc[i, j] e_j  (rc[i, i] = 1)
        scores = e / denom
        # exp underflow (z_i far below a non-competing max): exact log domain
        bad = (denom < 1e-30).any(dim=-1)
        if bool(bad.any()):
            zb = z[bad]
            scores[bad] = torch.exp(zb - torch.logsumexp(zb[:, None, :] + torch.log(rc)[None],
                                                         dim=-1))
        return scores.to(cls_score.dtype)

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Top-1 accuracy; with multi-hot labels a hit is any label of the box."""
        if labels.dim() == 1:
            return {'acc': accuracy(cls_score, labels)}
        if labels.size(0) == 0:
            return {'acc': cls_score.new_tensor([0.0])}
        hit = labels.bool().gather(1, cls_score.argmax(dim=1)[:, None]).float()
        return {'acc': hit.mean().view(1) * 100.0}  # shape (1,) like mmdet's accuracy
