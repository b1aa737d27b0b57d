"""Reference formulas of the concurrent softmax tests (Peng et al., CVPR 2020), shared
by the loss and the RoI-head plumbing tests."""
import torch


def naive_eq3(z, y, r_full):
    """Literal eq. 3, per box, in float64: -sum_i y_i log sigma*_i."""
    n, c1 = z.shape
    out = []
    for b in range(n):
        tot = 0.0
        for i in range(c1):
            if y[b, i]:
                den = torch.exp(z[b, i])
                for j in range(c1):
                    den = den + (1 - y[b, j]) * (1 - r_full[i, j]) * torch.exp(z[b, j])
                tot = tot - (z[b, i] - torch.log(den))
        out.append(tot)
    return torch.stack(out)


def pad_bg(r):
    c = r.shape[0]
    full = torch.zeros(c + 1, c + 1, dtype=torch.float64)
    full[:c, :c] = torch.as_tensor(r, dtype=torch.float64)
    return full
