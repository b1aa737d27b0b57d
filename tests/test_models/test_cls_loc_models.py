"""ResDropNet, SSD7Net, ResDropClassifier and CompatSSDHead."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import balancedet  # noqa: F401
from balancedet.models.backbones.res_drop_net import ResDropBottleneck


def test_resdropnet_architecture_matches_spec():
    net = MODELS.build(dict(type='ResDropNet', out_indices=(0, 1, 2)))
    conv, bn, relu, drop, pool = net.stem
    assert (conv.kernel_size, conv.stride, conv.out_channels) == ((7, 7), (2, 2), 64)
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(drop, nn.Dropout) and drop.p == 0.1
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2
    widths = [[(b.conv1.conv.out_channels, b.conv2.conv.out_channels, b.conv3.conv.out_channels)
               for b in stage] for stage in net.stages]
    assert widths == [[(64, 64, 128)], [(64, 64, 256)] * 3, [(128, 128, 512)] * 4]
    assert [b.conv2.conv.kernel_size for b in net.stages[2]] == [(3, 3)] * 4
    outs = net(torch.rand(2, 3, 128, 128))
    assert [tuple(o.shape) for o in outs] == [(2, 128, 32, 32), (2, 256, 32, 32),
                                              (2, 512, 16, 16)]
    assert net.out_channels == [128, 256, 512]


def test_resdropnet_widen_factor():
    net = MODELS.build(dict(type='ResDropNet', widen_factor=0.25))
    out, = net(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 128, 8, 8) and net.stem[0].out_channels == 16


def test_bottleneck_is_residual():
    """With the last BN's scale and shift at 0, F(x) = 0: He et al. Eq. (1)
    gives y = relu(x) (identity) and Eq. (2) y = relu(BN(W_s x))."""
    torch.manual_seed(0)
    for cin, cout, stride in [(32, 32, 1), (16, 32, 2)]:
        block = ResDropBottleneck(cin, 8, cout, stride=stride).eval()
        nn.init.zeros_(block.conv3.bn.weight)
        nn.init.zeros_(block.conv3.bn.bias)
        x = torch.randn(2, cin, 8, 8)
        if cin == cout and stride == 1:
            expected = F.relu(x)
        else:
            sc = block.shortcut
            expected = F.relu(sc.bn(F.conv2d(x, sc.conv.weight, stride=stride)))
        torch.testing.assert_close(block(x), expected)
        # and with F != 0 the output is not just the shortcut
        nn.init.ones_(block.conv3.bn.weight)
        assert not torch.allclose(block(x), expected)


def test_stem_dropout_drops_ten_percent():
    torch.manual_seed(0)
    net = MODELS.build(dict(type='ResDropNet', widen_factor=0.25))
    seen = {}
    net.stem[3].register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    net.train()
    net(torch.rand(4, 3, 64, 64))
    pos = seen['inp'] > 0
    dropped = (seen['out'][pos] == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.02
    kept = seen['out'][pos & (seen['out'] != 0)] / seen['inp'][pos & (seen['out'] != 0)]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.9))  # inverted dropout
    net.eval()
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(net(x)[0], net(x)[0])


@pytest.mark.parametrize('kwargs, field', [
    (dict(stem_dropout=1.0), 'stem_dropout'), (dict(stem_dropout=-0.1), 'stem_dropout'),
    (dict(out_indices=(3, )), 'out_indices'), (dict(widen_factor=0), 'widen_factor'),
    (dict(stages=((64, 128, 0, 1), )), 'stages')])
def test_resdropnet_bad_input(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MODELS.build(dict(type='ResDropNet', **kwargs))


def test_ssd7net_layers_and_strides():
    net = MODELS.build(dict(type='SSD7Net'))
    convs = [m.conv for m in net.layers]
    assert [c.out_channels for c in convs] == [32, 48, 64, 64, 48, 48, 32]
    assert convs[0].kernel_size == (5, 5) and all(c.kernel_size == (3, 3) for c in convs[1:])
    assert all(isinstance(m.activate, nn.ELU) and isinstance(m.bn, nn.BatchNorm2d)
               for m in net.layers)
    outs = net(torch.rand(1, 3, 128, 128))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 16, 16), (48, 8, 8), (48, 4, 4),
                                                  (32, 2, 2)]
    with pytest.raises(ValueError, match='channels'):
        MODELS.build(dict(type='SSD7Net', channels=(8, ) * 6))
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(dict(type='SSD7Net', out_indices=(7, )))


def _samples(labels_per_image):
    out = []
    for labels in labels_per_image:
        ds = DetDataSample(metainfo=dict(img_shape=(64, 64)))
        ds.gt_instances = InstanceData(labels=torch.tensor(labels, dtype=torch.long),
                                       bboxes=torch.zeros(len(labels), 4))
        out.append(ds)
    return out


def build_classifier(**kw):
    cfg = dict(type='ResDropClassifier', in_channels=128, num_classes=6,
               backbone=dict(type='ResDropNet', widen_factor=0.25))
    cfg.update(kw)
    return MODELS.build(cfg)


def test_classifier_head_and_loss():
    torch.manual_seed(0)
    model = build_classifier()
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    drops = [m for m in model.head if isinstance(m, nn.Dropout)]
    assert [(m.in_features, m.out_features) for m in linears] == [(128, 6), (6, 6), (6, 6)]
    assert [d.p for d in drops] == [0.25, 0.25]
    assert list(model.head).index(drops[-1]) < list(model.head).index(linears[-1])
    model.eval()
    x = torch.randn(3, 3, 64, 64)
    samples = _samples([[2, 2], [5], [1, 4, 4]])  # image classes 2, 5, 4 (majority)
    logits = model(x, mode='tensor')
    loss = model(x, samples, mode='loss')['loss_cls']
    torch.testing.assert_close(loss, -logits.log_softmax(1)[[0, 1, 2], [2, 5, 4]].mean())
    preds = model(x, _samples([[0]] * 3), mode='predict')
    scores = torch.stack([p.pred_score for p in preds])
    torch.testing.assert_close(scores.sum(1), torch.ones(3))
    assert scores.argmax(1).tolist() == logits.argmax(1).tolist()
    loss.backward()
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_classifier_bad_input():
    with pytest.raises(ValueError, match='num_classes'):
        build_classifier(num_classes=1)
    with pytest.raises(ValueError, match='dropout'):
        build_classifier(dropout=1.0)
    model = build_classifier()
    with pytest.raises(ValueError, match='no gt box'):
        model(torch.randn(1, 3, 64, 64), _samples([[]]), mode='loss')
    with pytest.raises(ValueError, match='mode'):
        model(torch.randn(1, 3, 64, 64), None, mode='bogus')


def test_compat_ssd_head_predicts_like_softmax():
    head = MODELS.build(dict(
        type='CompatSSDHead', num_classes=3, in_channels=(8, ),
        anchor_generator=dict(type='SSDAnchorGenerator', scale_major=False, input_size=32,
                              strides=[8], min_sizes=[8], max_sizes=[16], ratios=[[2]]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4,
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        test_cfg=ConfigDict(nms_pre=1000, nms=dict(type='nms', iou_threshold=0.45),
                            min_bbox_size=-1, score_thr=0.0, max_per_img=1000)))
    feats = (torch.randn(1, 8, 4, 4), )
    cls_scores, bbox_preds = head(feats)
    res = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=[dict(
        img_shape=(32, 32), scale_factor=(1., 1.))], rescale=False, with_nms=False)[0]
    probs = cls_scores[0][0].permute(1, 2, 0).reshape(-1, 4).softmax(-1)[:, :3]
    assert torch.allclose(res.scores.sort().values, probs.flatten().sort().values)
