"""The class hierarchy as a directed acyclic graph (DAG), parsed once.

Peng et al., "Large-Scale Object Detection in the Wild from Imbalanced
Multi-Labels", CVPR 2020, work on Open Images, whose 600 box labels form a
5-level hierarchy in which a class may have *several* parents (in
``bbox_labels_600_hierarchy.json`` 45 classes do: Tomato is a Fruit and a
Vegetable).  The concurrent softmax (``hierarchy`` option of
:class:`~balancedet.models.losses.ConcurrentSoftmaxLoss`), the ``r_ij``
estimator, the samplers (``count_descendants``) and the analysis tools all
read the same :class:`ClassHierarchy`, built from one of three sources:

* the Open Images V6 ``bbox_labels_600_hierarchy.json``
  (:meth:`ClassHierarchy.from_openimages_json`): a ``Subcategory`` child is a
  *kind of* its node (an edge child -> parent); a ``Part`` child is a *part
  of* its node (Bicycle wheel -> Bicycle), which is **not** a parent: it is
  kept in :attr:`ClassHierarchy.parts` and ignored by ancestors.  Subcategory
  lists inside a Part subtree are still parent edges (Wheel is a kind of Auto
  part).  The root (``/m/0bl9f``, "Entity") is not a class and is dropped;
  any other MID missing from the label file is an error.
* the Open Images Challenge ``class_label_tree.np``
  (:meth:`ClassHierarchy.from_class_label_tree`): a ``(C + 1, C + 1)`` 0/1
  matrix whose first row/column is the root, ``M[1 + i, 1 + j] = 1`` when
  ``j`` is ``i`` or an ancestor of ``i`` (mmdet's convention).
* COCO categories (:meth:`ClassHierarchy.from_coco_categories`): a
  ``supercategory`` naming another category of the file is its parent (the
  demo dataset's link).

A cycle (a class that is its own ancestor) raises :class:`HierarchyError`
naming the file and the classes of the cycle.

:meth:`ClassHierarchy.relation_matrix` is mmdet's ``RELATION_MATRIX``
(``dataset_meta`` key read by ``OpenImagesMetric`` to expand ground truths
and detections to their ancestors): ``(C, C)``, ``1`` on the diagonal and at
``[i, j]`` for every ancestor ``j`` of ``i``.
"""
from __future__ import annotations

import graphlib
import json
import os.path as osp
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

OPENIMAGES_ROOT_MID = '/m/0bl9f'


class HierarchyError(ValueError):
    """Bad hierarchy input; the message names the file and the classes."""


def _with_root(mat):
    """``mat`` (0/1) with a root row/column 0 that every class descends from."""
    out = np.pad(np.asarray(mat) != 0, ((1, 0), (1, 0))).astype(np.int64)
    out[:, 0] = 1
    return out


def _load(src, name, load, error, fmt):
    """``(source name, content)`` of a path (read with ``load``) or of an in-memory value."""
    if not isinstance(src, str):
        return name, src
    if not osp.isfile(src):
        raise HierarchyError(f'hierarchy file {src!r} does not exist')
    try:
        return src, load(src)
    except error as err:
        raise HierarchyError(f'hierarchy file {src!r} is not {fmt}: {err}') from None


