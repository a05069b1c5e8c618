"""fused_reparam.distributions.LogNormal: torch's LogNormal over the fused Normal, so rsample is
exp of one sample_diag call. Samples against the fused Normal's, torch's values, expand."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import distributions as td

from _distribution_data import F64, NO_FUSED_BACKEND_WARNING_IGNORED, TOL, seeded_gen
from conftest import DEVICE_BACKENDS, randn
from fused_reparam import sample_diag
from fused_reparam.distributions import LogNormal, Normal

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED


def params(batch, gen, device="cpu", dtype=F64):
    loc = randn(batch, dtype, device, gen, scale=0.5)
    scale = (0.2 + torch.rand(batch, generator=gen, dtype=F64)).to(dtype).to(device)
    return loc, scale


def test_lognormal_is_torch_lognormal_over_the_fused_normal():
    p = LogNormal(torch.zeros(3), torch.ones(3), generator=seeded_gen(1), backend="reference")
    assert isinstance(p, td.LogNormal) and isinstance(p, td.TransformedDistribution)
    assert type(p.base_dist) is Normal and p.has_rsample
    assert p.generator is p.base_dist.generator and p.backend == "reference"
    assert LogNormal.__module__ == "fused_reparam.distributions"
    assert p.support is td.constraints.positive
    assert LogNormal.arg_constraints is td.LogNormal.arg_constraints


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize(("batch", "sample_shape"), [((), ()), ((), (3,)), ((2, 3), (4,))])
def test_lognormal_rsample_is_exp_of_the_fused_normal(device, backend, batch, sample_shape, gen):
    loc, scale = params(batch, gen, device, torch.float32)
    loc.requires_grad_()
    p = LogNormal(loc, scale, generator=seeded_gen(7, device), backend=backend)
    x = p.rsample(sample_shape)
    assert x.shape == (*sample_shape, *batch) and (x > 0).all() and x.requires_grad
    z = Normal(loc, scale, generator=seeded_gen(7, device), backend=backend).rsample(sample_shape)
    torch.testing.assert_close(x, z.exp(), rtol=0, atol=0)
    k = sample_shape[0] if sample_shape else None
    ref = sample_diag(
        loc, scale, scale="std", num_samples=k, generator=seeded_gen(7, device), backend=backend
    )
    torch.testing.assert_close(x.log(), ref, rtol=1e-6, atol=1e-6)
    # sample draws the same without gradients.
    again = LogNormal(loc, scale, generator=seeded_gen(7, device), backend=backend)
    y = again.sample(sample_shape)
    assert not y.requires_grad
    torch.testing.assert_close(y, x.detach(), rtol=0, atol=0)


def test_lognormal_rsample_gradients(gen):
    loc, scale = params((2, 3), gen)
    loc.requires_grad_()
    scale.requires_grad_()
    x = LogNormal(loc, scale, generator=seeded_gen(3)).rsample((5,))
    g_loc, g_scale = torch.autograd.grad(x.sum(), (loc, scale))
    # x = exp(loc + scale * eps): dx/dloc = x, dx/dscale = x * eps.
    eps = (x.detach().log() - loc.detach()) / scale.detach()
    torch.testing.assert_close(g_loc, x.detach().sum(0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g_scale, (x.detach() * eps).sum(0), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_lognormal_values_match_torch(batch, gen):
    loc, scale = params(batch, gen)
    p, ref = LogNormal(loc, scale), td.LogNormal(loc, scale)
    assert p.batch_shape == ref.batch_shape == batch and p.event_shape == ()
    for name in ("mean", "mode", "variance", "stddev"):
        torch.testing.assert_close(getattr(p, name), getattr(ref, name), rtol=0, atol=0)
    torch.testing.assert_close(p.entropy(), ref.entropy(), rtol=0, atol=0)
    value = randn((3, *batch), F64, "cpu", gen).exp()
    for name in ("log_prob", "cdf"):
        torch.testing.assert_close(getattr(p, name)(value), getattr(ref, name)(value), **TOL)
    q = torch.rand((3, *batch), generator=gen, dtype=F64)
    torch.testing.assert_close(p.icdf(q), ref.icdf(q), **TOL)


def test_lognormal_moments():
    loc, scale = torch.tensor([0.0, 0.5], dtype=F64), torch.tensor([0.25, 0.1], dtype=F64)
    p = LogNormal(loc, scale, generator=seeded_gen(2025))
    n = 100_000
    x = p.sample((n,))
    assert ((x.mean(0) - p.mean).abs() < 5 * p.stddev / n**0.5).all()
    torch.testing.assert_close(x.log().std(0), scale, rtol=0.02, atol=0)


def test_lognormal_expand_keeps_classes(gen):
    loc, scale = params((3,), gen)
    g = seeded_gen(8)
    p = LogNormal(loc, scale, validate_args=True, generator=g, backend="reference")
    e = p.expand((2, 3))
    assert type(e) is LogNormal and type(e.base_dist) is Normal
    assert e.batch_shape == (2, 3) and e.generator is g and e.backend == "reference"
    assert e._validate_args is True
    assert e.rsample((4,)).shape == (4, 2, 3)
    value = randn((2, 3), F64, "cpu", gen).exp()
    torch.testing.assert_close(e.log_prob(value), p.log_prob(value), rtol=0, atol=0)


def test_lognormal_validation_is_torchs():
    with pytest.raises(ValueError, match="scale"):
        LogNormal(torch.zeros(2), torch.tensor([1.0, 0.0]), validate_args=True)
    p = LogNormal(torch.zeros(2), torch.ones(2), validate_args=True)
    with pytest.raises(ValueError, match="support"):
        p.log_prob(torch.tensor([1.0, -1.0]))
    LogNormal(torch.zeros(2), torch.tensor([1.0, 0.0]), validate_args=False)


def test_lognormal_pickles(gen):
    loc, scale = params((2,), gen)
    p = LogNormal(loc, scale, generator=seeded_gen(4), backend="cpu")
    q = pickle.loads(pickle.dumps(p))
    assert type(q) is LogNormal and type(q.base_dist) is Normal and q.backend == "cpu"
    torch.testing.assert_close(q.rsample((3,)), p.rsample((3,)), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_lognormal_half(dtype, gen):
    loc, scale = params((4,), gen, dtype=dtype)
    x = LogNormal(loc, scale, generator=seeded_gen(5)).rsample((2,))
    assert x.dtype == dtype and (x > 0).all()
