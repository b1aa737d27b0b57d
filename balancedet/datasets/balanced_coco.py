"""COCO-format dataset that validates its input and keeps multi-label boxes.

:class:`BalancedCocoDataset` is mmdet's ``CocoDataset`` with three additions
the rest of the toolbox relies on:

* **validation** -- a missing or malformed annotation file, a record missing a
  required field, a category id that is not in ``categories``, a box with
  negative size, a class named in ``metainfo`` that the file does not have,
  or a missing image file raise :class:`DatasetError` naming the file and the
  record (mmdet would crash deep inside, or silently drop the annotation).
  Images without boxes are allowed.
* **multi-labels** -- every instance carries ``multi_labels``: the indices of
  all labels annotated on exactly the same box of the same image (Open Images
  style explicit multi-labels, or COCO files where a box is repeated with
  several category ids): the rule of :mod:`balancedet.datasets.same_object`.
  The duplicated instances themselves are kept, so evaluation counts every
  label of a box as a ground truth of its class.
* **hierarchy** -- ``metainfo['parents']`` maps a child label index to its
  parent's label index, read from the COCO ``supercategory`` field when it
  names another category of the file.

With ``metainfo=None`` (the default) the classes are all categories of the
annotation file, in category-id order.
"""
import json
import os.path as osp

import numpy as np
from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path

from .box_rules import DatasetError, check_boxes, warn_dropped
from .same_object import object_label_sets

__all__ = ['BalancedCocoDataset', 'DatasetError', 'category_labels', 'category_parents',
           'read_coco_annotations']


_IMAGE_FIELDS = ('id', 'file_name', 'width', 'height')
_ANN_FIELDS = ('id', 'image_id', 'category_id', 'bbox')


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_annotation_json(ann_file, backend_args=None, how_to_make=''):
    """Read a COCO-style JSON file (COCO, LVIS): a JSON object with the lists
    ``images``, ``annotations`` and ``categories``, or a :class:`DatasetError`
    naming the file (``how_to_make`` is the hint for a missing file)."""
    if not osp.isfile(ann_file) and '://' not in str(ann_file):
        raise DatasetError(f'annotation file {ann_file!r} does not exist; fix `ann_file`'
                           + (f' or {how_to_make}' if how_to_make else ''))
    with get_local_path(ann_file, backend_args=backend_args) as local_path:
        try:
            with open(local_path) as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetError(f'annotation file {ann_file!r} is not valid JSON: {err}') from None
    if not isinstance(data, dict):
        raise DatasetError(f'annotation file {ann_file!r}: expected a JSON object with '
                           f'"images", "annotations" and "categories", got {type(data).__name__}')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            raise DatasetError(f'annotation file {ann_file!r}: missing or non-list "{key}"')
    return data


