"""Single-object localization (ImageNet CLS-LOC style) version of a COCO dataset.

ImageNet's classification + localization task gives every image exactly one
class, possibly with several boxes of that class. :func:`convert_to_cls_loc`
turns a COCO detection dataset (the demo dataset by default) into that setting:

* **classes** -- the leaf categories only: a category that is the
  ``supercategory`` of another category of the file (the demo's ``round`` and
  ``angular``) is dropped, so the classes are mutually exclusive.
* **image class rule** -- the class whose boxes cover the largest total area of
  the image; ties go to the class with more boxes, then to the smaller
  category id. Every box of that class is kept (the class's duplicated boxes
  collapse to one), every other annotation is dropped.
* **images with no leaf box** (empty images, images whose objects are all
  labelled with a parent only) are left out: a CLS-LOC image always has a
  class.
* **other objects** -- with ``erase_others=True`` (default) the pixels of the
  dropped boxes that no kept box covers are repainted with the image's
  background (per-channel median of the pixels outside every box, plus
  Gaussian noise of the same spread), so that the image really shows one
  class. The dropped boxes are grown by ``margin`` pixels (default 2) first:
  anti-aliased shape edges reach a pixel or two beyond their boxes. Pixels
  inside a kept box are never changed, so the part of another object that
  overlaps a kept box stays (as clutter, like in ImageNet images). With
  ``erase_others=False`` the images are copied unchanged and the other
  objects stay as unlabelled clutter.

The result is a COCO dataset (``annotations/{split}.json``, images in
``{split}/``) that :class:`~balancedet.datasets.BalancedCocoDataset` and the
``CLSLocMetric`` read as is. CLI: ``tools/misc/make_cls_loc_dataset.py``.
"""
import json
import os
import os.path as osp
import shutil
from collections import Counter, defaultdict

import cv2
import numpy as np

from .balanced_coco import DatasetError, read_coco_annotations


def leaf_categories(categories):
    """COCO categories that are no other category's ``supercategory``."""
    names = {c['name'] for c in categories}
    parents = {c.get('supercategory') for c in categories} & names
    return [c for c in sorted(categories, key=lambda c: c['id']) if c['name'] not in parents]


def choose_image_class(anns):
    """The category id of an image under the rule of the module docstring.

    ``anns`` are the image's COCO annotations restricted to leaf classes;
    returns None when there are none.
    """
    area, count = defaultdict(float), Counter(ann['category_id'] for ann in anns)
    for ann in anns:
        area[ann['category_id']] += float(ann['bbox'][2]) * float(ann['bbox'][3])
    return min(count, key=lambda cid: (-area[cid], -count[cid], cid), default=None)


def box_mask(boxes, shape, margin=0):
    """Boolean mask of the pixels of COCO ``[x, y, w, h]`` boxes grown by ``margin``."""
    h, w = shape
    mask = np.zeros((h, w), bool)
    for b in boxes:
        x1, y1 = int(np.floor(b[0])) - margin, int(np.floor(b[1])) - margin
        x2, y2 = int(np.ceil(b[0] + b[2])) + margin, int(np.ceil(b[1] + b[3])) + margin
        mask[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)] = True
    return mask


def _erase(img, erase_boxes, keep_boxes, rng, margin=0):
    """Repaint ``erase_boxes`` (grown by ``margin``) minus ``keep_boxes``."""
    erase = box_mask(erase_boxes, img.shape[:2], margin)
    keep = box_mask(keep_boxes, img.shape[:2])
    target = erase & ~keep
    if not target.any():
        return img
    outside = ~(erase | keep)
    background = (img[outside] if outside.any() else img.reshape(-1, img.shape[-1])).astype(
        np.float32)
    fill = rng.normal(np.median(background, axis=0), background.std(axis=0),
                      size=(int(target.sum()), img.shape[-1]))
    img = img.copy()
    img[target] = np.clip(fill, 0, 255).astype(img.dtype)
    return img


def convert_split(ann_file, img_dir, out_ann_file, out_img_dir, erase_others=True, margin=2,
                  seed=0):
    """Convert one split; return ``dict(num_images, num_boxes, dropped_images)``."""
    coco = read_coco_annotations(ann_file)
    leaves = leaf_categories(coco['categories'])
    if not leaves:
        raise DatasetError(f'{ann_file!r} has no leaf category (every category is some '
                           "other category's supercategory); nothing to convert")
    leaf_ids = {c['id'] for c in leaves}
    anns_of = {}
    for ann in coco['annotations']:
        anns_of.setdefault(ann['image_id'], []).append(ann)

    rng = np.random.default_rng(seed)
    os.makedirs(out_img_dir, exist_ok=True)
    images, annotations, dropped = [], [], 0
    for img_info in sorted(coco['images'], key=lambda i: i['id']):
        anns = [a for a in anns_of.get(img_info['id'], []) if not a.get('iscrowd', 0)]
        leaf_anns = [a for a in anns if a['category_id'] in leaf_ids]
        cid = choose_image_class(leaf_anns)
        if cid is None:
            dropped += 1
            continue
        kept = {}  # box -> its first annotation of the class
        for a in leaf_anns:
            if a['category_id'] == cid:
                kept.setdefault(tuple(a['bbox']), a)
        src = osp.join(img_dir, img_info['file_name'])
        dst = osp.join(out_img_dir, img_info['file_name'])
        if not osp.isfile(src):
            raise DatasetError(f'image {src!r} listed in {ann_file!r} is missing')
        os.makedirs(osp.dirname(dst), exist_ok=True)
        others = [a['bbox'] for a in anns if tuple(a['bbox']) not in kept]
        if erase_others and others:
            img = cv2.imread(src, cv2.IMREAD_COLOR)
            img = _erase(img, others, [a['bbox'] for a in kept.values()], rng, margin)
            cv2.imwrite(dst, img)
        else:
            shutil.copyfile(src, dst)
        images.append(dict(img_info))
        annotations += [dict(a, id=len(annotations) + j) for j, a in enumerate(kept.values(), 1)]

    out = dict(coco, images=images, annotations=annotations,
               categories=[dict(c, supercategory='none') for c in leaves])
    os.makedirs(osp.dirname(osp.abspath(out_ann_file)), exist_ok=True)
    with open(out_ann_file, 'w') as f:
        json.dump(out, f)
    return dict(num_images=len(images), num_boxes=len(annotations), dropped_images=dropped)


def convert_to_cls_loc(src_root, out_root, splits=('train', 'val'), erase_others=True, margin=2,
                       seed=0):
    """Convert a COCO dataset laid out like the demo one into CLS-LOC form.

    ``src_root`` holds ``annotations/{split}.json`` and images in ``{split}/``;
    the same layout is written under ``out_root``. Returns per-split stats.
    """
    if not isinstance(margin, int) or margin < 0:
        raise ValueError(f'margin must be an int >= 0 (pixels), got {margin!r}')
    if osp.abspath(src_root) == osp.abspath(out_root):
        raise ValueError(f'out_root must differ from src_root ({src_root!r}): the conversion '
                         'rewrites images and annotations')
    return {split: convert_split(
        osp.join(src_root, 'annotations', f'{split}.json'), osp.join(src_root, split),
        osp.join(out_root, 'annotations', f'{split}.json'), osp.join(out_root, split),
        erase_others=erase_others, margin=margin, seed=seed + i)
        for i, split in enumerate(splits)}
