"""fused_reparam.distributions.Laplace, Gumbel and Logistic: what is not sampling. Laplace and
Gumbel keep torch's log_prob, cdf, icdf, entropy, moments and kl_divergence; Logistic's are
checked against closed forms, a torch-built logistic (a transformed uniform), the
derivative of its cdf and numerical integration of its density; argument and value
validation as torch's distributions do it. Sampling is in test_distributions_location_scale.py."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import distributions as td

from _distribution_data import F64, NO_FUSED_BACKEND_WARNING_IGNORED
from conftest import randn
from fused_reparam.distributions import Gumbel, Laplace, Logistic

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED

TOL = {"rtol": 1e-12, "atol": 1e-12}
CLASSES = {"Laplace": Laplace, "Gumbel": Gumbel, "Logistic": Logistic}
EXTENDED = {"Laplace": (Laplace, td.Laplace), "Gumbel": (Gumbel, td.Gumbel)}
METHODS = ["log_prob", "cdf", "icdf", "entropy", "mean", "mode", "variance", "stddev"]


def params(batch, gen, dtype=F64):
    loc = randn(batch, dtype, "cpu", gen)
    scale = (0.2 + 2 * torch.rand(batch, generator=gen, dtype=F64)).to(dtype)
    return loc, scale


def evaluate(p, method, x, u):
    """``p``'s ``method`` at values ``x`` (at probabilities ``u`` for icdf), or the property."""
    if method in ("log_prob", "cdf"):
        return getattr(p, method)(x)
    if method == "icdf":
        return p.icdf(u)
    if method == "entropy":
        return p.entropy()
    return getattr(p, method)


@pytest.mark.parametrize("name", list(EXTENDED))
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_laplace_and_gumbel_values_are_torchs(name, method, batch, gen):
    cls, base = EXTENDED[name]
    loc, scale = params(batch, gen)
    x = randn((5, *batch), F64, "cpu", gen, scale=3.0)
    u = torch.rand((5, *batch), generator=gen, dtype=F64)
    # Unvalidated: torch's Gumbel.cdf rejects values whose cdf underflows to 0 (outside its
    # uniform's support); here both compute it.
    got = evaluate(cls(loc, scale, validate_args=False), method, x, u)
    want = evaluate(base(loc, scale, validate_args=False), method, x, u)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # Nothing but sampling and expand is overridden.
    if method in ("log_prob", "cdf", "icdf", "entropy"):
        assert getattr(cls, method) is getattr(base, method)


@pytest.mark.parametrize("name", list(EXTENDED))
def test_laplace_and_gumbel_kl_and_structure_are_torchs(name, gen):
    cls, base = EXTENDED[name]
    loc, scale = params((3,), gen)
    p, q = cls(loc, scale), cls(loc + 1.0, 2.0 * scale)
    want = td.kl_divergence(base(loc, scale), base(loc + 1.0, 2.0 * scale))
    torch.testing.assert_close(td.kl_divergence(p, q), want, rtol=0, atol=0)
    torch.testing.assert_close(td.kl_divergence(p, base(loc + 1.0, 2 * scale)), want, **TOL)
    assert cls.arg_constraints is base.arg_constraints and cls.support is base.support
    if name == "Gumbel":
        # A TransformedDistribution of a uniform in torch; kept, though rsample skips it.
        assert isinstance(p, td.TransformedDistribution) and isinstance(p.base_dist, td.Uniform)
        assert len(p.transforms) == 4 and p.has_rsample


def test_logistic_is_a_scalar_distribution_with_rsample():
    p = Logistic(torch.zeros(2, 3), torch.ones(3))
    assert isinstance(p, td.Distribution) and p.has_rsample
    assert p.batch_shape == (2, 3) and p.event_shape == ()
    assert p.support is td.constraints.real
    assert Logistic.arg_constraints == {
        "loc": td.constraints.real,
        "scale": td.constraints.positive,
    }
    q = Logistic(0.5, 2.0)
    assert q.batch_shape == () and q.loc.dtype == torch.get_default_dtype()
    assert float(q.log_prob(torch.tensor(0.5))) == pytest.approx(-math.log(8.0), rel=1e-6)