class ClassHierarchy:
    """A class DAG over ``C`` labels (see module docstring).

    Args:
        classes (Sequence[str]): class names in label order.
        parents (Mapping[int, Sequence[int]]): label -> its direct parents.
        parts (Mapping[int, Sequence[int]], optional): label -> the labels it
            is a part of (not parents).
        source (str): where the hierarchy came from, used in error messages.
    """

    def __init__(self, classes: Sequence[str], parents: Mapping, parts: Mapping | None = None,
                 source: str = '<hierarchy>') -> None:
        self.classes = tuple(classes)
        self.source = source
        c = len(self.classes)
        self.parents: dict[int, tuple[int, ...]] = {}
        for child, ps in parents.items():
            ps = [ps] if isinstance(ps, (int, np.integer)) else ps
            child, ps = int(child), sorted({int(p) for p in ps})
            for p in [child, *ps]:
                if not 0 <= p < c:
                    raise HierarchyError(f'{source}: label index {p} is outside [0, {c})')
            if child in ps:
                raise HierarchyError(f'{source}: class {self._name(child)} is its own parent '
                                     '(a cycle); fix the hierarchy')
            if ps:
                self.parents[child] = tuple(ps)
        self.parts = {int(k): tuple(sorted({int(x) for x in v}))
                      for k, v in (parts or {}).items() if v}
        self._ancestor = self._closure()

    # -- construction -------------------------------------------------------
    def _name(self, i: int) -> str:
        return f'{self.classes[i]!r} (label {i})' if 0 <= i < len(self.classes) else str(i)

    def _closure(self) -> np.ndarray:
        """``A[i, j]``: ``j`` is a strict ancestor of ``i``; raises on a cycle."""
        try:  # parents come before their children
            order = list(graphlib.TopologicalSorter(self.parents).static_order())
        except graphlib.CycleError as err:
            raise HierarchyError(
                f'{self.source}: the class hierarchy has a cycle: '
                + ' -> '.join(self._name(i) for i in err.args[1][::-1])
                + ' (each class is listed as a subcategory of the next); '
                'a class cannot be its own ancestor, fix the hierarchy file') from None
        anc = np.zeros((len(self.classes), ) * 2, dtype=bool)
        for node in order:
            for p in self.parents.get(node, ()):
                anc[node, p] = True
                anc[node] |= anc[p]
        return anc

    @classmethod
    def from_openimages_json(cls, hierarchy_file: str | dict, mid_to_label: Mapping[str, int],
                             classes: Sequence[str]) -> ClassHierarchy:
        """Parse an Open Images ``bbox_labels_600_hierarchy.json``.

        Args:
            hierarchy_file: path of the json file, or its parsed dict.
            mid_to_label: MID (``/m/...``) -> label index, from the label file.
            classes: class names in label order.
        """
        source, tree = _load(hierarchy_file, '<hierarchy dict>',
                             lambda path: json.loads(pathlib.Path(path).read_text()),
                             json.JSONDecodeError, 'valid JSON')
        parents, parts = {}, {}   # label -> the labels it is a kind of / a part of
        unknown: list[str] = []

        def label_of(node, where):
            if not isinstance(node, dict) or 'LabelName' not in node:
                raise HierarchyError(f'hierarchy file {source!r}: node {where} has no '
                                     '"LabelName"; expected {"LabelName": MID, '
                                     '"Subcategory": [...], "Part": [...]}')
            mid = node['LabelName']
            if mid == OPENIMAGES_ROOT_MID and where == 'root':
                return None
            if mid not in mid_to_label:
                unknown.append(f'{mid} (at {where})')
                return None
            return int(mid_to_label[mid])

        # iterative walk (the file is a tree of nodes; a MID may occur at
        # several places, which is how a class gets several parents)
        stack = [(tree, label_of(tree, 'root'), 'root')]
        while stack:
            node, me, where = stack.pop()
            for key, store in (('Subcategory', parents), ('Part', parts)):
                children = node.get(key, [])
                if not isinstance(children, list):
                    raise HierarchyError(f'hierarchy file {source!r}: "{key}" of {where} '
                                         'must be a list')
                for k, child in enumerate(children):
                    cl = label_of(child, f'{where}/{key}[{k}]')
                    if cl is not None and me is not None:
                        store.setdefault(cl, set()).add(me)
                    stack.append((child, cl, child['LabelName']))
        if unknown:
            raise HierarchyError(
                f'hierarchy file {source!r} names {len(unknown)} class(es) that the label file '
                f'lacks: {unknown[:5]}; use the label file of the same release (e.g. '
                'class-descriptions-boxable.csv with bbox_labels_600_hierarchy.json)')
        return cls(classes, parents, parts, source=source)

    @classmethod
    def from_class_label_tree(cls, tree: str | np.ndarray,
                              classes: Sequence[str]) -> ClassHierarchy:
        """Parse the Challenge ``class_label_tree.np`` (see module docstring)."""
        source, mat = _load(tree, '<class_label_tree array>', np.load, ValueError,
                            'a numpy array file (np.save format)')
        mat = np.asarray(mat)
        c = len(classes)
        if mat.shape != (c + 1, c + 1):
            raise HierarchyError(f'hierarchy file {source!r}: class_label_tree has shape '
                                 f'{mat.shape}, expected ({c + 1}, {c + 1}) for the {c} classes '
                                 'of the label file (row/column 0 is the root)')
        if not np.isin(mat, (0, 1)).all():
            raise HierarchyError(f'hierarchy file {source!r}: class_label_tree must hold 0/1')
        anc = mat[1:, 1:].astype(bool)
        np.fill_diagonal(anc, False)
        both = np.argwhere(anc & anc.T)
        if both.size:
            i, j = both[0]
            raise HierarchyError(f'{source}: the class hierarchy has a cycle: {classes[i]!r} '
                                 f'(label {i}) and {classes[j]!r} (label {j}) are each '
                                 'other\'s ancestors (rows {} and {} of the matrix)'.format(
                                     i + 1, j + 1))
        # direct parents: ancestors that are not ancestors of another ancestor
        direct = anc & ~((anc.astype(np.int32) @ anc.astype(np.int32)) > 0)
        parents = {i: np.flatnonzero(direct[i]).tolist() for i in range(c) if direct[i].any()}
        out = cls(classes, parents, source=source)
        if not np.array_equal(out._ancestor, anc):
            raise HierarchyError(f'{source}: class_label_tree is not transitively closed (a '
                                 'class lacks an ancestor of its parent); regenerate it')
        return out

    @classmethod
    def from_coco_categories(cls, categories: Sequence[dict], classes: Sequence[str],
                             source: str = '<COCO categories>') -> ClassHierarchy:
        """``supercategory`` naming another category of ``classes`` -> parent."""
        index = {name: i for i, name in enumerate(classes)}
        parents = {}
        for cat in categories:
            child, parent = cat.get('name'), cat.get('supercategory')
            if child in index and parent in index and parent != child:
                parents.setdefault(index[child], []).append(index[parent])
        return cls(classes, parents, source=source)

    @classmethod
    def from_relation_matrix(cls, mat: np.ndarray, classes: Sequence[str],
                             source: str = '<relation matrix>') -> ClassHierarchy:
        """Inverse of :meth:`relation_matrix` (mmdet's ``RELATION_MATRIX``)."""
        return cls.from_class_label_tree(_with_root(mat), classes)

    @classmethod
    def from_parents_dict(cls, parents: Mapping, classes: Sequence[str],
                          source: str = '<parents>') -> ClassHierarchy:
        """From ``{child index: parent index | [parent indices]}`` (json keys
        may be strings)."""
        return cls(classes, {int(k): v for k, v in parents.items()}, source=source)

    # -- queries ------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def ancestor_matrix(self) -> np.ndarray:
        """Bool ``(C, C)``: ``[i, j]`` is True when ``j`` is a strict ancestor of ``i``."""
        return self._ancestor

    def ancestors(self, label: int) -> list[int]:
        """All strict ancestors of ``label`` (sorted)."""
        return np.flatnonzero(self._ancestor[label]).tolist()

    def descendants(self, label: int) -> list[int]:
        """All strict descendants of ``label`` (sorted)."""
        return np.flatnonzero(self._ancestor[:, label]).tolist()

    def parents_of(self, label: int) -> tuple[int, ...]:
        return self.parents.get(label, ())

    def children_of(self, label: int) -> list[int]:
        return sorted(c for c, ps in self.parents.items() if label in ps)

    def leaves(self) -> list[int]:
        """Labels without descendants."""
        return np.flatnonzero(~self.is_parent_class()).tolist()

    def is_parent_class(self) -> np.ndarray:
        """Bool ``(C,)``: the label has at least one descendant."""
        return self._ancestor.any(axis=0)

    def ancestor_pairs(self) -> np.ndarray:
        """``(P, 2)`` int array of every (descendant, ancestor) pair."""
        return np.argwhere(self._ancestor)

    def relation_matrix(self) -> np.ndarray:
        """mmdet's ``RELATION_MATRIX``: float ``(C, C)``, 1 on the diagonal and
        at ``[i, j]`` for every ancestor ``j`` of ``i``."""
        return (self._ancestor | np.eye(self.num_classes, dtype=bool)).astype(np.float64)

    def class_label_tree(self) -> np.ndarray:
        """The Challenge ``class_label_tree`` layout: ``(C + 1, C + 1)`` with
        the root at row/column 0 (every class descends from it)."""
        return _with_root(self.relation_matrix())

    def expand(self, labels: Sequence[int]) -> list[int]:
        """``labels`` plus all their ancestors, sorted and unique."""
        labels = np.asarray(list(labels), dtype=np.int64)
        mask = self._ancestor[labels].any(axis=0) | np.isin(np.arange(self.num_classes), labels)
        return np.flatnonzero(mask).tolist()

    def parents_json(self) -> dict[str, list[int]]:
        """``{str(child): [parents]}`` for json files (read back by
        :meth:`from_parents_dict`)."""
        return {str(k): list(v) for k, v in sorted(self.parents.items())}

    def __repr__(self) -> str:
        return (f'ClassHierarchy({self.num_classes} classes, {len(self.parents)} with parents, '
                f'{int(self._ancestor.sum())} ancestor pairs, source={self.source!r})')


