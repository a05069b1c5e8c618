"""fused_reparam.distributions.MultivariateNormal against torch's, on seeded random data with
odd shapes; both distributions under torch.compile."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from _distribution_data import F64, NO_FUSED_BACKEND_WARNING_IGNORED, TOL, seeded_gen, tril_factor
from conftest import DEVICE_BACKENDS, randn
from fused_reparam import sample_chol
from fused_reparam.distributions import DiagNormal, MultivariateNormal

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED


def test_mvn_is_torch_mvn():
    m = MultivariateNormal(torch.zeros(3), scale_tril=torch.eye(3))
    assert isinstance(m, td.MultivariateNormal) and isinstance(m, td.Distribution)
    assert m.has_rsample


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize(
    ("loc_batch", "tril_batch", "sample_shape"),
    [((), (), ()), ((4,), (), (2, 3)), ((), (3,), (1,)), ((2, 1), (3,), (4,))],
)
def test_mvn_rsample_is_sample_chol(device, backend, loc_batch, tril_batch, sample_shape, gen):
    d_ = 5
    loc = randn((*loc_batch, d_), torch.float32, device, gen)
    tril = tril_factor(tril_batch, d_, torch.float32, device, gen)
    m = MultivariateNormal(loc, scale_tril=tril, generator=seeded_gen(4, device), backend=backend)
    batch = torch.broadcast_shapes(loc_batch, tril_batch)
    assert m.batch_shape == batch and m.event_shape == (d_,)
    z = m.rsample(sample_shape)
    assert z.shape == (*sample_shape, *batch, d_)
    k = math.prod(sample_shape) if sample_shape else None
    ref = sample_chol(loc, tril, num_samples=k, generator=seeded_gen(4, device), backend=backend)
    torch.testing.assert_close(z, ref.reshape(z.shape), rtol=0, atol=0)
    assert m.log_prob(z).shape == (*sample_shape, *batch)


@pytest.mark.parametrize("param", ["covariance_matrix", "precision_matrix"])
def test_mvn_other_parametrizations_sample_with_the_factor(param, gen):
    loc = randn((2, 4), F64, "cpu", gen)
    tril = tril_factor((2,), 4, F64, "cpu", gen)
    cov = tril @ tril.mT
    arg = cov if param == "covariance_matrix" else torch.linalg.inv(cov)
    m = MultivariateNormal(loc, **{param: arg}, generator=seeded_gen(6))
    torch.testing.assert_close(m.scale_tril, tril, rtol=1e-10, atol=1e-10)
    ref = sample_chol(loc, m._unbroadcasted_scale_tril, num_samples=3, generator=seeded_gen(6))
    torch.testing.assert_close(m.rsample((3,)), ref, **TOL)


def test_mvn_keeps_torch_methods(gen):
    loc = randn((3, 4), F64, "cpu", gen)
    tril = tril_factor((3,), 4, F64, "cpu", gen)
    m, ref = MultivariateNormal(loc, scale_tril=tril), td.MultivariateNormal(loc, scale_tril=tril)
    value = randn((2, 3, 4), F64, "cpu", gen)
    torch.testing.assert_close(m.log_prob(value), ref.log_prob(value), **TOL)
    torch.testing.assert_close(m.entropy(), ref.entropy(), **TOL)
    for name in ("mean", "mode", "variance", "covariance_matrix", "precision_matrix"):
        torch.testing.assert_close(getattr(m, name), getattr(ref, name), **TOL)


def test_mvn_expand(gen):
    loc = randn((3, 4), F64, "cpu", gen)
    tril = tril_factor((), 4, F64, "cpu", gen)
    m = MultivariateNormal(loc, scale_tril=tril, generator=seeded_gen(2), backend="reference")
    e = m.expand((2, 3))
    assert type(e) is MultivariateNormal
    assert e.batch_shape == (2, 3)
    assert e.generator is m.generator and e.backend == "reference"
    assert e.loc.data_ptr() == loc.data_ptr()
    assert e.rsample((5,)).shape == (5, 2, 3, 4)
    value = randn((2, 3, 4), F64, "cpu", gen)
    torch.testing.assert_close(e.log_prob(value), m.log_prob(value), **TOL)


def test_mvn_gradients_and_log_prob(gen):
    loc = randn((2, 3), F64, "cpu", gen).requires_grad_()
    tril = tril_factor((2,), 3, F64, "cpu", gen).requires_grad_()

    def fn(m_, l_):
        # gradcheck perturbs the upper triangle too (which rsample never reads): no validation
        d = MultivariateNormal(m_, scale_tril=l_, validate_args=False, generator=seeded_gen(9))
        return d.rsample((2,))

    assert torch.autograd.gradcheck(fn, (loc, tril))
    m = MultivariateNormal(loc, scale_tril=tril, generator=seeded_gen(9))
    z, log_q = m.rsample_and_log_prob((2,))
    torch.testing.assert_close(z, fn(loc, tril), **TOL)
    lp = m.log_prob(z)
    torch.testing.assert_close(log_q, lp, **TOL)
    # The same total derivative as log_prob(rsample()).
    g1 = torch.autograd.grad(z.sum() + log_q.sum(), (loc, tril), retain_graph=True)
    g2 = torch.autograd.grad(z.sum() + lp.sum(), (loc, tril))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    out = MultivariateNormal(loc, scale_tril=tril).rsample_with_stats()
    torch.testing.assert_close(out.kl, m.kl_to_standard_normal(), **TOL)


def test_mvn_validate_args(gen):
    loc = randn((3,), F64, "cpu", gen)
    not_chol = torch.eye(3, dtype=F64)
    not_chol[0, 0] = -1.0
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormal(loc, scale_tril=not_chol, validate_args=True)
    m = MultivariateNormal(loc, scale_tril=torch.eye(3, dtype=F64), validate_args=True)
    with pytest.raises(ValueError):
        m.log_prob(torch.zeros(4, dtype=F64))


def test_mvn_covariance_of_samples():
    tril = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.5, 0.4]], dtype=F64)
    loc = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    n = 40_000
    z = MultivariateNormal(loc, scale_tril=tril, generator=seeded_gen(77)).sample((n,))
    cov = tril @ tril.T
    sd = cov.diagonal().sqrt()
    assert ((z.mean(0) - loc).abs() < 5 * sd / n**0.5).all()
    # Each covariance entry's standard error is at most sqrt(2) * sd_i * sd_j / sqrt(n).
    err = (torch.cov(z.T) - cov).abs()
    assert (err < 5 * 2**0.5 * sd[:, None] * sd[None, :] / n**0.5).all()


# ---- Both distributions ---------------------------------------------------------------------


def test_diag_and_mvn_under_compile_fullgraph(gen):
    """The distributions trace without a graph break (the fused ops are registered ops)."""
    loc = randn((4, 5), torch.float32, "cpu", gen).requires_grad_()
    logvar = randn((4, 5), torch.float32, "cpu", gen).requires_grad_()
    L = torch.eye(5) + 0.1 * torch.tril(randn((5, 5), torch.float32, "cpu", gen), -1)

    def loss(m, lv):
        q = DiagNormal(m, lv, validate_args=False)
        z, log_q = q.rsample_and_log_prob((3,))
        p = MultivariateNormal(m, scale_tril=L, validate_args=False)
        w = p.rsample()
        return z.square().sum() + log_q.sum() + q.entropy().sum() + w.sum() + p.log_prob(w).sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.manual_seed(3)
    got = compiled(loc, logvar)
    got_grads = torch.autograd.grad(got, (loc, logvar))
    torch.manual_seed(3)
    want = loss(loc, logvar)
    want_grads = torch.autograd.grad(want, (loc, logvar))
    torch.testing.assert_close(got, want)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b)
