"""fused_reparam.distributions.DiagNormal against Independent(Normal(loc, exp(0.5 * logvar)),
1), on seeded random data with odd shapes: shapes, sampling, log_prob, entropy, moments,
expand, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from _distribution_data import (
    BATCHES,
    F64,
    NO_FUSED_BACKEND_WARNING_IGNORED,
    SAMPLE_SHAPES,
    TOL,
    diag_normal,
    seeded_gen,
    torch_diag,
)
from conftest import DEVICE_BACKENDS, DEVICES, randn
from fused_reparam import sample_diag
from fused_reparam.distributions import DiagNormal

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED


def test_diag_is_a_torch_distribution():
    d = DiagNormal(torch.zeros(3), torch.zeros(3))
    assert isinstance(d, td.Distribution)
    assert d.has_rsample
    assert d.support is td.constraints.real_vector
    assert set(d.arg_constraints) == {"loc", "logvar"}
    assert repr(d).startswith("DiagNormal(")


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("sample_shape", [*SAMPLE_SHAPES, (0,), (2, 0)])
def test_diag_shapes(batch, sample_shape, gen):
    d_ = 7
    d = diag_normal(batch, d_, gen)[2]
    assert d.batch_shape == batch
    assert d.event_shape == (d_,)
    z = d.rsample(sample_shape)
    assert z.shape == (*sample_shape, *batch, d_)
    assert d.sample(torch.Size(sample_shape)).shape == z.shape
    if z.numel():  # torch's support check cannot reshape an empty value
        assert d.log_prob(z).shape == (*sample_shape, *batch)
    assert d.entropy().shape == batch
    out = d.rsample_with_stats(sample_shape)
    assert out.z.shape == z.shape
    assert out.kl.shape == batch
    assert out.log_q.shape == (*sample_shape, *batch)
    z2, log_q = d.rsample_and_log_prob(sample_shape)
    assert z2.shape == z.shape and log_q.shape == out.log_q.shape


def test_diag_broadcasts_logvar_and_numbers(gen):
    loc = randn((4, 5), F64, "cpu", gen)
    shared = randn((5,), F64, "cpu", gen)
    d = DiagNormal(loc, shared)
    assert d.batch_shape == (4,) and d.logvar.shape == (4, 5)
    assert d.logvar.data_ptr() == shared.data_ptr()  # a view, not a copy
    d0 = DiagNormal(loc, 0.0)
    torch.testing.assert_close(d0.variance, torch.ones(4, 5, dtype=F64))
    assert DiagNormal(torch.zeros(5), torch.zeros(3, 1)).batch_shape == (3,)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES)
def test_diag_rsample_is_sample_diag(device, backend, sample_shape, gen):
    loc, logvar, _ = diag_normal((3,), 5, gen, device, torch.float32)
    d = DiagNormal(loc, logvar, generator=seeded_gen(11, device), backend=backend)
    z = d.rsample(sample_shape)
    k = math.prod(sample_shape) if sample_shape else None
    ref = sample_diag(loc, logvar, num_samples=k, generator=seeded_gen(11, device), backend=backend)
    torch.testing.assert_close(z, ref.reshape(z.shape), rtol=0, atol=0)
    # The generator advances: the next draw differs.
    assert not torch.equal(d.rsample(sample_shape), z)


def test_diag_rsample_uses_torch_manual_seed(gen):
    loc, logvar, d = diag_normal((2,), 3, gen)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        a = d.rsample((4,))
        torch.manual_seed(5)
        b = sample_diag(loc, logvar, num_samples=4)
    assert torch.equal(a, b)


def test_diag_sample_has_no_grad(gen):
    loc, logvar, _ = diag_normal((3,), 4, gen)
    d = DiagNormal(loc.requires_grad_(), logvar.requires_grad_())
    assert not d.sample((2,)).requires_grad
    assert d.rsample((2,)).requires_grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
def test_diag_matches_torch(device, batch, gen):
    loc, logvar, d = diag_normal(batch, 6, gen, device)
    ref = torch_diag(loc, logvar)
    assert d.batch_shape == ref.batch_shape and d.event_shape == ref.event_shape
    for name in ("mean", "mode", "variance", "stddev"):
        torch.testing.assert_close(getattr(d, name), getattr(ref, name), **TOL)
    torch.testing.assert_close(d.scale, ref.base_dist.scale, **TOL)
    torch.testing.assert_close(d.entropy(), ref.entropy(), **TOL)
    value = randn((3, *batch, 6), F64, device, gen, scale=2.0)
    torch.testing.assert_close(d.log_prob(value), ref.log_prob(value), **TOL)
    # A value that broadcasts against the batch, as torch allows.
    one = randn((6,), F64, device, gen)
    torch.testing.assert_close(d.log_prob(one), ref.log_prob(one), **TOL)
    torch.testing.assert_close(d.perplexity(), ref.perplexity(), **TOL)


def test_diag_log_prob_and_entropy_gradients_match_torch(gen):
    loc, logvar, _ = diag_normal((3,), 4, gen)
    value = randn((2, 3, 4), F64, "cpu", gen)
    grads = []
    for make in (DiagNormal, torch_diag):
        p = (loc.clone().requires_grad_(), logvar.clone().requires_grad_())
        d = make(*p)
        (d.log_prob(value).sum() + d.entropy().sum()).backward()
        grads.append([t.grad for t in p])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_diag_rsample_gradients(gen):
    loc, logvar, _ = diag_normal((2,), 3, gen)
    loc.requires_grad_()
    logvar.requires_grad_()

    def fn(m, lv):
        return DiagNormal(m, lv, generator=seeded_gen(3)).rsample((2,))

    assert torch.autograd.gradcheck(fn, (loc, logvar))
    # dz/dloc = 1, dz/dlogvar = 0.5 * (z - loc).
    z = fn(loc, logvar)
    gl, glv = torch.autograd.grad(z.sum(), (loc, logvar))
    torch.testing.assert_close(gl, torch.full_like(loc, 2.0), **TOL)
    torch.testing.assert_close(glv, 0.5 * (z.detach() - loc.detach()).sum(0), **TOL)


def test_diag_rsample_and_log_prob(gen):
    loc, logvar, _ = diag_normal((3,), 5, gen)
    p = (loc.clone().requires_grad_(), logvar.clone().requires_grad_())
    d = DiagNormal(*p, generator=seeded_gen(21))
    z, log_q = d.rsample_and_log_prob((2,))
    d_ref = DiagNormal(*p, generator=seeded_gen(21))
    z_ref = d_ref.rsample((2,))
    torch.testing.assert_close(z, z_ref, **TOL)
    lp = d_ref.log_prob(z_ref)
    torch.testing.assert_close(log_q, lp, **TOL)
    # The same total derivative as log_prob(rsample()).
    g1 = torch.autograd.grad((z.sum() + log_q.sum()), p)
    g2 = torch.autograd.grad((z_ref.sum() + lp.sum()), p)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    out = DiagNormal(*p, generator=seeded_gen(21)).rsample_with_stats((2,))
    torch.testing.assert_close(out.kl, d.kl_to_standard_normal(), **TOL)


def test_diag_expand(gen):
    loc, logvar, d = diag_normal((3,), 4, gen, generator=seeded_gen(8), backend="reference")
    e = d.expand((2, 3))
    assert type(e) is DiagNormal
    assert e.batch_shape == (2, 3) and e.event_shape == (4,)
    assert e.loc.data_ptr() == loc.data_ptr() and e.logvar.data_ptr() == logvar.data_ptr()
    assert e.generator is d.generator and e.backend == "reference"
    assert e._validate_args == d._validate_args
    value = randn((2, 3, 4), F64, "cpu", gen)
    torch.testing.assert_close(e.log_prob(value), d.log_prob(value), **TOL)
    assert e.rsample((5,)).shape == (5, 2, 3, 4)
    torch.testing.assert_close(e.entropy(), d.entropy().expand(2, 3), **TOL)
    with pytest.raises(RuntimeError):
        d.expand((2, 4))


def test_diag_validate_args(gen):
    loc, logvar, _ = diag_normal((3,), 4, gen)
    d = DiagNormal(loc, logvar, validate_args=True)
    with pytest.raises(ValueError, match="event_shape"):
        d.log_prob(torch.zeros(3, 5, dtype=F64))
    with pytest.raises(ValueError):
        d.log_prob(torch.zeros(2, 4, dtype=F64))  # batch 2 vs 3
    bad = loc.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="loc"):
        DiagNormal(bad, logvar, validate_args=True)
    with pytest.raises(ValueError, match="logvar"):
        DiagNormal(loc, bad, validate_args=True)
    DiagNormal(bad, logvar, validate_args=False)  # no check asked for: no error
    DiagNormal(loc, logvar, validate_args=False).log_prob(torch.zeros(3, 5, dtype=F64)[..., :1])
    with pytest.raises(ValueError, match="at least one-dimensional"):
        DiagNormal(torch.tensor(0.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="same dtype"):
        DiagNormal(loc, logvar.float())


def test_diag_moments():
    loc = torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]], dtype=F64)
    logvar = torch.tensor([[0.0, -1.0, 1.5], [0.4, -2.0, 0.0]], dtype=F64)
    n = 40_000
    z = DiagNormal(loc, logvar, generator=seeded_gen(1234)).sample((n,))
    std = torch.exp(0.5 * logvar)
    assert ((z.mean(0) - loc).abs() < 5 * std / n**0.5).all()
    # var of the sample variance of a normal: 2 sigma^4 / (n - 1).
    assert ((z.var(0) - std**2).abs() < 5 * std**2 * (2 / (n - 1)) ** 0.5).all()
    zc = (z - loc) / std
    corr = (zc[:, 0, :, None] * zc[:, 0, None, :]).mean(0) - torch.eye(3, dtype=F64)
    assert corr.abs().max() < 5 / n**0.5


def test_diag_half_and_transformed(gen):
    loc, logvar, _ = diag_normal((2,), 3, gen, dtype=torch.bfloat16)
    d = DiagNormal(loc, logvar)
    assert d.rsample((4,)).dtype == torch.bfloat16
    # A SAC-style squashed Gaussian: torch's TransformedDistribution on top of DiagNormal.
    loc, logvar, d = diag_normal((2,), 3, gen)
    squashed = td.TransformedDistribution(d, [td.TanhTransform(cache_size=1)])
    a = squashed.rsample((5,))
    assert a.shape == (5, 2, 3) and a.abs().max() < 1
    ref = td.TransformedDistribution(torch_diag(loc, logvar), [td.TanhTransform()])
    torch.testing.assert_close(squashed.log_prob(a), ref.log_prob(a), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("sample_shape", "error", "match"),
    [((-1,), ValueError, "sizes >= 0"), ((2.0,), TypeError, "sequence of ints"),
     (3, TypeError, "sequence of ints")],
)  # fmt: skip
def test_bad_sample_shape_is_a_clear_error(sample_shape, error, match):
    d = DiagNormal(torch.zeros(2, 3), torch.zeros(2, 3))
    for draw in (d.rsample, d.rsample_with_stats, d.sample):
        with pytest.raises(error, match=match):
            draw(sample_shape)


def test_sample_shape_as_torch_takes_it():
    """A 1-D integer tensor or numpy integers, as torch's distributions accept; a float or
    bool tensor is refused."""
    np = pytest.importorskip("numpy")
    d = DiagNormal(torch.zeros(2, 3), torch.zeros(2, 3))
    assert d.rsample(torch.tensor([4, 1])).shape == (4, 1, 2, 3)
    assert d.sample((np.int64(2),)).shape == (2, 2, 3)
    for bad in (torch.tensor([1.0]), torch.tensor([True])):
        with pytest.raises(TypeError, match="sequence of ints"):
            d.rsample(bad)
