"""fused_reparam.distributions against torch.distributions: DiagNormal against
Independent(Normal(loc, exp(0.5 * logvar)), 1), the fused MultivariateNormal against torch's,
on seeded random data with odd shapes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from conftest import DEVICE_BACKENDS, DEVICES, randn
from fused_reparam import sample_chol, sample_diag
from fused_reparam.distributions import DiagNormal, MultivariateNormal

# The CPU stats kernels may not be built yet: return_stats then falls back to the reference
# with a one-time warning. These tests do not depend on either.
pytestmark = pytest.mark.filterwarnings("ignore:fused_reparam. no fused backend:RuntimeWarning")

F64 = torch.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}
BATCHES = [(), (3,), (2, 5)]
SAMPLE_SHAPES = [(), (1,), (4,), (2, 3)]


def _diag(batch, d, gen, device="cpu", dtype=F64, **kw):
    loc = randn((*batch, d), dtype, device, gen)
    logvar = randn((*batch, d), dtype, device, gen, scale=0.7)
    return loc, logvar, DiagNormal(loc, logvar, **kw)


def _torch_diag(loc, logvar):
    return td.Independent(td.Normal(loc, torch.exp(0.5 * logvar)), 1)


def _tril(batch, d, dtype, device, gen):
    """A well-conditioned lower-triangular factor with a positive diagonal."""
    a = randn((*batch, d, d), dtype, device, gen, scale=0.3)
    diag = torch.rand((*batch, d), generator=gen, dtype=torch.float64).to(dtype).to(device)
    return torch.tril(a, -1) + torch.diag_embed(0.5 + diag)


def _gen(seed, device="cpu"):
    return torch.Generator(device).manual_seed(seed)


# ---- DiagNormal -------------------------------------------------------------------------------


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
    d = _diag(batch, d_, gen)[2]
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
    loc, logvar, _ = _diag((3,), 5, gen, device, torch.float32)
    d = DiagNormal(loc, logvar, generator=_gen(11, device), backend=backend)
    z = d.rsample(sample_shape)
    k = math.prod(sample_shape) if sample_shape else None
    ref = sample_diag(loc, logvar, num_samples=k, generator=_gen(11, device), backend=backend)
    torch.testing.assert_close(z, ref.reshape(z.shape), rtol=0, atol=0)
    # The generator advances: the next draw differs.
    assert not torch.equal(d.rsample(sample_shape), z)


def test_diag_rsample_uses_torch_manual_seed(gen):
    loc, logvar, d = _diag((2,), 3, gen)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        a = d.rsample((4,))
        torch.manual_seed(5)
        b = sample_diag(loc, logvar, num_samples=4)
    assert torch.equal(a, b)


def test_diag_sample_has_no_grad(gen):
    loc, logvar, _ = _diag((3,), 4, gen)
    d = DiagNormal(loc.requires_grad_(), logvar.requires_grad_())
    assert not d.sample((2,)).requires_grad
    assert d.rsample((2,)).requires_grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
def test_diag_matches_torch(device, batch, gen):
    loc, logvar, d = _diag(batch, 6, gen, device)
    ref = _torch_diag(loc, logvar)
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
    loc, logvar, _ = _diag((3,), 4, gen)
    value = randn((2, 3, 4), F64, "cpu", gen)
    grads = []
    for make in (DiagNormal, _torch_diag):
        p = (loc.clone().requires_grad_(), logvar.clone().requires_grad_())
        d = make(*p)
        (d.log_prob(value).sum() + d.entropy().sum()).backward()
        grads.append([t.grad for t in p])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_diag_rsample_gradients(gen):
    loc, logvar, _ = _diag((2,), 3, gen)
    loc.requires_grad_()
    logvar.requires_grad_()

    def fn(m, lv):
        return DiagNormal(m, lv, generator=_gen(3)).rsample((2,))

    assert torch.autograd.gradcheck(fn, (loc, logvar))
    # dz/dloc = 1, dz/dlogvar = 0.5 * (z - loc).
    z = fn(loc, logvar)
    gl, glv = torch.autograd.grad(z.sum(), (loc, logvar))
    torch.testing.assert_close(gl, torch.full_like(loc, 2.0), **TOL)
    torch.testing.assert_close(glv, 0.5 * (z.detach() - loc.detach()).sum(0), **TOL)


def test_diag_rsample_and_log_prob(gen):
    loc, logvar, _ = _diag((3,), 5, gen)
    p = (loc.clone().requires_grad_(), logvar.clone().requires_grad_())
    d = DiagNormal(*p, generator=_gen(21))
    z, log_q = d.rsample_and_log_prob((2,))
    d_ref = DiagNormal(*p, generator=_gen(21))
    z_ref = d_ref.rsample((2,))
    torch.testing.assert_close(z, z_ref, **TOL)
    lp = d_ref.log_prob(z_ref)
    torch.testing.assert_close(log_q, lp, **TOL)
    # The same total derivative as log_prob(rsample()).
    g1 = torch.autograd.grad((z.sum() + log_q.sum()), p)
    g2 = torch.autograd.grad((z_ref.sum() + lp.sum()), p)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    out = DiagNormal(*p, generator=_gen(21)).rsample_with_stats((2,))
    torch.testing.assert_close(out.kl, d.kl_to_standard_normal(), **TOL)


def test_diag_kl_to_standard_normal_matches_torch(gen):
    loc, logvar, d = _diag((2, 3), 4, gen)
    prior = _torch_diag(torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64))
    expected = td.kl_divergence(_torch_diag(loc, logvar), prior)
    torch.testing.assert_close(d.kl_to_standard_normal(), expected, **TOL)


def test_diag_kl_divergence_matches_torch(gen):
    loc_p, logvar_p, p = _diag((4,), 5, gen)
    loc_q, logvar_q, q = _diag((), 5, gen)  # broadcasts against p's batch
    tp, tq = _torch_diag(loc_p, logvar_p), _torch_diag(loc_q, logvar_q)
    expected = td.kl_divergence(tp, tq)
    for a, b in ((p, q), (p, tq), (tp, q)):
        torch.testing.assert_close(td.kl_divergence(a, b), expected, **TOL)
    torch.testing.assert_close(td.kl_divergence(q, p), td.kl_divergence(tq, tp), **TOL)
    # Against a full-covariance Gaussian, both ways (the fused subclass too).
    loc_m = randn((4, 5), F64, "cpu", gen)
    tril = _tril((), 5, F64, "cpu", gen)
    diag_as_mvn = td.MultivariateNormal(loc_p, scale_tril=torch.diag_embed(p.stddev))
    for cls in (td.MultivariateNormal, MultivariateNormal):
        m = cls(loc_m, scale_tril=tril)
        torch.testing.assert_close(td.kl_divergence(p, m), td.kl_divergence(diag_as_mvn, m), **TOL)
        torch.testing.assert_close(td.kl_divergence(m, p), td.kl_divergence(m, diag_as_mvn), **TOL)
    # Distributions built on DiagNormal dispatch to it.
    ip, iq = td.Independent(p, 1), td.Independent(td.Laplace(loc_q, torch.exp(logvar_q)), 1)
    iq_ok = td.Independent(q.expand((4,)), 1)
    torch.testing.assert_close(td.kl_divergence(ip, iq_ok), expected.sum(), **TOL)
    with pytest.raises(NotImplementedError):
        td.kl_divergence(p, iq)
    with pytest.raises(ValueError, match="event shapes"):
        td.kl_divergence(p, DiagNormal(torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64)))


def test_diag_kl_gradients_match_torch(gen):
    params = [t.requires_grad_() for t in (*_diag((3,), 4, gen)[:2], *_diag((3,), 4, gen)[:2])]
    kl = td.kl_divergence(DiagNormal(*params[:2]), DiagNormal(*params[2:]))
    g1 = torch.autograd.grad(kl.sum(), params)
    tp, tq = _torch_diag(*params[:2]), _torch_diag(*params[2:])
    g2 = torch.autograd.grad(td.kl_divergence(tp, tq).sum(), params)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_diag_expand(gen):
    loc, logvar, d = _diag((3,), 4, gen, generator=_gen(8), backend="reference")
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
    loc, logvar, _ = _diag((3,), 4, gen)
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
    z = DiagNormal(loc, logvar, generator=_gen(1234)).sample((n,))
    std = torch.exp(0.5 * logvar)
    assert ((z.mean(0) - loc).abs() < 5 * std / n**0.5).all()
    # var of the sample variance of a normal: 2 sigma^4 / (n - 1).
    assert ((z.var(0) - std**2).abs() < 5 * std**2 * (2 / (n - 1)) ** 0.5).all()
    zc = (z - loc) / std
    corr = (zc[:, 0, :, None] * zc[:, 0, None, :]).mean(0) - torch.eye(3, dtype=F64)
    assert corr.abs().max() < 5 / n**0.5


def test_diag_half_and_transformed(gen):
    loc, logvar, _ = _diag((2,), 3, gen, dtype=torch.bfloat16)
    d = DiagNormal(loc, logvar)
    assert d.rsample((4,)).dtype == torch.bfloat16
    # A SAC-style squashed Gaussian: torch's TransformedDistribution on top of DiagNormal.
    loc, logvar, d = _diag((2,), 3, gen)
    squashed = td.TransformedDistribution(d, [td.TanhTransform(cache_size=1)])
    a = squashed.rsample((5,))
    assert a.shape == (5, 2, 3) and a.abs().max() < 1
    ref = td.TransformedDistribution(_torch_diag(loc, logvar), [td.TanhTransform()])
    torch.testing.assert_close(squashed.log_prob(a), ref.log_prob(a), rtol=1e-9, atol=1e-9)


# ---- MultivariateNormal -----------------------------------------------------------------------


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
    tril = _tril(tril_batch, d_, torch.float32, device, gen)
    m = MultivariateNormal(loc, scale_tril=tril, generator=_gen(4, device), backend=backend)
    batch = torch.broadcast_shapes(loc_batch, tril_batch)
    assert m.batch_shape == batch and m.event_shape == (d_,)
    z = m.rsample(sample_shape)
    assert z.shape == (*sample_shape, *batch, d_)
    k = math.prod(sample_shape) if sample_shape else None
    ref = sample_chol(loc, tril, num_samples=k, generator=_gen(4, device), backend=backend)
    torch.testing.assert_close(z, ref.reshape(z.shape), rtol=0, atol=0)
    assert m.log_prob(z).shape == (*sample_shape, *batch)


@pytest.mark.parametrize("param", ["covariance_matrix", "precision_matrix"])
def test_mvn_other_parametrizations_sample_with_the_factor(param, gen):
    loc = randn((2, 4), F64, "cpu", gen)
    tril = _tril((2,), 4, F64, "cpu", gen)
    cov = tril @ tril.mT
    arg = cov if param == "covariance_matrix" else torch.linalg.inv(cov)
    m = MultivariateNormal(loc, **{param: arg}, generator=_gen(6))
    torch.testing.assert_close(m.scale_tril, tril, rtol=1e-10, atol=1e-10)
    ref = sample_chol(loc, m._unbroadcasted_scale_tril, num_samples=3, generator=_gen(6))
    torch.testing.assert_close(m.rsample((3,)), ref, **TOL)


def test_mvn_keeps_torch_methods(gen):
    loc = randn((3, 4), F64, "cpu", gen)
    tril = _tril((3,), 4, F64, "cpu", gen)
    m, ref = MultivariateNormal(loc, scale_tril=tril), td.MultivariateNormal(loc, scale_tril=tril)
    value = randn((2, 3, 4), F64, "cpu", gen)
    torch.testing.assert_close(m.log_prob(value), ref.log_prob(value), **TOL)
    torch.testing.assert_close(m.entropy(), ref.entropy(), **TOL)
    for name in ("mean", "mode", "variance", "covariance_matrix", "precision_matrix"):
        torch.testing.assert_close(getattr(m, name), getattr(ref, name), **TOL)


def test_mvn_kl_uses_torch_registration(gen):
    assert td.kl._dispatch_kl(MultivariateNormal, MultivariateNormal) is td.kl._dispatch_kl(
        td.MultivariateNormal, td.MultivariateNormal
    )
    a = (randn((3, 4), F64, "cpu", gen), _tril((3,), 4, F64, "cpu", gen))
    b = (randn((4,), F64, "cpu", gen), _tril((), 4, F64, "cpu", gen))
    expected = td.kl_divergence(
        td.MultivariateNormal(a[0], scale_tril=a[1]), td.MultivariateNormal(b[0], scale_tril=b[1])
    )
    fa, fb = MultivariateNormal(a[0], scale_tril=a[1]), MultivariateNormal(b[0], scale_tril=b[1])
    torch.testing.assert_close(td.kl_divergence(fa, fb), expected, **TOL)
    tb = td.MultivariateNormal(b[0], scale_tril=b[1])
    torch.testing.assert_close(td.kl_divergence(fa, tb), expected, **TOL)
    eye = torch.eye(4, dtype=F64)
    std_normal = td.MultivariateNormal(torch.zeros(4, dtype=F64), scale_tril=eye)
    torch.testing.assert_close(fa.kl_to_standard_normal(), td.kl_divergence(fa, std_normal), **TOL)


def test_mvn_expand(gen):
    loc = randn((3, 4), F64, "cpu", gen)
    tril = _tril((), 4, F64, "cpu", gen)
    m = MultivariateNormal(loc, scale_tril=tril, generator=_gen(2), backend="reference")
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
    tril = _tril((2,), 3, F64, "cpu", gen).requires_grad_()

    def fn(m_, l_):
        # gradcheck perturbs the upper triangle too (which rsample never reads): no validation
        d = MultivariateNormal(m_, scale_tril=l_, validate_args=False, generator=_gen(9))
        return d.rsample((2,))

    assert torch.autograd.gradcheck(fn, (loc, tril))
    m = MultivariateNormal(loc, scale_tril=tril, generator=_gen(9))
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
    z = MultivariateNormal(loc, scale_tril=tril, generator=_gen(77)).sample((n,))
    cov = tril @ tril.T
    sd = cov.diagonal().sqrt()
    assert ((z.mean(0) - loc).abs() < 5 * sd / n**0.5).all()
    # Each covariance entry's standard error is at most sqrt(2) * sd_i * sd_j / sqrt(n).
    err = (torch.cov(z.T) - cov).abs()
    assert (err < 5 * 2**0.5 * sd[:, None] * sd[None, :] / n**0.5).all()


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
