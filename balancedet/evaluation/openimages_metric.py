"""Fast Open Images detection metric, a drop-in for mmdet 3.3's ``OpenImagesMetric``.

Open Images detection AP (Kuznetsova et al., "The Open Images Dataset V4", IJCV 2020, Sec. 5 and
https://storage.googleapis.com/openimages/web/evaluation.html) differs from PASCAL VOC AP in three
ways, all implemented here exactly as mmdet 3.3's ``OpenImagesMetric`` + ``eval_map`` +
``tpfp_openimages`` do:

1. **Hierarchy.** Each ground-truth box of class ``l`` also counts as a box of every class ``a``
   with ``RELATION_MATRIX[l, a]`` (its ancestors); each prediction of class ``p`` is copied to every
   ancestor ``a`` of ``p`` that is annotated on the image (``get_supercategory``).
2. **Image-level labels.** Only classes verified on the image (positive or negative image-level
   labels, plus the classes of its expanded boxes) are evaluated there: predictions of other
   classes that the hierarchy reaches are dropped (``filter_labels``).
3. **Group-of boxes.** Detections are first matched greedily (by descending score) to the
   non-group-of boxes with IoU >= ``iou_thr`` (one TP per box, duplicates are FP).  Detections still
   not TP whose intersection-over-detection-area (IoA) with a group-of box is >= ``ioa_thr`` are
   removed, and each group-of box contributes one entry: a TP scored with the highest score of its
   matched detections, or (mmdet) an FP with score 0 when nothing matched it.

AP is the area under the interpolated precision/recall curve (``mode='area'``) over the detections
of a class sorted by descending score across images, with every ground-truth box (group-of or not)
counted in the recall denominator; mAP is the mean over classes with ground truth, and the reported
``mAP`` is the mean of the per-threshold mAPs.

Speed: ``process`` does the hierarchy expansion and label filtering of a whole batch with one set
of array operations and stores two compact arrays per image; ``compute_metrics`` matches all
images of a chunk of classes at once (det x gt pairs only inside the same (class, image) segment,
one IoU formula
evaluated in float32 exactly as mmdet's ``bbox_overlaps``, greedy matching as "first detection in
score order per matched box"), and sorts each class once.  Score ties are ordered exactly like
mmdet: the per-class sequence is built in mmdet's order and dtype and sorted with the same
``np.argsort``; within an image, segments with tied scores fall back to ``np.argsort`` on that
segment, so results equal mmdet's bit for bit in practice (tested to 1e-6).

Deliberate differences from mmdet (documented in docs/openimages_metric.md):

* the group-of flag is read from ``is_group_of`` *or* ``is_group_ofs`` (mmdet 3.3's
  ``OpenImagesChallengeDataset`` writes the latter and mmdet's metric raises ``KeyError`` on it);
* ``use_group_of=False`` and ``scale_ranges`` work (mmdet's ``eval_map`` raises for the first, and
  its metric raises in ``round`` for the second; with group-of boxes and area ranges mmdet also
  indexes the group box areas with the wrong indices — here the group box's own area is used);
* per-class AP keys and head/middle/tail means are added.
"""
import json
from collections import OrderedDict
from typing import List, Optional, Sequence, Union

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from balancedet.utils import to_numpy

_F32_EPS = np.finfo(np.float32).eps


class OpenImagesMetricError(ValueError):
    """Bad input to :class:`FastOpenImagesMetric` (message names the field and the sample)."""


def _iou_f32(det, gt, iof=False):
    """IoU (or IoA over the detection) of paired rows, float32 op for op as mmdet's
    ``bbox_overlaps`` so that threshold decisions are identical."""
    det = det.astype(np.float32, copy=False)
    gt = gt.astype(np.float32, copy=False)
    area_d = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
    wh = np.maximum(np.minimum(det[:, 2:], gt[:, 2:]) - np.maximum(det[:, :2], gt[:, :2]),
                    np.float32(0))
    overlap = wh[:, 0] * wh[:, 1]
    union = area_d if iof else area_d + (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) - overlap
    return overlap / np.maximum(union, np.float32(1e-6))


