"""The cases PyTorch checks its own Normal with, run on fused_reparam.distributions.Normal:
shapes for scalar and tensor parameters, torch's values of every method, validation errors
as torch raises them, constraints, expand, KL and entropy by Monte Carlo. Also torch's
parameter-constraint check on DiagNormal (the event dim of logvar, a -inf logvar)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td
from torch.distributions import constraints
from torch.distributions.exp_family import ExponentialFamily

from _distribution_data import F64, NO_FUSED_BACKEND_WARNING_IGNORED, TOL, seeded_gen
from conftest import randn
from fused_reparam.distributions import DiagNormal, Normal

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED
INF, NAN = math.inf, math.nan


def example_params(gen):
    """Parameter sets as torch's Normal examples pick them: a 5 x 5 batch, a 1-element one,
    near-zero scales, numbers, and a number broadcast against a tensor."""
    return [
        (randn((5, 5), F64, "cpu", gen), randn((5, 5), F64, "cpu", gen).abs() + 0.05),
        (randn((1,), F64, "cpu", gen), randn((1,), F64, "cpu", gen).abs() + 0.05),
        (torch.tensor([1.0, 0.0]), torch.tensor([1e-5, 1e-5])),
        (0.2, 0.6),
        (torch.tensor([0.0, 1.0]), 2.0),
    ]


def pair(loc, scale, **kw):
    """The fused Normal and torch's, from the same parameters."""
    return Normal(loc, scale, **kw), td.Normal(loc, scale, **kw)


def raised(fn):
    """(type, message) of what fn raises."""
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


def test_shapes_with_number_params():
    p = Normal(0, 1, validate_args=True)
    assert p.batch_shape == () and p.event_shape == ()
    assert p.sample().shape == () and p.rsample((3, 2)).shape == (3, 2)
    with pytest.raises(ValueError, match="must be a Tensor"):
        p.log_prob(1.0)
    assert p.log_prob(torch.ones(3, 2)).shape == (3, 2)
    assert p.log_prob(torch.ones(3, 2, 3)).shape == (3, 2, 3)


def test_shapes_with_tensor_params():
    p = Normal(torch.zeros(2), torch.ones(2), validate_args=True)
    assert p.batch_shape == (2,) and p.event_shape == ()
    assert p.sample().shape == (2,) and p.sample((3, 2)).shape == (3, 2, 2)
    assert p.log_prob(torch.ones(3, 2)).shape == (3, 2)
    with pytest.raises(ValueError, match="broadcastable"):
        p.log_prob(torch.ones(3, 2, 3))
    assert p.log_prob(torch.ones(2, 1)).shape == (2, 2)


def test_example_sample_shapes(gen):
    for loc, scale in example_params(gen):
        p, ref = pair(loc, scale)
        assert p.batch_shape == ref.batch_shape
        for shape in [(), (1,), (7,), (2, 3)]:
            assert p.sample(shape).shape == ref.sample(shape).shape
            assert p.rsample(shape).shape == (*shape, *ref.batch_shape)


def test_near_zero_scale_samples_the_mean():
    p = Normal(torch.tensor([1.0, 0.0]), torch.tensor([1e-5, 1e-5]), generator=seeded_gen(1))
    expected = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    torch.testing.assert_close(p.sample((1, 2)), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("loc", "scale", "batch"),
    [((2,), 1.0, (2,)), (0.0, (2,), (2,)), ((2,), (2, 1), (2, 2)), ((1, 2), (2, 1), (2, 2)),
     ((3, 1, 2), (2, 1), (3, 2, 2))],
)  # fmt: skip
def test_valid_parameter_broadcasting(loc, scale, batch):
    make = [torch.ones(a) if isinstance(a, tuple) else a for a in (loc, scale)]
    p = Normal(*make)
    assert p.batch_shape == batch == td.Normal(*make).batch_shape
    assert p.rsample((2,)).shape == (2, *batch)


def test_torch_values_of_every_method(gen):
    for loc, scale in example_params(gen):
        p, ref = pair(loc, scale)
        for name in ("mean", "mode", "stddev", "variance"):
            torch.testing.assert_close(getattr(p, name), getattr(ref, name), rtol=0, atol=0)
        for name in ("entropy", "perplexity"):
            torch.testing.assert_close(getattr(p, name)(), getattr(ref, name)(), rtol=0, atol=0)
        value = ref.loc + ref.scale * randn((3, *ref.batch_shape), ref.loc.dtype, "cpu", gen)
        for name in ("log_prob", "cdf"):
            torch.testing.assert_close(getattr(p, name)(value), getattr(ref, name)(value), **TOL)
        q = torch.rand((3, *ref.batch_shape), generator=gen, dtype=F64).to(ref.loc.dtype)
        torch.testing.assert_close(p.icdf(q), ref.icdf(q), rtol=0, atol=0)


def test_log_prob_is_the_density(gen):
    loc, scale = example_params(gen)[0]
    x = randn((5, 5), F64, "cpu", gen)
    density = torch.exp(-((x - loc) ** 2) / (2 * scale**2)) / torch.sqrt(2 * math.pi * scale**2)
    torch.testing.assert_close(Normal(loc, scale).log_prob(x), density.log(), **TOL)


