"""HourglassNeck (eq. 1) and the depth-split anchor set against references."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import MODELS

import balancedet  # noqa: F401


def _feats(shapes, chans, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, c, h, w, generator=g) for c, (h, w) in zip(chans, shapes))


def _eq1_reference(neck, feats):
    """eq. 1 written out with functional ops and the neck's weights."""
    lat = neck.lateral_convs
    M = len(feats) - 1
    G = [None] * len(feats)
    G[M] = F.relu(F.conv2d(feats[M], lat[M].weight, lat[M].bias))
    for m in range(M - 1, -1, -1):
        wf = F.conv2d(feats[m], lat[m].weight, lat[m].bias)
        dc, uc = neck.deconvs[m], neck.up_convs[m]
        H = F.conv_transpose2d(G[m + 1], dc.weight, dc.bias, stride=2, padding=1)
        h, w = feats[m].shape[-2:]
        H = H[..., :h, :w]  # deconv of a ceil-halved map is >= the down map
        G[m] = F.relu(wf + F.conv2d(H, uc.weight, None, padding=1))
    return G


@pytest.mark.parametrize('shapes', [[(16, 16), (8, 8), (4, 4)],
                                    [(13, 11), (7, 6), (4, 3)]])
def test_neck_matches_eq1(shapes):
    chans = [4, 6, 8]
    neck = MODELS.build(dict(type='HourglassNeck', in_channels=chans, out_channels=5))
    neck.init_weights()
    feats = _feats(shapes, chans)
    outs = neck(feats)
    ref = _eq1_reference(neck, feats)
    assert len(outs) == 3
    for o, r, (h, w) in zip(outs, ref, shapes):
        assert o.shape == (2, 5, h, w)
        torch.testing.assert_close(o, r)


def test_up_path_carries_deep_context():
    chans = [4, 6, 8]
    feats = [f.requires_grad_() for f in _feats([(16, 16), (8, 8), (4, 4)], chans)]
    hg = MODELS.build(dict(type='HourglassNeck', in_channels=chans, out_channels=5,
                           out_indices=(0, )))
    hg(feats)[0].sum().backward()
    assert feats[2].grad is not None and feats[2].grad.abs().sum() > 0
    down = MODELS.build(dict(type='HourglassNeck', in_channels=chans, out_channels=5,
                             up_path=False))
    assert len(down.deconvs) == 0
    feats2 = _feats([(16, 16), (8, 8), (4, 4)], chans)
    outs = down(feats2)
    for m in range(3):
        lat = down.lateral_convs[m]
        torch.testing.assert_close(outs[m], F.relu(F.conv2d(feats2[m], lat.weight, lat.bias)))


def test_extra_levels_are_deeper():
    neck = MODELS.build(dict(type='HourglassNeck', in_channels=[4, 6], out_channels=5,
                             num_extra_levels=2, out_indices=(1, 2, 3), up_path=False))
    outs = neck(_feats([(32, 32), (16, 16)], [4, 6]))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (4, 4)]


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=[], out_channels=4), 'in_channels'),
    (dict(in_channels=[4, 8], out_channels=0), 'out_channels'),
    (dict(in_channels=[4, 8], out_channels=4, out_indices=(2, )), 'out_indices'),
    (dict(in_channels=[4, 8], out_channels=4, num_extra_levels=-1), 'num_extra_levels'),
])
def test_neck_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='HourglassNeck', **kwargs))


def test_neck_wrong_number_of_inputs():
    neck = MODELS.build(dict(type='HourglassNeck', in_channels=[4, 6, 8], out_channels=5))
    with pytest.raises(ValueError, match='in_channels'):
        neck(_feats([(8, 8), (4, 4)], [4, 6]))


def test_paper_30_anchor_set_geometry():
    """The paper's depth split as mmdet's AnchorGenerator: sizes and ratios per level."""
    ratios = [0.15, 0.5, 1, 2, 6.7]
    sizes = [[16, 32], [64, 128], [256, 512]]
    gen = AnchorGenerator(strides=[8, 16, 32], base_sizes=[16, 64, 256], scales=[1, 2],
                          ratios=ratios)
    assert gen.num_base_priors == [10, 10, 10]
    for lvl, base in enumerate(gen.base_anchors):
        w = base[:, 2] - base[:, 0]
        h = base[:, 3] - base[:, 1]
        got = sorted(zip(torch.sqrt(w * h).round(decimals=3).tolist(), (h / w).tolist()))
        exp = sorted((float(s), float(r)) for r in ratios for s in sizes[lvl])
        for (gs, gr), (es, er) in zip(got, exp):
            assert gs == pytest.approx(es, rel=1e-4)
            assert gr == pytest.approx(er, rel=1e-4)
