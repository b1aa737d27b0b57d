"""Concurrent rates ``r_ij`` estimated from a COCO-format annotation file.

Peng et al., "Large-Scale Object Detection in the Wild from Imbalanced
Multi-Labels", CVPR 2020, Sec. 3.2: ``r_ij`` is the probability that an
object of class ``i`` is (also) labelled as class ``j``; it enters the
concurrent softmax (eq. 3 and eq. 5, :mod:`balancedet.models.losses.
concurrent_softmax_loss`) and its largest entries are shown as a heat map
(the paper's Fig. 3a).

Estimate: the annotations of one image that are the same object by the rule
of :mod:`balancedet.datasets.same_object` (same image, identical box
coordinates -- how Open Images and multi-label COCO files write several labels
of one box) form one *object* with label set ``L``.  Over all objects::

    n_i     = #objects with i in L
    r_ij    = #objects with {i, j} in L / n_i        (i != j),  r_ii = 0

The datasets (``BalancedCocoDataset``, ``OpenImagesMultiLabelDataset``) group
boxes with the same function, so ``r`` is measured on exactly the objects
whose multi-hot targets it weights.

Inputs: a COCO file (crowd annotations skipped; the hierarchy is the COCO
``supercategory``), or Open Images files (:func:`estimate_concurrent_rate_openimages`):
a V6 box CSV (read by a vectorised numpy parser: 12 M boxes in well under a
minute and 2 GB, see ``benchmarks/bench_concurrent_rate.py``) or a Challenge
2019 ``.txt``, with the label file and the hierarchy (``.json`` or
``class_label_tree.np``).  The hierarchy is stored alongside as a DAG
(``parents``: child -> list of parents); how hierarchy pairs enter ``r`` is
decided by the loss (``hierarchy`` option), not here.

Also computed (Open Images): ``parent_without_leaf`` -- for every class with
descendants, the share of its objects that carry none of its descendants'
labels (the paper's Fig. 3b, "parent annotations without a leaf").
"""
import json
import os.path as osp
from collections.abc import Sequence

import numpy as np

from balancedet.analysis.sampling_stats import save_figure, subplots
from balancedet.datasets.balanced_coco import (
    category_labels,
    category_parents,
    read_coco_annotations,
)
from balancedet.datasets.same_object import (
    SAME_OBJECT_RULE,
    object_ids,
    object_label_sets,
    pairs_within_objects,
)


def _check_iou_thr(iou_thr):
    if iou_thr is not None:
        raise ValueError(f'iou_thr={iou_thr!r}: the IoU threshold is gone; objects are grouped '
                         'by the one same-object rule of balancedet.datasets.same_object '
                         f'({SAME_OBJECT_RULE}), as the datasets do. Drop the argument')


def estimate_concurrent_rate(ann: str | dict,
                             classes: Sequence[str] | None = None,
                             iou_thr: None = None) -> dict:
    """Estimate ``r`` from a COCO file (path or loaded dict).

    Args:
        ann: COCO-format annotation file path, or its parsed dict.
        classes: class names in label order; default all categories in id
            order (as ``BalancedCocoDataset`` does).  Names that are not
            categories of the file raise ValueError.
        iou_thr: removed (must be None): objects follow the same-object rule.

    Returns:
        dict with ``classes`` (list), ``r`` ((C, C) ndarray), ``num_objects``
        (C,), ``num_concurrent`` ((C, C) counts), ``parents`` (child index ->
        parent index) and ``same_object`` (the rule).
    """
    _check_iou_thr(iou_thr)
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
    classes, cat_to_label = category_labels(coco['categories'], classes)
    anns = [a for a in coco['annotations']
            if not a.get('iscrowd', 0) and a['category_id'] in cat_to_label]
    out = concurrent_rate_from_arrays(
        [a['image_id'] for a in anns],
        np.array([cat_to_label[a['category_id']] for a in anns], dtype=np.int64),
        [a['bbox'] for a in anns], len(classes))
    return {'classes': list(classes), **{k: out[k] for k in ('r', 'num_objects', 'num_concurrent')},
            'parents': category_parents(coco['categories'], classes),
            'same_object': SAME_OBJECT_RULE}


