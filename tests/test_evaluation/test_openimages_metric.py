"""FastOpenImagesMetric against mmdet 3.3's OpenImagesMetric / eval_map (the reference)."""
import copy
import json

import numpy as np
import pytest
import torch
from mmdet.evaluation import OpenImagesMetric
from mmdet.evaluation.functional import eval_map
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from oi_metric_data import make_meta, make_samples

from balancedet.evaluation.openimages_metric import FastOpenImagesMetric, OpenImagesMetricError

NC = 40


def run_ours(samples, meta, **kw):
    m = FastOpenImagesMetric(**kw)
    m.dataset_meta = meta
    m.process({}, copy.deepcopy(samples))
    return m.compute_metrics(m.results), m


def run_mmdet(samples, meta, per_class=True, scale_ranges=None, dataset='oid_v6',
              **kw):
    """mmdet's metric (mAP) and eval_map on its processed results (per-class AP)."""
    m = OpenImagesMetric(**kw)
    m.dataset_meta = meta
    m.process({}, copy.deepcopy(samples))
    out = m.compute_metrics(m.results) if scale_ranges is None and dataset == 'oid_v6' else {}
    gts, preds = zip(*m.results)
    per_thr = []
    for iou, ioa in zip(m.iou_thrs, m.ioa_thrs):
        mean_ap, res = eval_map(preds, gts, scale_ranges=scale_ranges, iou_thr=iou,
                                ioa_thr=ioa if dataset else None,
                                dataset=dataset, logger='silent', use_group_of=m.use_group_of,
                                nproc=1)
        per_thr.append((mean_ap, res))
    return out, per_thr


def assert_same(ours, m_ours, ref, per_thr, classes):
    nthr = len(per_thr)
    if ref:
        assert ours['mAP'] == pytest.approx(ref['mAP'], abs=1e-6)
        for k, v in ref.items():
            assert ours[k] == pytest.approx(v, abs=1e-6), k
    ap_ref = np.mean([[r['ap'] for r in res] for _, res in per_thr], 0)
    has_gt = np.array([r['num_gts'] > 0 for r in per_thr[0][1]])
    assert np.allclose(m_ours.per_class_ap[has_gt], ap_ref[has_gt], atol=1e-6, rtol=0)
    assert np.isnan(m_ours.per_class_ap[~has_gt]).all()
    for c, name in enumerate(classes):
        key = f'AP/{name}'
        if has_gt[c]:
            assert ours[key] == pytest.approx(float(ap_ref[c]), abs=1e-6)
        else:
            assert key not in ours
    assert ours['mAP'] == pytest.approx(np.mean([m for m, _ in per_thr]), abs=1e-6)
    assert nthr >= 1


CASES = {
    'random': dict(),
    'near_perfect': dict(near_perfect=True),
    'ties': dict(tie_decimals=1),
    'ties_near_perfect': dict(tie_decimals=2, near_perfect=True),
    'many_groups': dict(group_p=0.6),
    'float64_scores': dict(score_dtype=torch.float64, tie_decimals=1),
    'relation_matrix_without_diagonal': dict(zero_diag=True, tie_decimals=2),
}


def as_det_data_samples(samples):
    """The dict samples as the DetDataSamples a model returns."""
    out = []
    for s in samples:
        d = DetDataSample(metainfo=dict(img_id=s['img_id'], instances=s['instances'],
                                        image_level_labels=s['image_level_labels']))
        d.pred_instances = InstanceData(**s['pred_instances'])
        out.append(d)
    return out


@pytest.mark.parametrize('case', list(CASES))
def test_matches_mmdet(case):
    rng = np.random.default_rng(list(CASES).index(case))
    meta, _ = make_meta(NC, rng)
    kw = dict(CASES[case])
    if kw.pop('zero_diag', False):  # mmdet then filters only classes a prediction's row reaches
        np.fill_diagonal(meta['RELATION_MATRIX'], 0)
    samples = make_samples(120, NC, rng, **kw)
    ours, m = run_ours(samples, meta)
    ref, per_thr = run_mmdet(samples, meta)
    assert 0.05 < ref['mAP'] < 0.999
    assert_same(ours, m, ref, per_thr, meta['classes'])
    # class chunks (bounded memory) give the same numbers
    chunked = FastOpenImagesMetric()
    chunked.chunk_rows = 200
    chunked.dataset_meta = meta
    chunked.process({}, copy.deepcopy(samples))
    assert chunked.compute_metrics(chunked.results) == ours


@pytest.mark.parametrize('flags', [dict(get_supercategory=False),
                                   dict(filter_labels=False),
                                   dict(get_supercategory=False, filter_labels=False)])
