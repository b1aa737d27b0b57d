"""Open Images with native multi-label boxes (V6 and Challenge 2019 formats).

Peng et al., "Large-Scale Object Detection in the Wild from Imbalanced
Multi-Labels", CVPR 2020, train the concurrent softmax (eq. 3) on Open Images
objects carrying *several* labels (a box verified as Dog and as Animal).
mmdet's ``OpenImagesDataset`` reads every CSV row as its own single-label
instance, so those labels reach the loss as separate targets.  The datasets
here read the same files, in the same formats, as mmdet's
``OpenImagesDataset`` (V6) and ``OpenImagesChallengeDataset`` (Challenge
2019), and keep one **instance per object** (the rule of
:mod:`balancedet.datasets.same_object`: same image, identical coordinates)
with:

* ``bbox`` (pixels, xyxy), ``bbox_label`` -- the object's most specific label
  (the first, in file order, that is not an ancestor of another of its
  labels) -- and ``multi_labels``: every label of the object, sorted (what
  :class:`~balancedet.datasets.transforms.PackMultiLabelDetInputs` packs and
  :class:`~balancedet.models.roi_heads.ConcurrentSoftmaxRoIHead` consumes);
  with ``expand_ancestors=True`` (off by default; the metric expands at test
  time) ``multi_labels`` also holds every hierarchy ancestor of those labels;
* ``is_group_of`` (and V6's ``is_occluded``, ``is_truncated``,
  ``is_depiction``, ``is_inside``): True when any row of the object says so;
* per image ``image_level_labels`` / ``confidences`` from
  ``image_level_ann_file`` (1 = verified present, 0 = verified absent), as
  mmdet stores them.

For evaluation (``instances_per_label``, default: ``test_mode``) every
(object, annotated label) pair is its own instance, each with its own row's
flags and the object's ``multi_labels``: mmdet's ``OpenImagesMetric`` (and
``FastOpenImagesMetric``) count one ground truth per instance, so each label
of a box stays a ground truth of its class.

``metainfo``: ``classes``, ``RELATION_MATRIX`` (mmdet's convention, from
:class:`~balancedet.datasets.hierarchy.ClassHierarchy`), ``parents``
(``{label: [parent labels]}``, the DAG), ``mids`` and ``multi_label=True``.

Formats (as mmdet reads them):

* V6: ``ann_file`` CSV with header ``ImageID,Source,LabelName,Confidence,
  XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside``
  (coordinates normalised to [0, 1]); ``label_file``
  ``class-descriptions-boxable.csv`` (``MID,DisplayName``, no header);
  ``hierarchy_file`` ``bbox_labels_600_hierarchy.json``;
  ``image_level_ann_file`` ``ImageID,Source,LabelName,Confidence``;
  ``meta_file``: a pickled list of ``dict(filename=..., ori_shape=(h, w, 3))``
  (mmdet's ``tools/misc/get_image_metas.py``); images ``<ImageID>.jpg``.
* Challenge 2019: ``ann_file`` ``.txt`` -- per image a line with the image
  path (relative to ``data_prefix['img']``), a line ``-1`` (unused), the number
  of boxes, then one line per box ``label xmin ymin xmax ymax is_group_of``
  with 1-based labels; ``label_file`` ``cls-label-description.csv``
  (``MID,DisplayName,LabelId``); ``hierarchy_file`` ``class_label_tree.np``;
  ``image_level_ann_file`` ``ImageID,LabelName,Confidence``.

Bad input raises :class:`DatasetError` naming the file and the row: a
missing or renamed CSV column, a MID missing from the label file, a
hierarchy naming classes the label file lacks or holding a cycle, a box
outside [0, 1] or with xmin > xmax (ymin > ymax), a metas file whose images
differ from the annotation file's.  Then the toolbox's box rule
(:func:`~balancedet.datasets.box_rules.check_boxes` on pixel boxes): boxes
under 1 pixel wide or high (zero-size included) are dropped with one counted
warning per file.

A train-mode dataset holding multi-label objects checks its pipeline: a
packer that cannot carry ``multi_labels`` (mmdet's ``PackDetInputs``) makes
the build fail, naming it; :class:`~balancedet.engine.MultiLabelTargetCheckHook`
does the same for the model's RoI head before the first iteration.
"""
from __future__ import annotations