@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_logistic_closed_forms(batch, gen):
    loc, scale = params(batch, gen)
    p = Logistic(loc, scale)
    x = randn((5, *batch), F64, "cpu", gen, scale=3.0)
    y = (x - loc) / scale
    density = torch.exp(-y) / (scale * (1 + torch.exp(-y)) ** 2)
    torch.testing.assert_close(p.log_prob(x), density.log(), **TOL)
    torch.testing.assert_close(p.cdf(x), 1 / (1 + torch.exp(-y)), **TOL)
    u = torch.rand((5, *batch), generator=gen, dtype=F64)
    torch.testing.assert_close(p.icdf(u), loc + scale * torch.log(u / (1 - u)), **TOL)
    torch.testing.assert_close(p.cdf(p.icdf(u)), u, **TOL)
    torch.testing.assert_close(p.mean, loc, rtol=0, atol=0)
    torch.testing.assert_close(p.mode, loc, rtol=0, atol=0)
    torch.testing.assert_close(p.variance, math.pi**2 * scale**2 / 3, **TOL)
    torch.testing.assert_close(p.stddev, math.pi * scale / math.sqrt(3), **TOL)
    torch.testing.assert_close(p.entropy(), scale.log() + 2, **TOL)
    assert p.entropy().shape == batch