def read_label_file(label_file: str, challenge: bool = False):
    """Read an Open Images label file.

    V6 ``class-descriptions-boxable.csv``: ``MID,DisplayName`` rows, no header,
    label order = row order.  Challenge ``cls-label-description.csv``:
    ``MID,DisplayName,LabelId`` with 1-based ids, label order = id order
    (as mmdet's datasets read them).

    Returns:
        tuple: ``(classes, mids, mid_to_label)``.
    """
    import csv
    if not osp.isfile(label_file):
        raise HierarchyError(f'label file {label_file!r} does not exist')
    where = f'label file {label_file!r}'
    rows, seen = [], {}
    with open(label_file, newline='', encoding='utf-8') as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) < (3 if challenge else 2):
                raise HierarchyError(
                    f'{where} row {lineno}: {row!r} has {len(row)} field(s); '
                    + ('expected MID,DisplayName,LabelId (Challenge cls-label-description.csv)'
                       if challenge else 'expected MID,DisplayName '
                       '(class-descriptions-boxable.csv, no header)'))
            if lineno == 1 and not row[0].startswith('/'):
                raise HierarchyError(f'{where} row 1: {row!r} is not a MID row (MIDs start '
                                     'with "/m/" or "/g/"); the label file has no header row')
            if row[0] in seen:
                raise HierarchyError(f'{where} row {lineno}: MID {row[0]} repeats row '
                                     f'{seen[row[0]]}')
            seen[row[0]] = lineno
            try:
                rows.append((int(row[2]) if challenge else 0, row[0], row[1]))
            except ValueError:
                raise HierarchyError(f'{where} row {lineno}: LabelId {row[2]!r} is not an '
                                     'integer') from None
    if not rows:
        raise HierarchyError(f'{where} is empty')
    if challenge and sorted(r[0] for r in rows) != list(range(1, len(rows) + 1)):
        raise HierarchyError(f'{where}: LabelIds must be 1..{len(rows)} without gaps or repeats')
    rows.sort(key=lambda r: r[0])   # Challenge: LabelId order; V6 (ids all 0, stable): row order
    mids = [r[1] for r in rows]
    return [r[2] for r in rows], mids, {m: i for i, m in enumerate(mids)}


def load_openimages_hierarchy(hierarchy_file: str, mid_to_label: Mapping[str, int],
                              classes: Sequence[str]) -> ClassHierarchy:
    """Hierarchy from a ``.json`` (V6) or a ``class_label_tree.np`` file."""
    if str(hierarchy_file).endswith('.json'):
        return ClassHierarchy.from_openimages_json(hierarchy_file, mid_to_label, classes)
    return ClassHierarchy.from_class_label_tree(hierarchy_file, classes)
