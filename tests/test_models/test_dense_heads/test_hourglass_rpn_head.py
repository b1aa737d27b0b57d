"""HourglassRPNHead: eq. 2 per-level loss, gray class, negative cap, cross-level
NMS, against hand-written references."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import nms
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import balancedet  # noqa: F401

IMG = (32, 32)
META = dict(img_shape=IMG, pad_shape=IMG, batch_input_shape=IMG, scale_factor=(1., 1.))
GTS = [torch.tensor([[2., 3., 12., 14.], [14., 12., 30., 30.]]),
       torch.tensor([[5., 5., 21., 19.]])]


def head_cfg(gray=False, sampler=None, assigner=None, **kw):
    cfg = dict(
        type='HourglassRPNHead', in_channels=4, feat_channels=4, gray_class=gray,
        anchor_generator=dict(type='AnchorGenerator', strides=[4, 8], base_sizes=[6, 14],
                              scales=[1.0, 1.5], ratios=[0.5, 1.0, 2.0]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                        target_stds=[1.] * 4),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=not gray, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0),
        train_cfg=ConfigDict(
            assigner=assigner or dict(type='MaxIoUAssigner', pos_iou_thr=0.6,
                                      neg_iou_thr=0.15, min_pos_iou=0.3,
                                      match_low_quality=False, ignore_iof_thr=-1),
            # num huge: every positive and negative is used -> deterministic
            sampler=sampler or dict(type='RandomSampler', num=100000, pos_fraction=0.5,
                                    neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=ConfigDict(nms_pre=100000, max_per_img=50, score_thr=0.0,
                            nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0))
    cfg.update(kw)
    return cfg


def _outputs(head, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = head.num_base_priors
    cls, reg = [], []
    for h in (8, 4):
        cls.append(torch.randn(2, A * head.cls_out_channels, h, h, generator=g,
                               requires_grad=True))
        reg.append(0.3 * torch.randn(2, A * 4, h, h, generator=g))
    return cls, reg


def _gt():
    return [InstanceData(bboxes=b, labels=torch.zeros(len(b), dtype=torch.long)) for b in GTS]


def test_per_level_loss_matches_eq2():
    head = MODELS.build(head_cfg())
    cls, reg = _outputs(head)
    losses = head.loss_by_feat(cls, reg, _gt(), [META, META])
    anchors = head.prior_generator.grid_priors([(8, 8), (4, 4)], device='cpu')
    for lvl in range(2):
        anc = anchors[lvl]
        n_m, l_cls, l_reg = 0, 0.0, 0.0
        for i, gt in enumerate(GTS):
            ious = bbox_overlaps(anc, gt)
            best, arg = ious.max(1)
            pos, neg = best >= 0.6, best < 0.15
            logits = cls[lvl][i].permute(1, 2, 0).reshape(-1)
            deltas = reg[lvl][i].permute(1, 2, 0).reshape(-1, 4)
            target = pos.float()
            use = pos | neg
            l_cls = l_cls + F.binary_cross_entropy_with_logits(
                logits[use], target[use], reduction='sum')
            t = head.bbox_coder.encode(anc[pos], gt[arg[pos]])
            l_reg = l_reg + (deltas[pos] - t).abs().sum()
            n_m += int(use.sum())
        assert n_m > 0
        torch.testing.assert_close(losses['loss_rpn_cls'][lvl], l_cls / n_m)
        torch.testing.assert_close(losses['loss_rpn_bbox'][lvl], l_reg / n_m)


def test_global_norm_when_disabled():
    """per_level_norm=False reproduces mmdet's RPNHead exactly."""
    ours = MODELS.build(head_cfg(per_level_norm=False))
    ref_cfg = head_cfg()
    for k in ('gray_class', ):
        ref_cfg.pop(k)
    ref_cfg['type'] = 'RPNHead'
    ref_cfg['anchor_generator'] = copy.deepcopy(ref_cfg['anchor_generator'])
    ref = MODELS.build(ref_cfg)
    cls, reg = _outputs(ours)
    a = ours.loss_by_feat(cls, reg, _gt(), [META, META])
    b = ref.loss_by_feat(cls, reg, _gt(), [META, META])
    for k in a:
        torch.testing.assert_close(torch.stack(a[k]), torch.stack(b[k]))


def _targets(head):
    anchors, valid = head.get_anchors([(8, 8), (4, 4)], [META, META], device='cpu')
    labels, weights = head.get_targets(anchors, valid, _gt(), [META, META])[:2]
    return anchors, torch.cat(labels, 1), torch.cat(weights, 1)