def read_coco_annotations(ann_file, backend_args=None):
    """Load and validate a COCO detection file; return the parsed dict.

    Every record is checked and errors name the file and the record: records
    that are not JSON objects, missing fields, duplicate image / annotation /
    category ids (a COCO index would silently merge them), a ``bbox`` that is
    not four numbers, a non-finite coordinate, a box of negative size, an
    unknown ``category_id`` or ``image_id``. A missing ``area`` is computed as
    ``w * h``. Boxes that :func:`~balancedet.datasets.box_rules.check_boxes`
    drops (under one pixel, entirely outside the image, or ``area <= 0``,
    which mmdet would drop silently) are removed from the returned dict with
    one warning that gives their count and first ids.
    """
    coco = load_annotation_json(
        ann_file, backend_args, 'generate the demo data with `tools/misc/make_demo_dataset.py`')

    def unique_ids(key, fields):
        kind = key[:-1]
        ids = {}
        for pos, record in enumerate(coco[key]):
            if not isinstance(record, dict):
                raise DatasetError(f'annotation file {ann_file!r}: "{key}"[{pos}] is a '
                                   f'{type(record).__name__}, not a JSON object')
            missing = [f for f in fields if f not in record]
            if missing:
                raise DatasetError(f'annotation file {ann_file!r}: {kind} '
                                   f'{record.get("id", record)!r} ("{key}"[{pos}]) lacks field(s) '
                                   f'{missing}')
            first = ids.setdefault(record['id'], pos)
            if first != pos:
                raise DatasetError(f'annotation file {ann_file!r}: {kind} id {record["id"]!r} '
                                   f'appears twice ("{key}"[{first}] and [{pos}]); ids must be '
                                   'unique, or the records of one would be merged into the other')
        return ids

    if coco['images'] and any(f in coco['images'][0] for f in (
            'neg_category_ids', 'not_exhaustive_category_ids')):
        raise DatasetError(f'annotation file {ann_file!r} is in LVIS format (images with '
                           '"neg_category_ids"); use BalancedLVISDataset and BalancedLVISMetric '
                           '(configs/_base_/datasets/lvis_v1_instance.py)')
    cat_ids = unique_ids('categories', ('id', 'name'))
    images = coco['images']
    img_pos = unique_ids('images', _IMAGE_FIELDS)
    for img in images:
        if not all(_is_number(img[side]) and img[side] > 0 for side in ('width', 'height')):
            raise DatasetError(f'annotation file {ann_file!r}: image {img["id"]!r} has width '
                               f'{img["width"]!r} and height {img["height"]!r}; expected '
                               'positive numbers')
    anns = coco['annotations']
    unique_ids('annotations', _ANN_FIELDS)
    for ann in anns:
        if ann['category_id'] not in cat_ids:
            raise DatasetError(
                f'annotation file {ann_file!r}: annotation {ann["id"]} (image {ann["image_id"]}) '
                f'has category_id {ann["category_id"]}, which is not in "categories" '
                f'(ids {sorted(cat_ids)}); add the category or fix the annotation')
        if ann['image_id'] not in img_pos:
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} refers to '
                               f'image_id {ann["image_id"]}, which is not in "images"')
        bbox = ann['bbox']
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} has bbox '
                               f'{bbox!r}; expected [x, y, width, height] (four numbers)')
    if not anns:
        return coco
    xywh, keep = coco_box_rule(anns, {img['id']: img for img in images},
                               f'annotation file {ann_file!r}')
    negative = np.flatnonzero((xywh[:, 2:] < 0).any(axis=1))
    if len(negative):
        ann = anns[negative[0]]
        raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} (image '
                           f'{ann["image_id"]}) has a box of negative size {ann["bbox"]}; COCO '
                           'boxes are [x, y, width, height] with width, height >= 0')
    for i, ann in enumerate(anns):
        area = ann.get('area')
        if area is None:
            ann['area'] = float(xywh[i, 2] * xywh[i, 3])
        elif not _is_number(area):
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} has area '
                               f'{area!r}; expected a number (or leave it out to use w * h)')
        elif area <= 0:
            keep[i] = False
    if not keep.all():
        warn_dropped(f'annotation file {ann_file!r}',
                     [anns[i]['id'] for i in np.flatnonzero(~keep)],
                     'under 1 px, outside their image or with area <= 0')
        coco['annotations'] = [a for a, k in zip(anns, keep) if k]
    return coco


def coco_box_rule(anns, images, source):
    """:func:`~balancedet.datasets.box_rules.check_boxes` on COCO ``[x, y, w, h]``
    annotations (``images``: id -> image record); returns ``(xywh, keep)``."""
    xywh = np.array([a['bbox'] for a in anns], dtype=np.float64).reshape(-1, 4)
    sizes = np.array([(images[a['image_id']]['width'], images[a['image_id']]['height'])
                      for a in anns], dtype=np.float64)
    return xywh, check_boxes(np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], sizes[:, 0],
                             sizes[:, 1], source=source, record_ids=[a['id'] for a in anns])


