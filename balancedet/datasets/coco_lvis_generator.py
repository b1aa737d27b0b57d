"""Tiny COCO 2017 and LVIS v1 format datasets, for tests and for trying configs.

Both generators write the *layout* of the real datasets, so a config for the
real data only needs its ``data_root`` pointed at the generated folder:

* :func:`generate_tiny_coco` -- ``annotations/instances_{train,val}2017.json``
  and images in ``train2017/`` / ``val2017/``, with the 80 COCO category names
  under COCO's non-contiguous ids (1..90 with gaps), a few crowd regions
  (``iscrowd=1``) and polygon masks.
* :func:`generate_tiny_lvis` -- ``annotations/lvis_v1_{train,val}.json`` with
  the 1,203 LVIS v1 categories (names as mmdet's ``LVISV1Dataset`` lists
  them), each with ``frequency`` (``r``/``c``/``f``), ``image_count`` and
  ``instance_count``; images with ``coco_url`` (no ``file_name``: as in LVIS,
  the file is ``train2017/<12 digits>.jpg`` after the
  ``http://images.cocodataset.org/`` prefix), ``neg_category_ids`` and
  ``not_exhaustive_category_ids``; annotations without ``iscrowd``.

Only ``num_classes`` categories (default 12) carry boxes; the first third of
them is *frequent*, the second *common*, the last *rare*, with decreasing
image counts. A split this small cannot follow LVIS's thresholds (rare: 1-10
training images, common: 11-100, frequent: > 100), so ``frequency`` is fixed
by construction to have every group present; categories without boxes are
marked ``r`` with ``image_count = 0``, which is what the frequency-aware tools
must cope with (they leave them out).

Images are ``img_size`` px squares with filled rectangles, one per box, so a
detector has something learnable. Everything is deterministic in ``seed``.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from collections import Counter

import cv2
import numpy as np

COCO_URL = 'http://images.cocodataset.org/'
#: COCO's 80 category ids (1..90 without the 10 unused ids).
COCO_IDS = tuple(i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))


def coco_class_names():
    from mmdet.datasets import CocoDataset
    return tuple(CocoDataset.METAINFO['classes'])


def lvis_class_names():
    from mmdet.datasets import LVISV1Dataset
    return tuple(LVISV1Dataset.METAINFO['classes'])


def _draw_split(rng, num_images, num_classes, img_size, max_objects):
    """Per image: a list of ``(label, [x, y, w, h])`` boxes, label ``k`` drawn with
    weight ``0.7 ** k`` (frequent / common / rare thirds with geometric decay inside)."""
    probs = np.array([0.7 ** k for k in range(num_classes)], dtype=np.float64)
    probs /= probs.sum()
    images = []
    for _ in range(num_images):
        boxes = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            label = int(rng.choice(len(probs), p=probs))
            w, h = (int(v) for v in rng.integers(img_size // 6, img_size // 2, size=2))
            x, y = int(rng.integers(0, img_size - w)), int(rng.integers(0, img_size - h))
            boxes.append((label, [float(x), float(y), float(w), float(h)]))
        images.append(boxes)
    return images


def _write_image(path, boxes, img_size, colours, rng):
    img = np.full((img_size, img_size, 3), 40, dtype=np.uint8)
    img += rng.integers(0, 20, size=img.shape, dtype=np.uint8)
    for label, (x, y, w, h) in boxes:
        cv2.rectangle(img, (int(x), int(y)), (int(x + w) - 1, int(y + h) - 1),
                      colours[label], thickness=-1)
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, img)


def _colours(n):
    return [tuple(int(v) for v in ((53 * k + 90) % 256, (97 * k + 30) % 256, (151 * k + 200) % 256))
            for k in range(n)]


def _ann(ann_id, img_id, cat_id, x, y, w, h, **extra):
    return dict(id=ann_id, image_id=img_id, category_id=cat_id, bbox=[x, y, w, h], area=w * h,
                segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]], **extra)


def _write_json(path, images, anns, categories, description):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=categories,
                       info=dict(description=description), licenses=[]), f)
    return path


def generate_tiny_coco(root, num_train=8, num_val=4, img_size=96, num_classes=12,
                       max_objects=3, seed=0):
    """Write a tiny COCO 2017 style dataset under ``root``; return the json paths."""
    rng = np.random.default_rng(seed)
    names = coco_class_names()
    categories = [dict(id=cid, name=name, supercategory='thing')
                  for cid, name in zip(COCO_IDS, names)]
    colours = _colours(num_classes)
    paths = {}
    next_img, next_ann = 1, 1
    for split, num in (('train', num_train), ('val', num_val)):
        images, anns = [], []
        for boxes in _draw_split(rng, num, num_classes, img_size, max_objects):
            file_name = f'{next_img:012d}.jpg'
            _write_image(osp.join(root, f'{split}2017', file_name), boxes, img_size, colours, rng)
            images.append(dict(id=next_img, file_name=file_name, width=img_size,
                               height=img_size))
            for k, (label, (x, y, w, h)) in enumerate(boxes):
                # every fifth box of the training split is a crowd region
                crowd = int(split == 'train' and k == 1 and next_ann % 5 == 0)
                anns.append(_ann(next_ann, next_img, COCO_IDS[label], x, y, w, h, iscrowd=crowd))
                next_ann += 1
            next_img += 1
        paths[split] = _write_json(osp.join(root, 'annotations', f'instances_{split}2017.json'),
                                   images, anns, categories, 'balancedet tiny COCO')
    return paths


def generate_tiny_lvis(root, num_train=9, num_val=6, img_size=96, num_classes=12,
                       max_objects=3, seed=0):
    """Write a tiny LVIS v1 style dataset under ``root``; return the json paths.

    ``frequency`` of a used category: the first third of the used classes is
    ``f``, the second ``c``, the rest ``r`` (fixed by construction so each group
    is present); unused categories are ``r`` with ``image_count = 0``.
    """
    rng = np.random.default_rng(seed)
    names = lvis_class_names()
    colours = _colours(num_classes)
    third = max(1, num_classes // 3)
    freq = ['f' if k < third else 'c' if k < 2 * third else 'r' for k in range(num_classes)]
    draws = {s: _draw_split(rng, n, num_classes, img_size, max_objects)
             for s, n in (('train', num_train), ('val', num_val))}
    image_count = Counter(label for boxes in draws['train'] for label in {b[0] for b in boxes})
    instance_count = Counter(label for boxes in draws['train'] for label, _ in boxes)
    categories = [{'id': k + 1, 'name': name, 'synset': f'{name}.n.01', 'def': f'a {name}',
                   'synonyms': [name], 'frequency': freq[k] if k < num_classes else 'r',
                   'image_count': image_count[k], 'instance_count': instance_count[k]}
                  for k, name in enumerate(names)]
    paths = {}
    next_img, next_ann = 1, 1
    for split in ('train', 'val'):
        images, anns = [], []
        for boxes in draws[split]:
            rel = f'{split}2017/{next_img:012d}.jpg'
            _write_image(osp.join(root, rel), boxes, img_size, colours, rng)
            present = sorted({b[0] + 1 for b in boxes})
            absent = [c for c in range(1, num_classes + 1) if c not in present]
            neg = sorted(int(c) for c in rng.choice(absent, size=min(2, len(absent)),
                                                    replace=False))
            not_exh = [present[0]] if rng.random() < 0.3 else []
            images.append(dict(id=next_img, width=img_size, height=img_size, license=1,
                               coco_url=COCO_URL + rel, flickr_url='',
                               date_captured='2013-11-14 16:28:13',
                               neg_category_ids=neg, not_exhaustive_category_ids=not_exh))
            for label, (x, y, w, h) in boxes:
                anns.append(_ann(next_ann, next_img, label + 1, x, y, w, h))
                next_ann += 1
            next_img += 1
        paths[split] = _write_json(osp.join(root, 'annotations', f'lvis_v1_{split}.json'),
                                   images, anns, categories, 'balancedet tiny LVIS v1')
    return paths


def main(kind, argv=None):
    parser = argparse.ArgumentParser(description=f'Write a tiny {kind.upper()} format dataset.')
    parser.add_argument('--out-dir', default=f'data/{"coco" if kind == "coco" else "lvis_v1"}')
    parser.add_argument('--num-train', type=int, default=8 if kind == 'coco' else 9)
    parser.add_argument('--num-val', type=int, default=4 if kind == 'coco' else 6)
    parser.add_argument('--img-size', type=int, default=96)
    parser.add_argument('--num-classes', type=int, default=12,
                        help='categories that carry boxes')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    fn = generate_tiny_coco if kind == 'coco' else generate_tiny_lvis
    paths = fn(args.out_dir, num_train=args.num_train, num_val=args.num_val,
               img_size=args.img_size, num_classes=args.num_classes, seed=args.seed)
    for split, path in paths.items():
        print(f'{split}: {path}')