def test_flags_match_mmdet(flags):
    rng = np.random.default_rng(7)
    meta, _ = make_meta(NC, rng)
    samples = make_samples(80, NC, rng, tie_decimals=2)
    ours, m = run_ours(samples, meta, **flags)
    ref, per_thr = run_mmdet(samples, meta, **flags)
    assert_same(ours, m, ref, per_thr, meta['classes'])


def test_several_thresholds_match_mmdet():
    rng = np.random.default_rng(11)
    meta, _ = make_meta(NC, rng)
    samples = make_samples(100, NC, rng, near_perfect=True, tie_decimals=2)
    kw = dict(iou_thrs=[0.5, 0.75, 0.9], ioa_thrs=[0.5, 0.6, 0.9])
    ours, m = run_ours(samples, meta, **kw)
    ref, per_thr = run_mmdet(samples, meta, **kw)
    assert set(ref) == {'AP50', 'AP75', 'AP90', 'mAP'}
    assert ref['AP50'] != ref['AP90']
    assert_same(ours, m, ref, per_thr, meta['classes'])


def test_det_data_samples_and_registry():
    """DetDataSample inputs (what the model returns), built through METRICS."""
    rng = np.random.default_rng(3)
    meta, _ = make_meta(NC, rng)
    samples = make_samples(30, NC, rng)
    ds = as_det_data_samples(samples)
    m = METRICS.build(dict(type='FastOpenImagesMetric'))
    m.dataset_meta = meta
    m.process({}, ds)
    ours = m.compute_metrics(m.results)
    ref, per_thr = run_mmdet(samples, meta)
    assert_same(ours, m, ref, per_thr, meta['classes'])


def test_use_group_of_false_matches_eval_map():
    """mmdet's eval_map raises with use_group_of=False (it passes ioa_thr in the group-of
    flags' position); the reference is eval_map with the plain VOC matcher, which is what
    use_group_of=False means (tpfp_openimages without group-of boxes is that matcher)."""
    rng = np.random.default_rng(5)
    meta, _ = make_meta(NC, rng)
    samples = make_samples(80, NC, rng, group_p=0.4, tie_decimals=2)
    with pytest.raises((AttributeError, ValueError)):
        run_mmdet(samples, meta, use_group_of=False)
    ours, m = run_ours(samples, meta, use_group_of=False)
    _, per_thr = run_mmdet(samples, meta, use_group_of=False, dataset=None)
    assert_same(ours, m, None, per_thr, meta['classes'])


def test_scale_ranges_match_eval_map():
    """mmdet's metric raises in round(list) with scale_ranges; eval_map is the reference
    (no group-of boxes: mmdet's group-of stage cannot handle several ranges)."""
    rng = np.random.default_rng(9)
    meta, _ = make_meta(NC, rng)
    samples = make_samples(80, NC, rng, group_p=0.0)
    sr = [(0, 20), (20, 40), (40, 1e5)]
    ours, m = run_ours(samples, meta, scale_ranges=sr)
    _, per_thr = run_mmdet(samples, meta, scale_ranges=sr, dataset='oid_v6_scales')
    mean_aps, res = per_thr[0]
    for (lo, hi), ref in zip(sr, mean_aps):
        assert ours[f'AP50_{lo}-{hi}'] == pytest.approx(ref, abs=1e-3)
    assert ours['mAP'] == pytest.approx(np.mean(mean_aps), abs=1e-6)
    ap = np.stack([r['ap'] for r in res])  # (classes, scales)
    ngt = np.stack([r['num_gts'] for r in res])
    assert (ngt.sum(0) > 0).all()
    has = ngt.sum(1) > 0
    ref_cls = np.where(ngt > 0, ap, np.nan)
    # per-class AP: mean over the ranges where the class has ground truth
    exp = np.nanmean(ref_cls[has], 1)
    assert np.allclose(m.per_class_ap[has], exp, atol=1e-6)


def test_scale_range_with_group_of_boxes_matches_eval_map():
    """Area range + group-of: mmdet indexes the group box areas with group indices into the
    list of all boxes; where every box is group-of the two coincide, so eval_map is a valid
    reference there (one range: mmdet's group-of stage cannot handle several)."""
    rng = np.random.default_rng(19)
    meta, _ = make_meta(NC, rng)
    samples = make_samples(80, NC, rng, group_p=1.0, tie_decimals=2)
    sr = [(25, 60)]
    ours, m = run_ours(samples, meta, scale_ranges=sr)
    _, per_thr = run_mmdet(samples, meta, scale_ranges=sr, dataset='oid_v6_scales')
    mean_aps, res = per_thr[0]
    assert ours['mAP'] == pytest.approx(mean_aps[0], abs=1e-6)
    ap = np.array([r['ap'][0] for r in res])
    has = np.array([r['num_gts'][0] > 0 for r in res])
    assert has.sum() > 10
    assert np.allclose(m.per_class_ap[has], ap[has], atol=1e-6)