def test_gray_class_and_negative_cap():
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(
        gray=True,
        assigner=dict(type='GrayBandMaxIoUAssigner'),
        sampler=dict(type='GrayClassSampler', num=64, pos_fraction=0.5, neg_pos_ub=2)))
    assert head.cls_out_channels == 3
    assert head.rpn_cls.out_channels == 3 * head.num_base_priors
    anchors, labels, weights = _targets(head)
    for i, gt in enumerate(GTS):
        anc = torch.cat(anchors[i])
        ious = bbox_overlaps(anc, gt)
        best = ious.max(1).values
        # low-quality matches: anchors at a gt's best IoU (>= min_pos_iou 0.3)
        low_q = ((ious == ious.max(0).values[None]) & (ious >= 0.3)).any(1)
        used = weights[i] > 0
        pos = used & (labels[i] == 0)
        gray = used & (labels[i] == 1)
        neg = used & (labels[i] == 2)
        n_pos, n_neg, n_gray = int(pos.sum()), int(neg.sum()), int(gray.sum())
        band = (best >= 0.25) & (best <= 0.49)
        assert n_pos > 0
        assert bool(((best >= 0.6) | low_q)[pos].all())
        assert bool((best >= 0.6)[~pos].logical_not().all())
        assert bool((best[neg] < 0.15).all())
        assert bool(band[gray].all())
        assert n_neg <= 2 * n_pos  # negative cap
        assert n_gray == min((n_pos + n_neg) // 2, int(band.sum()))
        assert n_gray > 0
    # 3-way softmax loss trains, proposals are scored by P(object)
    cls, reg = _outputs(head)
    loss = head.loss_by_feat(cls, reg, _gt(), [META, META])
    total = sum(loss['loss_rpn_cls']) + sum(loss['loss_rpn_bbox'])
    total.backward()
    assert torch.isfinite(total) and cls[0].grad.abs().sum() > 0
    res = head.predict_by_feat([c.detach() for c in cls], reg, batch_img_metas=[META, META],
                               rescale=False)
    for i in range(2):
        p_obj = torch.cat([c[i].permute(1, 2, 0).reshape(-1, 3).softmax(-1)[:, 0]
                           for c in cls])
        torch.testing.assert_close(res[i].scores.max(), p_obj.max())


@pytest.mark.parametrize('cap', [2, -1])
def test_negative_cap_with_mmdet_sampler(cap):
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.6, neg_iou_thr=0.15,
                      min_pos_iou=0.3, match_low_quality=True),
        sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=cap,
                     add_gt_as_proposals=False)))
    _, labels, weights = _targets(head)
    for i in range(2):
        n_pos = int(((labels[i] == 0) & (weights[i] > 0)).sum())
        n_neg = int(((labels[i] == 1) & (weights[i] > 0)).sum())
        if cap > 0:
            assert 0 < n_neg <= 2 * n_pos
        else:  # without the cap the same image gives many more negatives
            assert n_neg > 2 * n_pos


@pytest.mark.parametrize('across', [True, False])
def test_inference_nms_over_concatenated_levels(across):
    head = MODELS.build(head_cfg(nms_across_levels=across))
    cls, reg = _outputs(head, seed=3)
    cls = [c.detach() for c in cls]
    res = head.predict_by_feat(cls, reg, batch_img_metas=[META, META], rescale=False)
    anchors = head.prior_generator.grid_priors([(8, 8), (4, 4)], device='cpu')
    for i in range(2):
        boxes, scores, lvls = [], [], []
        for lvl in range(2):
            s = cls[lvl][i].permute(1, 2, 0).reshape(-1).sigmoid()
            d = reg[lvl][i].permute(1, 2, 0).reshape(-1, 4)
            boxes.append(head.bbox_coder.decode(anchors[lvl], d, max_shape=IMG))
            scores.append(s)
            lvls.append(torch.full_like(s, lvl))
        boxes, scores, lvls = torch.cat(boxes), torch.cat(scores), torch.cat(lvls)
        ok = ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)
        boxes, scores, lvls = boxes[ok], scores[ok], lvls[ok]
        if across:
            _, keep = nms(boxes, scores, 0.7)
        else:  # mmdet's per-level NMS: offset the levels apart
            _, keep = nms(boxes + 1000 * lvls[:, None], scores, 0.7)
        keep = keep[:50]
        torch.testing.assert_close(res[i].bboxes, boxes[keep])
        torch.testing.assert_close(res[i].scores, scores[keep])
        if across:
            iou = bbox_overlaps(res[i].bboxes, res[i].bboxes)
            assert (iou - torch.eye(len(iou))).max() <= 0.7 + 1e-6


def test_score_threshold():
    cfg = head_cfg()
    cfg['test_cfg']['score_thr'] = 0.6
    head = MODELS.build(cfg)
    cls, reg = _outputs(head)
    res = head.predict_by_feat([c.detach() for c in cls], reg,
                               batch_img_metas=[META, META], rescale=False)
    assert all(bool((r.scores >= 0.6).all()) for r in res)


def test_bad_configs():
    with pytest.raises(ValueError, match='softmax'):
        cfg = head_cfg(gray=True)
        cfg['loss_cls']['use_sigmoid'] = True
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='GrayClassSampler'):
        MODELS.build(head_cfg(gray=True))
    for thr in (0.0, 1.5, -0.2):
        cfg = head_cfg()
        cfg['test_cfg']['nms']['iou_threshold'] = thr
        with pytest.raises(ValueError, match=r'iou_threshold. must be a number in \(0, 1\]'):
            MODELS.build(cfg)
    from mmdet.registry import TASK_UTILS
    with pytest.raises(ValueError, match='gray_iou_range'):
        TASK_UTILS.build(dict(type='GrayBandMaxIoUAssigner', gray_iou_range=(0.3, 0.7)))
    with pytest.raises(ValueError, match='add_gt_as_proposals'):
        TASK_UTILS.build(dict(type='GrayClassSampler', add_gt_as_proposals=True))