import csv
import os.path as osp
import pickle

import numpy as np
from mmdet.datasets import OpenImagesDataset
from mmdet.registry import DATASETS

from .box_rules import DatasetError, check_boxes, warn_dropped
from .hierarchy import ClassHierarchy, HierarchyError, load_openimages_hierarchy, read_label_file
from .same_object import object_ids, pairs_within_objects

V6_REQUIRED = ('ImageID', 'LabelName', 'XMin', 'XMax', 'YMin', 'YMax', 'IsGroupOf')
V6_FLAGS = ('IsOccluded', 'IsTruncated', 'IsGroupOf', 'IsDepiction', 'IsInside')
_FLAG_KEYS = {'IsOccluded': 'is_occluded', 'IsTruncated': 'is_truncated',
              'IsGroupOf': 'is_group_of', 'IsDepiction': 'is_depiction',
              'IsInside': 'is_inside'}


def _csv_rows(path, what, required, hint):
    """Yield the header's ``{column: index}``, then ``(line number, row)`` of each non-empty
    row; a missing file or column raises naming ``what`` and ``path``."""
    if not osp.isfile(path):
        raise DatasetError(f'{what} {path!r} does not exist; fix the path in the config or '
                           'generate a dataset with tools/misc/make_openimages_dataset.py')
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f'{what} {path!r} is empty; expected a header row')
        header = [h.strip().lstrip('\ufeff') for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetError(f'{what} {path!r}: column(s) {missing} missing from the header '
                               f'(row 1: {header}); expected {hint}')
        yield {name: header.index(name) for name in header}
        yield from ((lineno, row) for lineno, row in enumerate(reader, 2) if row)


def read_v6_boxes(path, mid_to_label):
    """Parse a V6 box CSV into columns; validates every row (see module)."""
    reader = _csv_rows(path, 'annotation file', V6_REQUIRED, ','.join((
        'ImageID', 'Source', 'LabelName', 'Confidence', 'XMin', 'XMax', 'YMin', 'YMax',
        *V6_FLAGS)))
    idx = next(reader)
    flag_names = [k for k in V6_FLAGS if k in idx]
    picks = [idx[k] for k in ('ImageID', 'LabelName', 'XMin', 'YMin', 'XMax', 'YMax',
                              *flag_names)]
    table, rows = [], []
    for lineno, row in reader:
        if len(row) != len(idx):
            raise DatasetError(f'annotation file {path!r} row {lineno}: {len(row)} fields, '
                               f'the header has {len(idx)}')
        table.append([row[i] for i in picks])
        rows.append(lineno)
    cols = list(zip(*table)) if table else [()] * len(picks)
    del table
    try:  # vectorised parse; the same values as float() / int()
        coords = np.stack([np.asarray(c, dtype=object).astype(np.float64) for c in cols[2:6]],
                          axis=1)
        flags = np.stack([np.asarray(c, dtype=np.int64) == 1 for c in cols[6:]], axis=1)
    except (ValueError, TypeError):
        for k in range(len(rows)):
            try:
                [float(c[k]) for c in cols[2:6]] + [int(c[k]) for c in cols[6:]]
            except ValueError:
                raise DatasetError(f'annotation file {path!r} row {rows[k]}: non-numeric '
                                   'coordinate or flag') from None
        raise
    labels = np.fromiter((mid_to_label.get(m, -1) for m in cols[1]), np.int64, len(rows))
    if (labels < 0).any():
        k = int(np.argmax(labels < 0))
        raise DatasetError(f'annotation file {path!r} row {rows[k]}: LabelName {cols[1][k]!r} '
                           'is not in the label file; use the label file of the same release')
    return dict(img_ids=list(cols[0]), labels=labels, coords=coords, flags=flags,
                flag_names=[_FLAG_KEYS[k] for k in flag_names],
                rows=np.asarray(rows, dtype=np.int64),
                img_paths=[f'{i}.jpg' for i in dict.fromkeys(cols[0])])


def read_challenge_boxes(path, num_classes):
    """Parse a Challenge 2019 ``.txt`` box file (mmdet's layout)."""
    if not osp.isfile(path):
        raise DatasetError(f'annotation file {path!r} does not exist')
    with open(path) as f:
        lines = f.read().splitlines()
    img_paths, img_ids, table, rows = [], [], [], []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        filename = lines[i].strip()
        try:
            count = int(lines[i + 2])
        except (IndexError, ValueError):
            raise DatasetError(f'annotation file {path!r} row {i + 3}: expected the number of '
                               f'boxes of {filename!r} (layout: image path, -1, count, boxes)'
                               ) from None
        if i + 3 + count > len(lines):
            raise DatasetError(f'annotation file {path!r}: {filename!r} announces {count} '
                               f'boxes but the file ends at row {len(lines)}')
        img_paths.append(filename)
        img_ids += [osp.splitext(osp.basename(filename))[0]] * count
        for lineno in range(i + 4, i + 4 + count):
            sp = lines[lineno - 1].split()
            try:
                if len(sp) != 6:
                    raise ValueError
                table.append((int(sp[0]) - 1, *map(float, sp[1:5]), int(sp[5]) == 1))
            except ValueError:
                raise DatasetError(f'annotation file {path!r} row {lineno}: {lines[lineno - 1]!r}'
                                   ' is not "label xmin ymin xmax ymax is_group_of"') from None
            if not 0 <= table[-1][0] < num_classes:
                raise DatasetError(f'annotation file {path!r} row {lineno}: label '
                                   f'{table[-1][0] + 1} is not a LabelId of the label file '
                                   f'(1..{num_classes})')
            rows.append(lineno)
        i += 3 + count
    table = np.asarray(table, dtype=np.float64).reshape(-1, 6)
    return dict(img_ids=img_ids, labels=table[:, 0].astype(np.int64), coords=table[:, 1:5],
                flags=table[:, 5:] == 1, flag_names=['is_group_of'],
                rows=np.asarray(rows, dtype=np.int64), img_paths=img_paths)


def check_normalised_boxes(coords, rows, path):
    """Open Images' rule: coordinates in [0, 1], xmin <= xmax, ymin <= ymax;
    anything else is an error naming the row.  Returns the keep mask (zero-size
    boxes are dropped, counted by the caller)."""
    for bad, why in (
            (~np.isfinite(coords).all(axis=1) | (coords < 0).any(axis=1) | (coords > 1).any(axis=1),
             'is outside [0, 1] ({} such row(s)); Open Images coordinates are normalised by '
             'the image size'),
            ((coords[:, 0] > coords[:, 2]) | (coords[:, 1] > coords[:, 3]),
             'has xmin > xmax or ymin > ymax ({} such row(s)); swap the columns')):
        if bad.any():
            k = int(np.argmax(bad))
            raise DatasetError(f'annotation file {path!r} row {rows[k]}: box (xmin, ymin, xmax, '
                               f'ymax) = {coords[k].tolist()} ' + why.format(int(bad.sum())))
    return (coords[:, 2] > coords[:, 0]) & (coords[:, 3] > coords[:, 1])


def read_image_level(path, mid_to_label, challenge):
    """``{ImageID: (labels, confidences)}`` from an image-level label CSV."""
    what = 'image-level label file'
    reader = _csv_rows(
        path, what, ('ImageID', 'LabelName', 'Confidence'),
        'ImageID,LabelName,Confidence' if challenge else 'ImageID,Source,LabelName,Confidence')
    idx = next(reader)
    out = {}
    for lineno, row in reader:
        mid, conf = row[idx['LabelName']], row[idx['Confidence']]
        if mid not in mid_to_label:
            raise DatasetError(f'{what} {path!r} row {lineno}: LabelName {mid!r} is not in the '
                               'label file')
        try:
            conf = float(conf)
        except ValueError:
            raise DatasetError(f'{what} {path!r} row {lineno}: Confidence {conf!r} is not a '
                               'number') from None
        labs, confs = out.setdefault(row[idx['ImageID']], ([], []))
        labs.append(mid_to_label[mid])
        confs.append(conf)
    return out


def read_metas(path, backend_args=None):
    """The metas pickle: ``{image stem: (height, width)}`` in file order."""
    if not osp.isfile(path):
        raise DatasetError(f'meta file {path!r} does not exist; write it with mmdet\'s '
                           'tools/misc/get_image_metas.py or the balancedet generator')
    with open(path, 'rb') as f:
        metas = pickle.load(f)  # same trust model as mmdet's loader (mmengine.load pkl)
    if not isinstance(metas, (list, tuple)):
        raise DatasetError(f'meta file {path!r}: expected a list of dicts with "filename" and '
                           f'"ori_shape", got {type(metas).__name__}')
    out = {}
    for k, meta in enumerate(metas):
        if not isinstance(meta, dict) or 'filename' not in meta or 'ori_shape' not in meta:
            raise DatasetError(f'meta file {path!r} record {k}: expected a dict with "filename" '
                               f'and "ori_shape", got {meta!r:.200}')
        h, w = meta['ori_shape'][:2]
        out[osp.splitext(osp.basename(meta['filename']))[0]] = (int(h), int(w))
    return out


def _primary_labels(obj, labels, num_objects, anc):
    """Per object: the first label (file order) that is not an ancestor of
    another label of the object (one always exists in a DAG)."""
    # a row is "covered" when another row of its object has a descendant label
    order = np.argsort(obj, kind='stable')
    a, b = (order[x] for x in pairs_within_objects(obj[order], num_objects))
    covered = np.zeros(len(obj), dtype=bool)
    covered[a[anc[labels[b], labels[a]]]] = True
    primary = np.empty(num_objects, dtype=np.int64)
    cand = np.flatnonzero(~covered)[::-1]  # later rows first, so the first row wins
    primary[obj[cand]] = labels[cand]
    return primary


@DATASETS.register_module()
class OpenImagesMultiLabelDataset(OpenImagesDataset):
    """Open Images V6 with one multi-label instance per object (see module).

    Args:
        label_file, meta_file, hierarchy_file, image_level_ann_file: as in
            mmdet's ``OpenImagesDataset``.
        expand_ancestors (bool): add every hierarchy ancestor to each
            object's ``multi_labels``. Defaults to False.
        instances_per_label (bool, optional): one instance per (object, label)
            instead of per object; None (default) means ``test_mode``.
        check_pipeline (bool): refuse a pipeline whose packer cannot carry
            ``multi_labels`` when multi-label objects exist (train mode).
        **kwargs: passed to mmdet's ``BaseDetDataset``.
    """

    METAINFO: dict = dict(dataset_type='oid_v6')
    challenge = False

    def __init__(self, *args, expand_ancestors: bool = False,
                 instances_per_label: bool | None = None, check_pipeline: bool = True,
                 **kwargs) -> None:
        self.expand_ancestors = bool(expand_ancestors)
        self._instances_per_label = instances_per_label
        self.check_pipeline = check_pipeline
        self._pairs = None
        self._num_multi = None
        super().__init__(*args, **kwargs)

    @property
    def instances_per_label(self) -> bool:
        return bool(self.test_mode if self._instances_per_label is None
                    else self._instances_per_label)

    def full_init(self) -> None:
        was = self._fully_initialized
        super().full_init()
        if not was and not self.test_mode and self.check_pipeline:
            self._check_pipeline()

    # -- loading ------------------------------------------------------------
    def load_data_list(self) -> list[dict]:
        try:
            classes, mids, m2l = read_label_file(self.label_file, challenge=self.challenge)
            hierarchy = load_openimages_hierarchy(self.hierarchy_file, m2l, classes)
        except HierarchyError as err:
            raise DatasetError(str(err)) from None
        self.hierarchy: ClassHierarchy = hierarchy
        self.label_id_mapping = m2l
        self._metainfo.update(
            classes=tuple(classes), mids=tuple(mids), RELATION_MATRIX=hierarchy.relation_matrix(),
            parents={k: list(v) for k, v in hierarchy.parents.items()}, multi_label=True)
        boxes = (read_challenge_boxes(self.ann_file, len(classes)) if self.challenge
                 else read_v6_boxes(self.ann_file, m2l))
        check_normalised_boxes(boxes['coords'], boxes['rows'], self.ann_file)  # errors
        img_level = None
        if self.image_level_ann_file:
            img_level = read_image_level(self.image_level_ann_file, m2l, self.challenge)
        metas = read_metas(self.meta_file)

        # images in order of first appearance in the annotation file
        paths = {osp.splitext(osp.basename(p))[0]: p for p in boxes['img_paths']}
        order_ids = list(paths)
        missing = [i for i in order_ids if i not in metas]
        extra = [i for i in metas if i not in paths]
        if missing or extra:
            raise DatasetError(
                f'meta file {self.meta_file!r} does not match annotation file {self.ann_file!r}: '
                f'{len(missing)} image(s) of the annotations lack a meta record (e.g. '
                f'{missing[:3]}), {len(extra)} meta record(s) have no annotation (e.g. '
                f'{extra[:3]}); regenerate the metas from the same split')
        img_index = {img: k for k, img in enumerate(order_ids)}
        img_of_row = np.fromiter((img_index[i] for i in boxes['img_ids']), dtype=np.int64,
                                 count=len(boxes['img_ids']))
        # the toolbox's box rule (box_rules.check_boxes) on pixel boxes: under 1 px
        # (zero-size included) dropped, counted in one warning per file
        hw = np.array([metas[i] for i in order_ids], dtype=np.float64).reshape(-1, 2)
        scale = hw[:, [1, 0, 1, 0]]
        px = boxes['coords'] * scale[img_of_row]
        # (its non-finite error cannot fire here: check_normalised_boxes ran first)
        keep = check_boxes(px, scale[img_of_row, 0], scale[img_of_row, 1], source=self.ann_file,
                           record_ids=boxes['rows'])
        if not keep.all():
            warn_dropped(self.ann_file, [f'row {r}' for r in boxes['rows'][~keep].tolist()],
                         'under 1 pixel wide or high (box rule)')
        img_of_row, labels = img_of_row[keep], boxes['labels'][keep]
        coords, flags = boxes['coords'][keep], boxes['flags'][keep]
        obj, num_obj = object_ids(coords, img_of_row)

        # per object: sorted unique labels (CSR), flags OR-ed
        C = len(classes)
        pair_key, pair_row = np.unique(obj * C + labels, return_index=True)
        if self.expand_ancestors:
            rows_, cols_ = np.nonzero(hierarchy.ancestor_matrix[pair_key % C])
            pair_key = np.unique(np.r_[pair_key, pair_key[rows_] // C * C + cols_])
        pair_obj, pair_lab = pair_key // C, pair_key % C
        ml_off = np.r_[0, np.cumsum(np.bincount(pair_obj, minlength=num_obj))].tolist()
        first_row = np.unique(obj, return_index=True)[1]  # objects are 0 .. num_obj - 1
        # class-image pairs for the samplers (every label of every object)
        self._pairs = (img_of_row[first_row][pair_obj], pair_lab)
        self._num_multi = int(np.sum(np.diff(ml_off) > 1))

        # everything per instance is computed in bulk; the loop only builds dicts
        if self.instances_per_label:  # one row per (object, label): the first row of each pair
            r = np.sort(pair_row)
            inst_obj, inst_lab, inst_flags = obj[r], labels[r], flags[r]
        else:
            r, inst_obj = first_row, np.arange(num_obj)
            inst_lab = _primary_labels(obj, labels, num_obj, hierarchy.ancestor_matrix)
            inst_flags = np.zeros((num_obj, flags.shape[1]), dtype=bool)
            np.logical_or.at(inst_flags, obj, flags)
        inst_img = img_of_row[r]
        inst_box = (coords[r] * scale[inst_img]).tolist()
        inst_obj, inst_lab, inst_flags = inst_obj.tolist(), inst_lab.tolist(), inst_flags.tolist()
        order = np.argsort(inst_img, kind='stable')
        bounds = np.searchsorted(inst_img[order], np.arange(len(order_ids) + 1)).tolist()
        order, lab_list, names = order.tolist(), pair_lab.tolist(), boxes['flag_names']
        data_list = []
        for k, (img, (h, w)) in enumerate(zip(order_ids, hw.astype(np.int64).tolist())):
            instances = []
            for q in order[bounds[k]:bounds[k + 1]]:
                o = inst_obj[q]
                instances.append(dict(bbox=inst_box[q], bbox_label=inst_lab[q],
                                      multi_labels=lab_list[ml_off[o]:ml_off[o + 1]],
                                      ignore_flag=0, **dict(zip(names, inst_flags[q]))))
            info = dict(img_path=osp.join(self.data_prefix['img'], paths[img]), img_id=img,
                        height=h, width=w, instances=instances)
            if img_level is not None:
                labs, confs = img_level.get(img, ([], []))
                info['image_level_labels'] = np.asarray(labs, dtype=np.int64)
                info['confidences'] = np.asarray(confs, dtype=np.float32)
            data_list.append(info)
        self._num_loaded = len(data_list)
        return data_list

    # -- samplers -----------------------------------------------------------
    def get_class_image_pairs(self):
        """Flat ``(image index, label)`` pairs of every object's labels (for
        :class:`~balancedet.datasets.samplers.class_index.ClassImageIndex`),
        without a per-image loop.  Falls back to reading the instances when a
        subset (``indices``) or filter changed the image list."""
        if self._pairs is not None and len(self) == getattr(self, '_num_loaded', -1):
            return self._pairs
        pairs = [(i, x) for i in range(len(self)) for x in self._image_labels(i)]
        return tuple(np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T)

    def _image_labels(self, idx: int) -> list[int]:
        return [x for inst in self.get_data_info(idx)['instances']
                for x in inst.get('multi_labels', [inst['bbox_label']])]

    def get_cat_ids(self, idx: int) -> list[int]:
        return sorted(set(self._image_labels(idx)))

    # -- checks -------------------------------------------------------------
    def _count_multi(self) -> int:
        """Number of objects carrying more than one label."""
        if getattr(self, '_num_multi', None) is None:
            self._num_multi = sum(
                sum(len(x.get('multi_labels', ())) > 1 for x in self.get_data_info(i)['instances'])
                for i in range(len(self)))
        return self._num_multi

    def _check_pipeline(self) -> None:
        """Raise when the pipeline's packer would drop ``multi_labels``; objects are
        counted only when such a packer is found, so single-label data with mmdet's
        ``PackDetInputs`` stays allowed."""
        from mmdet.datasets.transforms import PackDetInputs

        from .transforms.multi_label_packing import PackMultiLabelDetInputs
        for t in getattr(self.pipeline, 'transforms', self.pipeline) or []:
            if isinstance(t, PackDetInputs) and not isinstance(t, PackMultiLabelDetInputs):
                n = self._count_multi()
                if n:
                    raise DatasetError(
                        f'{type(self).__name__}: pipeline step {type(t).__name__} cannot carry '
                        f'multi-hot targets, but {n} object(s) of the training set have several '
                        'labels; they would be reduced to one label each. Use '
                        'dict(type="PackMultiLabelDetInputs") as the last train transform (and '
                        'ConcurrentSoftmaxRoIHead in the model), or set check_pipeline=False to '
                        'train on single labels knowingly')


@DATASETS.register_module()
class OpenImagesChallengeMultiLabelDataset(OpenImagesMultiLabelDataset):
    """Open Images Challenge 2019 (``.txt`` boxes, ``class_label_tree.np``,
    ``cls-label-description.csv``) with one multi-label instance per object."""

    METAINFO: dict = dict(dataset_type='oid_challenge')
    challenge = True

    def __init__(self, ann_file: str, **kwargs) -> None:
        if not str(ann_file).endswith('.txt'):
            raise DatasetError(f'annotation file {ann_file!r}: the Open Images Challenge box '
                               'annotation is a .txt file (use OpenImagesMultiLabelDataset for '
                               'V6 CSVs)')
        super().__init__(ann_file=ann_file, **kwargs)
