"""LVIS v1 dataset that needs no ``lvis`` package (works on numpy 2).

Gupta et al., "LVIS: A Dataset for Large Vocabulary Instance Segmentation",
CVPR 2019. mmdet's ``LVISV1Dataset`` parses the annotation file with the
``lvis`` package, whose only PyPI release (0.5.3) uses ``np.float`` and fails
on numpy 2. :class:`BalancedLVISDataset` reads the JSON file itself:

* image files: LVIS v1 images have no ``file_name``; the path is the
  ``coco_url`` without ``http://images.cocodataset.org/`` (e.g.
  ``train2017/000000391895.jpg``), joined to ``data_prefix['img']`` (``''``
  with ``data_root`` the folder holding ``train2017/`` and ``val2017/``), as
  mmdet does; a ``file_name`` field is used when present;
* classes: the file's categories in id order (the 1,203 LVIS v1 names);
  ``metainfo['frequency']`` holds each class's ``r``/``c``/``f`` group;
* instances: ``bbox`` (xyxy), ``bbox_label``, ``ignore_flag = 0`` (LVIS has
  no crowd regions), ``mask`` (the polygons / RLE) and ``multi_labels`` (the
  labels annotated on exactly the same box, as in ``BalancedCocoDataset``);
  boxes follow balancedet's box rule (``box_rules.check_boxes``: a non-finite
  coordinate is an error; under 1 px, outside the image or ``area <= 0`` is
  dropped, with one counted warning per file);
* validation: a COCO file (images with ``file_name`` and none of LVIS's
  ``neg_category_ids`` / ``not_exhaustive_category_ids``), unknown category or
  image ids raise :class:`DatasetError` naming the file, the record and the
  fix (categories without ``frequency`` are refused by the metric, which
  needs them for APr / APc / APf, not by the dataset).

Registered in ``DATASETS`` as ``BalancedLVISDataset``.
"""
from __future__ import annotations

import os.path as osp
from collections import defaultdict

import numpy as np
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from . import balanced_coco as coco_rules
from .box_rules import DatasetError, warn_dropped

COCO_URL_PREFIX = 'http://images.cocodataset.org/'
LVIS_IMAGE_FIELDS = ('neg_category_ids', 'not_exhaustive_category_ids')
FREQUENCY_GROUPS = ('r', 'c', 'f')


def read_lvis_annotations(ann_file, backend_args=None, require_frequency=True) -> dict:
    """Load an LVIS v1 file and check what LVIS evaluation and sampling rely on
    (``frequency`` of every category only with ``require_frequency``)."""
    data = coco_rules.load_annotation_json(
        ann_file, backend_args, 'write a tiny one with `python tools/misc/make_lvis_dataset.py`')
    images = data['images']
    if images and not any(f in images[0] for f in LVIS_IMAGE_FIELDS):
        raise DatasetError(
            f'annotation file {ann_file!r} is not in LVIS format: image {images[0].get("id")!r} '
            f'has none of {list(LVIS_IMAGE_FIELDS)}; for a COCO file use BalancedCocoDataset and '
            'CocoMetric (configs/libra_rcnn/faster-rcnn_r50_fpn_1x_coco.py)')
    for img in images:
        missing = [f for f in ('id', 'width', 'height') + LVIS_IMAGE_FIELDS if f not in img]
        if 'coco_url' not in img and 'file_name' not in img:
            missing.append('coco_url (or file_name)')
        if missing:
            raise DatasetError(f'annotation file {ann_file!r}: image {img.get("id", img)!r} '
                               f'lacks field(s) {missing}')
    if require_frequency:
        check_frequencies(data['categories'], ann_file)
    cat_ids = {c['id'] for c in data['categories']}
    img_ids = {img['id'] for img in images}
    for ann in data['annotations']:
        for field in ('id', 'image_id', 'category_id', 'bbox'):
            if field not in ann:
                raise DatasetError(f'annotation file {ann_file!r}: annotation '
                                   f'{ann.get("id", ann)!r} lacks field {field!r}')
        if ann['category_id'] not in cat_ids:
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} has '
                               f'category_id {ann["category_id"]}, not in "categories"')
        if ann['image_id'] not in img_ids:
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} refers to '
                               f'image_id {ann["image_id"]}, not in "images"')
    return data


