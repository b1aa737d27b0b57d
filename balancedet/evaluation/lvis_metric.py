"""LVIS v1 evaluation without the ``lvis`` package (numpy 2 safe).

Gupta et al., "LVIS: A Dataset for Large Vocabulary Instance Segmentation",
CVPR 2019, sec. 5 (federated evaluation). mmdet's ``LVISMetric`` imports the
``lvis`` package at module load; its only PyPI release (0.5.3) calls
``np.float`` (removed in numpy 1.24), so on numpy 2 it fails with an
``AttributeError`` inside ``LVISEval.accumulate``, and without the package
mmdet's metric refuses to build ("Package lvis is not installed"). This
module computes the same numbers as lvis-api's ``LVISEval`` (tested against
values computed with lvis-api 0.5.3 on numpy 1.23.5), with pycocotools only
for IoUs, and no patching of numpy.

The federated protocol, per image ``I`` and category ``c``:

* detections are kept per image up to ``max_dets`` (300), highest score first;
* a detection of ``c`` in ``I`` is evaluated only when ``c`` is annotated in
  ``I`` or listed in ``I``'s ``neg_category_ids``; others are dropped;
* matching as in COCO (greedy by score, IoU >= t, best IoU, non-ignored ground
  truths first) at t = 0.50:0.05:0.95; a ground truth is ignored outside the
  area range; an unmatched detection is ignored when outside the area range or
  when ``c`` is in ``I``'s ``not_exhaustive_category_ids``;
* precision at 101 recall points, made monotone from the right; AP is the
  mean over IoU thresholds, recall points and categories that have ground
  truth (entries ``> -1``); APr / APc / APf average the categories of the
  ``frequency`` group ``r`` / ``c`` / ``f``; AR@300 is the mean recall.

As lvis-api does, the evaluation covers every image of the annotation file
and a result's area is its box's ``w * h`` when it has a box (mmdet's segm
results do), else its mask's area.

:class:`BalancedLVISMetric` (registered in ``METRICS``) wraps this with
mmdet's metric interface and mmdet's keys (``lvis/bbox_AP``,
``lvis/bbox_AP50``, ..., ``lvis/bbox_APr``, ``lvis/bbox_APc``,
``lvis/bbox_APf``; ``segm`` likewise), plus with ``classwise=True`` one key
``lvis/bbox_AP/<class name>`` per class that has ground truth in the
annotation file (classes without are left out rather than reported as NaN).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_utils
from mmdet.registry import METRICS
from mmdet.structures.mask import encode_mask_results
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import MMLogger

from balancedet.datasets.balanced_coco import DatasetError, category_labels
from balancedet.datasets.lvis import FREQUENCY_GROUPS, read_lvis_annotations

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = (('all', (0, 1e5 ** 2)), ('small', (0, 32 ** 2)), ('medium', (32 ** 2, 96 ** 2)),
               ('large', (96 ** 2, 1e5 ** 2)))
SUMMARY_KEYS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf')


def _gt_rle(ann, img):
    segm = ann['segmentation']
    h, w = img['height'], img['width']
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    if isinstance(segm['counts'], list):
        return mask_utils.frPyObjects(segm, h, w)
    return segm


def _match(ious, gt_ignore, iou_thr):
    """Greedy matching of score-sorted detections (rows) to ground truths (columns,
    non-ignored first). Returns the matched column per row, -1 for none."""
    num_dt, num_gt = ious.shape
    taken = np.zeros(num_gt, dtype=bool)
    matched = np.full(num_dt, -1, dtype=np.int64)
    for d in range(num_dt):
        best, best_iou = -1, min(iou_thr, 1 - 1e-10)
        for g in range(num_gt):
            if taken[g]:
                continue
            # a match with a real ground truth is not traded for an ignored one
            if best > -1 and not gt_ignore[best] and gt_ignore[g]:
                break
            if ious[d, g] < best_iou:
                continue
            best, best_iou = g, ious[d, g]
        if best > -1:
            taken[best] = True
            matched[d] = best
    return matched


def evaluate_lvis(gt: dict, results: Sequence[dict], iou_type: str = 'bbox',
                  max_dets: int = 300) -> dict:
    """LVIS federated evaluation of COCO-style results against an LVIS file's dict.

    Args:
        gt (dict): the parsed LVIS annotation file.
        results (list[dict]): ``image_id``, ``category_id``, ``score`` and
            ``bbox`` ([x, y, w, h]) and/or ``segmentation`` (RLE).
        iou_type (str): ``'bbox'`` or ``'segm'``.
        max_dets (int): detections kept per image.

    Returns:
        dict: the summary (``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``,
        ``APl``, ``APr``, ``APc``, ``APf``, ``AR@300``, ``ARs@300``,
        ``ARm@300``, ``ARl@300``) plus ``precision`` (T x R x K x A),
        ``recall`` (T x K x A) and ``cat_ids`` (K, sorted).
    """
    if iou_type not in ('bbox', 'segm'):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    images = {img['id']: img for img in gt['images']}
    cat_ids = sorted(c['id'] for c in gt['categories'])
    cat_index = {c: k for k, c in enumerate(cat_ids)}
    unknown = {r['image_id'] for r in results} - set(images)
    if unknown:
        raise ValueError(f'results refer to image ids not in the annotation file, e.g. '
                         f'{sorted(unknown)[:5]}')
    gts = defaultdict(list)
    for ann in gt['annotations']:
        gts[ann['image_id'], ann['category_id']].append(ann)
    # max_dets per image, highest score first (stable for equal scores)
    per_image = defaultdict(list)
    for r in results:
        per_image[r['image_id']].append(r)
    dts = defaultdict(list)
    for img_id, rs in per_image.items():
        if len(rs) > max_dets:
            rs = sorted(rs, key=lambda r: -r['score'])[:max_dets]
        neg = set(images[img_id]['neg_category_ids'])
        for r in rs:
            if (img_id, r['category_id']) in gts or r['category_id'] in neg:
                dts[img_id, r['category_id']].append(r)
    num_t, num_r, num_k, num_a = len(IOU_THRS), len(REC_THRS), len(cat_ids), len(AREA_RANGES)
    # per (category, area): lists of per-image arrays, in image id order
    per_cat = defaultdict(lambda: defaultdict(list))
    # image order within a category is irrelevant: detections are re-sorted by score
    for img_id, cat_id in sorted(set(gts) | set(dts)):
        g, d = gts.get((img_id, cat_id), []), dts.get((img_id, cat_id), [])
        d = [d[i] for i in np.argsort([-x['score'] for x in d], kind='mergesort')]
        if g and d:
            segm = iou_type == 'segm'
            ious = mask_utils.iou([x['segmentation'] if segm else x['bbox'] for x in d],
                                  [_gt_rle(x, images[img_id]) if segm else x['bbox'] for x in g],
                                  [0] * len(g))
            ious = np.asarray(ious, dtype=np.float64).reshape(len(d), len(g))
        else:
            ious = np.zeros((len(d), len(g)))
        not_exhaustive = cat_id in set(images[img_id]['not_exhaustive_category_ids'])
        gt_area = np.array([x.get('area', x['bbox'][2] * x['bbox'][3]) for x in g],
                           dtype=np.float64)
        dt_area = np.array([x['bbox'][2] * x['bbox'][3] if 'bbox' in x
                            else mask_utils.area(x['segmentation']) for x in d], dtype=np.float64)
        scores = np.array([x['score'] for x in d], dtype=np.float64)
        gt_ignore = np.array([bool(x.get('ignore', 0)) for x in g], dtype=bool)
        for a, (_, (lo, hi)) in enumerate(AREA_RANGES):
            g_ig = gt_ignore | (gt_area < lo) | (gt_area > hi)
            order = np.argsort(g_ig, kind='mergesort')
            g_ig, ious_a = g_ig[order], ious[:, order]
            dt_matched = np.zeros((num_t, len(d)), dtype=bool)
            dt_ig = np.zeros((num_t, len(d)), dtype=bool)
            for t, thr in enumerate(IOU_THRS if ious_a.size else ()):
                m = _match(ious_a, g_ig, thr)
                dt_matched[t] = m > -1
                dt_ig[t, m > -1] = g_ig[m[m > -1]]
            out_of_range = (dt_area < lo) | (dt_area > hi) | not_exhaustive
            dt_ig |= ~dt_matched & out_of_range[None]
            for name, value in (('scores', scores), ('matched', dt_matched), ('ignored', dt_ig),
                                ('num_gt', int((~g_ig).sum()))):
                per_cat[cat_index[cat_id], a][name].append(value)
    precision = -np.ones((num_t, num_r, num_k, num_a))
    recall = -np.ones((num_t, num_k, num_a))
    for (k, a), e in per_cat.items():
        num_gt = sum(e['num_gt'])
        if num_gt == 0:
            continue
        scores = np.concatenate(e['scores'])
        order = np.argsort(-scores, kind='mergesort')
        matched = np.concatenate(e['matched'], axis=1)[:, order]
        ignored = np.concatenate(e['ignored'], axis=1)[:, order]
        tp = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
        fp = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
        for t in range(num_t):
            rc = tp[t] / num_gt
            recall[t, k, a] = rc[-1] if rc.size else 0
            pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
            # precision at recall r: the best precision at any recall >= r
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            at = np.searchsorted(rc, REC_THRS, side='left')
            # recall points beyond the curve (at == pr.size) get the appended 0
            precision[t, :, k, a] = np.append(pr, 0.0)[at]
    freq = {c['id']: c.get('frequency') for c in gt['categories']}
    groups = {g: [cat_index[c] for c in cat_ids if freq[c] == g] for g in FREQUENCY_GROUPS}

    def mean_valid(x):
        x = x[x > -1]
        return float(np.mean(x)) if x.size else -1.0

    out = dict(AP=precision[..., 0], AP50=precision[IOU_THRS == 0.5][..., 0],
               AP75=precision[IOU_THRS == 0.75][..., 0],
               APs=precision[..., 1], APm=precision[..., 2], APl=precision[..., 3],
               **{f'AP{g}': precision[:, :, groups[g], 0] for g in FREQUENCY_GROUPS},
               **{f'AR{s}@{max_dets}': recall[..., a] for a, s in enumerate(('', 's', 'm', 'l'))})
    return dict({k: mean_valid(v) for k, v in out.items()}, precision=precision, recall=recall,
                cat_ids=cat_ids)


def per_class_ap(precision, area_index=0):
    """AP of every category (NaN where it has no ground truth)."""
    p = precision[:, :, :, area_index]
    valid = p > -1
    return np.where(valid.any((0, 1)), np.where(valid, p, 0).sum((0, 1))
                    / np.maximum(valid.sum((0, 1)), 1), np.nan)


def _xyxy2xywh(b):
    return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]


@METRICS.register_module()
class BalancedLVISMetric(BaseMetric):
    """LVIS v1 box / mask AP with APr, APc, APf (see module docstring).

    Args:
        ann_file (str): the LVIS v1 annotation file (it holds the image-level
            ``neg_category_ids`` / ``not_exhaustive_category_ids`` and the
            categories' ``frequency`` that the evaluation needs).
        metric (str | list[str]): ``'bbox'`` and/or ``'segm'``.
        classwise (bool): also report ``<metric>_AP/<class name>``.
        max_dets (int): detections per image (LVIS: 300).
        outfile_prefix (str, optional): write the results as
            ``<prefix>.<metric>.json`` (COCO result format).
        format_only (bool): only write the results (needs ``outfile_prefix``).
    """

    default_prefix = 'lvis'

    def __init__(self, ann_file: str, metric='bbox', classwise: bool = False,
                 max_dets: int = 300, outfile_prefix: str | None = None,
                 format_only: bool = False, collect_device: str = 'cpu',
                 prefix: str | None = None, backend_args: dict | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not ann_file:
            raise ValueError('BalancedLVISMetric needs `ann_file`, the LVIS v1 annotation file '
                             '(the federated evaluation reads its image-level category lists)')
        self.metrics = list(metric) if isinstance(metric, (list, tuple)) else [metric]
        for m in self.metrics:
            if m not in ('bbox', 'segm'):
                raise KeyError(f"BalancedLVISMetric: metric must be 'bbox' or 'segm', got {m!r}")
        if format_only and not outfile_prefix:
            raise ValueError('BalancedLVISMetric: format_only=True needs outfile_prefix')
        self.ann_file = ann_file
        self.classwise = bool(classwise)
        self.max_dets = int(max_dets)
        self.outfile_prefix = outfile_prefix
        self.format_only = format_only
        self.gt = read_lvis_annotations(ann_file, backend_args)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_instances']
            result = dict(img_id=sample['img_id'],
                          **{k: pred[k].cpu().numpy() for k in ('bboxes', 'scores', 'labels')})
            if 'masks' in pred:
                result['masks'] = encode_mask_results(pred['masks'].detach().cpu().numpy())
            if 'mask_scores' in pred:
                result['mask_scores'] = pred['mask_scores'].cpu().numpy()
            self.results.append(result)

    def _label_to_cat_id(self) -> list:
        classes = (self.dataset_meta or {}).get('classes') or None
        try:
            cat2label = category_labels(self.gt['categories'], classes, repr(self.ann_file))[1]
        except DatasetError as err:
            raise ValueError(f'BalancedLVISMetric: {err} (use the same annotation version '
                             'for the dataset and the metric)') from None
        return sorted(cat2label, key=cat2label.get)

    def results_to_json(self, results) -> dict:
        """COCO result dicts per metric, label indices mapped to category ids."""
        cat_of = self._label_to_cat_id()
        out = {m: [] for m in self.metrics}
        for r in results:
            for i, label in enumerate(r['labels']):
                base = dict(image_id=r['img_id'], category_id=cat_of[int(label)],
                            bbox=_xyxy2xywh(r['bboxes'][i]), score=float(r['scores'][i]))
                if 'bbox' in out:
                    out['bbox'].append(base)
                if 'segm' in out and 'masks' in r:
                    rle = dict(r['masks'][i])
                    if isinstance(rle['counts'], bytes):
                        rle['counts'] = rle['counts'].decode()
                    score = r['mask_scores'][i] if 'mask_scores' in r else r['scores'][i]
                    out['segm'].append(dict(base, score=float(score), segmentation=rle))
        return out

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        dets = self.results_to_json(results)
        for m, rs in dets.items() if self.outfile_prefix else ():
            dump(rs, f'{self.outfile_prefix}.{m}.json')   # creates the folder
        if self.format_only:
            logger.info(f'results written to {self.outfile_prefix}.*.json')
            return {}
        names = {c['id']: c['name'] for c in self.gt['categories']}
        eval_results = {}
        for m in self.metrics:
            if not dets[m]:
                logger.info(f'no {m} results: every {m} metric is reported as 0')
                eval_results.update({f'{m}_{k}': 0.0 for k in SUMMARY_KEYS})
                continue
            res = evaluate_lvis(self.gt, dets[m], m, self.max_dets)
            logger.info(f'LVIS {m}: ' + ', '.join(
                f'{k}={res[k]:.3f}' for k in list(SUMMARY_KEYS) + [f'AR@{self.max_dets}']))
            eval_results.update({f'{m}_{k}': float(f'{res[k]:.3f}') for k in SUMMARY_KEYS})
            if self.classwise:
                for cat_id, ap in zip(res['cat_ids'], per_class_ap(res['precision'])):
                    if np.isfinite(ap):
                        eval_results[f'{m}_AP/{names[cat_id]}'] = float(f'{ap:.3f}')
        return eval_results


__all__ = ['BalancedLVISMetric', 'evaluate_lvis', 'per_class_ap']