def save_concurrent_rate(result: dict, out_file: str) -> None:
    """Write ``result`` as ``.json`` (read by ``ConcurrentSoftmaxLoss``) or ``.npy``."""
    if out_file.endswith('.npy'):
        np.save(out_file, result['r'])
        return
    if not out_file.endswith('.json'):
        raise ValueError(f'out file {out_file!r} must end with .json or .npy')
    data = {'classes': result['classes']}  # (np.asarray(v).tolist(): plain ints / lists)
    data.update((k, np.asarray(result[k]).tolist()) for k in ('r', 'num_objects', 'num_concurrent'))
    data['parents'] = {str(k): np.asarray(v).tolist() for k, v in result['parents'].items()}
    data['same_object'] = result.get('same_object', SAME_OBJECT_RULE)
    data.update((k, np.asarray(result[k]).tolist())
                for k in ('parent_without_leaf', 'num_images', 'num_boxes') if k in result)
    with open(out_file, 'w') as f:
        json.dump(data, f, indent=1)


def top_pairs(result: dict, k: int = 20):
    """The ``k`` largest off-diagonal ``(r_ij, class_i, class_j)``."""
    r = np.asarray(result['r'], dtype=np.float64).copy()
    np.fill_diagonal(r, 0.0)
    rows, cols = np.unravel_index(np.argsort(-r, axis=None, kind='stable')[:k], r.shape)
    return [(float(r[i, j]), result['classes'][i], result['classes'][j])
            for i, j in zip(rows, cols) if r[i, j] > 0]


def plot_concurrent_rate(result: dict, out_png: str, top_k: int = 20) -> list:
    """Heat map of ``r`` restricted to the classes of the ``top_k`` largest
    pairs (the paper's Fig. 3a); returns the classes shown."""
    shown = list(dict.fromkeys(name for _, a, b in top_pairs(result, top_k)
                               for name in (a, b))) or list(result['classes'][:top_k])
    idx = [result['classes'].index(n) for n in shown]
    sub = np.asarray(result['r'])[np.ix_(idx, idx)]
    size = 1.0 + 0.45 * len(shown)
    fig, ax = subplots(figsize=(size + 1.5, size))
    im = ax.imshow(sub, cmap='viridis', vmin=0.0, vmax=max(float(sub.max()), 1e-6))
    ax.set_xticks(range(len(shown)), shown, rotation=60, ha='right')
    ax.set_yticks(range(len(shown)), shown)
    ax.set(xlabel='j (also labelled as)', ylabel='i (object class)', title='concurrent rate r_ij')
    for a, b in zip(*np.nonzero(sub > 0)):
        ax.text(b, a, f'{sub[a, b]:.2f}', ha='center', va='center', fontsize=7,
                color='w' if sub[a, b] < 0.6 * sub.max() else 'k')
    fig.colorbar(im, ax=ax)
    save_figure(fig, out_png)
    return shown


def multi_label_subset(ann: str | dict, iou_thr: None = None) -> dict:
    """The images of a COCO file that hold at least one object with several
    labels, with all their annotations (for mAP on the multi-label subset)."""
    _check_iou_thr(iou_thr)
    coco = read_coco_annotations(ann) if isinstance(ann, str) else ann
    anns = [a for a in coco['annotations'] if not a.get('iscrowd', 0)]
    sets = object_label_sets([a['bbox'] for a in anns], [a['category_id'] for a in anns],
                             [a['image_id'] for a in anns])
    keep = {a['image_id'] for a, labels in zip(anns, sets) if len(labels) > 1}
    return {**coco, 'images': [im for im in coco['images'] if im['id'] in keep],
            'annotations': [a for a in coco['annotations'] if a['image_id'] in keep]}


# -- Open Images ---------------------------------------------------------------
_V6_NEEDED = ('ImageID', 'LabelName', 'XMin', 'XMax', 'YMin', 'YMax')
_PAD = 4096  # zero bytes after each chunk: a field wider than this is refused
_HEX = np.full(256, 255, dtype=np.uint8)  # hex digit -> nibble, 255 for anything else
_HEX[np.frombuffer(b'0123456789abcdefABCDEF', np.uint8)] = [*range(16), *range(10, 16)]