def check_frequencies(categories, source) -> None:
    """Every category must carry LVIS's ``frequency`` (``r``, ``c`` or ``f``)."""
    bad = [c for c in categories if c.get('frequency') not in FREQUENCY_GROUPS]
    if bad:
        shown = ', '.join(f'{c.get("id")!r} ({c.get("name")!r}: {c.get("frequency")!r})'
                          for c in bad[:5])
        raise DatasetError(
            f'{source!r}: {len(bad)} of {len(categories)} categories have no valid "frequency" '
            f'(r/c/f), e.g. {shown}; frequency-aware evaluation needs the LVIS v1 annotation '
            'file (lvis_v1_train.json / lvis_v1_val.json), not a COCO-style copy')


def image_file(img: dict) -> str:
    """Relative image path of an LVIS image record (``coco_url`` minus the host)."""
    if 'file_name' in img:
        return img['file_name']
    url = img['coco_url']
    return url[len(COCO_URL_PREFIX):] if url.startswith(COCO_URL_PREFIX) else url.split('/', 3)[-1]


@DATASETS.register_module()
class BalancedLVISDataset(CocoDataset):
    """LVIS v1 detection / instance segmentation dataset (see module docstring)."""

    METAINFO = dict(classes=None, palette=None)

    def load_data_list(self) -> list[dict]:
        # frequency is optional for training (metainfo['frequency'] then holds None); the
        # metric, which reports APr / APc / APf, requires it
        data = read_lvis_annotations(self.ann_file, self.backend_args, require_frequency=False)
        classes, self.cat2label = coco_rules.category_labels(
            data['categories'], self._metainfo.get('classes'), repr(self.ann_file))
        coco_rules.set_classes(self._metainfo, classes)
        self.cat_ids = sorted(self.cat2label, key=self.cat2label.get)
        frequency = {c['id']: c.get('frequency') for c in data['categories']}
        self._metainfo['frequency'] = [frequency[cid] for cid in self.cat_ids]
        images = {img['id']: img for img in data['images']}
        anns = [a for a in data['annotations'] if a['category_id'] in self.cat2label]
        if anns:  # balancedet's box rule (box_rules.check_boxes), as BalancedCocoDataset
            keep = coco_rules.coco_box_rule(anns, images, f'annotation file {self.ann_file!r}')[1]
            keep &= np.array([a.get('area', 1) > 0 for a in anns])
            warn_dropped(f'annotation file {self.ann_file!r}',
                         [a['id'] for a, k in zip(anns, keep) if not k],
                         'under 1 px, outside their image or with area <= 0')
            anns = [a for a, k in zip(anns, keep) if k]
        anns_of = defaultdict(list)
        for ann in anns:
            anns_of[ann['image_id']].append(ann)
        self.cat_img_map = defaultdict(list)
        data_list = []
        for img in data['images']:
            instances = []
            for ann in anns_of.get(img['id'], ()):
                x, y, w, h = ann['bbox']
                instances.append(dict(bbox=[x, y, x + w, y + h], ignore_flag=0,
                                      bbox_label=self.cat2label[ann['category_id']],
                                      mask=ann.get('segmentation')))
                self.cat_img_map[ann['category_id']].append(img['id'])
            coco_rules.add_multi_labels(instances)
            data_list.append(dict(
                img_path=osp.join(self.data_prefix.get('img', ''), image_file(img)),
                img_id=img['id'], width=img['width'], height=img['height'],
                seg_map_path=None, instances=instances))
        return data_list


__all__ = ['BalancedLVISDataset', 'read_lvis_annotations', 'check_frequencies', 'image_file']
