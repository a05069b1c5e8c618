"""fused_reparam.distributions.Laplace, Gumbel and Logistic: rsample is one sample_diag call
(scale="std", noise="laplace" | "gumbel" | "logistic"). Sampling on every backend against the
op, shapes, gradients, moments and Kolmogorov-Smirnov against the class's own cdf, dtypes,
expand, pickling, Pyro. Their log_prob, cdf, icdf, entropy, moments and validation are in
test_distributions_location_scale_values.py."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import distributions as td

from _distribution_data import F64, NO_FUSED_BACKEND_WARNING_IGNORED, seeded_gen
from _stats import ks_test
from conftest import DEVICE_BACKENDS, DEVICES, randn
from fused_reparam import distributions as frd
from fused_reparam import sample_diag
from fused_reparam.distributions import Gumbel, Laplace, Logistic

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED

# name: (the class, its noise for sample_diag, the torch class it extends or None).
FAMILIES = {
    "Laplace": (Laplace, "laplace", td.Laplace),
    "Gumbel": (Gumbel, "gumbel", td.Gumbel),
    "Logistic": (Logistic, "logistic", None),
}
NAMES = list(FAMILIES)
# Kurtosis (fourth standardized moment) of each family: the standard error of the sample
# variance is var * sqrt((kurtosis - 1) / n).
KURTOSIS = {"Laplace": 6.0, "Gumbel": 5.4, "Logistic": 4.2}
# (loc shape, scale shape): scalars, a shared scale, a scale broadcast on a new dim.
PARAM_SHAPES = [((), ()), ((3,), ()), ((), (4,)), ((2, 3), (3,)), ((2, 1), (1, 3))]
SAMPLE_SHAPES = [(), (1,), (4,), (2, 3)]


def params(loc_shape, scale_shape, gen, device="cpu", dtype=F64):
    loc = randn(loc_shape, dtype, device, gen)
    scale = (0.2 + torch.rand(scale_shape, generator=gen, dtype=F64)).to(dtype).to(device)
    return loc, scale


def draw_op(name, loc, scale, k, seed, device="cpu", backend="auto"):
    """The fused op's draw for the family, from a generator seeded with `seed`."""
    noise = FAMILIES[name][1]
    return sample_diag(loc, scale, scale="std", noise=noise, num_samples=k,
                       generator=seeded_gen(seed, device), backend=backend)  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_classes_are_named_in_the_package(name):
    cls, _, base = FAMILIES[name]
    p = cls(torch.zeros(2), torch.ones(2))
    assert isinstance(p, td.Distribution) and p.has_rsample
    if base is not None:
        assert isinstance(p, base)
    assert cls.__module__ == "fused_reparam.distributions" and cls.__qualname__ == name
    assert name in frd.__all__ and getattr(frd, name) is cls
    assert f":class:`{name}`" in frd.__doc__
    assert repr(p).startswith(f"{name}(")
    assert p.generator is None and p.backend == "auto"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize(("loc_shape", "scale_shape"), PARAM_SHAPES)
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES)
def test_rsample_is_one_sample_diag_call(
    name, device, backend, loc_shape, scale_shape, sample_shape, gen
):
    loc, scale = params(loc_shape, scale_shape, gen, device, torch.float32)
    p = FAMILIES[name][0](loc, scale, generator=seeded_gen(5, device), backend=backend)
    batch = torch.broadcast_shapes(loc_shape, scale_shape)
    assert p.batch_shape == batch and p.event_shape == ()
    z = p.rsample(sample_shape)
    assert z.shape == (*sample_shape, *batch) and z.dtype == torch.float32
    k = math.prod(sample_shape) if sample_shape else None
    ref = draw_op(name, loc, scale, k, 5, device, backend)
    torch.testing.assert_close(z, ref.reshape(z.shape), rtol=0, atol=0)
    # The generator advanced: the next draw is other noise; sample() draws as rsample.
    assert not torch.equal(p.rsample(sample_shape), z)
    q = FAMILIES[name][0](loc, scale, generator=seeded_gen(5, device), backend=backend)
    y = q.sample(sample_shape)
    assert not y.requires_grad
    torch.testing.assert_close(y, z, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_scalar_params_sample_scalars(name):
    p = FAMILIES[name][0](0.2, 0.6, generator=seeded_gen(1))
    assert p.batch_shape == () and p.loc.dtype == torch.get_default_dtype()
    z = p.rsample()
    assert z.shape == ()
    assert torch.equal(z, draw_op(name, torch.tensor(0.2), torch.tensor(0.6), None, 1))
    assert p.rsample((3, 2)).shape == (3, 2) and p.sample((1,)).shape == (1,)


@pytest.mark.parametrize("name", NAMES)
def test_rsample_uses_torch_manual_seed(name, gen):
    loc, scale = params((2, 3), (3,), gen)
    noise = FAMILIES[name][1]
    with torch.random.fork_rng():
        torch.manual_seed(7)
        a = FAMILIES[name][0](loc, scale).rsample((4,))
        torch.manual_seed(7)
        b = sample_diag(loc, scale, scale="std", noise=noise, num_samples=4)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_rsample_gradients(name, device, backend, gen):
    loc, scale = params((3, 2), (2,), gen, device)
    loc.requires_grad_()
    scale.requires_grad_()
    p = FAMILIES[name][0](loc, scale, generator=seeded_gen(3, device), backend=backend)
    z = p.rsample((4,))
    assert z.requires_grad
    g_loc, g_scale = torch.autograd.grad(z.sum(), (loc, scale))
    # dz/dloc = 1 per sample; dz/dscale = eps = (z - loc) / scale, summed over what broadcast.
    torch.testing.assert_close(g_loc, torch.full_like(loc, 4.0), rtol=1e-12, atol=1e-12)
    eps = (z.detach() - loc.detach()) / scale.detach()
    torch.testing.assert_close(g_scale, eps.sum((0, 1)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_rsample_gradcheck(name, gen):
    loc, scale = params((2, 3), (3,), gen)
    loc.requires_grad_()
    scale.requires_grad_()

    def draw(m, s):
        return FAMILIES[name][0](m, s, generator=seeded_gen(13)).rsample((2,))

    assert torch.autograd.gradcheck(draw, (loc, scale))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_moments_and_ks_against_the_own_cdf(name, device, backend):
    # 300k elements: under a second under the Triton interpreter, so no backend is skipped.
    cls = FAMILIES[name][0]
    loc = torch.tensor([0.5, -2.0, 3.0], dtype=F64, device=device)
    scale = torch.tensor([0.1, 1.0, 10.0], dtype=F64, device=device)
    n = 100_000
    p = cls(loc, scale, generator=seeded_gen(2024, device), backend=backend)
    z = p.rsample((n,))
    assert torch.isfinite(z).all()
    mean, var = p.mean, p.variance
    # Within 5 standard errors: of the mean sqrt(var / n), of the variance var * sqrt((kurt
    # - 1) / n).
    assert ((z.mean(0) - mean).abs() < 5 * (var / n).sqrt()).all()
    se_var = var * math.sqrt((KURTOSIS[name] - 1) / n)
    assert ((z.var(0) - var).abs() < 5 * se_var).all()
    for j in range(3):
        one = cls(loc[j].cpu(), scale[j].cpu())
        _, pval = ks_test(z[:, j], one.cdf)
        assert pval > 1e-3, f"KS p-value {pval} for component {j}"
    zc = (z - mean) / var.sqrt()
    assert (zc[:, 0] * zc[:, 1]).mean().abs() < 5 / n**0.5  # independent components


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_dtypes(name, device, dtype, gen):
    loc, scale = params((3, 4), (4,), gen, device, dtype)
    p = FAMILIES[name][0](
        loc.requires_grad_(), scale.requires_grad_(), generator=seeded_gen(4, device)
    )
    z = p.rsample((2,))
    assert z.dtype == dtype and z.shape == (2, 3, 4)
    torch.testing.assert_close(z, draw_op(name, loc, scale, 2, 4, device), rtol=0, atol=0)
    z.sum().backward()
    assert loc.grad.dtype == dtype and scale.grad.dtype == dtype
    assert p.log_prob(z.detach()).dtype == dtype
    assert p.entropy().dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_mixed_dtypes_promote(name, gen):
    loc = randn((3,), torch.float32, "cpu", gen)
    scale = torch.full((3,), 0.5, dtype=F64)
    z = FAMILIES[name][0](loc, scale, generator=seeded_gen(6)).rsample((2,))
    assert z.dtype == F64
    torch.testing.assert_close(z, draw_op(name, loc.double(), scale, 2, 6), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sample_shape", [(0,), (2, 0)])
def test_empty_sample(name, sample_shape, gen):
    loc, scale = params((3,), (3,), gen)
    cls = FAMILIES[name][0]
    z = cls(loc.requires_grad_(), scale.requires_grad_()).rsample(sample_shape)
    assert z.shape == (*sample_shape, 3)
    g_loc, g_scale = torch.autograd.grad(z.sum(), (loc, scale))
    assert not g_loc.any() and not g_scale.any()
    assert cls(torch.zeros(0), torch.ones(0)).rsample((2,)).shape == (2, 0)


@pytest.mark.parametrize("name", NAMES)
def test_expand_keeps_class_generator_and_backend(name, gen):
    cls = FAMILIES[name][0]
    loc, scale = params((3,), (3,), gen)
    g = seeded_gen(8)
    p = cls(loc, scale, validate_args=True, generator=g, backend="reference")
    e = p.expand((2, 3))
    assert type(e) is cls
    assert e.batch_shape == (2, 3) and e.generator is g and e.backend == "reference"
    assert e._validate_args is True
    assert e.loc.data_ptr() == loc.data_ptr()  # views, no copy
    z = e.rsample((4,))
    assert z.shape == (4, 2, 3)
    ref = draw_op(name, loc.expand(2, 3), scale.expand(2, 3), 4, 8, backend="reference")
    torch.testing.assert_close(z, ref, rtol=0, atol=0)
    # The expanded distribution's own methods see the new batch shape.
    assert e.log_prob(z).shape == (4, 2, 3) and e.entropy().shape == (2, 3)
    torch.testing.assert_close(e.log_prob(z), p.log_prob(z), rtol=0, atol=0)
    with pytest.raises(RuntimeError):
        p.expand((2, 4))

    class Sub(cls):
        pass

    s = Sub(torch.zeros(2), torch.ones(2), backend="reference").expand((3, 2))
    assert type(s) is Sub and s.backend == "reference"


@pytest.mark.parametrize("name", NAMES)
def test_pickles_with_its_generator(name, gen):
    cls = FAMILIES[name][0]
    loc, scale = params((2, 3), (3,), gen)
    # Not far in the left tail, where torch's Gumbel.cdf (validated) rejects a cdf of 0.
    x = loc + 0.2 * randn((2, 3), F64, "cpu", gen).clamp(-3, 3)
    plain = cls(loc, scale, generator=seeded_gen(12), backend="cpu")
    expanded = cls(loc, scale[0], generator=seeded_gen(12), backend="cpu").expand((4, 2, 3))
    for p in (plain, expanded):
        q = pickle.loads(pickle.dumps(p))
        assert type(q) is cls and q.backend == "cpu" and q.batch_shape == p.batch_shape
        torch.testing.assert_close(q.loc, p.loc, rtol=0, atol=0)
        # torch's Gumbel unpickles without the transforms' inverses: this one has them.
        for method in ("log_prob", "cdf"):
            got, want = getattr(q, method)(x), getattr(p, method)(x)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        u = torch.full(p.batch_shape, 0.3, dtype=F64)
        torch.testing.assert_close(q.icdf(u), p.icdf(u), rtol=0, atol=0)
        # The generator's state travels with it: both draw the same next sample.
        torch.testing.assert_close(q.rsample((2,)), p.rsample((2,)), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("sample_shape", "error", "match"),
    [((-1,), ValueError, "sizes >= 0"), ((2.0,), TypeError, "sequence of ints"),
     (3, TypeError, "sequence of ints")],
)  # fmt: skip
def test_bad_sample_shape_and_backend_are_clear_errors(name, sample_shape, error, match):
    p = FAMILIES[name][0](torch.zeros(2), torch.ones(2))
    for draw in (p.rsample, p.sample):
        with pytest.raises(error, match=match):
            draw(sample_shape)
    with pytest.raises(ValueError, match="backend"):
        FAMILIES[name][0](torch.zeros(2), torch.ones(2), backend="nope").rsample()


@pytest.mark.parametrize("name", NAMES)
def test_pyro_sample_draws_with_the_fused_op(name, gen):
    pyro = pytest.importorskip("pyro")
    from pyro import poutine
    from pyro.infer.reparam import LocScaleReparam

    cls = FAMILIES[name][0]
    loc, scale = params((2, 3), (3,), gen, dtype=torch.float32)
    d = cls(loc, scale, generator=seeded_gen(7))
    ind = d.to_event(1)
    trace = poutine.trace(lambda: pyro.sample("x", ind)).get_trace()
    site = trace.nodes["x"]
    assert site["fn"] is ind and (ind.batch_shape, ind.event_shape) == ((2,), (3,))
    torch.testing.assert_close(site["value"], draw_op(name, loc, scale, None, 7), rtol=0, atol=0)
    torch.testing.assert_close(ind.log_prob(site["value"]), d.log_prob(site["value"]).sum(-1))

    def model():
        with pyro.plate("p", 4):
            return pyro.sample("y", cls(loc[0], scale, generator=seeded_gen(9)).to_event(1))

    # In a plate (expand_by: the same class) and through LocScaleReparam, still the fused op.
    value = poutine.trace(model).get_trace().nodes["y"]["value"]
    ref = draw_op(name, loc[0].expand(4, 3), scale.expand(4, 3), None, 9)
    torch.testing.assert_close(value, ref, rtol=0, atol=0)
    keep = LocScaleReparam(0.0, shape_params=("generator", "backend"))
    trace = poutine.trace(poutine.reparam(model, {"y": keep})).get_trace()
    assert type(trace.nodes["y_decentered"]["fn"].base_dist) is cls
    want = loc[0] + scale * draw_op(name, torch.zeros(4, 3), torch.ones(4, 3), None, 9)
    torch.testing.assert_close(trace.nodes["y"]["value"], want)