class _Growing:
    """Append-only array with amortised growth (no final concatenate, whose
    copy would raise the peak memory)."""

    def __init__(self, shape, dtype, capacity):
        self.data, self.n = np.empty((max(capacity, 1), *shape), dtype=dtype), 0

    def extend(self, x):
        need = self.n + len(x)
        if need > len(self.data):
            self.data.resize((int(need * 1.25) + 1, *self.data.shape[1:]), refcheck=False)
        self.data[self.n:need] = x
        self.n = need


def read_openimages_boxes_fast(ann_file: str, mid_to_label: dict, chunk_bytes: int = 16 << 20):
    """Vectorised reader of a V6 box CSV (no quoting, the format Google ships).

    Checks every row as the dataset does (a wrong field count, an unknown
    MID, a coordinate outside [0, 1], xmin > xmax or ymin > ymax raise
    ``DatasetError`` naming the file and the line); zero-size boxes are
    dropped and their line numbers returned.

    Returns:
        tuple: ``(image_keys, labels, coords, dropped_rows)``: ``image_keys``
        int64 (equal iff the ImageIDs are equal), ``labels`` int16, ``coords``
        float64 ``(N, 4)`` as ``XMin, YMin, XMax, YMax`` (parsed exactly, like
        Python's ``float``), ``dropped_rows`` the zero-size boxes' lines.
    """
    from balancedet.datasets.balanced_coco import DatasetError
    from balancedet.datasets.openimages import check_normalised_boxes
    if not osp.isfile(ann_file):
        raise DatasetError(f'annotation file {ann_file!r} does not exist')
    mids = list(mid_to_label)
    if max(len(m.encode()) for m in mids) > 16:
        raise DatasetError('label file MIDs longer than 16 bytes are not supported')
    # a MID (NUL padded to 16 bytes) is two exact uint64 words; sorted for searchsorted
    mk = np.array([m.encode() for m in mids], dtype='S16').view(np.uint64).reshape(-1, 2)
    mid_order = np.lexsort((mk[:, 1], mk[:, 0]))
    mk0, mk1 = mk[mid_order, 0], mk[mid_order, 1]
    mid_lab = np.array([mid_to_label[m] for m in mids], dtype=np.int16)[mid_order]
    with open(ann_file, 'rb') as f:
        header = f.readline().decode('utf-8-sig').strip().split(',')
        missing = [c for c in _V6_NEEDED if c not in header]
        if missing:
            raise DatasetError(f'annotation file {ann_file!r}: column(s) {missing} missing from '
                               f'the header (row 1: {header}); expected ImageID,Source,LabelName,'
                               'Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,'
                               'IsDepiction,IsInside')
        ncol = len(header)
        col = {c: header.index(c) for c in _V6_NEEDED}
        line0, rest, all_hex, dropped, out = 2, b'', True, [], None
        while True:
            chunk = f.read(chunk_bytes)
            data = rest + chunk
            cut = data.rfind(b'\n') + 1 if chunk else len(data)  # whole lines only
            rest, data = data[cut:], data[:cut]
            if not data:
                if chunk:
                    continue
                break
            if not data.endswith(b'\n'):
                data += b'\n'
            nbytes = len(data)
            buf = np.frombuffer(data + bytes(_PAD), dtype=np.uint8)
            if (buf == 34).any():
                raise DatasetError(f'annotation file {ann_file!r}: quoted fields are not '
                                   'supported by the fast reader (Open Images CSVs have none)')
            ends = np.flatnonzero(buf[:nbytes] == 10).astype(np.int32)
            starts = np.insert(ends[:-1] + 1, 0, 0)
            ends -= buf[np.maximum(ends - 1, 0)] == 13
            keep = ends > starts  # blank lines
            lines = line0 + np.flatnonzero(keep)
            line0 += keep.size
            starts, ends = starts[keep], ends[keep]
            if not starts.size:
                continue
            if out is None:  # capacity from the first chunk's bytes per row
                cap = int(osp.getsize(ann_file) / (nbytes / len(starts)) * 1.05) + 1024
                out = (_Growing((), np.int64, cap), _Growing((), np.int16, cap),
                       _Growing((4, ), np.float64, cap))
            commas = np.flatnonzero(buf[:nbytes] == 44).astype(np.int32)
            cm = commas.reshape(-1, ncol - 1) if commas.size == len(starts) * (ncol - 1) else None
            if cm is None or ((cm[:, 0] < starts) | (cm[:, -1] > ends)).any():
                per_row = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
                k = int(np.flatnonzero(per_row != ncol - 1)[0])
                raise DatasetError(f'annotation file {ann_file!r} row {lines[k]}: '
                                   f'{per_row[k] + 1} fields, the header has {ncol}')

            def field(name, width=None):
                """``(N, width)`` uint8 bytes of column ``name`` per row, NUL padded."""
                c = col[name]
                s = starts if c == 0 else cm[:, c - 1] + 1
                e = ends if c == ncol - 1 else cm[:, c]
                if width is None:
                    width = max(int((e - s).max()), 1)
                if (e - s).max() > min(width, _PAD):
                    k = int(np.argmax(e - s))
                    raise DatasetError(f'annotation file {ann_file!r} row {lines[k]}: {name} '
                                       f'is longer than {min(width, _PAD)} characters')
                idx = s[:, None] + np.arange(width, dtype=s.dtype)
                out = buf[idx]  # (the buffer carries a zero tail as long as any field)
                out *= idx < e[:, None]
                return out

            key = field('LabelName', 16).view(np.uint64)
            pos = np.searchsorted(mk0, key[:, 0])
            # MIDs sharing the first word are few: step through them
            lab = np.full(len(key), -1, dtype=np.int32)
            for step in range(len(mk0)):
                p = np.minimum(pos + step, len(mk0) - 1)
                open_ = lab < 0
                hit = open_ & (mk0[p] == key[:, 0]) & (mk1[p] == key[:, 1])
                lab[hit] = mid_lab[p[hit]]
                still = open_ & ~hit & (mk0[p] == key[:, 0])
                if not still.any():
                    break
            if (lab < 0).any():
                k = int(np.flatnonzero(lab < 0)[0])
                bad = bytes(field('LabelName')[k]).rstrip(b'\0').decode()
                raise DatasetError(f'annotation file {ann_file!r} row {lines[k]}: LabelName '
                                   f'{bad!r} is not in the label file; use the label file of '
                                   'the same release')
            xy = np.empty((len(starts), 4), dtype=np.float64)
            for j, name in enumerate(('XMin', 'YMin', 'XMax', 'YMax')):
                mat = field(name)
                try:
                    xy[:, j] = mat.view(f'S{mat.shape[1]}').reshape(-1).astype(np.float64)
                except ValueError as err:
                    raise DatasetError(f'annotation file {ann_file!r}: a {name} value is not a '
                                       f'number ({err})') from None
            ok = check_normalised_boxes(xy, lines, ann_file)
            nib = _HEX[field('ImageID')]
            if nib.shape[1] == 16 and (nib != 255).all():  # 16 hex digits: an exact uint64
                ids = ((nib[:, 0::2] << 4) | nib[:, 1::2]).view('>u8').reshape(-1).astype(np.uint64)
            else:  # other ImageIDs: read again as strings below
                all_hex, ids = False, np.zeros(len(xy), dtype=np.uint64)
            if not ok.all():
                dropped.append(lines[~ok])
                ids, lab, xy = ids[ok], lab[ok], xy[ok]
            for o, x in zip(out, (ids.view(np.int64), lab, xy)):
                o.extend(x)
    dropped = np.concatenate([np.zeros(0, np.int64), *dropped])
    if out is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros((0, 4)), dropped
    img, labels, coords = (o.data[:o.n] for o in out)
    if not all_hex:  # rare path: exact ids from the ImageID strings, row by row
        import csv
        drop = set(dropped.tolist())
        with open(ann_file, newline='') as f:
            rows = enumerate(csv.reader(f), 1)
            next(rows)
            ids = [row[col['ImageID']] for n, row in rows if row and n not in drop]
        img = np.unique(np.asarray(ids), return_inverse=True)[1].reshape(-1).astype(np.int64)
    return img, labels, coords, dropped