def _pairs(det_key, gt_key, seg):
    """All (det, gt) index pairs with equal keys; both key arrays sorted ascending, ``seg`` the
    dense segment index of each det key.

    Pairs are ordered by det index, then gt index (the gt order of mmdet's IoU matrix rows)."""
    ukey = det_key[np.flatnonzero(np.diff(seg, prepend=-1))]
    lo = np.searchsorted(gt_key, ukey, 'left')[seg]
    cnt = np.searchsorted(gt_key, ukey, 'right')[seg] - lo
    return (*_ranges(lo, cnt), cnt)


def _ranges(lo, cnt):
    """``(i, lo[i] + k)`` for every ``i`` and ``k < cnt[i]``, by ``i`` then ``k``
    (one ``np.repeat`` fewer than ``class_index.concat_ranges``: this is the hot path)."""
    return (np.repeat(np.arange(cnt.size), cnt),
            np.arange(int(cnt.sum())) + np.repeat(lo - (np.cumsum(cnt) - cnt), cnt))


def _expand(labels, ptr, idx):
    """(row, ancestor) pairs of every label, by row then ancestor (np.nonzero order)."""
    rows, pos = _ranges(ptr[labels], ptr[labels + 1] - ptr[labels])
    return rows, idx[pos]


def _first_max(values, pd, cnt, n):
    """Per det: max of its pair values and the pair index of the first maximum (-1 if none)."""
    vmax = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    has = cnt > 0
    vmax[has] = np.maximum.reduceat(values, (np.cumsum(cnt) - cnt)[has])
    first = np.flatnonzero(values == vmax[pd])
    dets_first, idx = np.unique(pd[first], return_index=True)
    arg[dets_first] = first[idx]
    return vmax, arg


