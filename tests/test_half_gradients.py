"""Half-type gradients summed over broadcast dims or K samples are summed in float32 and rounded
once: per-element terms that overflow half (inf - inf = NaN) or lose their bits must not spoil
a sum that half holds. Each case cancels terms beyond half's range (65504) to an exact
answer within it."""

from __future__ import annotations

import pytest
import torch

from conftest import DEVICE_BACKENDS
from fused_reparam import sample_chol, sample_diag

HALF_TYPES = [torch.float16, torch.bfloat16]
D = 8


def _diag_grads(dtype, device, backend, stats):
    # d/dlogvar of z's terms: 0.5 * w * sigma * eps = +-7.4e4 (sigma 148, or 2.7 with the
    # stats, whose KL must stay in half's range); they cancel.
    mu = torch.full((D,), 20.0, dtype=dtype, device=device, requires_grad=True)
    lv = 2.0 if stats else 10.0
    logvar = torch.full((D,), lv, dtype=dtype, device=device, requires_grad=True)
    eps = torch.full((2, D), 2.0, dtype=dtype, device=device)  # the same eps for both samples
    out = sample_diag(mu, logvar, num_samples=2, eps=eps, backend=backend, return_stats=stats)
    a = 27000.0 if stats else 500.0
    w = torch.tensor([[a], [-a]], dtype=dtype, device=device)
    loss = (out.z * w).sum() + 1000 * out.kl.sum() if stats else (out * w).sum()
    return torch.autograd.grad(loss, (mu, logvar))


def _chol_grads(dtype, device, backend, stats):
    mu = torch.full((D,), 20.0, dtype=dtype, device=device, requires_grad=True)
    scale_tril = torch.eye(D, dtype=dtype, device=device).requires_grad_()  # shared by 2 rows
    eps = torch.full((2, D), 2.0, dtype=dtype, device=device)
    out = sample_chol(mu, scale_tril, num_samples=2, eps=eps, backend=backend, return_stats=stats)
    # d/dL of z's rows: w eps^T = +-1.2e5, which cancel. (The KL's term of mu's gradient is
    # left out: it is added to each sample's grad_z in half, docs/implementation.md.)
    w = torch.tensor([[60000.0], [-60000.0]], dtype=dtype, device=device)
    loss = (out.z * w).sum() + out.log_q.sum() if stats else (out * w).sum()
    return torch.autograd.grad(loss, (mu, scale_tril))


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", HALF_TYPES)
@pytest.mark.parametrize(
    ("kind", "stats"), [("diag", False), ("diag", True), ("chol", False), ("chol", True)]
)
def test_summed_half_gradients_equal_float64_rounded_once(device, backend, dtype, kind, stats):
    grads_of = _diag_grads if kind == "diag" else _chol_grads
    got = grads_of(dtype, device, backend, stats)
    exact = grads_of(torch.float64, device, "reference", stats)
    for g, e in zip(got, exact, strict=True):
        assert torch.isfinite(g).all(), g
        torch.testing.assert_close(g.double(), e.to(dtype).double(), rtol=1e-2, atol=1e-2)
