"""Deterministic generator of the embedded demo dataset (COCO format).

The demo dataset is small enough to train a detector on two CPU cores in
minutes, yet has every kind of imbalance the toolbox addresses:

* **long-tailed classes** -- the drawn object kinds follow a geometric
  frequency law whose most/least frequent ratio is ``tail_ratio`` (default 400,
  so the most/least frequent *category* ratio is >= 100);
* **a class hierarchy** -- two parent categories (``round``, ``angular``);
  each leaf category names its parent in the COCO ``supercategory`` field,
  parents name the root ``shape`` (which is not a category);
* **explicit multi-labels** -- a fraction ``explicit_multilabel`` of the
  objects is annotated twice on the same box: with the leaf and with its
  parent category (like *person* + *man* in Open Images);
* **implicit multi-labels** -- the confusable pair ``square``/``tile`` is
  drawn identically and labelled at random, and a fraction ``parent_only``
  of the objects is labelled with the parent category only;
* **label noise** -- a fraction ``label_noise`` of the leaf labels is
  replaced by a random other leaf;
* a few images with no object at all (``empty_fraction``).

Python API: :func:`generate_demo_dataset`. CLI: ``tools/misc/make_demo_dataset.py``
(or ``python -m balancedet.datasets.demo_generator``).
"""
import argparse
import json
import math
import os
import os.path as osp
from dataclasses import asdict, dataclass, field, fields

import cv2
import numpy as np
from mmdet.evaluation.functional import bbox_overlaps

from balancedet.utils import check_number

ROOT_NAME = 'shape'

#: ``(id, name, parent name)`` of every category, in id order.
DEMO_CATEGORIES = (
    (1, 'round', ROOT_NAME),
    (2, 'angular', ROOT_NAME),
    (3, 'circle', 'round'),
    (4, 'ring', 'round'),
    (5, 'square', 'angular'),
    (6, 'tile', 'angular'),
    (7, 'triangle', 'angular'),
    (8, 'cross', 'angular'),
    (9, 'diamond', 'angular'),
    (10, 'star', 'angular'),
)
DEMO_CLASSES = tuple(name for _, name, _ in DEMO_CATEGORIES)

#: Drawn object kinds, most frequent first: (kind, candidate leaf labels, BGR colour).
#: ``square`` and ``tile`` share a kind: they look the same (confusable pair).
_KINDS = (
    ('circle', ('circle', ), (60, 60, 220)),
    ('square', ('square', 'tile'), (220, 120, 40)),
    ('triangle', ('triangle', ), (50, 200, 50)),
    ('ring', ('ring', ), (40, 200, 230)),
    ('cross', ('cross', ), (200, 60, 200)),
    ('diamond', ('diamond', ), (230, 230, 90)),
    ('star', ('star', ), (250, 250, 250)),
)


@dataclass
class DemoDatasetSpec:
    """Parameters of the demo dataset (all sizes in pixels; ``help`` shows in the CLI)."""
    num_train: int = 600
    num_val: int = 200
    img_size: int = 128
    mean_objects: float = field(default=3.0, metadata=dict(help='objects per non-empty image'))
    min_object_size: int = 12
    max_object_size: int = 48
    tail_ratio: float = field(default=400.0, metadata=dict(
        help='frequency of the most over the least frequent object kind'))
    explicit_multilabel: float = field(default=0.15, metadata=dict(
        help='share of objects labelled with their leaf and its parent'))
    parent_only: float = field(default=0.08, metadata=dict(
        help='share of objects labelled with the parent only'))
    label_noise: float = field(default=0.01, metadata=dict(
        help='share of leaf labels replaced by a random other leaf'))
    empty_fraction: float = field(default=0.03, metadata=dict(help='share of empty images'))
    seed: int = 0

    def validate(self):
        check_number(self.num_train, 'num_train', integer=True, low=1)
        check_number(self.num_val, 'num_val', integer=True, low=0)
        check_number(self.img_size, 'img_size', integer=True, low=32)
        if not 4 <= self.min_object_size <= self.max_object_size < self.img_size:
            raise ValueError('need 4 <= min_object_size <= max_object_size < img_size, got '
                             f'{self.min_object_size}, {self.max_object_size}, {self.img_size}')
        check_number(self.tail_ratio, 'tail_ratio', low=1)
        check_number(self.mean_objects, 'mean_objects', low=0, low_open=True)
        for name in ('explicit_multilabel', 'parent_only', 'label_noise', 'empty_fraction'):
            check_number(getattr(self, name), name, low=0, high=1)
        if self.explicit_multilabel + self.parent_only > 1.0:
            raise ValueError('explicit_multilabel + parent_only must be <= 1')


