"""Tests of BalancedFeaturePyramid (Libra R-CNN BFP, Eq. 3) against mmdet's BFP."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.necks import BFP
from mmdet.registry import MODELS

import balancedet  # noqa: F401
from balancedet.models.necks.balanced_feature_pyramid import BalancedFeaturePyramid


def _pyramid(channels=8, sizes=((33, 40), (17, 20), (9, 10), (5, 5), (3, 3)), batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, channels, h, w, generator=gen) for h, w in sizes]


def _randomise(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


@pytest.mark.parametrize('refine_type', [None, 'conv', 'non_local'])
@pytest.mark.parametrize('refine_level', [0, 2, 4])
def test_matches_mmdet_bfp_with_copied_weights(refine_type, refine_level):
    ref = BFP(in_channels=8, num_levels=5, refine_level=refine_level, refine_type=refine_type)
    ours = MODELS.build(dict(type='BalancedFeaturePyramid', in_channels=8, num_levels=5,
                             refine_level=refine_level, refine_type=refine_type))
    _randomise(ref, 1)  # non-zero everywhere (mmdet zero-inits non-local out conv)
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats = _pyramid()
    feats_ref = [f.clone().requires_grad_(True) for f in feats]
    feats_ours = [f.clone().requires_grad_(True) for f in feats]
    out_ref, out_ours = ref(feats_ref), ours(feats_ours)
    assert len(out_ours) == 5
    for a, b in zip(out_ours, out_ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # gradients agree too
    gen = torch.Generator().manual_seed(2)
    cot = [torch.randn(o.shape, generator=gen) for o in out_ref]
    sum((o * c).sum() for o, c in zip(out_ref, cot)).backward()
    sum((o * c).sum() for o, c in zip(out_ours, cot)).backward()
    for a, b in zip(feats_ours, feats_ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        if n == 'refine.phi.conv.bias':
            # mathematically zero gradient (softmax shift invariance): both are noise
            continue
        scale = q.grad.abs().max().item()
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5 * max(scale, 1), msg=n)


def test_eq3_by_hand_without_refine():
    """Independent formula: residual = rescale(mean of rescaled levels)."""
    feats = _pyramid(channels=3, sizes=((16, 16), (8, 8), (4, 4)))
    out = BalancedFeaturePyramid(3, 3, refine_level=1)(feats)
    gathered = [F.max_pool2d(feats[0], 2), feats[1], feats[2].repeat_interleave(
        2, 2).repeat_interleave(2, 3)]
    bsf = sum(gathered) / 3
    expected = [feats[0] + bsf.repeat_interleave(2, 2).repeat_interleave(2, 3),
                feats[1] + bsf, feats[2] + F.max_pool2d(bsf, 2)]
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b)


def test_nonlocal_options_and_init():
    m = BalancedFeaturePyramid(16, 4, refine_level=1, refine_type='non_local',
                               nonlocal_reduction=4, nonlocal_use_scale=True)
    assert m.refine.inter_channels == 4 and m.refine.use_scale
    m.init_weights()
    feats = _pyramid(channels=16, sizes=((16, 16), (8, 8), (4, 4), (2, 2)))
    outs = m(feats)
    assert [o.shape for o in outs] == [f.shape for f in feats]
    # default non-local = mmdet's settings
    d = BalancedFeaturePyramid(16, 4, refine_type='non_local')
    assert d.refine.inter_channels == 16 and not d.refine.use_scale


@pytest.mark.parametrize('kwargs,match', [
    (dict(refine_level=5), 'refine_level'), (dict(refine_level=-1), 'refine_level'),
    (dict(refine_type='attention'), 'refine_type'), (dict(num_levels=0), 'num_levels'),
    (dict(in_channels=0), 'in_channels'), (dict(nonlocal_reduction=0), 'nonlocal_reduction')])
def test_bad_arguments_raise_at_build(kwargs, match):
    cfg = dict(type='BalancedFeaturePyramid', in_channels=8, num_levels=5)
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MODELS.build(cfg)


def test_wrong_number_of_levels_fails():
    """Inputs are not re-checked on every forward; mmdet's BFP asserts the level count."""
    m = BalancedFeaturePyramid(8, 5)
    with pytest.raises(AssertionError):
        m(_pyramid()[:4])
