"""Generated Open Images-shaped data samples for the Open Images metric tests and benchmark.

Samples look like what mmdet's Open Images datasets + ``PackDetInputs(meta_keys=(...,
'instances', 'image_level_labels'))`` give the evaluator: a dict with ``instances`` (list of
dicts with ``bbox`` in pixels, ``bbox_label``, ``is_group_of``), ``image_level_labels``
(int64 array of verified labels, positive and negative) and ``pred_instances`` (torch tensors).
"""
import numpy as np
import torch


def make_hierarchy(num_classes, rng, roots=None):
    """Random forest over the classes; relation matrix in mmdet's convention
    (``R[child, ancestor] = 1`` for every ancestor, identity on the diagonal)."""
    roots = roots if roots is not None else max(1, num_classes // 6)
    parent = np.full(num_classes, -1)
    for c in range(roots, num_classes):
        parent[c] = rng.integers(0, c)
    rel = np.eye(num_classes, dtype=np.int64)
    for c in range(num_classes):
        p = parent[c]
        while p >= 0:
            rel[c, p] = 1
            p = parent[p]
    return rel, parent


def make_meta(num_classes, rng, names=None):
    rel, parent = make_hierarchy(num_classes, rng)
    classes = tuple(names or [f'class {i}' for i in range(num_classes)])
    return dict(classes=classes, RELATION_MATRIX=rel, dataset_type='oid_v6'), parent


def _jitter(boxes, rng, scale):
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, 1)
    return boxes + rng.normal(0, scale, boxes.shape) * wh


def make_samples(num_imgs, num_classes, rng, *, dets_per_img=30, max_gt=8, group_p=0.2,
                 near_perfect=False, tie_decimals=None, empty_p=0.1, ill_p=0.7,
                 score_dtype=torch.float32, group_key='is_group_of', size=200.0,
                 leaf_bias=None):
    """``num_imgs`` samples; ``tie_decimals`` rounds scores (many exact ties)."""
    samples = []
    for i in range(num_imgs):
        n = 0 if rng.random() < empty_p else int(rng.integers(1, max_gt + 1))
        xy = rng.uniform(0, size * 0.7, (n, 2))
        wh = rng.uniform(size * 0.05, size * 0.3, (n, 2))
        gt_boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        if leaf_bias is not None:
            gt_labels = rng.choice(leaf_bias, n)
        else:
            gt_labels = rng.integers(0, num_classes, n)
        group = rng.random(n) < group_p
        instances = [dict(bbox=gt_boxes[j].tolist(), bbox_label=int(gt_labels[j]),
                          ignore_flag=0, **{group_key: bool(group[j])}) for j in range(n)]
        # image-level labels: positives (some box labels) + random verified negatives
        ill = []
        if rng.random() < ill_p:
            ill = list(rng.choice(num_classes, int(rng.integers(0, 6)), replace=True))
            ill += [int(x) for x in gt_labels[: int(rng.integers(0, n + 1))]]
        # detections: near-perfect copies of the gts (some with wrong / parent labels, dups)
        # plus random boxes
        parts_b, parts_l = [], []
        if n:
            k = int(rng.integers(n, 3 * n + 1))
            src = rng.integers(0, n, k)
            parts_b.append(_jitter(gt_boxes[src], rng, 0.02 if near_perfect else 0.12))
            lab = gt_labels[src].copy()
            flip = rng.random(k) < (0.05 if near_perfect else 0.3)
            lab[flip] = rng.integers(0, num_classes, int(flip.sum()))
            parts_l.append(lab)
            if group.any():  # several dets inside a group-of box
                gsrc = np.flatnonzero(group)
                for j in gsrc:
                    b = gt_boxes[j]
                    m = int(rng.integers(1, 4))
                    c = rng.uniform(b[:2], b[2:], (m, 2))
                    s = rng.uniform(2, 10, (m, 2))
                    parts_b.append(np.concatenate([c - s, c + s], 1))
                    parts_l.append(np.full(m, gt_labels[j]))
        m = max(0, dets_per_img - sum(len(x) for x in parts_l))
        if near_perfect:
            m = min(m, 3)
        xy = rng.uniform(0, size * 0.8, (m, 2))
        wh = rng.uniform(size * 0.02, size * 0.3, (m, 2))
        parts_b.append(np.concatenate([xy, xy + wh], 1))
        parts_l.append(rng.integers(0, num_classes, m))
        boxes = np.concatenate(parts_b).astype(np.float32)
        labels = np.concatenate(parts_l).astype(np.int64)
        scores = rng.random(labels.size)
        if near_perfect and n:
            scores[: len(parts_l[0])] = 0.5 + 0.5 * scores[: len(parts_l[0])]
        if tie_decimals is not None:
            scores = np.round(scores, tie_decimals)
        samples.append(dict(
            img_id=f'img{i:05d}',
            instances=instances,
            image_level_labels=np.array(ill, dtype=np.int64),
            pred_instances=dict(bboxes=torch.from_numpy(boxes),
                                scores=torch.tensor(scores, dtype=score_dtype),
                                labels=torch.from_numpy(labels))))
    return samples