def kind_frequencies(tail_ratio, num_kinds=len(_KINDS)):
    """Geometric frequency law: kind k gets ``tail_ratio ** (-k / (K - 1))``."""
    ranks = np.arange(num_kinds, dtype=np.float64)
    weights = tail_ratio**(-ranks / max(num_kinds - 1, 1))
    return weights / weights.sum()


def _draw_object(img, kind, box, color):
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    rx, ry = (x2 - x1) / 2.0, (y2 - y1) / 2.0

    def pts(points):
        return [np.round(np.array(points)).astype(np.int32)]

    if kind == 'circle':
        cv2.ellipse(img, (round(cx), round(cy)), (round(rx), round(ry)), 0, 0, 360, color, -1,
                    cv2.LINE_AA)
    elif kind == 'ring':
        thick = max(2, round(min(rx, ry) / 3))
        cv2.ellipse(img, (round(cx), round(cy)), (round(rx - thick / 2), round(ry - thick / 2)),
                    0, 0, 360, color, thick, cv2.LINE_AA)
    elif kind == 'square':
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    elif kind == 'triangle':
        cv2.fillPoly(img, pts([(cx, y1), (x2, y2), (x1, y2)]), color, cv2.LINE_AA)
    elif kind == 'cross':
        tx, ty = max(2, round(rx / 2.5)), max(2, round(ry / 2.5))
        cv2.rectangle(img, (x1, round(cy) - ty), (x2 - 1, round(cy) + ty), color, -1)
        cv2.rectangle(img, (round(cx) - tx, y1), (round(cx) + tx, y2 - 1), color, -1)
    elif kind == 'diamond':
        cv2.fillPoly(img, pts([(cx, y1), (x2, cy), (cx, y2), (x1, cy)]), color, cv2.LINE_AA)
    elif kind == 'star':
        angles = np.arange(10) * math.pi / 5 - math.pi / 2
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        cv2.fillPoly(img, pts(np.stack([cx + rx * radius * np.cos(angles),
                                        cy + ry * radius * np.sin(angles)], 1)), color,
                     cv2.LINE_AA)
    else:  # pragma: no cover - guarded by _KINDS
        raise KeyError(kind)


def _place_box(rng, spec, placed):
    """Pick a box that overlaps earlier boxes of the image by IoU < 0.3."""
    for _ in range(20):
        size = rng.integers(spec.min_object_size, spec.max_object_size + 1)
        aspect = rng.uniform(0.75, 1.33)
        w = int(np.clip(round(size * math.sqrt(aspect)), 4, spec.img_size - 1))
        h = int(np.clip(round(size / math.sqrt(aspect)), 4, spec.img_size - 1))
        x1 = int(rng.integers(0, spec.img_size - w + 1))
        y1 = int(rng.integers(0, spec.img_size - h + 1))
        box = (x1, y1, x1 + w, y1 + h)
        if not placed or bbox_overlaps(np.array([box], dtype=np.float64),
                                       np.array(placed, dtype=np.float64)).max() < 0.3:
            return box
    return None


