"""The Cholesky op's CPU row kernels in every instruction-set build (default, AVX2, AVX-512):
forward and backward against float64, for D around the vector widths (partial last vectors),
with NaN in the upper triangle that must never be read."""

from __future__ import annotations

import pytest
import torch

from conftest import DTYPES, cpu_isas, randn
from fused_reparam import sample_chol

D_SIZES = [1, 2, 7, 8, 9, 16, 17, 31, 33, 64, 70]


def _poisoned_lower(shape, dtype, gen):
    L = randn(shape, dtype, "cpu", gen, scale=0.3).tril()
    return L + torch.triu(torch.full_like(L, float("nan")), diagonal=1)


@pytest.mark.parametrize("isa", cpu_isas())
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_cpu_build_matches_float64(isa, dtype, gen):
    torch.ops.fused_reparam._cpu_kernel_isa(isa)
    for d in D_SIZES:
        mu = randn((3, d), dtype, "cpu", gen).requires_grad_()
        L = _poisoned_lower((3, d, d), dtype, gen).requires_grad_()
        eps = randn((3, d), dtype, "cpu", gen).requires_grad_()
        z = sample_chol(mu, L, eps=eps, backend="cpu")
        g = randn((3, d), dtype, "cpu", gen)
        gm, gl, ge = torch.autograd.grad(z, (mu, L, eps), g)

        L64 = torch.nan_to_num(L.detach().double().tril(), nan=0.0)
        e64, g64 = eps.detach().double(), g.double()
        z64 = mu.detach().double() + (L64 @ e64[..., None])[..., 0]
        gl64 = torch.tril(g64[..., :, None] * e64[..., None, :])
        ge64 = (L64.transpose(-1, -2) @ g64[..., None])[..., 0]
        tol = {torch.float32: 1e-5, torch.float64: 1e-12}.get(dtype, 8 * torch.finfo(dtype).eps)
        scale = max(1.0, d**0.5)
        for got, want in ((z, z64), (gl, gl64), (ge, ge64)):
            torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol * scale)
        assert torch.equal(gm, g)
        assert bool((gl.triu(1) == 0).all()), f"D={d}: gradient above the diagonal"


@pytest.mark.parametrize("isa", cpu_isas())
def test_every_cpu_build_draws_the_same_noise(isa, gen):
    """The seeded stream does not depend on the build (L = I gives z - mu = eps)."""
    mu = randn((5, 19), torch.float32, "cpu", gen)
    eye = torch.eye(19)
    torch.ops.fused_reparam._cpu_kernel_isa("default")
    base = sample_chol(mu, eye, seed=11, offset=3, backend="cpu")
    torch.ops.fused_reparam._cpu_kernel_isa(isa)
    z = sample_chol(mu, eye, seed=11, offset=3, backend="cpu")
    torch.testing.assert_close(z, base, rtol=1e-6, atol=1e-6)