def test_log_prob_gradcheck(gen):
    loc, scale = example_params(gen)[0]
    x = randn((5, 5), F64, "cpu", gen)
    for args in ((loc, scale), (loc, 1.0), (0.0, scale)):
        tensors = [a.clone().requires_grad_() for a in args if isinstance(a, torch.Tensor)]
        it = iter(tensors)
        fill = [next(it) if isinstance(a, torch.Tensor) else a for a in args]
        assert torch.autograd.gradcheck(lambda *t, f=fill: Normal(*f).log_prob(x), tensors)


def test_cdf_and_icdf_are_inverse_and_cdf_differentiates_to_the_density(gen):
    loc, scale = example_params(gen)[0]
    p = Normal(loc, scale, generator=seeded_gen(3))
    x = p.sample((4,)).requires_grad_()
    cdf = p.cdf(x)
    torch.testing.assert_close(p.icdf(cdf), x.detach(), rtol=1e-7, atol=1e-7)
    (grad,) = torch.autograd.grad(cdf.sum(), x)
    torch.testing.assert_close(grad, p.log_prob(x.detach()).exp(), rtol=1e-9, atol=1e-12)


def test_entropy_as_an_exponential_family(gen):
    loc, scale = example_params(gen)[0]
    p = Normal(loc, scale)
    torch.testing.assert_close(ExponentialFamily.entropy(p), p.entropy(), **TOL)


@pytest.mark.parametrize(
    ("loc", "scale"),
    [([0.0, 1.0], [0.0, 1.0]), ([1.0, 1.0], [-1e-5, -1e-5]), ([NAN, 0.0], [1.0, 1.0]),
     ([0.0, 0.0], [1.0, NAN]), ([0.0], [-INF])],
)  # fmt: skip
def test_bad_parameters_raise_as_torch(loc, scale):
    args = (torch.tensor(loc), torch.tensor(scale))
    got = raised(lambda: Normal(*args, validate_args=True))
    assert got[0] is ValueError
    assert got == raised(lambda: td.Normal(*args, validate_args=True))
    Normal(*args, validate_args=False)  # no check asked for: no error


def test_infinite_scale_is_accepted_as_torch():
    Normal(torch.zeros(1), torch.tensor([INF]), validate_args=True)
    td.Normal(torch.zeros(1), torch.tensor([INF]), validate_args=True)


def test_unbroadcastable_parameters_raise_as_torch():
    args = (torch.zeros(2), torch.ones(3))
    assert raised(lambda: Normal(*args)) == raised(lambda: td.Normal(*args))


def test_bad_values_raise_as_torch():
    p, ref = pair(torch.zeros(2), torch.ones(2), validate_args=True)
    for value in (torch.zeros(3), torch.tensor([0.0, NAN]), torch.zeros(2, 3)):
        for name in ("log_prob", "cdf"):
            fused, torchs = getattr(p, name), getattr(ref, name)
            got = raised(lambda f=fused, v=value: f(v))
            assert got[0] is ValueError and got == raised(lambda f=torchs, v=value: f(v))
    # An infinite value is in the support (real): no error, as for torch.
    value = torch.tensor([[0.0, INF]])
    torch.testing.assert_close(p.log_prob(value), ref.log_prob(value), rtol=0, atol=0)


def test_support_and_arg_constraints_are_torch():
    p = Normal(torch.zeros(2), torch.ones(2))
    assert p.support is constraints.real
    assert Normal.arg_constraints == {"loc": constraints.real, "scale": constraints.positive}
    assert Normal.arg_constraints is td.Normal.arg_constraints


def check_params_satisfy_constraints(dist, named_params):
    """torch's check of arg_constraints: each parameter has the constraint's event dims, its
    remaining dims broadcast with the batch shape, and the constraint holds everywhere."""
    for name, value in named_params.items():
        if not isinstance(value, torch.Tensor):
            value = torch.tensor([value])
        constraint = dist.arg_constraints[name]
        assert value.dim() >= constraint.event_dim
        torch.broadcast_shapes(dist.batch_shape, value.shape[: value.dim() - constraint.event_dim])
        assert constraint.check(value).all(), name


def test_params_satisfy_constraints(gen):
    for loc, scale in example_params(gen):
        check_params_satisfy_constraints(Normal(loc, scale), {"loc": loc, "scale": scale})
    for batch in [(), (3,), (2, 5)]:
        loc = randn((*batch, 4), F64, "cpu", gen)
        logvar = randn((*batch, 4), F64, "cpu", gen)
        d = DiagNormal(loc, logvar)
        check_params_satisfy_constraints(d, {"loc": loc, "logvar": logvar})
        assert d.arg_constraints["logvar"].check(logvar).shape == d.batch_shape


