"""Broadcasts that interleave over many batch dims, so that no two adjacent dims merge: more
than the row kernels' 16 strided dims. The fused ops read dense copies then, and must equal
the reference, forward and backward, for every op with rows (Cholesky and the stats)."""

from __future__ import annotations

import pytest
import torch

from conftest import DEVICE_BACKENDS, randn
from fused_reparam import sample_chol, sample_diag

DIMS = 17
FUSED = [(d, b) for d, b in DEVICE_BACKENDS if b != "reference"]


def _alternating(a: int, b: int) -> list[int]:
    return [a if i % 2 else b for i in range(DIMS)]


def _inputs(device: str, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    mu = randn((*_alternating(2, 1), 3), torch.float64, device, gen)
    logvar = randn((*_alternating(1, 2), 3), torch.float64, device, gen, scale=0.3)
    lower = randn((*_alternating(1, 2), 3, 3), torch.float64, device, gen, scale=0.2).tril()
    lower = lower + torch.eye(3, dtype=torch.float64, device=device)
    return tuple(t.requires_grad_() for t in (mu, logvar, lower))


def _run(kind: str, backend: str, mu, logvar, lower):
    if kind == "diag_stats":
        s = sample_diag(mu, logvar, seed=3, backend=backend, return_stats=True)
    else:
        s = sample_chol(mu, lower, seed=3, backend=backend, return_stats=kind == "chol_stats")
        if kind == "chol":
            return s
    return s.z + s.kl[..., None] + s.log_q[..., None]


@pytest.mark.parametrize(("device", "backend"), FUSED)
@pytest.mark.parametrize("kind", ["diag_stats", "chol", "chol_stats"])
def test_more_batch_dims_than_the_kernels_stride_equal_the_reference(device, backend, kind, gen):
    inputs = _inputs(device, gen)
    out = _run(kind, backend, *inputs)
    ref = _run(kind, "reference", *inputs)
    assert out.shape == (*[2] * DIMS, 3)
    torch.testing.assert_close(out, ref)
    weights = torch.randn_like(ref)
    used = inputs[:2] if kind == "diag_stats" else (inputs[0], inputs[2])
    for g, r in zip(torch.autograd.grad((out * weights).sum(), used),
                    torch.autograd.grad((ref * weights).sum(), used), strict=True):  # fmt: skip
        torch.testing.assert_close(g, r)