def concurrent_rate_from_arrays(image_keys, labels, coords, num_classes: int,
                                hierarchy=None) -> dict:
    """``r`` (and Fig. 3b's shares) from flat per-box arrays (see module)."""
    labels = np.asarray(labels)
    obj, num_obj = object_ids(coords, image_keys)
    c = int(num_classes)
    key = obj * c
    key += labels
    del obj
    key.sort()
    if key.size > 1:
        key = key[np.r_[True, key[1:] != key[:-1]]]
    pair_obj, pair_lab = np.divmod(key, c)
    del key
    n_obj = np.bincount(pair_lab, minlength=c).astype(np.int64)
    a, b = pairs_within_objects(pair_obj, num_obj)
    co = np.bincount(pair_lab[a] * c + pair_lab[b], minlength=c * c).reshape(c, c)
    r = np.divide(co, np.maximum(n_obj, 1)[:, None], dtype=np.float64)
    out = {'r': r, 'num_objects': n_obj, 'num_concurrent': co.astype(np.int64),
           'num_boxes': int(labels.size), 'num_object_total': int(num_obj)}
    if hierarchy is not None:
        has_desc = np.zeros(pair_lab.size, dtype=bool)
        # pairs whose b's label descends from a's
        has_desc[a[hierarchy.ancestor_matrix[pair_lab[b], pair_lab[a]]]] = True
        alone = np.bincount(pair_lab[~has_desc], minlength=c)
        share, ok = np.full(c, np.nan), hierarchy.is_parent_class() & (n_obj > 0)
        share[ok] = alone[ok] / n_obj[ok]
        out['parent_without_leaf'] = share
    return out


