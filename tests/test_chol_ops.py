"""Gradients (gradcheck, gradgradcheck) and the registered ops (torch.library.opcheck,
torch.compile) of the Cholesky op, on every backend that has it."""

from __future__ import annotations

import pytest
import torch

from _chol_cases import DEVICE_BACKENDS, FUSED
from conftest import DTYPES, chol_op_pair, randn
from fused_reparam import sample_chol


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_gradcheck_and_gradgradcheck_float64(device, backend, gen):
    mu = randn((3, 5), torch.float64, device, gen).requires_grad_()
    L = randn((2, 1, 5, 5), torch.float64, device, gen).requires_grad_()
    eps = randn((2, 3, 5), torch.float64, device, gen).requires_grad_()

    def seeded(m, lt):
        return sample_chol(m, lt, seed=9, backend=backend)

    def explicit(m, lt, e):
        return sample_chol(m, lt, eps=e, backend=backend)

    # Under the Triton interpreter a call costs about 50 ms: check random projections of the
    # Jacobians there (test_triton_chol.py's test_triton_matches_the_cpp_cpu_op compares every
    # gradient entry).
    fast = backend == "triton" and not device.startswith("cuda")
    assert torch.autograd.gradcheck(seeded, (mu, L), fast_mode=fast)
    assert torch.autograd.gradgradcheck(seeded, (mu, L), fast_mode=fast)
    assert torch.autograd.gradcheck(explicit, (mu, L, eps), fast_mode=fast)
    assert torch.autograd.gradgradcheck(explicit, (mu, L, eps), fast_mode=fast)


@pytest.mark.parametrize(("device", "backend"), FUSED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck(device, backend, dtype, gen):
    fwd, bwd = chol_op_pair(backend)
    gen_arg = () if backend == "triton" else (None,)  # the C++ forward takes a Generator
    mu = randn((3, 5), dtype, device, gen).requires_grad_()
    L = randn((5, 5), dtype, device, gen).requires_grad_()
    eps = randn((3, 5), dtype, device, gen).requires_grad_()
    so = torch.tensor([5, 9], dtype=torch.int64, device=device)
    torch.library.opcheck(fwd, (mu, L, None, so, *gen_arg))
    torch.library.opcheck(fwd, (mu, L, eps, None, *gen_arg))
    g = randn((3, 5), dtype, device, gen).requires_grad_()
    torch.library.opcheck(bwd, (g, L, None, so, False))
    torch.library.opcheck(bwd, (g, L, eps, so, True))


@pytest.mark.parametrize(("device", "backend"), FUSED)
def test_compile_fullgraph_equals_eager(device, backend, gen):
    torch._dynamo.reset()

    def loss_fn(mu, L):
        return (sample_chol(mu, L, seed=4, backend=backend) ** 2).sum()

    mu = randn((6, 5), torch.float32, device, gen).requires_grad_()
    L = randn((5, 5), torch.float32, device, gen).requires_grad_()
    loss_c = torch.compile(loss_fn, fullgraph=True)(mu, L)
    gc = torch.autograd.grad(loss_c, (mu, L))
    loss_e = loss_fn(mu, L)
    ge = torch.autograd.grad(loss_e, (mu, L))
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(gc, ge)