def test_rsample_requires_grad_when_a_param_does(gen):
    loc, scale = example_params(gen)[0]
    assert not Normal(loc, scale).rsample().requires_grad
    for p in (Normal(loc.requires_grad_(), scale), Normal(0.0, scale.requires_grad_())):
        assert p.rsample((2,)).requires_grad


def test_expand_as_torch(gen):
    for loc, scale in example_params(gen):
        p, ref = pair(loc, scale)
        for extra in [(), (2,), (2, 3)]:
            batch = torch.Size(extra) + p.batch_shape
            e, e_ref = p.expand(batch), ref.expand(batch)
            assert type(e) is Normal and e.batch_shape == e_ref.batch_shape == batch
            z = e.sample((4,))
            assert z.shape == (4, *batch)
            torch.testing.assert_close(e.log_prob(z), p.log_prob(z), rtol=0, atol=0)
            torch.testing.assert_close(e.entropy(), ref.entropy().expand(batch), rtol=0, atol=0)


def test_independent_over_the_fused_normal(gen):
    loc, scale = example_params(gen)[0]
    ind = td.Independent(Normal(loc, scale, generator=seeded_gen(5)), 1)
    assert ind.batch_shape == (5,) and ind.event_shape == (5,)
    z = ind.rsample((3,))
    assert z.shape == (3, 5, 5)
    ref = td.Independent(td.Normal(loc, scale), 1)
    torch.testing.assert_close(ind.log_prob(z), ref.log_prob(z), rtol=0, atol=0)
    assert type(ind.expand((2, 5)).base_dist) is Normal


def test_kl_divergence_is_torchs(gen):
    lp, lq = randn((4, 3), F64, "cpu", gen), randn((3,), F64, "cpu", gen)
    sp, sq = randn((4, 3), F64, "cpu", gen).exp(), randn((3,), F64, "cpu", gen).exp()
    expected = td.kl_divergence(td.Normal(lp, sp), td.Normal(lq, sq))
    for p, q in [(Normal(lp, sp), Normal(lq, sq)), (Normal(lp, sp), td.Normal(lq, sq)),
                 (td.Normal(lp, sp), Normal(lq, sq))]:  # fmt: skip
        torch.testing.assert_close(td.kl_divergence(p, q), expected, rtol=0, atol=0)
    assert td.kl_divergence(Normal(0.0, 1.0), Normal(1.0, 2.0)).shape == ()


def test_kl_and_entropy_by_monte_carlo():
    locs, scales = torch.tensor([-2.0, 2.0, -3.0, 3.0]), torch.tensor([1.0, 2.0, 1.0, 2.0])
    p = Normal(locs[:, None], scales[:, None], generator=seeded_gen(0))  # rows vary
    q = Normal(locs[None, :], scales[None, :])  # columns vary
    x = p.sample((100_000,))
    kl_mc = (p.log_prob(x) - q.log_prob(x)).mean(0)
    kl = td.kl_divergence(p, q)
    assert ((kl_mc - kl).abs() / (1 + kl)).max() < 0.1
    entropy_mc = -p.log_prob(x).mean(0)
    torch.testing.assert_close(entropy_mc, p.entropy(), atol=0.02, rtol=0)


def test_diag_normal_rejects_minus_inf_logvar_as_a_zero_scale(gen):
    loc = randn((3, 4), F64, "cpu", gen)
    logvar = randn((3, 4), F64, "cpu", gen)
    logvar[1, 2] = -INF
    with pytest.raises(ValueError, match="logvar"):
        DiagNormal(loc, logvar, validate_args=True)
    scale = torch.exp(0.5 * logvar)  # 0 where logvar is -inf: torch rejects it too
    with pytest.raises(ValueError, match="scale"):
        td.Independent(td.Normal(loc, scale, validate_args=True), 1)
    d = DiagNormal(loc, logvar, validate_args=False)  # no check asked for: no error
    assert d.batch_shape == (3,)
    with pytest.raises(ValueError, match="logvar"):
        DiagNormal(loc, -INF, validate_args=True)  # a number, broadcast


def test_diag_normal_accepts_finite_and_plus_inf_logvar(gen):
    loc = randn((3, 4), F64, "cpu", gen)
    # Finite however small (the scale underflows, logvar itself is fine), +inf as Normal's
    # infinite scale.
    logvar = torch.tensor([-1e4, 0.0, 30.0, INF], dtype=F64).expand(3, 4)
    DiagNormal(loc, logvar, validate_args=True)
    td.Independent(td.Normal(loc, torch.tensor(INF, dtype=F64)), 1, validate_args=True)
    with pytest.raises(ValueError, match="logvar"):
        DiagNormal(loc, torch.full((4,), NAN, dtype=F64), validate_args=True)


def test_diag_normal_logvar_constraint_is_unconstrained_over_the_event_dim(gen):
    c = DiagNormal.arg_constraints["logvar"]
    assert isinstance(c, constraints.independent) and c.event_dim == 1
    assert c.base_constraint is constraints.real
    x = randn((2, 3), F64, "cpu", gen)
    torch.testing.assert_close(td.biject_to(c)(x), x, rtol=0, atol=0)  # the identity