def test_logistic_matches_a_torch_built_logistic(gen):
    # logit of a uniform, then loc + scale * .: the logistic distribution, made of torch parts.
    loc, scale = params((2, 3), gen)
    built = td.TransformedDistribution(
        td.Uniform(torch.zeros(2, 3, dtype=F64), torch.ones(2, 3, dtype=F64)),
        [td.SigmoidTransform().inv, td.AffineTransform(loc, scale)],
    )
    p = Logistic(loc, scale)
    # Within 8 scales of loc: further out, the built one's sigmoid rounds to 0 or 1.
    x = loc + scale * randn((4, 2, 3), F64, "cpu", gen, scale=3.0).clamp(-8, 8)
    torch.testing.assert_close(p.log_prob(x), built.log_prob(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(p.cdf(x), built.cdf(x), rtol=1e-10, atol=1e-10)
    u = torch.rand((4, 2, 3), generator=gen, dtype=F64)
    torch.testing.assert_close(p.icdf(u), built.icdf(u), rtol=1e-10, atol=1e-10)


def test_logistic_density_is_the_cdfs_derivative_and_integrates(gen):
    loc, scale = torch.tensor([0.3, -1.0], dtype=F64), torch.tensor([0.5, 2.0], dtype=F64)
    p = Logistic(loc, scale)
    x = randn((7, 2), F64, "cpu", gen, scale=4.0).requires_grad_()
    (dcdf,) = torch.autograd.grad(p.cdf(x).sum(), x)
    torch.testing.assert_close(dcdf, p.log_prob(x.detach()).exp(), **TOL)
    # Trapezoid rule over loc +- 60 scale (the tails beyond hold e^-60), 200k points.
    t = torch.linspace(-60, 60, 200_001, dtype=F64).unsqueeze(-1) * scale + loc
    dens = p.log_prob(t).exp()
    total = torch.trapezoid(dens, t, dim=0)
    mean = torch.trapezoid(t * dens, t, dim=0)
    var = torch.trapezoid((t - loc) ** 2 * dens, t, dim=0)
    entropy = -torch.trapezoid(dens * p.log_prob(t), t, dim=0)
    torch.testing.assert_close(total, torch.ones(2, dtype=F64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(mean, p.mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(var, p.variance, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(entropy, p.entropy(), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_logistic_log_prob_is_accurate_in_the_tails(dtype):
    p = Logistic(torch.tensor(1.0, dtype=dtype), torch.tensor(2.0, dtype=dtype))
    y = torch.tensor([-1e4, -200.0, -40.0, -5.0, 0.0, 5.0, 40.0, 200.0, 1e4], dtype=F64)
    x = (1.0 + 2.0 * y).to(dtype)
    # log p = -|y| - 2 log1p(exp(-|y|)) - log 2, in float64.
    want = -y.abs() - 2 * torch.log1p(torch.exp(-y.abs())) - math.log(2.0)
    got = p.log_prob(x)
    assert got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    assert torch.equal(p.log_prob(x), p.log_prob(2 * 1.0 - x))  # even around loc
    assert p.icdf(torch.tensor([0.0, 1.0], dtype=dtype)).tolist() == [-math.inf, math.inf]


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("bad_scale", [0.0, -1.0, math.nan])
def test_scale_must_be_positive(name, bad_scale):
    cls = CLASSES[name]
    scale = torch.tensor([1.0, bad_scale])
    with pytest.raises(ValueError, match="scale"):
        cls(torch.zeros(2), scale, validate_args=True)
    with pytest.raises(ValueError, match="scale"):
        cls(0.0, bad_scale, validate_args=True)
    cls(torch.zeros(2), scale, validate_args=False)  # not checked when validation is off


@pytest.mark.parametrize("name", list(CLASSES))
def test_loc_and_values_are_validated(name):
    cls = CLASSES[name]
    with pytest.raises(ValueError, match="loc"):
        cls(torch.tensor([0.0, math.nan]), torch.ones(2), validate_args=True)
    p = cls(torch.zeros(2), torch.ones(2), validate_args=True)
    for method in (p.log_prob, p.cdf):
        with pytest.raises(ValueError, match="support"):
            method(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="shape"):
        p.log_prob(torch.zeros(3))
    # torch's Gumbel.cdf (TransformedDistribution's) checks values after the transforms,
    # whose broadcasting fails first.
    with pytest.raises(RuntimeError if name == "Gumbel" else ValueError, match=r"size|shape"):
        p.cdf(torch.zeros(3))
    # Validation follows torch's global switch by default.
    previous = td.Distribution._validate_args
    try:
        td.Distribution.set_default_validate_args(False)
        assert not cls(torch.zeros(2), -torch.ones(2))._validate_args
        td.Distribution.set_default_validate_args(True)
        with pytest.raises(ValueError, match="scale"):
            cls(torch.zeros(2), -torch.ones(2))
    finally:
        td.Distribution.set_default_validate_args(previous)


def test_logistic_expand_is_views_with_validation_kept(gen):
    loc, scale = params((3,), gen)
    p = Logistic(loc, scale[0], validate_args=True)
    e = p.expand(torch.Size((2, 3)))
    assert type(e) is Logistic and e.batch_shape == (2, 3) and e._validate_args is True
    assert e.loc.data_ptr() == loc.data_ptr() and e.scale.stride() == (0, 0)
    x = randn((2, 3), F64, "cpu", gen)
    torch.testing.assert_close(e.log_prob(x), p.log_prob(x), rtol=0, atol=0)
    torch.testing.assert_close(e.cdf(x), p.cdf(x), rtol=0, atol=0)
    assert e.entropy().shape == e.variance.shape == (2, 3)
    with pytest.raises(ValueError, match="shape"):
        e.log_prob(torch.zeros(4, 3, 1))
    assert p.expand([4, 2, 3]).batch_shape == (4, 2, 3)
    with pytest.raises(RuntimeError):
        p.expand((2, 4))


NO_PYRO_SCRIPT = """
import sys, torch
sys.modules["pyro"] = None  # as if not installed
from fused_reparam.distributions import _pyro, Gumbel, Laplace, Logistic
assert _pyro.PYRO_BASES == ()
for cls in (Gumbel, Laplace, Logistic):
    assert _pyro.PyroCompat not in cls.__mro__ and not hasattr(cls, "to_event"), cls
    assert cls(torch.zeros(2), torch.ones(2)).rsample((3,)).shape == (3, 2)
"""


def test_the_classes_work_without_pyro():
    cmd = [sys.executable, "-c", NO_PYRO_SCRIPT]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