def category_labels(categories, classes=None, source='the annotation file'):
    """The category -> label rule: ``(classes, {category id: label})``.

    ``classes`` (names in label order) defaults to every category name in
    category-id order; a category whose name is not in ``classes`` gets no
    label, and a class that names no category is a :class:`DatasetError`
    naming ``source``. Every COCO / LVIS reader of balancedet maps categories
    through this.
    """
    cats = sorted(categories, key=lambda c: c['id'])
    names = tuple(c['name'] for c in cats)
    if classes is None:
        classes = names
    unknown = [c for c in classes if c not in set(names)]
    if unknown:
        raise DatasetError(f'metainfo classes {unknown[:10]} are not categories of {source} (it '
                           f'has {len(names)}, e.g. {list(names[:10])}); fix `metainfo.classes`')
    index = {name: i for i, name in enumerate(classes)}
    return tuple(classes), {c['id']: index[c['name']] for c in cats if c['name'] in index}


def set_classes(metainfo, classes):
    """Store ``classes`` in a dataset's ``metainfo``, with a fixed colour per
    class when no palette is given (mmdet's visualizer needs one)."""
    metainfo['classes'] = classes
    if metainfo.get('palette') is None:
        metainfo['palette'] = [tuple((37 * i + 60) % 256 for i in (k, k + 3, k + 7))
                               for k in range(len(classes))]


def add_multi_labels(instances):
    """Give every instance the ``multi_labels`` of its object (one rule decides
    which boxes are one object: :mod:`balancedet.datasets.same_object`)."""
    label_sets = object_label_sets([inst['bbox'] for inst in instances],
                                   [inst['bbox_label'] for inst in instances])
    for inst, labels in zip(instances, label_sets):
        inst['multi_labels'] = labels


def category_parents(categories, classes):
    """Map child class index -> parent class index from COCO ``supercategory``.

    ``categories`` is the COCO list; ``classes`` the class names in label order.
    Only links whose parent is itself one of ``classes`` are kept.
    """
    index = {name: i for i, name in enumerate(classes)}
    return {index[c['name']]: index[c['supercategory']] for c in categories
            if c['name'] in index and c.get('supercategory') in index
            and c['supercategory'] != c['name']}


class _PreloadedCOCO(COCO):
    """mmdet's COCO index over an already loaded (validated) dict."""

    def __init__(self, dataset: dict):
        super().__init__(None)
        self.dataset = dataset
        self.createIndex()
        # the wrapper's aliases, as its own __init__ sets them after indexing
        self.img_ann_map, self.cat_img_map = self.imgToAnns, self.catToImgs


@DATASETS.register_module()
class BalancedCocoDataset(CocoDataset):
    """Validating, multi-label aware COCO dataset (see module docstring).

    Args:
        check_image_files (bool): Check that every image file exists when the
            dataset is built. Defaults to True.
        **kwargs: Passed to mmdet's ``CocoDataset``.
    """

    METAINFO = dict(classes=None, palette=None)

    def __init__(self, *args, check_image_files=True, **kwargs):
        self.check_image_files = check_image_files
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        coco = read_coco_annotations(self.ann_file, self.backend_args)
        classes = category_labels(coco['categories'], self._metainfo.get('classes'),
                                  repr(self.ann_file))[0]
        set_classes(self._metainfo, classes)
        self._metainfo['parents'] = category_parents(coco['categories'], classes)

        # mmdet's loader builds its COCO index through ``self.COCOAPI``: hand it
        # the validated dict instead of letting it read the file a second time.
        self.COCOAPI = lambda _path: _PreloadedCOCO(coco)
        try:
            data_list = super().load_data_list()
        finally:
            del self.COCOAPI
        for info in data_list:
            add_multi_labels(info['instances'])
        if self.check_image_files:
            missing = [d['img_path'] for d in data_list if not osp.isfile(d['img_path'])]
            if missing:
                raise DatasetError(
                    f'{len(missing)} image file(s) listed in {self.ann_file!r} are missing, e.g. '
                    f'{missing[:3]}; check `data_root`/`data_prefix` or regenerate the data')
        return data_list

    def filter_data(self):
        """mmdet's filtering; an empty result is an error naming the file."""
        data_list = super().filter_data()
        if not data_list:
            raise DatasetError(
                f'no image of {self.ann_file!r} is left after filtering (filter_cfg='
                f'{self.filter_cfg}, {len(self.data_list)} image(s) before it); check `metainfo` '
                'classes and `filter_cfg` (filter_empty_gt, min_size)')
        return data_list
