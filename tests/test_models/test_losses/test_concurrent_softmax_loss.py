"""Concurrent softmax loss: eq. 3 value, eq. 4 gradient, eq. 5 scores, errors."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from concurrent_softmax_ref import naive_eq3, pad_bg
from mmdet.registry import MODELS

from balancedet.models.losses.concurrent_softmax_loss import (
    ConcurrentSoftmaxLoss,
    load_concurrent_rate,
)


def eq4_grad(z, y, r_full):
    """Paper eq. 4 written out: sigma*_i - 1 on labels, sum_k (1-r_kj) ... off labels."""
    n, c1 = z.shape
    g = torch.zeros_like(z)
    e = torch.exp(z)
    for b in range(n):
        K = [i for i in range(c1) if y[b, i]]
        den = {k: e[b, k] + sum((1 - y[b, j]) * (1 - r_full[k, j]) * e[b, j]
                                for j in range(c1)) for k in K}
        for i in range(c1):
            if i in K:
                g[b, i] = e[b, i] / den[i] - 1
            else:
                g[b, i] = sum((1 - r_full[k, i]) * e[b, i] / den[k] for k in K)
    return g


def random_case(seed, n=7, c=5):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(c, c, generator=g) * (torch.rand(c, c, generator=g) < 0.5)
    r.fill_diagonal_(0)
    z = torch.randn(n, c + 1, generator=g) * 3
    y = torch.zeros(n, c + 1, dtype=torch.bool)
    for b in range(n):
        k = int(torch.randint(1, 4, (1,), generator=g))
        if b == 0:  # a background box
            y[b, c] = True
        else:
            y[b, torch.randperm(c, generator=g)[:k]] = True
    return z, y, r


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_value_and_gradient_match_eq3_eq4_and_autograd(seed):
    z, y, r = random_case(seed)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=5, r_file=r.numpy(), reduction='none')
    z32 = z.clone().requires_grad_(True)
    ours = loss_mod(z32, y)
    ours.sum().backward()

    z64 = z.double().requires_grad_(True)
    ref = naive_eq3(z64, y.double(), pad_bg(r.double().numpy()))
    ref.sum().backward()
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-5, atol=1e-5)
    # closed-form backward == autograd of the literal formula
    torch.testing.assert_close(z32.grad.double(), z64.grad, rtol=1e-5, atol=1e-6)
    # == the paper's eq. 4
    g4 = eq4_grad(z.double(), y.double(), pad_bg(r.double().numpy()))
    torch.testing.assert_close(z32.grad.double(), g4, rtol=1e-5, atol=1e-6)


def test_gradcheck_custom_function():
    z, y, r = random_case(3, n=4, c=4)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=4, r_file=r.numpy(), reduction='none')
    w = torch.rand(4, dtype=torch.float64)
    # the function runs in float32: compare to finite differences loosely
    z = z.double().requires_grad_(True)
    out = (loss_mod(z, y) * w).sum()
    (g,) = torch.autograd.grad(out, z)
    eps = 1e-3
    num = torch.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zn = z.detach().clone(), z.detach().clone()
        zp[idx] += eps
        zn[idx] -= eps
        num[idx] = ((loss_mod(zp, y) * w).sum() - (loss_mod(zn, y) * w).sum()) / (2 * eps)
    torch.testing.assert_close(g, num, rtol=2e-2, atol=2e-3)


def test_single_label_r0_equals_cross_entropy():
    torch.manual_seed(0)
    z = torch.randn(50, 11) * 4
    labels = torch.randint(0, 11, (50,))
    w = torch.rand(50)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=10)
    za = z.clone().requires_grad_(True)
    zb = z.clone().requires_grad_(True)
    ours = loss_mod(za, labels, w, avg_factor=37.0)
    ref = (F.cross_entropy(zb, labels, reduction='none') * w).sum() / 37.0
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(za.grad, zb.grad)
    # mmdet's own CE loss too
    ce = MODELS.build({'type': 'CrossEntropyLoss', 'use_sigmoid': False, 'loss_weight': 1.0})
    torch.testing.assert_close(loss_mod(z, labels, w, avg_factor=37.0),
                               ce(z, labels, w, avg_factor=37.0))
    # multi-hot one-hot input gives the same value as indices
    torch.testing.assert_close(loss_mod(z, F.one_hot(labels, 11)), loss_mod(z, labels))


def test_large_logits_and_half_precision_are_finite_and_accurate():
    z, y, r = random_case(4)
    big = z * 1e3  # differences of thousands: plain exp over/underflows
    loss_mod = ConcurrentSoftmaxLoss(num_classes=5, r_file=r.numpy(), reduction='none')
    zz = big.clone().requires_grad_(True)
    out = loss_mod(zz, y)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(zz.grad).all()
    ref64 = naive_logdomain(big.double(), y, pad_bg(r.double().numpy()))
    torch.testing.assert_close(out.double(), ref64, rtol=1e-5, atol=1e-2)
    # a label far below a co-label: the per-pair max keeps it exact
    z2 = torch.tensor([[200.0, 0.0, -3.0]])
    y2 = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    m2 = ConcurrentSoftmaxLoss(num_classes=2, reduction='none')
    expect = -(np.log(np.exp(200) / np.exp(200)) + (0 - np.log(1 + np.exp(-3.0))))
    torch.testing.assert_close(m2(z2, y2).double(), torch.tensor([expect], dtype=torch.float64))

    half = (z * 20).half().requires_grad_(True)
    out_h = loss_mod(half, y)
    out_h.sum().backward()
    assert half.grad.dtype == torch.float16 and torch.isfinite(half.grad).all()
    ref_h = naive_eq3(half.detach().double(), y.double(), pad_bg(r.double().numpy()))
    torch.testing.assert_close(out_h.double(), ref_h, rtol=1e-4, atol=1e-3)


def naive_logdomain(z, y, r_full):
    out = []
    for b in range(z.shape[0]):
        tot = 0.0
        for i in range(z.shape[1]):
            if y[b, i]:
                w = (1 - y[b].double()) * (1 - r_full[i])
                w[i] = 1
                tot = tot - (z[b, i] - torch.logsumexp(z[b] + torch.log(w), 0))
        out.append(tot)
    return torch.stack(out)


def test_inference_eq5_matches_formula_and_softmax_when_r0():
    z, _, r = random_case(5)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=5, r_file=r.numpy())
    rf = pad_bg(r.double().numpy())
    zd = z.double()
    expect = torch.stack([torch.stack([torch.exp(zd[b, i]) / sum(
        (1 - rf[i, j]) * torch.exp(zd[b, j]) for j in range(6)) for i in range(6)])
        for b in range(z.shape[0])])
    torch.testing.assert_close(loss_mod.get_activation(z).double(), expect,
                               rtol=1e-5, atol=1e-7)
    r0 = ConcurrentSoftmaxLoss(num_classes=5)
    torch.testing.assert_close(r0.get_activation(z), torch.softmax(z, -1))
    sm = ConcurrentSoftmaxLoss(num_classes=5, r_file=r.numpy(), test_mode='softmax')
    torch.testing.assert_close(sm.get_activation(z), torch.softmax(z, -1))
    # underflow path: child far below a non-suppressing parent
    par = ConcurrentSoftmaxLoss(num_classes=2, parents={1: 0})
    s = par.get_activation(torch.tensor([[200.0, 0.0, -5.0]]))
    torch.testing.assert_close(s[0, 1], torch.tensor(1 / (1 + np.exp(-5.0)), dtype=s.dtype))
    assert torch.isfinite(s).all()


def test_hierarchy_modes():
    parents = {1: 0, 2: 1}  # 2 -> 1 -> 0
    r = np.zeros((4, 4))
    r[2, 3] = 0.25
    conc = load_concurrent_rate(r, 4, parents=parents, hierarchy='concurrent')
    for a, b in [(1, 0), (2, 1), (2, 0)]:
        assert conc[a, b] == 1 and conc[b, a] == 1
    assert conc[2, 3] == 0.25 and conc[3, 0] == 0
    r2 = r.copy()
    r2[1, 0] = 0.6
    zero = load_concurrent_rate(r2, 4, parents=parents, hierarchy='zero')
    assert zero[1, 0] == 0 and zero[2, 0] == 0
    est = load_concurrent_rate(r2, 4, parents=parents, hierarchy='estimated')
    assert est[1, 0] == pytest.approx(0.6)
    # with concurrent hierarchy a confident child does not suppress its parent
    m = ConcurrentSoftmaxLoss(num_classes=4, parents=parents)
    s = m.get_activation(torch.tensor([[5.0, 0.0, 8.0, 0.0, 0.0]]))
    assert s[0, 0] > 0.9 and s[0, 2] > 0.9
    with pytest.raises(ValueError, match='parents: child index 7'):
        load_concurrent_rate(r, 4, parents={7: 0})
    with pytest.raises(ValueError, match='cycle'):
        load_concurrent_rate(r, 4, parents={0: 1, 1: 0})


def test_json_file_class_mapping_and_errors(tmp_path):
    data = {'classes': ['b', 'a'], 'r': [[0, 0.3], [0.1, 0]], 'parents': {}}
    p = tmp_path / 'r.json'
    p.write_text(json.dumps(data))
    m = ConcurrentSoftmaxLoss(num_classes=2, r_file=str(p), classes=['a', 'b'])
    # reordered by name: r[a, b] = file r[b_idx=1? ...] -> file row 'a' col 'b' = 0.1
    assert m.r[0, 1] == pytest.approx(0.1) and m.r[1, 0] == pytest.approx(0.3)
    with pytest.raises(ValueError, match='not in the model'):
        ConcurrentSoftmaxLoss(num_classes=2, r_file=str(p), classes=['a', 'zebra'])
    with pytest.raises(ValueError, match=r'shape \(2, 2\).*num_classes=3'):
        ConcurrentSoftmaxLoss(num_classes=3, r_file=str(p))
    np.save(tmp_path / 'bad.npy', np.full((2, 2), 1.5))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        ConcurrentSoftmaxLoss(num_classes=2, r_file=str(tmp_path / 'bad.npy'))
    with pytest.raises(ValueError, match='square'):
        ConcurrentSoftmaxLoss(num_classes=2, r_file=np.zeros((2, 3)))
    with pytest.raises(FileNotFoundError, match='concurrent_rate.py'):
        ConcurrentSoftmaxLoss(num_classes=2, r_file=str(tmp_path / 'missing.json'))
    with pytest.raises(ValueError, match='hierarchy'):
        ConcurrentSoftmaxLoss(num_classes=2, hierarchy='paper')
    with pytest.raises(ValueError, match='test_mode'):
        ConcurrentSoftmaxLoss(num_classes=2, test_mode='sigmoid')
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build({'type': 'ConcurrentSoftmaxLoss', 'num_classes': 2}).get_cls_channels(3)
    m = ConcurrentSoftmaxLoss(num_classes=2)
    with pytest.raises(ValueError, match='multi-hot'):
        m(torch.zeros(3, 3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match='at least one label'):
        m(torch.zeros(2, 3), torch.zeros(2, 3))


def test_softmax_train_mode_is_cross_entropy():
    z = torch.randn(9, 4)
    lab = torch.randint(0, 4, (9,))
    m = ConcurrentSoftmaxLoss(num_classes=3, r_file=np.full((3, 3), 0.5), train_mode='softmax')
    torch.testing.assert_close(m(z, lab), F.cross_entropy(z, lab))
    assert not m.use_multi_hot


def test_cancellation_regimes_stay_exact():
    """D = T - sum r p loses precision when the subtracted mass dominates:
    a confident parent (r = 1 under hierarchy='concurrent') over a weak leaf,
    and a multi-label box whose confident label holds almost all the mass
    while another label is weak.  Both must match float64 eq. 3 / autograd."""
    c = 6
    parents = {1: 0, 2: 0}  # classes 1 and 2 are children of class 0
    r = np.zeros((c, c))
    r[3, 4] = 0.3
    loss_mod = ConcurrentSoftmaxLoss(num_classes=c, r_file=r, parents=parents,
                                     reduction='none')
    z = torch.zeros(5, c + 1)
    y = torch.zeros(5, c + 1, dtype=torch.bool)
    z[0, 0], z[0, 1] = 12.0, -5.0  # leaf 1 labelled alone, its parent confident
    y[0, 1] = True
    z[1, 3], z[1, 4] = -6.0, 11.0  # labels {3, 5}: 5 confident, 3 weak and r_34 > 0
    z[1, 5] = 14.0
    y[1, [3, 5]] = True
    z[2] = torch.linspace(-2, 2, c + 1)  # an ordinary single-label box
    y[2, 4] = True
    z[3, 2], z[3, 0] = -4.0, 9.0  # labels {2, 0}: leaf weak, parent confident
    y[3, [0, 2]] = True
    y[4, c] = True  # background
    z[4, c] = 3.0
    z32 = z.clone().requires_grad_(True)
    ours = loss_mod(z32, y)
    ours.sum().backward()
    r_full = pad_bg(loss_mod.r.double().numpy())
    z64 = z.double().requires_grad_(True)
    ref = naive_eq3(z64, y.double(), r_full)
    ref.sum().backward()
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z32.grad.double(), z64.grad, rtol=1e-5, atol=1e-7)


def test_second_backward_through_same_graph_is_refused():
    """The backward builds the gradient in the saved softmax's storage; a
    second pass (retain_graph=True) must fail loudly, not reuse it."""
    z, y, r = random_case(6)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=5, r_file=r.numpy())
    zz = z.clone().requires_grad_(True)
    loss = loss_mod(zz, y)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='inplace'):
        loss.backward()


@pytest.mark.parametrize('shape', [(4096, 502), (7, 6), (3, 5), (1, 3), (0, 6)])
def test_flat_nonzero_of_multi_hot_matches_torch(shape):
    from balancedet.models.losses.concurrent_softmax_loss import _flat_nonzero
    g = torch.Generator().manual_seed(shape[0])
    mask = torch.rand(shape, generator=g) < 0.01
    if mask.numel():
        mask.view(-1)[-1] = True  # the tail past the last full 8-byte word
    ref = mask.reshape(-1).nonzero().view(-1)
    assert torch.equal(_flat_nonzero(mask), ref)
    # a view that does not start on an 8-byte boundary, and a transposed one
    big = torch.zeros(shape[0] * shape[1] + 3, dtype=torch.bool)
    big[3:] = mask.reshape(-1)
    assert torch.equal(_flat_nonzero(big[3:]), ref)
    assert torch.equal(_flat_nonzero(mask.t()), mask.t().reshape(-1).nonzero().view(-1))


@pytest.mark.parametrize('as_multi_hot', [False, True])
def test_single_label_boxes_with_r_match_eq3_and_autograd(as_multi_hot):
    """One label per box (the path without (1 - y_j) masking), r non-zero on
    some pairs and rows of different length, background boxes included."""
    g = torch.Generator().manual_seed(11)
    c = 6
    r = torch.rand(c, c, generator=g) * (torch.rand(c, c, generator=g) < 0.4)
    r.fill_diagonal_(0)
    r[2] = 0  # a class with an empty row
    z = torch.randn(40, c + 1, generator=g) * 3
    labels = torch.randint(0, c + 1, (40, ), generator=g)
    w = torch.rand(40, generator=g)
    loss_mod = ConcurrentSoftmaxLoss(num_classes=c, r_file=r.numpy(), reduction='none')
    y = F.one_hot(labels, c + 1).bool()
    z32 = z.clone().requires_grad_(True)
    ours = loss_mod(z32, y if as_multi_hot else labels)
    (ours * w).sum().backward()
    z64 = z.double().requires_grad_(True)
    ref = naive_eq3(z64, y.double(), pad_bg(r.double().numpy()))
    (ref * w.double()).sum().backward()
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z32.grad.double(), z64.grad, rtol=1e-5, atol=1e-6)


def test_cancellation_with_one_label_per_box_stays_exact():
    """The one-label path fixes a cancelling denominator by summing it
    directly and keeps the closed-form backward: both must stay exact."""
    c = 6
    loss_mod = ConcurrentSoftmaxLoss(num_classes=c, r_file=np.zeros((c, c)),
                                     parents={1: 0, 2: 0, 4: 3}, reduction='none')
    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, c + 1, generator=g)
    labels = torch.tensor([1, 2, 4, 1, 6, 5])
    z[0, 0] = z[1, 0] = 12.0  # leaves under a confident parent
    z[2, 3] = 10.0
    z[3, 0] = 3.0  # a milder case: parent ~0.9
    z32 = z.clone().requires_grad_(True)
    ours = loss_mod(z32, labels)
    ours.sum().backward()
    y = F.one_hot(labels, c + 1).double()
    z64 = z.double().requires_grad_(True)
    ref = naive_eq3(z64, y, pad_bg(loss_mod.r.double().numpy()))
    ref.sum().backward()
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z32.grad.double(), z64.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('content, match', [
    ('', r'r\.json.* not valid JSON'),
    ('[1, 2]', r'r\.json.* has no "r" entry'),
    ('{"r": []}', r'r\.json.* non-empty square'),
    ('{"r": [[0, 0.1, 0.2], [0.3, 0, 0.1]]}', r'r\.json.* non-empty square.*\(2, 3\)'),
    ('{"r": [[0, 0.1], [0.3, 0]], "classes": ["a"]}', r'r\.json.*"classes" has 1 names'),
    ('{"r": [["x", 0], [0, 0]]}', r'r\.json.*not a numeric'),
])
def test_bad_r_file_names_the_file(tmp_path, content, match):
    p = tmp_path / 'r.json'
    p.write_text(content)
    with pytest.raises(ValueError, match=match):
        ConcurrentSoftmaxLoss(num_classes=2, r_file=str(p))


def test_bind_classes_maps_the_file_onto_the_dataset_order(tmp_path):
    """bind_classes permutes r and the file's hierarchy by name onto the
    dataset's labels (here a permutation of the file's)."""
    rng = np.random.default_rng(0)
    names = ['a', 'b', 'c', 'd', 'e']
    r = rng.uniform(size=(5, 5)) * (rng.uniform(size=(5, 5)) < 0.6)
    np.fill_diagonal(r, 0)
    p = tmp_path / 'r.json'
    p.write_text(json.dumps({'classes': names, 'r': r.tolist(), 'parents': {'3': 0}}))
    loss = ConcurrentSoftmaxLoss(num_classes=5, r_file=str(p), reduction='none')
    file_order = loss.r.clone()
    assert file_order[3, 0] == 1 and file_order[0, 3] == 1  # d -> a, file labels
    dataset = ['d', 'e', 'a', 'c', 'b']
    loss.bind_classes(dataset)
    perm = [3, 4, 0, 2, 1]  # dataset label -> file label, by hand
    torch.testing.assert_close(loss.r, file_order[perm][:, perm])
    expect = torch.as_tensor(r, dtype=torch.float32)[perm][:, perm]
    expect[0, 2] = expect[2, 0] = 1  # d -> a at the dataset's labels
    torch.testing.assert_close(loss.r, expect)
    # eq. 3 and eq. 5 use the bound r: as if the dataset's classes had been given
    ref = ConcurrentSoftmaxLoss(num_classes=5, r_file=str(p), classes=dataset,
                                reduction='none')
    z, y, _ = random_case(7)
    torch.testing.assert_close(loss(z, y), ref(z, y))
    torch.testing.assert_close(loss.get_activation(z), ref.get_activation(z))
    loss.bind_classes(dataset)  # again: nothing changes
    torch.testing.assert_close(loss.r, expect)
    with pytest.raises(ValueError, match=r"\('d', 'e', 'a', 'c', 'b'\) differ from the dataset "
                                         r"classes \('a', 'b'.*drop loss_cls.classes"):
        ref.bind_classes(names)
    with pytest.raises(ValueError, match=r"not in the model's classes: \['e'\]"):
        ConcurrentSoftmaxLoss(num_classes=5, r_file=str(p)).bind_classes(list('dxacb'))
    with pytest.raises(ValueError, match='classes has 4 names but num_classes=5'):
        ConcurrentSoftmaxLoss(num_classes=5, r_file=str(p)).bind_classes(names[:4])
    # no class names to map (array, .npy, None): r keeps its labels
    arr = ConcurrentSoftmaxLoss(num_classes=5, r_file=r)
    arr.bind_classes(dataset)
    torch.testing.assert_close(arr.r, torch.as_tensor(r, dtype=torch.float32))