def _make_split(out_dir, split, num_images, spec, rng):
    name_to_id = {name: cid for cid, name, _ in DEMO_CATEGORIES}
    parent_of = {name: parent for _, name, parent in DEMO_CATEGORIES}
    leaves = [name for _, name, parent in DEMO_CATEGORIES if parent != ROOT_NAME]

    # Exact per-kind object counts (every kind present at least once), then
    # shuffled into images: the tail is fixed by the spec, not by chance.
    num_nonempty = max(1, num_images - int(round(spec.empty_fraction * num_images)))
    total = max(len(_KINDS), int(round(spec.mean_objects * num_nonempty)))
    counts = np.maximum(1, np.round(kind_frequencies(spec.tail_ratio) * total)).astype(int)
    kinds = np.repeat(np.arange(len(_KINDS)), counts)
    rng.shuffle(kinds)
    image_of = np.concatenate([np.arange(num_nonempty),
                               rng.integers(0, num_nonempty, len(kinds) - num_nonempty)]) \
        if len(kinds) >= num_nonempty else rng.integers(0, num_nonempty, len(kinds))
    order = rng.permutation(num_images)  # which image ids are the non-empty ones

    img_dir = osp.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    per_image = [[] for _ in range(num_images)]  # kinds drawn in each slot of ``order``
    for k, i in zip(kinds.tolist(), image_of.tolist()):
        per_image[i].append(k)

    for slot, img_index in enumerate(order.tolist()):
        image_id = img_index + 1
        file_name = f'{image_id:06d}.png'
        base = rng.integers(20, 90, size=3).astype(np.float32)
        noise = rng.normal(0, 12, size=(spec.img_size, spec.img_size, 3)).astype(np.float32)
        img = np.clip(base + noise, 0, 255).astype(np.uint8)
        placed = []
        for k in per_image[slot]:
            box = _place_box(rng, spec, placed)
            if box is None:
                continue
            placed.append(box)
            kind, labels, color = _KINDS[k]
            jitter = rng.integers(-25, 26, size=3)
            _draw_object(img, kind, box, tuple(np.clip(np.add(color, jitter), 0, 255).tolist()))
            leaf = labels[int(rng.integers(len(labels)))]
            if rng.random() < spec.label_noise:
                leaf = leaves[int(rng.integers(len(leaves)))]
            u = rng.random()  # parent only, leaf and parent, or leaf only
            names = ([parent_of[leaf]] if u < spec.parent_only else [leaf, parent_of[leaf]]
                     if u < spec.parent_only + spec.explicit_multilabel else [leaf])
            x1, y1, x2, y2 = box
            annotations += [dict(image_id=image_id, category_id=name_to_id[name],
                                 bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                 area=float((x2 - x1) * (y2 - y1)), iscrowd=0) for name in names]
        cv2.imwrite(osp.join(img_dir, file_name), img)
        images.append(dict(id=image_id, file_name=file_name, width=spec.img_size,
                           height=spec.img_size))

    # each image's annotations are contiguous, in order: a stable sort by image id
    annotations = sorted(annotations, key=lambda a: a['image_id'])
    return dict(
        info=dict(description=f'balancedet demo dataset ({split})', version='1.0',
                  generator=asdict(spec)),
        licenses=[], images=sorted(images, key=lambda x: x['id']),
        annotations=[dict(id=i, **a) for i, a in enumerate(annotations, 1)],
        categories=[dict(id=cid, name=name, supercategory=parent)
                    for cid, name, parent in DEMO_CATEGORIES])


def generate_demo_dataset(out_dir, verbose=False, **kwargs):
    """Write the demo dataset under ``out_dir`` and return the annotation paths.

    Layout: ``out_dir/{train,val}/*.png`` and ``out_dir/annotations/{train,val}.json``.
    Keyword arguments are the fields of :class:`DemoDatasetSpec`; ``verbose``
    prints each split's size. The output is
    a pure function of the arguments (same seed, same bytes).
    """
    spec = DemoDatasetSpec(**kwargs)
    spec.validate()
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    paths = {}
    for offset, (split, num) in enumerate((('train', spec.num_train), ('val', spec.num_val))):
        if num == 0:
            continue
        rng = np.random.default_rng([spec.seed, offset])
        coco = _make_split(out_dir, split, num, spec, rng)
        path = osp.join(out_dir, 'annotations', f'{split}.json')
        with open(path, 'w') as f:
            json.dump(coco, f)
        paths[split] = path
        if verbose:
            print(f'{split}: {len(coco["images"])} images, {len(coco["annotations"])} '
                  f'annotations -> {path}')
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default='data/demo', help='output folder')
    for f in fields(DemoDatasetSpec):
        parser.add_argument('--' + f.name.replace('_', '-'), type=type(f.default),
                            default=f.default, help=f.metadata.get('help'))
    args = vars(parser.parse_args(argv))
    return generate_demo_dataset(args.pop('out_dir'), verbose=True, **args)


if __name__ == '__main__':
    main()
