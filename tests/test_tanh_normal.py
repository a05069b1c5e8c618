"""The tanh-squashed Gaussian (sample_tanh_normal) on every backend: the action and its
log-density equal a float64 formula written independently (including |u| > 20, where
tanh(u) rounds to +-1), the eager SAC code's (within its epsilon's bias) and the reference
backend's with every gradient; gradcheck; shapes with K samples; clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import FUSED_DEVICE_BACKENDS, randn, skip_if_interpreted_and_slow
from fused_reparam import _families, sample_tanh_normal
from fused_reparam.reference import scale as ref_scale

LOG_2PI = math.log(2 * math.pi)
TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def _float64_formula(mu, s, eps, scale: str, low: float, high: float):
    """(action, log_prob) in float64 from the definitions: u = mu + sigma eps, the Gaussian
    log-density of u, log(1 - tanh(u)^2) as log(4) - 2|u| - 2 log1p(exp(-2|u|)) (the identity
    1 - tanh^2 = 4 e^{-2|u|} / (1 + e^{-2|u|})^2), and the affine map's log((high - low) / 2)."""
    mu, s, eps = (t.double().cpu() for t in (mu, s, eps))
    mu, s = torch.broadcast_tensors(mu, s)
    kind = ref_scale.SCALES.index(scale)
    sigma = ref_scale.sigma(s, kind)
    u = mu + sigma * eps
    gauss = -0.5 * eps**2 - torch.log(sigma) - 0.5 * LOG_2PI
    a = u.abs()
    log_dtanh = math.log(4.0) - 2 * a - 2 * torch.log1p(torch.exp(-2 * a))
    half = (high - low) / 2
    log_prob = (gauss - log_dtanh - math.log(half)).sum(-1)
    return low + half * (torch.tanh(u) + 1), log_prob


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (-2.0, 3.0)])
@pytest.mark.parametrize("scale", ["log_std", "softplus"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_matches_the_float64_formula_also_where_tanh_saturates(
    device, backend, dtype, scale, low, high, gen
):
    mu = randn((4, 7), dtype, device, gen, scale=2.0)
    mu[0] = torch.tensor([25.0, -30.0, 21.0, -21.0, 40.0, 9.5, -12.0], dtype=dtype)
    s = randn((7,), dtype, device, gen, scale=0.3)
    eps = randn((4, 7), dtype, device, gen)
    action, log_prob = sample_tanh_normal(mu, s, eps=eps, scale=scale, low=low, high=high,
                                          backend=backend)  # fmt: skip
    want_a, want_lp = _float64_formula(mu, s, eps, scale, low, high)
    assert action.dtype == dtype and action.shape == (4, 7) and log_prob.shape == (4,)
    assert torch.isfinite(log_prob).all()
    tol = TOL[dtype]
    torch.testing.assert_close(action.double().cpu(), want_a, rtol=tol, atol=tol * (high - low))
    torch.testing.assert_close(log_prob.double().cpu(), want_lp, rtol=tol, atol=tol * 100)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_matches_the_eager_sac_code(device, backend, gen):
    """SAC's usual lines: Normal(mu, std).rsample(), tanh, and log_prob minus
    log(1 - tanh(u)^2 + 1e-6); equal to within that epsilon's bias where |u| < 2."""
    mu = randn((64, 6), torch.float32, device, gen, scale=0.5)
    log_std = randn((64, 6), torch.float32, device, gen, scale=0.2) - 1.0
    eps = randn((64, 6), torch.float32, device, gen)
    action, log_prob = sample_tanh_normal(mu, log_std, eps=eps, backend=backend)
    u = mu + log_std.exp() * eps
    a = torch.tanh(u)
    lp = torch.distributions.Normal(mu, log_std.exp()).log_prob(u)
    eager = (lp - torch.log(1 - a.pow(2) + 1e-6)).sum(-1)
    torch.testing.assert_close(action, a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(log_prob, eager, rtol=0, atol=6 * 1e-6 / (1 - 0.97**2) + 1e-4)


@pytest.mark.parametrize("with_eps", [False, True], ids=["stream", "eps"])
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_gradients_match_the_reference_backend(device, backend, with_eps, gen):
    mu = randn((3, 1, 5), torch.float64, device, gen)
    s = randn((2, 5), torch.float64, device, gen, scale=0.3)
    eps = randn((3, 2, 5), torch.float64, device, gen) if with_eps else None
    results = []
    for which in (backend, "reference"):
        args = [t.clone().requires_grad_() for t in (mu, s)]
        e = eps.clone().requires_grad_() if with_eps else None
        seed = None if with_eps else 5
        out = sample_tanh_normal(*args, eps=e, low=-2.0, high=0.5, seed=seed, backend=which)
        loss = (out.action * torch.arange(5, device=device)).sum() + 3 * out.log_prob.sum()
        grads = torch.autograd.grad(loss, args + ([e] if with_eps else []))
        results.append((*out, *grads))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_gradcheck_and_refused_double_backward(device, backend, gen):
    skip_if_interpreted_and_slow(device, backend, "test_gradients_match_the_reference_backend")
    mu = randn((2, 4), torch.float64, device, gen).requires_grad_()
    s = randn((2, 4), torch.float64, device, gen, scale=0.3).requires_grad_()

    def f(m, x):
        return tuple(sample_tanh_normal(m, x, scale="softplus", seed=3, backend=backend))

    assert torch.autograd.gradcheck(f, (mu, s))
    _, log_prob = f(mu, s)
    (g,) = torch.autograd.grad(log_prob.sum(), mu, create_graph=True)
    with pytest.raises(RuntimeError, match="tanh-squashed sample has no double backward"):
        g.sum().backward()


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_num_samples_shapes(device, backend):
    mu = torch.zeros(5, 3, device=device)
    out = sample_tanh_normal(mu, torch.zeros(3, device=device), num_samples=4, backend=backend)
    assert out.action.shape == (4, 5, 3) and out.log_prob.shape == (4, 5)
    assert out.action.abs().max() < 1


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_opcheck_with_the_squash_arguments(device, backend, gen):
    prefix = _families.BACKEND_PREFIX[backend]
    fwd = getattr(torch.ops.fused_reparam, prefix + "diag_rsample_stats").default
    bwd = getattr(torch.ops.fused_reparam, prefix + "diag_rsample_stats_backward").default
    mu = randn((3, 6), torch.float32, device, gen)
    s = randn((3, 6), torch.float32, device, gen, scale=0.3)
    so = torch.tensor([1, 2], device=device)
    torch.library.opcheck(fwd, (mu, s.requires_grad_(), 1, None, so, None, 0.0, True, -2.0, 1.0))
    g, gq = randn((3, 6), torch.float32, device, gen), randn((3,), torch.float32, device, gen)
    args = (g, gq * 0, gq, mu, s.detach(), None, so, False, 1, 0.0, True, -1.0, 1.0)
    torch.library.opcheck(bwd, args)


def test_bad_arguments_are_named():
    mu = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="sample_tanh_normal: low must be below high"):
        sample_tanh_normal(mu, mu, low=1.0, high=1.0)
    with pytest.raises(TypeError, match="sample_tanh_normal: high must be a finite float"):
        sample_tanh_normal(mu, mu, high=float("inf"))
    with pytest.raises(ValueError, match="sample_tanh_normal: scale must be one of"):
        sample_tanh_normal(mu, mu, scale="var")
    with pytest.raises(TypeError, match=r"sample_tanh_normal: mu must be a torch\.Tensor"):
        sample_tanh_normal([0.0], mu)
    with pytest.raises(ValueError, match="sample_tanh_normal: mu and s need at least one dim"):
        sample_tanh_normal(torch.tensor(0.0), torch.tensor(0.0))


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_action_near_the_lower_bound_keeps_its_precision(device, backend):
    """For u << 0, 1 + tanh(u) = 2 / (1 + e^-2u) is tiny but not 0: with low = 0 the action
    is positive and exact (log(action) finite), where low + half * (tanh(u) + 1) rounds to
    low."""
    u = torch.tensor([[-12.0, -20.0, -40.0]], device=device)
    zero = torch.zeros_like(u)
    action, _ = sample_tanh_normal(u, zero, eps=zero, low=0.0, high=2.0, backend=backend)
    want = 2.0 / (1.0 + torch.exp(-2.0 * u.double().cpu()))
    torch.testing.assert_close(action.double().cpu(), want, rtol=1e-5, atol=0)
