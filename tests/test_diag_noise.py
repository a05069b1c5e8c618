"""The diagonal op's noise kinds (noise="laplace" | "logistic" | "gumbel") on every backend:
the sample and its gradients equal the reference's (which makes the noise in torch ops from
the same Philox words) for one stream; the noise has its distribution (Kolmogorov-Smirnov,
moments); the backward makes the same noise again; float64 passes gradcheck and
gradgradcheck; the registered ops pass opcheck with the noise argument; bad arguments give
clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from _stats import ks_test
from conftest import DEVICE_BACKENDS, FUSED_DEVICE_BACKENDS, randn, skip_if_interpreted_and_slow
from fused_reparam import _families, sample_diag
from fused_reparam.reference import noise as ref_noise

KINDS = ["laplace", "logistic", "gumbel"]
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (6e-2, 6e-2),
}
SEED, OFFSET = 99, 7
EULER_GAMMA = 0.5772156649015329

# Standard forms: (CDF of a float64 tensor, mean, variance).
LAWS = {
    "laplace": (
        lambda x: torch.where(x < 0, 0.5 * torch.exp(x), 1 - 0.5 * torch.exp(-x)),
        0.0,
        2.0,
    ),
    "logistic": (torch.sigmoid, 0.0, math.pi**2 / 3),
    "gumbel": (lambda x: torch.exp(-torch.exp(-x)), EULER_GAMMA, math.pi**2 / 6),
}


@pytest.mark.parametrize("scale", ["logvar", "std"])
@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
@pytest.mark.parametrize("noise", KINDS)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_values_and_gradients_match_the_reference(device, backend, noise, dtype, scale, gen):
    if backend == "triton" and device == "cpu" and dtype in (torch.float16, torch.bfloat16):
        pytest.skip("the float32 and float64 rows cover the interpreted Triton kernels")
    atol, rtol = TOLERANCES[dtype]
    mu = randn((3, 1, 11), dtype, device, gen)
    s = randn((5, 11), torch.float64, "cpu", gen, scale=0.5)
    s = (s.abs() + 0.2 if scale == "std" else s).to(dtype).to(device)
    results = []
    for which in (backend, "reference"):
        args = [t.clone().requires_grad_() for t in (mu, s)]
        z = sample_diag(*args, scale=scale, noise=noise, seed=SEED, offset=OFFSET, backend=which)
        results.append((z, *torch.autograd.grad(z, args, torch.ones_like(z))))
    for got, want in zip(*results, strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        tol = float(want.abs().max()) or 1.0  # half-type sums: relative to the largest
        torch.testing.assert_close(got, want, atol=atol * tol, rtol=rtol)


@pytest.mark.parametrize("noise", KINDS)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_noise_has_its_distribution(device, backend, noise):
    n = 1 << 18
    zeros = torch.zeros(n, device=device)
    ones = torch.ones(n, device=device)
    x = sample_diag(zeros, ones, scale="std", noise=noise, seed=2024, backend=backend)
    x = x.double().cpu()
    assert torch.isfinite(x).all()
    cdf, mean, var = LAWS[noise]
    _, p = ks_test(x, cdf)
    assert p > 1e-3, f"KS p-value {p}"
    se = math.sqrt(var / n)
    assert abs(x.mean().item() - mean) < 5 * se
    assert abs(x.var().item() / var - 1) < 0.05
    # Each of the four words of a Philox call gives its element alone: no lane differs.
    for j in range(4):
        assert ks_test(x[j::4], cdf)[1] > 1e-4


@pytest.mark.parametrize("noise", KINDS)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_backward_makes_the_same_noise(device, backend, noise):
    """With mu = s = 0 (logvar scale: sigma = 1) z is the noise itself, and the backward's
    grad_s = 0.5 * dz * sigma * eps is made from the noise drawn again."""
    s = torch.zeros(4099, device=device, requires_grad=True)
    z = sample_diag(torch.zeros(4099, device=device), s, noise=noise, backend=backend)
    (g,) = torch.autograd.grad(z.sum(), s)
    torch.testing.assert_close(g, 0.5 * z.detach(), rtol=1e-6, atol=1e-6)
    want = ref_noise.stream_noise(4099, SEED, 0, KINDS.index(noise) + 1, torch.float32, device)
    got = sample_diag(torch.zeros(4099, device=device), torch.zeros(4099, device=device),
                      noise=noise, seed=SEED, backend=backend)  # fmt: skip
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("noise", KINDS)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_gradcheck_and_gradgradcheck(device, backend, noise, gen):
    skip_if_interpreted_and_slow(device, backend, "test_values_and_gradients_match_the_reference")
    mu = randn((2, 5), torch.float64, device, gen).requires_grad_()
    s = randn((2, 5), torch.float64, device, gen).requires_grad_()

    def f(m, x):
        return sample_diag(m, x, scale="softplus", noise=noise, seed=SEED, backend=backend)

    assert torch.autograd.gradcheck(f, (mu, s))
    assert torch.autograd.gradgradcheck(f, (mu, s))


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_opcheck_with_the_noise_argument(device, backend, gen):
    prefix = _families.BACKEND_PREFIX[backend]
    fwd = getattr(torch.ops.fused_reparam, prefix + "diag_rsample").default
    bwd = getattr(torch.ops.fused_reparam, prefix + "diag_rsample_backward").default
    mu = randn((3, 7), torch.float32, device, gen)
    s = randn((3, 7), torch.float32, device, gen)
    so = torch.tensor([SEED, OFFSET], device=device)
    torch.library.opcheck(fwd, (mu, s.requires_grad_(), 0, None, so, None, 0.0, 3))
    g = randn((3, 7), torch.float32, device, gen)
    torch.library.opcheck(bwd, (g, s.detach(), None, so, False, 3, 0.0, 1))


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_an_explicit_eps_is_used_as_given_whatever_the_noise(device, backend, kind, gen):
    """With eps given, no noise is drawn: every noise kind gives z = mu + sigma * eps and the
    same gradients as the normal's."""
    mu = randn((4, 9), torch.float32, device, gen).requires_grad_()
    s = randn((4, 9), torch.float32, device, gen, scale=0.5).requires_grad_()
    eps = randn((4, 9), torch.float32, device, gen).requires_grad_()
    outs = []
    for noise in ("normal", kind):
        z = sample_diag(mu, s, scale="softplus", noise=noise, eps=eps, backend=backend)
        outs.append((z, *torch.autograd.grad(z.square().sum(), (mu, s, eps))))
    for got, want in zip(outs[1], outs[0], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    expected = mu + torch.nn.functional.softplus(s) * eps
    torch.testing.assert_close(outs[0][0], expected, rtol=1e-6, atol=1e-6)


def test_bad_noise_arguments_are_named():
    mu = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="sample_diag: noise must be one of 'normal', "):
        sample_diag(mu, mu, noise="cauchy")
    with pytest.raises(ValueError, match="return_stats=True computes the Gaussian's KL"):
        sample_diag(mu, mu, noise="laplace", return_stats=True)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_the_registered_ops_check_the_noise_argument(device, backend):
    prefix = _families.BACKEND_PREFIX[backend]
    fwd = getattr(torch.ops.fused_reparam, prefix + "diag_rsample").default
    bwd = getattr(torch.ops.fused_reparam, prefix + "diag_rsample_backward").default
    mu = torch.zeros(3, device=device)
    so = torch.tensor([1, 2], device=device)
    with pytest.raises(RuntimeError, match=r"diag_rsample: noise must be 0 \(normal\)"):
        fwd(mu, mu, 0, None, None, None, 0.0, 4)
    with pytest.raises(RuntimeError, match=r"diag_rsample_backward: noise must be 0 \(normal\)"):
        bwd(mu, mu, None, so, False, 0, 0.0, -1)


def test_reference_noise_is_finite_at_the_extreme_words():
    """Words 0 and 2^32 - 1 give u and u' at the ends of (0, 1]: every kind stays finite, and
    equals its inverse CDF at u (computed in float64 from the exact u)."""
    words = torch.tensor([[0, 1, 2**31 - 1, 2**31], [2**31 + 1, 2**32 - 129, 2**32 - 2,
                                                     2**32 - 1]])  # fmt: skip
    u = (words.double() + 0.5) * 2.0**-32
    inverse = {
        1: torch.where(u <= 0.5, torch.log(2 * u), -torch.log(2 - 2 * u)),
        2: torch.log(u / (1 - u)),
        3: -torch.log(-torch.log(u)),
    }
    for kind, want in inverse.items():
        for dtype in (torch.float32, torch.float64):
            got = ref_noise.noise_from_words(words, kind, dtype)
            assert torch.isfinite(got).all()
            if dtype == torch.float64:
                torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