def test_is_group_ofs_key_of_challenge_dataset():
    """mmdet 3.3's OpenImagesChallengeDataset writes ``is_group_ofs``; mmdet's metric reads
    ``is_group_of`` and raises KeyError. Ours reads either; the official protocol uses the
    flag, so the result equals mmdet's on the same data with the key renamed."""
    rng = np.random.default_rng(13)
    meta, _ = make_meta(NC, rng)
    meta['dataset_type'] = 'oid_challenge'
    samples = make_samples(60, NC, rng, group_p=0.5, group_key='is_group_ofs')
    with pytest.raises(KeyError):
        run_mmdet(samples, meta)
    renamed = copy.deepcopy(samples)
    for s in renamed:
        for ins in s['instances']:
            ins['is_group_of'] = ins.pop('is_group_ofs')
    ours, m = run_ours(samples, meta)
    ours2, _ = run_ours(renamed, meta)
    ref, per_thr = run_mmdet(renamed, meta)
    assert_same(ours, m, ref, per_thr, meta['classes'])
    assert ours == ours2
    # the flag matters: ignoring it changes the result
    flat, _ = run_ours(samples, meta, use_group_of=False)
    assert flat['mAP'] != pytest.approx(ours['mAP'], abs=1e-4)


def test_group_of_one_tp_per_group_and_ignored_matches():
    """Hand-made image: 3 dets inside one group-of box give one TP (scored with the max);
    a det matching a non-group box is a TP; a det on an unannotated class is filtered."""
    meta = dict(classes=('a', 'b', 'c'), RELATION_MATRIX=np.eye(3))
    inst = [dict(bbox=[0, 0, 100, 100], bbox_label=0, is_group_of=True),
            dict(bbox=[200, 200, 250, 250], bbox_label=0, is_group_of=False)]
    boxes = torch.tensor([[10, 10, 20, 20], [30, 30, 40, 40], [50, 50, 60, 60],
                          [200, 200, 250, 251], [300, 300, 310, 310], [0, 0, 5, 5]],
                         dtype=torch.float32)
    scores = torch.tensor([0.9, 0.3, 0.8, 0.5, 0.95, 0.99])
    labels = torch.tensor([0, 0, 0, 0, 0, 2])
    s = dict(img_id='x', instances=inst, image_level_labels=np.array([1]),
             pred_instances=dict(bboxes=boxes, scores=scores, labels=labels))
    ours, m = run_ours([s], meta)
    # class a by score: 0.95 FP, 0.9 group TP, 0.5 TP: precision 0, 1/2, 2/3 at recall
    # 0, 1/2, 1; interpolated (max to the right) 2/3 on both halves -> AP = 2/3
    assert ours['AP/a'] == pytest.approx(2 / 3, abs=1e-6)
    assert 'AP/c' not in ours and 'AP/b' not in ours
    assert ours['mAP'] == pytest.approx(ours['AP/a'], abs=1e-6)
    ref, per_thr = run_mmdet([s, s], meta)
    ours2, m2 = run_ours([s, s], meta)
    assert_same(ours2, m2, ref, per_thr, meta['classes'])


def test_head_middle_tail(tmp_path):
    rng = np.random.default_rng(17)
    meta, _ = make_meta(9, rng, names=[f'cls {i}' for i in range(9)])
    samples = make_samples(60, 9, rng)
    counts = [50, 3, 7, 100, 1, 20, 20, 0, 9]
    meta['train_image_counts'] = counts
    ours, m = run_ours(samples, meta)
    order = sorted(range(9), key=lambda c: (-counts[c], c))  # 3,5,6 | 0,8,2 | 1,4,7
    for name, part in zip(('head', 'middle', 'tail'), (order[:3], order[3:6], order[6:])):
        vals = [ours[f'AP/cls {c}'] for c in part if f'AP/cls {c}' in ours]
        assert ours[f'mAP_{name}'] == pytest.approx(np.mean(vals), abs=1e-9)
    f = tmp_path / 'counts.json'
    f.write_text(json.dumps({f'cls {i}': c for i, c in enumerate(counts)}))
    del meta['train_image_counts']
    ours_file, _ = run_ours(samples, meta, train_image_counts=str(f))
    assert ours_file == ours
    f.write_text(json.dumps({'cls 0': 1}))
    with pytest.raises(OpenImagesMetricError, match='lacks 8 classes'):
        run_ours(samples, meta, train_image_counts=str(f))
    meta['train_image_counts'] = counts[:-1]
    with pytest.raises(OpenImagesMetricError, match='8 entries'):
        run_ours(samples, meta)


