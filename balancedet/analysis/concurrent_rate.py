"""Concurrent rates ``r_ij`` estimated from a COCO-format annotation file.

Peng et al., "Large-Scale Object Detection in the Wild from Imbalanced
Multi-Labels", CVPR 2020, Sec. 3.2: ``r_ij`` is the probability that an
object of class ``i`` is (also) labelled as class ``j``; it enters the
concurrent softmax (eq. 3 and eq. 5, :mod:`balancedet.models.losses.
concurrent_softmax_loss`) and its largest entries are shown as a heat map
(the paper's Fig. 3a).

Estimate: annotations of one image whose boxes overlap with IoU >=
``iou_thr`` (identical boxes repeated with several category ids, Open-Images
style explicit multi-labels, or near-duplicate boxes drawn by different
annotators) are one *object* with label set ``L``.  Over all objects::

    n_i     = #objects with i in L
    r_ij    = #objects with {i, j} in L / n_i        (i != j),  r_ii = 0

Crowd annotations are skipped.  The hierarchy (COCO ``supercategory`` naming
another category) is stored alongside; how hierarchy pairs enter ``r`` is
decided by the loss (``hierarchy`` option), not here.
"""
import json
from collections.abc import Sequence

import numpy as np

from balancedet.datasets.balanced_coco import category_parents, read_coco_annotations


def _iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes (N, 4) -> (N, N)."""
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    iw = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inter = iw * ih
    union = area[:, None] + area[None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    # zero-area boxes: identical coordinates count as the same box
    same = np.all(boxes[:, None] == boxes[None], axis=-1)
    return np.where(same, 1.0, iou)


def _objects(anns, iou_thr):
    """Group one image's annotations into objects (connected components)."""
    n = len(anns)
    boxes = np.asarray([a['bbox'] for a in anns], dtype=np.float64).reshape(n, 4)
    adj = _iou_matrix(boxes) >= iou_thr
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(*np.nonzero(np.triu(adj, 1))):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[ra] = rb
    groups = {}
    for k in range(n):
        groups.setdefault(find(k), []).append(anns[k])
    return list(groups.values())


def estimate_concurrent_rate(ann: str | dict,
                             classes: Sequence[str] | None = None,
                             iou_thr: float = 0.9) -> dict:
    """Estimate ``r`` from a COCO file (path or loaded dict).

    Args:
        ann: COCO-format annotation file path, or its parsed dict.
        classes: class names in label order; default all categories in id
            order (as ``BalancedCocoDataset`` does).  Names that are not
            categories of the file raise ValueError.
        iou_thr: annotations of one image overlapping at least this much are
            the same object.

    Returns:
        dict with ``classes`` (list), ``r`` ((C, C) ndarray), ``num_objects``
        (C,), ``num_concurrent`` ((C, C) counts), ``parents`` (child index ->
        parent index) and ``iou_thr``.
    """
    if not 0.0 < iou_thr <= 1.0:
        raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
    if isinstance(ann, str):
        coco = read_coco_annotations(ann)
    elif isinstance(ann, dict):
        coco = ann
        cat_ids = {c['id'] for c in coco.get('categories', [])}
        for a in coco.get('annotations', []):
            if a['category_id'] not in cat_ids:
                raise ValueError(f'annotation {a.get("id")} has category_id {a["category_id"]}'
                                 f', which is not in "categories" (ids {sorted(cat_ids)})')
    else:
        raise TypeError(f'ann must be a file path or a COCO dict, got {type(ann).__name__}')
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    names = [c['name'] for c in cats]
    if classes is None:
        classes = names
    else:
        classes = list(classes)
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise ValueError(f'classes {unknown} are not categories of the annotation file '
                             f'(it has {names}); fix `classes`')
    index = {name: i for i, name in enumerate(classes)}
    cat_to_label = {c['id']: index.get(c['name']) for c in cats}
    num = len(classes)
    n_obj = np.zeros(num, dtype=np.int64)
    co = np.zeros((num, num), dtype=np.int64)
    by_image = {}
    for a in coco['annotations']:
        if a.get('iscrowd', 0):
            continue
        if cat_to_label[a['category_id']] is None:
            continue  # category not among `classes`
        by_image.setdefault(a['image_id'], []).append(a)
    for anns in by_image.values():
        for obj in _objects(anns, iou_thr):
            labels = sorted({cat_to_label[a['category_id']] for a in obj})
            n_obj[labels] += 1
            for i in labels:
                for j in labels:
                    if i != j:
                        co[i, j] += 1
    r = np.divide(co, np.maximum(n_obj, 1)[:, None], dtype=np.float64)
    return {'classes': list(classes), 'r': r, 'num_objects': n_obj, 'num_concurrent': co,
                'parents': category_parents(coco['categories'], classes), 'iou_thr': iou_thr}


