"""stl=True ("sticking the landing") on every backend: log q's value is unchanged and its
gradient is that of the Gaussian's log-density with the parameters detached, evaluated at the
sample (the formula, in torch ops), for the diagonal op (each scale), the Cholesky op and the
tanh-squashed sample; with K samples and broadcast inputs; bad arguments are named."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import FUSED_DEVICE_BACKENDS, randn
from fused_reparam import sample_chol, sample_diag, sample_tanh_normal
from fused_reparam.reference import scale as ref_scale

F64 = torch.float64


def _grads(loss, inputs):
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("scale", ["logvar", "softplus"])
@pytest.mark.parametrize(("device", "backend"), [*FUSED_DEVICE_BACKENDS, ("cpu", "reference")])
def test_diag_log_q_gradient_flows_through_z_only(device, backend, scale, gen):
    mu = randn((3, 1, 5), F64, device, gen).requires_grad_()
    s = randn((4, 5), F64, device, gen, scale=0.5).requires_grad_()
    eps = randn((3, 4, 5), F64, device, gen).requires_grad_()
    out = sample_diag(mu, s, eps=eps, scale=scale, return_stats=True, stl=True, backend=backend)
    plain = sample_diag(mu, s, eps=eps, scale=scale, return_stats=True, backend=backend)
    torch.testing.assert_close(out.log_q, plain.log_q, rtol=0, atol=0)
    got = _grads(out.z.sum() + 2 * out.kl.sum() + 3 * out.log_q.sum(), (mu, s, eps))
    # The formula: z = mu + sigma eps, log q(z) with mu and sigma detached.
    sigma = ref_scale.sigma(s, ref_scale.SCALES.index(scale))
    z = mu + sigma * eps
    log_q = torch.distributions.Normal(mu.detach(), sigma.detach()).log_prob(z).sum(-1)
    kl = 0.5 * (mu**2 + sigma**2 - 1 - 2 * torch.log(sigma)).sum(-1)
    want = _grads(z.sum() + 2 * kl.sum() + 3 * log_q.sum(), (mu, s, eps))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("device", "backend"), [*FUSED_DEVICE_BACKENDS, ("cpu", "reference")])
def test_chol_log_q_gradient_flows_through_z_only(device, backend, gen):
    mu = randn((2, 3, 4), F64, device, gen).requires_grad_()
    lower = randn((3, 4, 4), F64, "cpu", gen, scale=0.3).tril(-1) + torch.diag_embed(
        1 + torch.rand((3, 4), generator=gen, dtype=F64)
    )
    lower = lower.to(device).requires_grad_()
    out = sample_chol(mu, lower, num_samples=2, seed=11, return_stats=True, stl=True,
                      backend=backend)  # fmt: skip
    got = _grads(out.z.sum() + out.log_q.sum(), (mu, lower))
    eps = sample_chol(torch.zeros_like(mu), torch.eye(4, dtype=F64, device=device),
                      num_samples=2, seed=11, backend=backend)  # fmt: skip
    z = mu + (torch.tril(lower) @ eps.unsqueeze(-1)).squeeze(-1)
    q = torch.distributions.MultivariateNormal(mu.detach(), scale_tril=torch.tril(lower.detach()))
    want = _grads(z.sum() + q.log_prob(z).sum(), (mu, lower))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("device", "backend"), [*FUSED_DEVICE_BACKENDS, ("cpu", "reference")])
def test_tanh_log_prob_gradient_flows_through_u_only(device, backend, gen):
    mu = randn((6, 3), F64, device, gen).requires_grad_()
    log_std = (randn((6, 3), F64, device, gen, scale=0.3) - 0.5).requires_grad_()
    eps = randn((6, 3), F64, device, gen)
    out = sample_tanh_normal(mu, log_std, eps=eps, low=-2.0, high=1.0, stl=True, backend=backend)
    plain = sample_tanh_normal(mu, log_std, eps=eps, low=-2.0, high=1.0, backend=backend)
    torch.testing.assert_close(out.action, plain.action, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.log_prob, plain.log_prob, rtol=1e-12, atol=1e-12)
    got = _grads(out.action.sum() + out.log_prob.sum(), (mu, log_std))
    sigma = log_std.exp()
    u = mu + sigma * eps
    gauss = torch.distributions.Normal(mu.detach(), sigma.detach()).log_prob(u)
    log_prob = (gauss - torch.log(1 - torch.tanh(u) ** 2) - math.log(1.5)).sum(-1)
    action = -2.0 + 1.5 * (torch.tanh(u) + 1)
    want = _grads(action.sum() + log_prob.sum(), (mu, log_std))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


# sigma far below the rounding of z near |mu| ~ 3 in each dtype, so z rounds to mu or near it.
TINY_LOGVAR = {torch.bfloat16: -12.0, torch.float16: -16.0, torch.float32: -34.0}
RTOL = {torch.bfloat16: 2**-7, torch.float16: 2**-10, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", list(TINY_LOGVAR))
@pytest.mark.parametrize(("device", "backend"), [*FUSED_DEVICE_BACKENDS, ("cpu", "reference")])
def test_gradient_is_the_density_s_at_the_call_s_eps_where_z_rounds(device, backend, dtype, gen):
    """The gradient uses the kernel's eps itself, not eps recovered from z rounded to its
    dtype: -eps / sigma for mu and -eps^2 / 2 for the log-variance (diagonal), -L^-T eps for
    mu (Cholesky, L = sigma I), one rounding away from the exact values."""
    shape = (32, 16)
    mu = randn(shape, dtype, device, gen, scale=3.0).requires_grad_()
    lv = torch.full(shape, TINY_LOGVAR[dtype], dtype=dtype, device=device, requires_grad=True)
    zero = torch.zeros(shape, dtype=torch.float32, device=device)
    eps = sample_diag(zero, zero, seed=5, offset=2, backend=backend).double()
    sigma = torch.exp(0.5 * lv.detach().double())
    out = sample_diag(mu, lv, seed=5, offset=2, return_stats=True, stl=True, backend=backend)
    g_mu, g_lv = _grads(out.log_q.sum(), (mu, lv))
    # One rounding in the dtype: rtol, or half its smallest subnormal near 0.
    rtol, info = RTOL[dtype], torch.finfo(dtype)
    atol = info.smallest_normal * info.eps / 2
    torch.testing.assert_close(g_mu.double(), -eps / sigma, rtol=rtol, atol=0)
    torch.testing.assert_close(g_lv.double(), -0.5 * eps**2, rtol=rtol, atol=atol)
    lower = (sigma[0, 0] * torch.eye(16, dtype=F64, device=device)).to(dtype).requires_grad_()
    out = sample_chol(mu, lower, seed=5, offset=2, return_stats=True, stl=True, backend=backend)
    (g_mu,) = _grads(out.log_q.sum(), (mu,))
    want = -eps / lower.detach().double().diagonal()
    torch.testing.assert_close(g_mu.double(), want, rtol=rtol, atol=0)


def test_bad_stl_arguments_are_named():
    mu = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="sample_diag: stl=True changes log_q's gradient"):
        sample_diag(mu, mu, stl=True)
    with pytest.raises(ValueError, match="sample_chol: stl=True changes log_q's gradient"):
        sample_chol(mu, torch.eye(3), stl=True)
    with pytest.raises(TypeError, match="sample_tanh_normal: stl must be True or False"):
        sample_tanh_normal(mu, mu, stl="yes")
