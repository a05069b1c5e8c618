"""Gradients of the diagonal op: gradcheck / gradgradcheck in float64 on every backend, the
regenerated eps, and what autograd keeps for backward."""

from __future__ import annotations

import pytest
import torch

from conftest import DEVICE_BACKENDS, DTYPES, FUSED_DEVICE_BACKENDS, randn
from fused_reparam import sample_diag

GRAD_SHAPES = [((3, 7), (3, 7)), ((2, 5), (5,)), ((5,), (4, 5)), ((1, 3, 1), (2, 1, 3))]


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize(("mu_shape", "lv_shape"), GRAD_SHAPES)
def test_gradcheck_fixed_seed(device, backend, mu_shape, lv_shape, gen):
    mu = randn(mu_shape, torch.float64, device, gen).requires_grad_()
    logvar = randn(lv_shape, torch.float64, device, gen, scale=0.5).requires_grad_()

    def f(m, lv):
        return sample_diag(m, lv, seed=1234, offset=5, backend=backend)

    assert torch.autograd.gradcheck(f, (mu, logvar))
    assert torch.autograd.gradgradcheck(f, (mu, logvar))


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize(("mu_shape", "lv_shape"), GRAD_SHAPES)
def test_gradcheck_explicit_eps(device, backend, mu_shape, lv_shape, gen):
    mu = randn(mu_shape, torch.float64, device, gen).requires_grad_()
    logvar = randn(lv_shape, torch.float64, device, gen, scale=0.5).requires_grad_()
    shape = torch.broadcast_shapes(mu_shape, lv_shape)
    eps = randn(shape, torch.float64, device, gen).requires_grad_()

    def f(m, lv, e):
        return sample_diag(m, lv, eps=e, backend=backend)

    assert torch.autograd.gradcheck(f, (mu, logvar, eps))
    assert torch.autograd.gradgradcheck(f, (mu, logvar, eps))


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_third_order_gradient_matches_reference(device, backend, gen):
    """Double backward is itself differentiable: d3/dlogvar3 of sum(z) by both backends."""
    results = []
    for b in (backend, "reference"):
        lv = randn((9,), torch.float64, device, gen.manual_seed(0), scale=0.5).requires_grad_()
        mu = torch.zeros(9, dtype=torch.float64, device=device, requires_grad=True)
        z = sample_diag(mu, lv, seed=77, backend=b)
        (g1,) = torch.autograd.grad(z.sum(), lv, create_graph=True)
        (g2,) = torch.autograd.grad(g1.sum(), lv, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sum(), lv)
        results.append(g3)
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_regenerates_the_forward_eps(device, backend, dtype, gen):
    """dlogvar uses exactly the forward's eps: compare with the explicit-eps gradient, where eps
    is read back from the same stream (mu = 0, logvar = 0 gives z = eps)."""
    mu = randn((5, 37), dtype, device, gen).requires_grad_()
    logvar = randn((37,), dtype, device, gen, scale=0.5).requires_grad_()
    grad = randn((5, 37), dtype, device, gen)
    sample_diag(mu, logvar, seed=42, offset=3, backend=backend).backward(grad)
    zeros = torch.zeros(5, 37, dtype=dtype, device=device)
    eps = sample_diag(zeros, zeros, seed=42, offset=3, backend=backend)
    mu2, lv2 = mu.detach().clone().requires_grad_(), logvar.detach().clone().requires_grad_()
    sample_diag(mu2, lv2, eps=eps, backend=backend).backward(grad)
    torch.testing.assert_close(mu.grad, mu2.grad, rtol=0, atol=0)
    if dtype in (torch.float32, torch.float64):
        torch.testing.assert_close(logvar.grad, lv2.grad)
    else:  # eps itself was rounded to the half type on the second path
        torch.testing.assert_close(logvar.grad.float(), lv2.grad.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_gradients_match_reference_formulas(device, backend, gen):
    mu = randn((4, 33), torch.float32, device, gen).requires_grad_()
    logvar = randn((4, 33), torch.float32, device, gen, scale=0.5).requires_grad_()
    eps = randn((4, 33), torch.float32, device, gen).requires_grad_()
    grad = randn((4, 33), torch.float32, device, gen)
    sample_diag(mu, logvar, eps=eps, backend=backend).backward(grad)
    sigma = torch.exp(0.5 * logvar.detach())
    torch.testing.assert_close(mu.grad, grad)
    torch.testing.assert_close(logvar.grad, 0.5 * grad * sigma * eps.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(eps.grad, grad * sigma, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", sorted({d for d, b in DEVICE_BACKENDS if b != "reference"}))
def test_nothing_but_the_inputs_is_saved_for_backward(device, gen):
    """Autograd keeps logvar (an input) and the 16-byte [seed, offset]: no eps, no sigma, no z."""
    backend = next(b for d, b in DEVICE_BACKENDS if d == device and b != "reference")
    mu = randn((64, 257), torch.float32, device, gen).requires_grad_()
    logvar = randn((64, 257), torch.float32, device, gen).requires_grad_()
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        z = sample_diag(mu, logvar, backend=backend)
    new_bytes = sum(
        t.numel() * t.element_size()
        for t in saved
        if t.data_ptr() not in (mu.data_ptr(), logvar.data_ptr())
    )
    assert new_bytes <= 16, f"{new_bytes} bytes saved beyond the inputs"
    z.sum().backward()


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_grad_mu_is_grad_z_itself_without_broadcast(device, backend, gen):
    """dmu costs no kernel: without broadcasting, the op hands grad_z straight back."""
    mu = randn((64, 33), torch.float32, device, gen).requires_grad_()
    logvar = randn((64, 33), torch.float32, device, gen)
    grad = randn((64, 33), torch.float32, device, gen)
    (g_mu,) = torch.autograd.grad(sample_diag(mu, logvar, backend=backend), mu, grad)
    assert g_mu.data_ptr() == grad.data_ptr()