def estimate_concurrent_rate_openimages(ann_file: str, label_file: str,
                                        hierarchy_file: str | None = None) -> dict:
    """``r`` from Open Images files: a V6 box CSV or a Challenge 2019 ``.txt``,
    the label file (``class-descriptions-boxable.csv`` /
    ``cls-label-description.csv``) and optionally the hierarchy (``.json`` or
    ``class_label_tree.np``).  Applies the same box checks as the dataset
    (error on a box outside [0, 1] or with xmin > xmax; zero-size boxes
    dropped with a counted warning)."""
    from balancedet.datasets.box_rules import warn_dropped
    from balancedet.datasets.hierarchy import load_openimages_hierarchy, read_label_file
    from balancedet.datasets.openimages import check_normalised_boxes, read_challenge_boxes
    challenge = str(ann_file).endswith('.txt')
    classes, _, m2l = read_label_file(label_file, challenge=challenge)
    hierarchy = load_openimages_hierarchy(hierarchy_file, m2l, classes) if hierarchy_file else None
    if challenge:
        boxes = read_challenge_boxes(ann_file, len(classes))
        img = np.unique(np.asarray(boxes['img_ids']), return_inverse=True)[1].reshape(-1)
        labels, coords, rows = boxes['labels'], boxes['coords'], boxes['rows']
        keep = check_normalised_boxes(coords, rows, ann_file)
        dropped = rows[~keep]
        img, labels, coords = img[keep], labels[keep], coords[keep]
    else:
        img, labels, coords, dropped = read_openimages_boxes_fast(ann_file, m2l)
    if dropped.size:  # the box rule's drop, reported the same way (box_rules.warn_dropped)
        warn_dropped(ann_file, [f'row {r}' for r in dropped.tolist()],
                     'of zero size (xmin == xmax or ymin == ymax; image sizes are not read '
                     'here, so boxes under 1 pixel but not zero-size are kept)')
    num_images = int(np.count_nonzero(np.diff(np.sort(img))) + 1) if img.size else 0
    out = concurrent_rate_from_arrays(img, labels, coords, len(classes), hierarchy)
    out.update(classes=list(classes), num_images=num_images, same_object=SAME_OBJECT_RULE,
               parents={k: list(v) for k, v in hierarchy.parents.items()} if hierarchy else {})
    return out


def plot_parent_without_leaf(result: dict, out_png: str, top_k: int = 30) -> list:
    """Bar chart of the parents with the largest share of objects that carry
    no descendant label (the paper's Fig. 3b); returns the classes shown."""
    share = np.asarray(result['parent_without_leaf'], dtype=np.float64)
    n = np.asarray(result['num_objects'])
    ok = np.flatnonzero(np.isfinite(share))
    order = ok[np.lexsort((-n[ok], -share[ok]))][:top_k]
    names = [result['classes'][i] for i in order]
    fig, ax = subplots(figsize=(max(4.0, 0.35 * len(order) + 2), 4))
    ax.bar(range(len(order)), share[order])
    ax.set_xticks(range(len(order)), names, rotation=70, ha='right')
    ax.set(ylabel='share of objects without a leaf label', ylim=(0, 1),
           title='parent annotations without a leaf')
    save_figure(fig, out_png)
    return names
