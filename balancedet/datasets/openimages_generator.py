"""Generator of small datasets in the real Open Images formats.

Writes, deterministically from a seed, a tiny train/validation split in both
formats mmdet (and :mod:`balancedet.datasets.openimages`) read, on the **real**
Open Images V6 class list and hierarchy (``balancedet/data/openimages``,
CC BY 4.0, Google LLC):

``annotations/`` (V6)
    ``class-descriptions-boxable.csv``, ``bbox_labels_600_hierarchy.json``
    (copies), ``oidv6-train-annotations-bbox.csv``,
    ``validation-annotations-bbox.csv``,
    ``{train,validation}-annotations-human-imagelabels-boxable.csv``,
    ``{train,validation}-image-metas.pkl``.
``challenge2019/`` (Challenge 2019)
    ``challenge-2019-{train,validation}-detection-bbox.txt``,
    ``cls-label-description.csv``, ``class_label_tree.np``,
    ``challenge-2019-validation-detection-human-imagelabels.csv``,
    ``challenge-2019-{train,validation}-metas.pkl``.
``OpenImages/{train,validation}/<ImageID>.jpg``
    the images (coloured rectangles on noise, one colour per class).

The Challenge 2019 split uses ``challenge_classes`` (default 500) of the 601
V6 classes -- every class the generator draws plus the first others in file
order -- with the V6 hierarchy restricted to them.  This is *not* the official
Challenge 2019 500-class list (not shipped here); point the datasets at the
official ``cls-label-description.csv`` / ``class_label_tree.np`` for real data.

What the data contains (the paper's phenomena, Peng et al. CVPR 2020):

* **explicit multi-label boxes**: a Dog box also labelled with an ancestor
  (Animal / Mammal / Carnivore), the same coordinates repeated per label;
* **parent-only boxes**: an object labelled with an ancestor only;
* **a confusable pair labelled at random** (``Tortoise`` / ``Sea turtle``:
  drawn identically, either label, sometimes both);
* **group-of boxes** (``IsGroupOf = 1``, one box over several objects);
* **a long tail**: class frequencies follow a geometric law with
  most/least ratio ``tail_ratio``;
* **a multi-parent class** (Tomato: Fruit and Vegetable);
* image-level labels verified present (confidence 1) and absent (0).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import pickle
import shutil

import cv2
import numpy as np

from .hierarchy import ClassHierarchy, read_label_file

DATA_DIR = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'openimages')
LABEL_FILE = osp.join(DATA_DIR, 'class-descriptions-boxable.csv')
HIERARCHY_FILE = osp.join(DATA_DIR, 'bbox_labels_600_hierarchy.json')

#: leaf classes drawn, most frequent first (the long tail follows this order)
DRAWN = ('Person', 'Car', 'Dog', 'Tree', 'Tomato', 'Tortoise', 'Chair', 'Cat', 'Bicycle',
         'Apple', 'Bottle', 'Horse')
CONFUSABLE = ('Tortoise', 'Sea turtle')
GROUP_OF = ('Tree', 'Person', 'Tomato')


def _write(path, data):
    with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
        f.write(data)


def _fmt(x):
    return f'{x:.6f}'.rstrip('0').rstrip('.') if x not in (0.0, 1.0) else str(int(x))


def generate_openimages_dataset(out_dir: str, num_train: int = 40, num_val: int = 16,
                                seed: int = 0, tail_ratio: float = 50.0,
                                explicit_parent: float = 0.3, parent_only: float = 0.1,
                                group_of: float = 0.15, challenge_classes: int = 500,
                                min_size: int = 64, max_size: int = 128) -> dict:
    """Write the dataset into ``out_dir``; returns a summary dict."""
    rng = np.random.default_rng(seed)
    classes, mids, m2l = read_label_file(LABEL_FILE)
    hier = ClassHierarchy.from_openimages_json(HIERARCHY_FILE, m2l, classes)
    index = {c: i for i, c in enumerate(classes)}
    drawn = [index[c] for c in DRAWN]
    freq = tail_ratio ** (-np.arange(len(drawn)) / max(len(drawn) - 1, 1))
    freq /= freq.sum()
    conf_pair = [index[c] for c in CONFUSABLE]
    group_cls = {index[c] for c in GROUP_OF}
    dog = index['Dog']
    ann, chal = osp.join(out_dir, 'annotations'), osp.join(out_dir, 'challenge2019')
    for d in (ann, chal):
        os.makedirs(d, exist_ok=True)
    for src in (LABEL_FILE, HIERARCHY_FILE):
        shutil.copyfile(src, osp.join(ann, osp.basename(src)))

    # Challenge class subset: every class that can occur, then file order
    used = set(hier.expand(drawn + conf_pair))
    ch = sorted(used) + [i for i in range(len(classes)) if i not in used]
    ch = sorted(ch[:challenge_classes])
    ch_pos = {c: k for k, c in enumerate(ch)}
    _write(osp.join(chal, 'cls-label-description.csv'),
           ''.join(f'{mids[c]},{classes[c]},{k + 1}\n' for k, c in enumerate(ch)))
    sub = ClassHierarchy([classes[c] for c in ch],
                         {ch_pos[c]: [ch_pos[p] for p in hier.ancestors(c) if p in ch_pos]
                          for c in ch})
    with open(osp.join(chal, 'class_label_tree.np'), 'wb') as f:
        np.save(f, sub.class_label_tree())

    summary = {'classes': len(classes), 'challenge_classes': len(ch)}
    for split, num in (('train', num_train), ('validation', num_val)):
        img_dir = osp.join(out_dir, 'OpenImages', split)
        os.makedirs(img_dir, exist_ok=True)
        rows, img_rows, metas, txt = [], [], [], []
        n_multi = n_parent_only = n_group = 0
        seen = set()
        for _ in range(num):
            while (img_id := ''.join(rng.choice(list('0123456789abcdef'), 16))) in seen:
                pass  # redraw a taken image id
            seen.add(img_id)
            w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
            img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            objs = []
            for _ in range(int(rng.integers(1, 4))):
                leaf = drawn[int(rng.choice(len(drawn), p=freq))]
                bw, bh = rng.uniform(0.25, 0.7, 2)
                x0, y0 = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
                box = [round(float(v), 6) for v in (x0, x0 + bw, y0, y0 + bh)]  # xmin xmax ...
                color = tuple(m * leaf % 200 + 55 for m in (53, 97, 31))
                cv2.rectangle(img, (int(box[0] * w), int(box[2] * h)),
                              (int(box[1] * w) - 1, int(box[3] * h) - 1), color, -1)
                labels = [leaf]
                if leaf == conf_pair[0]:  # the confusable pair: either label, or both
                    r = rng.random()
                    labels = [conf_pair[0]] if r < 0.45 else [conf_pair[1]] if r < 0.9 \
                        else list(conf_pair)
                anc = hier.ancestors(leaf)
                if leaf == dog:
                    labels = [dog, index['Animal']]  # the Dog + Animal box of the tests
                elif anc and rng.random() < explicit_parent:
                    labels = labels + [int(rng.choice(anc))]
                elif anc and rng.random() < parent_only:
                    labels = [int(rng.choice(anc))]
                    n_parent_only += 1
                grp = int(leaf in group_cls and rng.random() < group_of * 3)
                n_multi += len(labels) > 1
                n_group += grp
                objs.append((box, labels, grp))
            if rng.random() < 0.5 and not objs[0][2]:
                # a zero-size box would be dropped; instead a duplicate label row
                # (same box, same label) that the same-object rule collapses
                box, labels, grp = objs[0]
                objs.append((box, labels[:1], grp))
            cv2.imwrite(osp.join(img_dir, f'{img_id}.jpg'), img)
            metas.append(dict(filename=f'OpenImages/{split}/{img_id}.jpg', ori_shape=(h, w, 3)))
            present = set()
            boxes_txt = []
            for box, labels, grp in objs:
                for lab in labels:
                    present.add(lab)
                    rows.append(f'{img_id},xclick,{mids[lab]},1,{_fmt(box[0])},{_fmt(box[1])},'
                                f'{_fmt(box[2])},{_fmt(box[3])},{int(rng.random() < 0.3)},0,'
                                f'{grp},0,0')
                    if lab in ch_pos:
                        boxes_txt.append(f'{ch_pos[lab] + 1} {box[0]} {box[2]} {box[1]} '
                                         f'{box[3]} {grp}')
            img_rows += [(img_id, lab, 1) for lab in sorted(present)]
            absent = [c for c in drawn if c not in present]
            img_rows.append((img_id, int(rng.choice(absent)), 0))
            txt.append(f'{split}/{img_id}.jpg\n-1\n{len(boxes_txt)}\n' + ''.join(
                b + '\n' for b in boxes_txt))
        name = f"{'oidv6-train' if split == 'train' else split}-annotations-bbox.csv"
        _write(osp.join(ann, name), 'ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,'
               'IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n'
               + ''.join(r + '\n' for r in rows))
        _write(osp.join(ann, f'{split}-annotations-human-imagelabels-boxable.csv'),
               'ImageID,Source,LabelName,Confidence\n'
               + ''.join(f'{i},verification,{mids[lab]},{c}\n' for i, lab, c in img_rows))
        _write(osp.join(ann, f'{split}-image-metas.pkl'), pickle.dumps(metas))
        _write(osp.join(chal, f'challenge-2019-{split}-detection-bbox.txt'), ''.join(txt))
        _write(osp.join(chal, f'challenge-2019-{split}-metas.pkl'), pickle.dumps(
            [dict(m, filename=m['filename'].replace('OpenImages/', '')) for m in metas]))
        if split == 'validation':
            _write(osp.join(chal, 'challenge-2019-validation-detection-human-imagelabels.csv'),
                   'ImageID,LabelName,Confidence\n' + ''.join(
                       f'{i},{mids[lab]},{c}\n' for i, lab, c in img_rows if lab in ch_pos))
        summary[split] = dict(images=num, box_rows=len(rows), multi_label_objects=n_multi,
                              parent_only_objects=n_parent_only, group_of_objects=n_group)
    _write(osp.join(out_dir, 'generator.json'),
           json.dumps(dict(summary, seed=seed, tail_ratio=tail_ratio), indent=1))
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description='Write a tiny dataset in the real Open Images '
                                     'V6 and Challenge 2019 formats.')
    parser.add_argument('--out-dir', default='data/openimages_tiny')
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tail-ratio', type=float, default=50.0)
    parser.add_argument('--challenge-classes', type=int, default=500)
    args = parser.parse_args(argv)
    summary = generate_openimages_dataset(args.out_dir, args.num_train, args.num_val, args.seed,
                                          args.tail_ratio,
                                          challenge_classes=args.challenge_classes)
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