def save_concurrent_rate(result: dict, out_file: str) -> None:
    """Write ``result`` as ``.json`` (read by ``ConcurrentSoftmaxLoss``) or ``.npy``."""
    if out_file.endswith('.npy'):
        np.save(out_file, result['r'])
        return
    if not out_file.endswith('.json'):
        raise ValueError(f'out file {out_file!r} must end with .json or .npy')
    data = {'classes': result['classes'], 'r': np.asarray(result['r']).tolist(),
                'num_objects': np.asarray(result['num_objects']).tolist(),
                'num_concurrent': np.asarray(result['num_concurrent']).tolist(),
                'parents': {str(k): int(v) for k, v in result['parents'].items()},
                'iou_thr': result['iou_thr']}
    with open(out_file, 'w') as f:
        json.dump(data, f, indent=1)


def top_pairs(result: dict, k: int = 20):
    """The ``k`` largest off-diagonal ``(r_ij, class_i, class_j)``."""
    r = np.asarray(result['r'], dtype=np.float64).copy()
    np.fill_diagonal(r, 0.0)
    order = np.argsort(-r, axis=None, kind='stable')[:k]
    out = []
    for flat in order:
        i, j = np.unravel_index(flat, r.shape)
        if r[i, j] <= 0:
            break
        out.append((float(r[i, j]), result['classes'][i], result['classes'][j]))
    return out


def plot_concurrent_rate(result: dict, out_png: str, top_k: int = 20) -> list:
    """Heat map of ``r`` restricted to the classes of the ``top_k`` largest
    pairs (the paper's Fig. 3a); returns the classes shown."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    pairs = top_pairs(result, top_k)
    shown = []
    for _, a, b in pairs:
        for name in (a, b):
            if name not in shown:
                shown.append(name)
    if not shown:
        shown = list(result['classes'][:min(top_k, len(result['classes']))])
    idx = [result['classes'].index(n) for n in shown]
    sub = np.asarray(result['r'])[np.ix_(idx, idx)]
    size = 1.0 + 0.45 * len(shown)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(sub, cmap='viridis', vmin=0.0, vmax=max(float(sub.max()), 1e-6))
    ax.set_xticks(range(len(shown)), shown, rotation=60, ha='right')
    ax.set_yticks(range(len(shown)), shown)
    ax.set_xlabel('j (also labelled as)')
    ax.set_ylabel('i (object class)')
    ax.set_title('concurrent rate r_ij')
    for a in range(len(shown)):
        for b in range(len(shown)):
            if sub[a, b] > 0:
                ax.text(b, a, f'{sub[a, b]:.2f}', ha='center', va='center', fontsize=7,
                        color='w' if sub[a, b] < 0.6 * sub.max() else 'k')
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return shown


def multi_label_subset(ann: str | dict, iou_thr: float = 0.9) -> dict:
    """The images of a COCO file that hold at least one object with several
    labels, with all their annotations (for mAP on the multi-label subset)."""
    coco = read_coco_annotations(ann) if isinstance(ann, str) else ann
    by_image = {}
    for a in coco['annotations']:
        if not a.get('iscrowd', 0):
            by_image.setdefault(a['image_id'], []).append(a)
    keep = {img for img, anns in by_image.items()
            if any(len({a['category_id'] for a in obj}) > 1 for obj in _objects(anns, iou_thr))}
    out = dict(coco)
    out['images'] = [im for im in coco['images'] if im['id'] in keep]
    out['annotations'] = [a for a in coco['annotations'] if a['image_id'] in keep]
    return out
