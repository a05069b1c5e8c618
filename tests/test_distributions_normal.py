"""fused_reparam.distributions.Normal: a torch Normal whose rsample is one sample_diag call
(scale="std"). Sampling on every backend, gradients, moments, dtypes, expand, pickling.
torch's own Normal cases applied to it are in test_distributions_normal_torch_cases.py."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import distributions as td

from _distribution_data import F64, NO_FUSED_BACKEND_WARNING_IGNORED, TOL, seeded_gen
from conftest import DEVICE_BACKENDS, DEVICES, randn
from fused_reparam import distributions as frd
from fused_reparam import sample_diag
from fused_reparam.distributions import Normal

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED

# (loc shape, scale shape): scalars, a shared scale, a scale broadcast on a new dim.
PARAM_SHAPES = [((), ()), ((3,), ()), ((), (4,)), ((2, 3), (3,)), ((2, 1), (1, 3))]
SAMPLE_SHAPES = [(), (1,), (4,), (2, 3)]


def params(loc_shape, scale_shape, gen, device="cpu", dtype=F64):
    loc = randn(loc_shape, dtype, device, gen)
    scale = (0.2 + torch.rand(scale_shape, generator=gen, dtype=F64)).to(dtype).to(device)
    return loc, scale


def test_normal_is_torch_normal_named_in_the_package():
    p = Normal(torch.zeros(2), torch.ones(2))
    assert isinstance(p, td.Normal) and isinstance(p, td.ExponentialFamily)
    assert p.has_rsample
    assert Normal.__module__ == "fused_reparam.distributions"
    assert Normal.__qualname__ == "Normal"
    assert "Normal" in frd.__all__ and "LogNormal" in frd.__all__
    assert repr(p).startswith("Normal(")


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize(("loc_shape", "scale_shape"), PARAM_SHAPES)
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES)
def test_normal_rsample_is_one_sample_diag_call(
    device, backend, loc_shape, scale_shape, sample_shape, gen
):
    loc, scale = params(loc_shape, scale_shape, gen, device, torch.float32)
    p = Normal(loc, scale, generator=seeded_gen(5, device), backend=backend)
    batch = torch.broadcast_shapes(loc_shape, scale_shape)
    assert p.batch_shape == batch and p.event_shape == ()
    z = p.rsample(sample_shape)
    assert z.shape == (*sample_shape, *batch) and z.dtype == torch.float32
    k = math.prod(sample_shape) if sample_shape else None
    ref = sample_diag(
        loc, scale, scale="std", num_samples=k, generator=seeded_gen(5, device), backend=backend
    )
    torch.testing.assert_close(z, ref.reshape(z.shape), rtol=0, atol=0)
    # The generator advanced: the next draw is other noise; sample() draws as rsample.
    assert not torch.equal(p.rsample(sample_shape), z)
    q = Normal(loc, scale, generator=seeded_gen(5, device), backend=backend)
    torch.testing.assert_close(q.sample(sample_shape), z, rtol=0, atol=0)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_normal_rsample_is_loc_plus_scale_times_eps(device, backend, gen):
    # The sample is loc + scale * eps for the eps sample_diag draws from the same stream.
    loc, scale = params((3, 4), (4,), gen, device, torch.float32)
    z = Normal(loc, scale, generator=seeded_gen(9, device), backend=backend).rsample((2,))
    zero, one = torch.zeros_like(loc), torch.ones_like(loc)
    eps = sample_diag(
        zero, one, scale="std", num_samples=2, generator=seeded_gen(9, device), backend=backend
    )
    torch.testing.assert_close(z, loc + scale * eps, rtol=1e-6, atol=1e-6)
    again = sample_diag(loc, scale, scale="std", num_samples=2, eps=eps, backend=backend)
    torch.testing.assert_close(z, again, rtol=1e-6, atol=1e-6)


def test_normal_scalar_params_sample_scalars(gen):
    p = Normal(0.2, 0.6, generator=seeded_gen(1))
    assert p.batch_shape == () and p.loc.dtype == torch.get_default_dtype()
    z = p.rsample()
    assert z.shape == ()
    ref = sample_diag(torch.tensor(0.2), torch.tensor(0.6), scale="std", generator=seeded_gen(1))
    assert torch.equal(z, ref)
    assert p.rsample((3, 2)).shape == (3, 2)
    assert p.sample((1,)).shape == (1,)


def test_normal_rsample_uses_torch_manual_seed(gen):
    loc, scale = params((2, 3), (3,), gen)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        a = Normal(loc, scale).rsample((4,))
        torch.manual_seed(7)
        b = sample_diag(loc, scale, scale="std", num_samples=4)
    assert torch.equal(a, b)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_normal_rsample_gradients(device, backend, gen):
    loc, scale = params((3, 2), (2,), gen, device)
    loc.requires_grad_()
    scale.requires_grad_()
    z = Normal(loc, scale, generator=seeded_gen(3, device), backend=backend).rsample((4,))
    assert z.requires_grad
    g_loc, g_scale = torch.autograd.grad(z.sum(), (loc, scale))
    # dz/dloc = 1 per sample; dz/dscale = eps = (z - loc) / scale, summed over what broadcast.
    torch.testing.assert_close(g_loc, torch.full_like(loc, 4.0), **TOL)
    eps = (z.detach() - loc.detach()) / scale.detach()
    torch.testing.assert_close(g_scale, eps.sum((0, 1)), rtol=1e-10, atol=1e-10)


def test_normal_rsample_gradcheck(gen):
    loc, scale = params((2, 3), (3,), gen)
    loc.requires_grad_()
    scale.requires_grad_()

    def draw(m, s):
        return Normal(m, s, generator=seeded_gen(13)).rsample((2,))

    assert torch.autograd.gradcheck(draw, (loc, scale))


def test_normal_sample_has_no_grad(gen):
    loc, scale = params((3,), (3,), gen)
    p = Normal(loc.requires_grad_(), scale.requires_grad_())
    assert not p.sample((2,)).requires_grad
    assert p.rsample((2,)).requires_grad


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_normal_rsample_moments(device, backend):
    # 300k elements: half a second under the Triton interpreter, so no backend is skipped.
    loc = torch.tensor([0.5, -2.0, 3.0], dtype=F64, device=device)
    scale = torch.tensor([0.1, 1.0, 10.0], dtype=F64, device=device)
    n = 100_000
    z = Normal(loc, scale, generator=seeded_gen(2024, device), backend=backend).rsample((n,))
    # Within 5 standard errors: of the mean sigma / sqrt(n), of the std about sigma / sqrt(2n).
    assert ((z.mean(0) - loc).abs() < 5 * scale / n**0.5).all()
    assert ((z.std(0) - scale).abs() < 5 * scale / (2 * n) ** 0.5).all()
    zc = (z - loc) / scale
    assert (zc[:, 0] * zc[:, 1]).mean().abs() < 5 / n**0.5  # independent components


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_normal_half_dtypes(device, dtype, gen):
    loc, scale = params((3, 4), (4,), gen, device, dtype)
    p = Normal(loc.requires_grad_(), scale.requires_grad_(), generator=seeded_gen(4, device))
    z = p.rsample((2,))
    assert z.dtype == dtype and z.shape == (2, 3, 4)
    ref = sample_diag(loc, scale, scale="std", num_samples=2, generator=seeded_gen(4, device))
    torch.testing.assert_close(z, ref, rtol=0, atol=0)
    z.sum().backward()
    assert loc.grad.dtype == dtype and scale.grad.dtype == dtype
    # torch's own methods still run in the half type.
    assert p.log_prob(z.detach()).dtype == dtype
    assert p.entropy().dtype == dtype


def test_normal_mixed_dtypes_promote_as_torch(gen):
    loc = randn((3,), torch.float32, "cpu", gen)
    scale = torch.full((3,), 0.5, dtype=F64)
    z = Normal(loc, scale, generator=seeded_gen(6)).rsample((2,))
    assert z.dtype == td.Normal(loc, scale).rsample().dtype == F64
    ref = sample_diag(loc.double(), scale, scale="std", num_samples=2, generator=seeded_gen(6))
    torch.testing.assert_close(z, ref, rtol=0, atol=0)


@pytest.mark.parametrize("sample_shape", [(0,), (2, 0)])
def test_normal_empty_sample(sample_shape, gen):
    loc, scale = params((3,), (3,), gen)
    p = Normal(loc.requires_grad_(), scale.requires_grad_())
    z = p.rsample(sample_shape)
    assert z.shape == (*sample_shape, 3)
    g_loc, g_scale = torch.autograd.grad(z.sum(), (loc, scale))
    assert not g_loc.any() and not g_scale.any()
    assert Normal(torch.zeros(0), torch.ones(0)).rsample((2,)).shape == (2, 0)


def test_normal_expand_keeps_class_generator_and_backend(gen):
    loc, scale = params((3,), (3,), gen)
    g = seeded_gen(8)
    p = Normal(loc, scale, validate_args=True, generator=g, backend="reference")
    e = p.expand((2, 3))
    assert type(e) is Normal
    assert e.batch_shape == (2, 3) and e.generator is g and e.backend == "reference"
    assert e._validate_args is True
    assert e.loc.data_ptr() == loc.data_ptr()  # views, no copy
    z = e.rsample((4,))
    assert z.shape == (4, 2, 3)
    ref = sample_diag(
        *(t.expand(2, 3) for t in (loc, scale)), scale="std", num_samples=4,
        generator=seeded_gen(8), backend="reference",
    )  # fmt: skip
    torch.testing.assert_close(z, ref, rtol=0, atol=0)
    with pytest.raises(RuntimeError):
        p.expand((2, 4))


def test_normal_subclass_expand_keeps_the_subclass():
    class Sub(Normal):
        pass

    e = Sub(torch.zeros(2), torch.ones(2), backend="reference").expand((3, 2))
    assert type(e) is Sub and e.backend == "reference"


def test_normal_pickles_with_its_generator(gen):
    loc, scale = params((2, 3), (3,), gen)
    p = Normal(loc, scale, generator=seeded_gen(12), backend="cpu")
    q = pickle.loads(pickle.dumps(p))
    assert type(q) is Normal and q.backend == "cpu"
    torch.testing.assert_close(q.loc, p.loc, rtol=0, atol=0)
    # The generator's state travels with it: both draw the same next sample.
    torch.testing.assert_close(q.rsample((2,)), p.rsample((2,)), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("sample_shape", "error", "match"),
    [((-1,), ValueError, "sizes >= 0"), ((2.0,), TypeError, "sequence of ints"),
     (3, TypeError, "sequence of ints")],
)  # fmt: skip
def test_normal_bad_sample_shape_is_a_clear_error(sample_shape, error, match):
    p = Normal(torch.zeros(2), torch.ones(2))
    for draw in (p.rsample, p.sample):
        with pytest.raises(error, match=match):
            draw(sample_shape)


def test_normal_bad_backend_is_the_ops_error():
    p = Normal(torch.zeros(2), torch.ones(2), backend="nope")
    with pytest.raises(ValueError, match="backend"):
        p.rsample()