def _average_precision_area(tp, fp, num_gts):
    """mmdet's ``average_precision(mode='area')`` on cumulated tp/fp (float32 like mmdet)."""
    tp = np.cumsum(tp, dtype=np.float32)
    fp = np.cumsum(fp, dtype=np.float32)
    recalls = tp.astype(np.float64) / max(float(num_gts), float(_F32_EPS))  # float64 as mmdet
    precisions = (tp / np.maximum(tp + fp, _F32_EPS)).astype(np.float64)
    mrec = np.concatenate(([0.0], recalls, [1.0]))
    mpre = np.concatenate(([0.0], precisions, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    ind = np.flatnonzero(mrec[1:] != mrec[:-1])
    return np.float32(np.sum((mrec[ind + 1] - mrec[ind]) * mpre[ind + 1]))


@METRICS.register_module()
class FastOpenImagesMetric(BaseMetric):
    """Vectorised Open Images mAP with mmdet's ``OpenImagesMetric`` arguments and keys.

    Args:
        iou_thrs, ioa_thrs, scale_ranges, use_group_of, get_supercategory, filter_labels,
        collect_device, prefix: as in mmdet's ``OpenImagesMetric``.
        train_image_counts (str, optional): JSON file ``{class name: training-image count}``;
            overrides ``dataset_meta['train_image_counts']`` (list in label order).  With counts,
            ``mAP_head`` / ``mAP_middle`` / ``mAP_tail`` are reported: all classes sorted by count
            (descending, ties by label) split into three near-equal parts (``np.array_split``),
            each averaged over its classes that have ground truth in the evaluated set.
        classwise (bool): report ``AP/<class name>`` for every class with ground truth (the mean
            over IoU thresholds and scale ranges). Defaults to True.

    Output keys (prefix ``openimages/``): ``AP50`` (one per IoU threshold, rounded to 3 digits as
    mmdet does), ``mAP`` (mean over thresholds, unrounded), ``AP/<name>``, and with counts
    ``mAP_head``/``mAP_middle``/``mAP_tail``.  With ``scale_ranges`` also
    ``AP50_<min>-<max>`` per range (``AP50`` is then the mean over ranges).
    """
    default_prefix: Optional[str] = 'openimages'

    def __init__(self,
                 iou_thrs: Union[float, List[float]] = 0.5,
                 ioa_thrs: Union[float, List[float]] = 0.5,
                 scale_ranges: Optional[List[tuple]] = None,
                 use_group_of: bool = True,
                 get_supercategory: bool = True,
                 filter_labels: bool = True,
                 train_image_counts: Optional[str] = None,
                 classwise: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_thrs = [iou_thrs] if isinstance(iou_thrs, (float, int)) else list(iou_thrs)
        self.ioa_thrs = ([ioa_thrs] if (isinstance(ioa_thrs, (float, int)) or ioa_thrs is None)
                         else list(ioa_thrs))
        if len(self.iou_thrs) != len(self.ioa_thrs):
            raise OpenImagesMetricError(
                f'iou_thrs ({self.iou_thrs}) and ioa_thrs ({self.ioa_thrs}) must have the same '
                'length: one IoA threshold per IoU threshold')
        if use_group_of and any(t is None for t in self.ioa_thrs):
            raise OpenImagesMetricError(
                'ioa_thrs must be set (e.g. 0.5) when use_group_of=True')
        self.scale_ranges = scale_ranges
        self.use_group_of = use_group_of
        self.get_supercategory = get_supercategory
        self.filter_labels = filter_labels
        self.train_image_counts = train_image_counts
        self.classwise = classwise
        self._meta_cache = None

    # ------------------------------------------------------------------ meta
    def _meta(self):
        """Validated (num_classes, relation matrix as bool) — checked once per dataset_meta."""
        meta = self.dataset_meta
        if meta is None or 'classes' not in meta:
            raise OpenImagesMetricError(
                "FastOpenImagesMetric needs dataset_meta['classes'] (set by the evaluator from "
                'the dataset metainfo)')
        key = (id(meta), id(meta.get('RELATION_MATRIX')))
        if self._meta_cache is not None and self._meta_cache[0] == key:
            return self._meta_cache[1]
        num_classes = len(meta['classes'])
        rel = meta.get('RELATION_MATRIX')
        if rel is None:
            if self.get_supercategory or self.filter_labels:
                raise OpenImagesMetricError(
                    "dataset_meta['RELATION_MATRIX'] is missing; it is needed by "
                    'get_supercategory/filter_labels (set both False to evaluate without a '
                    'hierarchy)')
            rel = np.eye(num_classes, dtype=bool)
        rel = np.asarray(rel).astype(bool)
        if rel.shape != (num_classes, num_classes):
            raise OpenImagesMetricError(
                f"dataset_meta['RELATION_MATRIX'] has shape {rel.shape}, expected "
                f'({num_classes}, {num_classes}) for the {num_classes} classes of '
                "dataset_meta['classes']")
        # "ancestors" of each class in CSR form: RELATION_MATRIX row without the diagonal
        anc = rel & ~np.eye(num_classes, dtype=bool)
        anc_ptr = np.r_[0, np.cumsum(anc.sum(1))].astype(np.int64)
        info = (num_classes, (anc_ptr, np.nonzero(anc)[1].astype(np.int64), rel.diagonal()))
        self._meta_cache = (key, info)
        return info

    # --------------------------------------------------------------- process
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Expand/filter one batch and store, per image, a float32 gt array ``(n, 6)``
        (box, label, group-of) and a det array ``(m, 6)`` (box, score, label), both sorted
        stably by label (mmdet's per-class order).  The batch is handled with one set of
        array operations; the per-image entries are views of two batch arrays."""
        C, (anc_ptr, anc_idx, diag) = self._meta()
        B = len(data_samples)
        if B == 0:
            return
        gtb, gtl, gtg, ills, pb, ps, pl = zip(*(self._read_sample(
            s.to_dict() if isinstance(s, BaseDataElement) else s, C) for s in data_samples))

        def image_of(parts):  # image index of each row of the concatenated parts
            return np.repeat(np.arange(B), [x.size for x in parts])
        # ---- ground truth: originals, then copies to ancestors (instance, ancestor order)
        g_img = image_of(gtl)
        gt_boxes, gt_labels, group = np.concatenate(gtb), np.concatenate(gtl), np.concatenate(gtg)
        if self.get_supercategory:
            ii, aa = _expand(gt_labels, anc_ptr, anc_idx)
            gt_boxes = np.concatenate([gt_boxes, gt_boxes[ii]])
            gt_labels = np.concatenate([gt_labels, aa])
            group = np.concatenate([group, group[ii]])
            g_img = np.concatenate([g_img, g_img[ii]])
        allowed = np.zeros((B, C), dtype=bool)
        allowed[g_img, gt_labels] = True
        allowed[image_of(ills), np.concatenate(ills)] = True
        # ---- predictions (mmdet's _process_predictions, all images at once)
        d_img = image_of(pl)
        boxes, scores, labels = np.concatenate(pb), np.concatenate(ps), np.concatenate(pl)
        dtype = np.result_type(boxes.dtype, scores.dtype, np.float32)
        keep = np.ones(labels.size, dtype=bool)
        ii, aa = _expand(labels, anc_ptr, anc_idx)  # (prediction, ancestor) pairs
        if self.filter_labels:
            # mmdet drops the predictions of every class that some predicted class'
            # relation-matrix row reaches and that is not annotated on the image
            reach = np.zeros((B, C), dtype=bool)
            dg = diag[labels]
            reach[d_img[dg], labels[dg]] = True
            reach[d_img[ii], aa] = True
            keep = ~(reach & ~allowed)[d_img, labels]
        out_i, out_l = np.flatnonzero(keep), labels[keep]
        if self.get_supercategory:
            # copies to annotated ancestors, in mmdet's append order (p, a, i) per image
            sel = allowed[d_img[ii], aa]
            ii, aa = ii[sel], aa[sel]
            order = np.lexsort((ii, aa, labels[ii], d_img[ii]))
            out_i, out_l = np.r_[out_i, ii[order]], np.r_[out_l, aa[order]]
        srt = np.argsort(d_img[out_i] * C + out_l, kind='stable')
        out_i, out_l = out_i[srt], out_l[srt]
        det = np.concatenate([boxes[out_i], scores[out_i, None], out_l[:, None]], 1, dtype=dtype)
        det_split = np.cumsum(np.bincount(d_img[out_i], minlength=B))[:-1]
        srt = np.argsort(g_img * C + gt_labels, kind='stable')
        gt = np.concatenate([gt_boxes[srt], gt_labels[srt, None], group[srt, None]], 1,
                            dtype=np.float32)
        gt_split = np.cumsum(np.bincount(g_img, minlength=B))[:-1]
        self.results.extend(zip(np.split(gt, gt_split), np.split(det, det_split)))

    def _read_sample(self, sample, num_classes):
        """Arrays of one data sample, validated (errors name the image and the field)."""
        img = sample.get('img_id', sample.get('img_path', '?'))
        if 'instances' not in sample:
            raise OpenImagesMetricError(
                f"data sample of image {img!r} has no 'instances' (add 'instances' and "
                "'image_level_labels' to PackDetInputs' meta_keys, as mmdet's Open Images "
                'configs do)')
        instances = sample['instances']
        gt_boxes = np.array([ins['bbox'] for ins in instances],
                            dtype=np.float32).reshape(-1, 4)
        gt_labels = np.array([ins['bbox_label'] for ins in instances], dtype=np.int64)
        # mmdet 3.3's OpenImagesChallengeDataset writes is_group_ofs
        group = [ins.get('is_group_of', ins.get('is_group_ofs')) if self.use_group_of else False
                 for ins in instances]
        if None in group:
            raise OpenImagesMetricError(
                f'instance {group.index(None)} of image {img!r} has neither is_group_of nor '
                'is_group_ofs; set use_group_of=False if the dataset has no group-of flags')
        ill = sample.get('image_level_labels')
        ill = to_numpy([] if ill is None else ill).astype(np.int64).reshape(-1)
        if 'pred_instances' not in sample:
            raise OpenImagesMetricError(f"data sample of image {img!r} has no 'pred_instances'")
        pred = sample['pred_instances']
        boxes = to_numpy(pred['bboxes']).reshape(-1, 4)
        scores = to_numpy(pred['scores']).reshape(-1)
        labels = to_numpy(pred['labels']).astype(np.int64).reshape(-1)
        if not (boxes.shape[0] == scores.shape[0] == labels.shape[0]):
            raise OpenImagesMetricError(
                f'image {img!r}: pred_instances has {boxes.shape[0]} bboxes, '
                f'{scores.shape[0]} scores and {labels.shape[0]} labels')
        for name, x, where in (('scores', scores, 'values (NaN/inf) at indices'),
                               ('bboxes', boxes, 'coordinates (NaN/inf) in rows')):
            if not np.isfinite(x).all():
                bad = np.flatnonzero(~np.isfinite(x).all(axis=tuple(range(1, x.ndim))))[:5]
                raise OpenImagesMetricError(
                    f'image {img!r}: pred_instances.{name} has non-finite {where} {bad.tolist()}')
        for name, x in (('instance bbox_label', gt_labels), ('image_level_labels', ill),
                        ('pred_instances.labels', labels)):
            if x.size and (x.min() < 0 or x.max() >= num_classes):
                bad = x[(x < 0) | (x >= num_classes)][:5]
                raise OpenImagesMetricError(
                    f'image {img!r}: {name} {bad.tolist()} outside [0, {num_classes}) (the '
                    "classes of dataset_meta['classes'])")
        return gt_boxes, gt_labels, np.array(group, dtype=bool), ill, boxes, scores, labels

    #: detection rows evaluated at once (classes are independent; chunks bound the memory)
    chunk_rows: int = 3_000_000

    def compute_metrics(self, results: list) -> dict:
        num_classes, _ = self._meta()
        classes = list(self.dataset_meta['classes'])
        num_imgs = len(results)
        if num_imgs == 0:
            raise OpenImagesMetricError('FastOpenImagesMetric got no results to evaluate')
        base_dtype = np.result_type(*{r[1].dtype for r in results})

        def by_class(part, label_col, dtype):
            # all images' rows, their image, and the order (class, image, mmdet order within
            # the image: per-image arrays are label-sorted, so a stable sort by label)
            n = np.fromiter((r[part].shape[0] for r in results), np.int64, num_imgs)
            X = np.concatenate([r[part] for r in results]).astype(dtype, copy=False)
            lab = X[:, label_col].astype(np.int32)
            order = np.argsort(lab, kind='stable')
            return (X, np.repeat(np.arange(num_imgs, dtype=np.int32), n), order,
                    np.searchsorted(lab[order], np.arange(num_classes + 1)))
        G, g_img, go, g_bounds = by_class(0, 4, np.float32)
        D, d_img, do, d_bounds = by_class(1, 5, base_dtype)
        # chunks of whole classes with about chunk_rows detections each
        rows = np.diff(d_bounds) + np.diff(g_bounds)
        cuts = [0]
        acc = 0
        for c, r in enumerate(rows.tolist()):
            if acc and acc + r > self.chunk_rows:
                cuts.append(c)
                acc = 0
            acc += r
        cuts.append(num_classes)
        scales = self.scale_ranges if self.scale_ranges is not None else [None]
        settings = [(t, k) for t in range(len(self.iou_thrs)) for k in range(len(scales))]
        aps = np.zeros((len(settings), num_classes), np.float32)
        num_gts = np.zeros((len(settings), num_classes), np.int64)
        for c0, c1 in zip(cuts[:-1], cuts[1:]):
            gi = go[g_bounds[c0]:g_bounds[c1]]
            di = do[d_bounds[c0]:d_bounds[c1]]
            aps[:, c0:c1], num_gts[:, c0:c1] = self._evaluate_chunk(
                G[gi], g_img[gi], D[di], d_img[di], c0, c1 - c0, num_imgs, base_dtype,
                settings, scales)
        del G, D, g_img, d_img, go, do

        valid = num_gts > 0
        maps = [a[v].mean().item() if v.any() else 0.0 for a, v in zip(aps, valid)]
        per_thr_map = np.reshape(maps, (len(self.iou_thrs), len(scales))).mean(1).tolist()
        eval_results = OrderedDict((f'AP{int(t * 100):02d}', round(m, 3))
                                   for t, m in zip(self.iou_thrs, per_thr_map))
        if self.scale_ranges is not None:
            for (t, k), m in zip(settings, maps):
                rng = f'{scales[k][0]}-{scales[k][1]}'
                eval_results[f'AP{int(self.iou_thrs[t] * 100):02d}_{rng}'] = round(m, 3)
        eval_results['mAP'] = sum(per_thr_map) / len(per_thr_map)
        # mean over thresholds (and the scale ranges where the class has ground truth);
        # NaN for classes without ground truth
        n_valid = valid.sum(0)
        cls_ap = np.where(n_valid > 0, np.where(valid, aps, 0).astype(np.float64).sum(0)
                          / np.maximum(n_valid, 1), np.nan)
        if self.classwise:
            for c in np.flatnonzero(~np.isnan(cls_ap)):
                eval_results[f'AP/{classes[c]}'] = float(cls_ap[c])
        counts = self._train_counts(classes)
        if counts is not None:
            order = np.lexsort((np.arange(num_classes), -counts))
            for name, part in zip(('head', 'middle', 'tail'), np.array_split(order, 3)):
                vals = cls_ap[part][~np.isnan(cls_ap[part])]
                eval_results[f'mAP_{name}'] = float(vals.mean()) if vals.size else float('nan')
        print_log(f'FastOpenImagesMetric: {num_imgs} images, mAP {eval_results["mAP"]:.4f}',
                  logger='current')
        self.per_class_ap = cls_ap
        return eval_results

    def _train_counts(self, classes):
        if self.train_image_counts is not None:
            with open(self.train_image_counts) as f:
                data = json.load(f)
            missing = [c for c in classes if c not in data]
            if missing:
                raise OpenImagesMetricError(
                    f'train_image_counts file {self.train_image_counts!r} lacks '
                    f'{len(missing)} classes, e.g. {missing[:3]}')
            return np.array([int(data[c]) for c in classes], dtype=np.int64)
        counts = self.dataset_meta.get('train_image_counts')
        if counts is None:
            return None
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        if counts.size != len(classes):
            raise OpenImagesMetricError(
                f"dataset_meta['train_image_counts'] has {counts.size} entries, expected one per "
                f'class ({len(classes)})')
        return counts

    def _evaluate_chunk(self, G, g_img, D, d_img, c0, nc, num_imgs, base_dtype, settings,
                        scales):
        """AP and gt count of classes ``c0 .. c0+nc-1`` for every (threshold, scale) setting.

        ``G``/``D`` hold the rows of these classes in (class, image, mmdet order) order."""
        g_key = (G[:, 4].astype(np.int64) - c0) * num_imgs + g_img
        d_key = (D[:, 5].astype(np.int64) - c0) * num_imgs + d_img
        gbox, g_group = G[:, :4], G[:, 5] > 0
        dbox, dscore = D[:, :4], D[:, 4]
        g_lab = g_key // num_imgs

        # greedy order inside each (class, image) segment: descending score like mmdet's
        # np.argsort(-scores); segments with tied scores use np.argsort itself
        n = d_key.size
        seg = np.zeros(n, np.int64)
        if n:
            np.cumsum(d_key[1:] != d_key[:-1], out=seg[1:])
        score_rank = np.empty(n, np.int64)
        score_rank[np.argsort(-dscore)] = np.arange(n)
        greedy = np.argsort(seg * n + score_rank)  # (segment, -score); one int64 sort
        del score_rank
        ks, ss = d_key[greedy], dscore[greedy]
        tie = (ks[1:] == ks[:-1]) & (ss[1:] == ss[:-1])
        if tie.any():
            seg_start = np.searchsorted(d_key, np.unique(ks[1:][tie]), 'left')
            seg_end = np.searchsorted(d_key, d_key[seg_start], 'right')
            for s, e in zip(seg_start.tolist(), seg_end.tolist()):
                greedy[s:e] = s + np.argsort(-dscore[s:e])
        del ks, ss, tie
        rank = np.empty_like(greedy)
        rank[greedy] = np.arange(greedy.size)
        del greedy

        gg = g_group & self.use_group_of  # group-of boxes (none without use_group_of)
        ng_idx, gg_idx = np.flatnonzero(~gg), np.flatnonzero(gg)
        gg_key = g_key[gg_idx]
        gt_area = (gbox[:, 2] - gbox[:, 0]) * (gbox[:, 3] - gbox[:, 1])
        det_area = (dbox[:, 2] - dbox[:, 0]) * (dbox[:, 3] - dbox[:, 1])

        def best(idx, iof):
            # per det: largest IoU (IoA) with a box idx of its segment and which one (-1: none)
            pd, pg, cnt = _pairs(d_key, g_key[idx], seg)
            vmax, arg = _first_max(_iou_f32(dbox[pd], gbox[idx][pg], iof), pd, cnt, n)
            return vmax, np.append(pg, -1)[arg]  # -1: none
        iou_max, ng_match = best(ng_idx, False)  # index in ng_idx
        ioa_max, gg_match = best(gg_idx, True)  # index in gg_idx
        # classes whose mmdet sequence is float64 (a group-of box creates a float64 array)
        cls_f64 = np.zeros(nc, bool)
        cls_f64[gg_key // num_imgs] = True
        cls_f64 |= base_dtype == np.float64

        def one(iou_thr, ioa_thr, rng):
            """tp/fp of every detection entry for one (IoU, IoA, area range); AP per class."""
            tp, fp = np.zeros((2, n), np.float32)
            if rng is None:
                det_in = np.ones(n, bool)
                gt_ign = np.zeros(gt_area.size, bool)
            else:
                lo, hi = rng[0] ** 2, rng[1] ** 2
                det_in = (det_area >= lo) & (det_area < hi)
                gt_ign = (gt_area < lo) | (gt_area >= hi)
            # stage 1: greedy matching to non-group-of boxes
            elig = iou_max >= iou_thr
            matched = np.append(ng_idx, -1)[np.where(elig, ng_match, -1)]
            cand = elig.copy()
            cand[elig] = ~gt_ign[matched[elig]]
            ci = np.flatnonzero(cand)
            ci = ci[np.argsort(rank[ci])]
            _, first = np.unique(matched[ci], return_index=True)
            tp[ci[first]] = 1
            fp[ci] = 1
            fp[ci[first]] = 0
            fp[~elig & det_in] = 1
            # stage 2: not-TP detections to group-of boxes (IoA)
            # (ioa_thr is None only without use_group_of, i.e. without group-of boxes)
            gm = gg_match if ioa_thr is None else np.where(ioa_max >= ioa_thr, gg_match, -1)
            mg = (tp == 0) & (gm >= 0)
            mg[mg] = ~gt_ign[gg_idx[gm[mg]]]
            hit = gm[mg]
            g_tp = np.zeros(gg_idx.size, np.float32)
            g_tp[hit] = 1
            g_score = np.zeros(gg_idx.size, np.float64)
            np.maximum.at(g_score, hit, dscore[mg].astype(np.float64))
            keep = ~mg
            # per-class sequences in mmdet's order: per image, kept dets then group-of entries
            e_key = np.concatenate([d_key[keep], gg_key])
            e_type = np.repeat(np.arange(2, dtype=np.int8), [int(keep.sum()), gg_key.size])
            e_score = np.concatenate([dscore[keep].astype(np.float64), g_score])
            e_tp = np.concatenate([tp[keep], g_tp])
            e_fp = np.concatenate([fp[keep], (1.0 - g_tp) * ~gt_ign[gg_idx]]).astype(np.float32)
            order = np.lexsort((e_type, e_key))  # stable: keeps det / group order inside
            e_key, e_score, e_tp, e_fp = e_key[order], e_score[order], e_tp[order], e_fp[order]
            e_cls = e_key // num_imgs
            bounds = np.searchsorted(e_cls, np.arange(nc + 1))
            gt_count = np.bincount(g_lab[~gt_ign], minlength=nc)
            aps = np.zeros(nc, np.float32)
            for c in range(nc):
                s, e = bounds[c], bounds[c + 1]
                if e == s:
                    continue
                sc = e_score[s:e].astype(np.float64 if cls_f64[c] else dscore.dtype)
                srt = np.argsort(-sc)
                aps[c] = _average_precision_area(e_tp[s:e][srt], e_fp[s:e][srt], gt_count[c])
            return aps, gt_count

        out = [one(self.iou_thrs[t], self.ioa_thrs[t], scales[k]) for t, k in settings]
        return np.array([a for a, _ in out]), np.array([g for _, g in out])