def _one(score=0.5, box=(0, 0, 10, 10), label=0):
    return dict(img_id='bad_img', instances=[dict(bbox=[0, 0, 10, 10], bbox_label=0,
                                                  is_group_of=False)],
                image_level_labels=np.array([0]),
                pred_instances=dict(bboxes=torch.tensor([box], dtype=torch.float32),
                                    scores=torch.tensor([score]),
                                    labels=torch.tensor([label])))


@pytest.mark.parametrize('sample,match', [
    (_one(score=float('nan')), r"bad_img.*scores has non-finite"),
    (_one(box=(0, float('nan'), 10, 10)), r"bad_img.*bboxes has non-finite"),
    (_one(label=5), r"bad_img.*labels \[5\] outside \[0, 3\)"),
    (_one(label=-1), r"labels \[-1\] outside"),
])
def test_bad_predictions(sample, match):
    meta = dict(classes=('a', 'b', 'c'), RELATION_MATRIX=np.eye(3))
    with pytest.raises(OpenImagesMetricError, match=match):
        run_ours([sample], meta)


def test_bad_meta_and_gt():
    with pytest.raises(OpenImagesMetricError, match=r"RELATION_MATRIX'\] has shape \(2, 2\), "
                                                     r"expected \(3, 3\)"):
        run_ours([_one()], dict(classes=('a', 'b', 'c'), RELATION_MATRIX=np.eye(2)))
    with pytest.raises(OpenImagesMetricError, match='RELATION_MATRIX.*missing'):
        run_ours([_one()], dict(classes=('a', 'b', 'c')))
    s = _one()
    s['instances'][0]['bbox_label'] = 7
    with pytest.raises(OpenImagesMetricError, match='bbox_label'):
        run_ours([s], dict(classes=('a', 'b', 'c'), RELATION_MATRIX=np.eye(3)))
    s = _one()
    del s['instances'][0]['is_group_of']
    with pytest.raises(OpenImagesMetricError, match='is_group_of'):
        run_ours([s], dict(classes=('a', 'b', 'c'), RELATION_MATRIX=np.eye(3)))
    with pytest.raises(OpenImagesMetricError, match='same length'):
        FastOpenImagesMetric(iou_thrs=[0.5, 0.7], ioa_thrs=0.5)


def test_degenerate_inputs():
    """No boxes anywhere / no detections anywhere / only detections: no crash, same as mmdet."""
    meta = dict(classes=('a', 'b', 'c'), RELATION_MATRIX=np.eye(3))
    empty = dict(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                 labels=torch.zeros(0, dtype=torch.long))
    s_none = dict(img_id='e', instances=[], image_level_labels=np.array([0]),
                  pred_instances=empty)
    s_det = copy.deepcopy(_one())
    s_det['instances'] = []
    s_gt = copy.deepcopy(_one())
    s_gt['pred_instances'] = empty
    s_grp = copy.deepcopy(s_gt)
    s_grp['instances'][0]['is_group_of'] = True
    for batch in ([s_none, s_none], [s_det, s_none], [s_gt, s_none], [s_grp, s_det]):
        ours, m = run_ours(batch, meta)
        ref, per_thr = run_mmdet(batch, meta)
        assert_same(ours, m, ref, per_thr, meta['classes'])


def test_through_mmengine_evaluator():
    """Evaluator path of a test run: DetDataSamples in, prefixed keys out."""
    from mmengine.evaluator import Evaluator
    rng = np.random.default_rng(23)
    meta, _ = make_meta(NC, rng)
    samples = make_samples(20, NC, rng)
    ds = as_det_data_samples(samples)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):  # a runner with default_scope='mmdet'
        ev = Evaluator(dict(type='FastOpenImagesMetric'))
    ev.dataset_meta = meta
    ev.process(data_samples=ds[:10])
    ev.process(data_samples=ds[10:])
    out = ev.evaluate(len(ds))
    ours, _ = run_ours(samples, meta)
    assert out == {f'openimages/{k}': v for k, v in ours.items()}
    assert 'openimages/AP50' in out and 'openimages/mAP' in out
