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
  several category ids). The duplicated instances themselves are kept, so
  evaluation counts every label of a box as a ground truth of its class.
* **hierarchy** -- ``metainfo['parents']`` maps a child label index to its
  parent's label index, read from the COCO ``supercategory`` field when it
  names another category of the file.

With ``metainfo=None`` (the default) the classes are all categories of the
annotation file, in category-id order.
"""
import json
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path


class DatasetError(ValueError):
    """Raised for bad dataset input; the message names the file and record."""


_IMAGE_FIELDS = ('id', 'file_name', 'width', 'height')
_ANN_FIELDS = ('id', 'image_id', 'category_id', 'bbox')


def read_coco_annotations(ann_file, backend_args=None):
    """Load and validate a COCO detection file; return the parsed dict."""
    if not osp.isfile(ann_file) and '://' not in str(ann_file):
        raise DatasetError(f'annotation file {ann_file!r} does not exist; generate the demo data '
                           'with `python tools/misc/make_demo_dataset.py` or fix `ann_file`')
    with get_local_path(ann_file, backend_args=backend_args) as local_path:
        try:
            with open(local_path) as f:
                coco = json.load(f)
        except json.JSONDecodeError as err:
            raise DatasetError(f'annotation file {ann_file!r} is not valid JSON: {err}') from None
    if not isinstance(coco, dict):
        raise DatasetError(f'annotation file {ann_file!r}: expected a JSON object with '
                           f'"images", "annotations" and "categories", got {type(coco).__name__}')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            raise DatasetError(f'annotation file {ann_file!r}: missing or non-list "{key}"')

    def check_fields(record, fields, kind):
        missing = [f for f in fields if f not in record]
        if missing:
            raise DatasetError(f'annotation file {ann_file!r}: {kind} {record.get("id", record)!r}'
                               f' lacks field(s) {missing}')

    if coco['images'] and any(f in coco['images'][0] for f in (
            'neg_category_ids', 'not_exhaustive_category_ids')):
        raise DatasetError(f'annotation file {ann_file!r} is in LVIS format (images with '
                           '"neg_category_ids"); use BalancedLVISDataset and BalancedLVISMetric '
                           '(configs/_base_/datasets/lvis_v1_instance.py)')
    cat_ids = set()
    for cat in coco['categories']:
        check_fields(cat, ('id', 'name'), 'category')
        cat_ids.add(cat['id'])
    img_ids = set()
    for img in coco['images']:
        check_fields(img, _IMAGE_FIELDS, 'image')
        img_ids.add(img['id'])
    for ann in coco['annotations']:
        check_fields(ann, _ANN_FIELDS, 'annotation')
        if ann['category_id'] not in cat_ids:
            raise DatasetError(
                f'annotation file {ann_file!r}: annotation {ann["id"]} (image {ann["image_id"]}) '
                f'has category_id {ann["category_id"]}, which is not in "categories" '
                f'(ids {sorted(cat_ids)}); add the category or fix the annotation')
        if ann['image_id'] not in img_ids:
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} refers to '
                               f'image_id {ann["image_id"]}, which is not in "images"')
        bbox = ann['bbox']
        if len(bbox) != 4:
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} has bbox '
                               f'{bbox}; expected [x, y, width, height]')
        if bbox[2] < 0 or bbox[3] < 0:
            raise DatasetError(f'annotation file {ann_file!r}: annotation {ann["id"]} (image '
                               f'{ann["image_id"]}) has a box of negative size {bbox}; COCO boxes '
                               'are [x, y, width, height] with width, height >= 0')
    return coco


def category_parents(categories, classes):
    """Map child class index -> parent class index from COCO ``supercategory``.

    ``categories`` is the COCO list; ``classes`` the class names in label order.
    Only links whose parent is itself one of ``classes`` are kept.
    """
    index = {name: i for i, name in enumerate(classes)}
    parents = {}
    for cat in categories:
        child, parent = cat['name'], cat.get('supercategory')
        if child in index and parent in index and parent != child:
            parents[index[child]] = index[parent]
    return parents


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
        names = [c['name'] for c in sorted(coco['categories'], key=lambda c: c['id'])]
        classes = self._metainfo.get('classes')
        if classes is None:
            classes = tuple(names)
            self._metainfo['classes'] = classes
        else:
            unknown = [c for c in classes if c not in names]
            if unknown:
                raise DatasetError(f'metainfo classes {unknown} are not categories of '
                                   f'{self.ann_file!r} (it has {names}); fix `metainfo.classes`')
        if self._metainfo.get('palette') is None:
            self._metainfo['palette'] = [tuple((37 * i + 60) % 256 for i in (k, k + 3, k + 7))
                                         for k in range(len(classes))]
        self._metainfo['parents'] = category_parents(coco['categories'], classes)

        data_list = super().load_data_list()
        for info in data_list:
            instances = info['instances']
            labels_of_box = {}
            for inst in instances:
                labels_of_box.setdefault(tuple(inst['bbox']), set()).add(inst['bbox_label'])
            for inst in instances:
                inst['multi_labels'] = sorted(labels_of_box[tuple(inst['bbox'])])
        if self.check_image_files:
            missing = [d['img_path'] for d in data_list if not osp.isfile(d['img_path'])]
            if missing:
                raise DatasetError(
                    f'{len(missing)} image file(s) listed in {self.ann_file!r} are missing, e.g. '
                    f'{missing[:3]}; check `data_root`/`data_prefix` or regenerate the data')
        return data_list
