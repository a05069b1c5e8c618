"""The diagonal op's scale parametrizations (scale="logvar" | "log_std" | "std" | "softplus",
min_scale) on every backend: the sample, its extras and every gradient equal the reference's
(which computes sigma in torch ops) for the same stream, with broadcast inputs of odd sizes;
float64 passes gradcheck and gradgradcheck; the registered ops pass opcheck with the scale
arguments; the softplus scale is finite and exact where softplus(s) underflows or s is large,
and within 3 ulp in float32;
bad scale arguments give clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import FUSED_DEVICE_BACKENDS, randn, skip_if_interpreted_and_slow
from fused_reparam import _families, _scales, sample_diag
from fused_reparam.reference import scale as ref_scale

SCALES = ref_scale.SCALES
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (6e-2, 6e-2),
}
SEED, OFFSET = 77, 3


def _s(scale: str, shape, dtype, device, gen) -> torch.Tensor:
    """A scale input of `shape` in the range each scale is used in (std: positive)."""
    x = randn(shape, torch.float64, "cpu", gen, scale=0.5)
    if scale == "std":
        x = 0.3 + x.abs()
    return x.to(dtype).to(device)


def _compare(got, want, atol, rtol):
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        tol = float(w.abs().max()) or 1.0  # half-type sums: relative to the largest
        torch.testing.assert_close(g, w, atol=atol * tol, rtol=rtol)


@pytest.mark.parametrize("min_scale", [0.0, 0.05])
@pytest.mark.parametrize("stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize("dtype", list(TOLERANCES), ids=str)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_values_and_gradients_match_the_reference(
    device, backend, scale, dtype, stats, min_scale, gen
):
    if backend == "triton" and device == "cpu" and dtype in (torch.float16, torch.bfloat16):
        pytest.skip("the float32 and float64 rows cover the interpreted Triton kernels")
    atol, rtol = TOLERANCES[dtype]
    mu = randn((3, 1, 13), dtype, device, gen)
    s = _s(scale, (5, 13), dtype, device, gen)
    results = []
    for which in (backend, "reference"):
        args = [t.clone().requires_grad_() for t in (mu, s)]
        out = sample_diag(*args, scale=scale, min_scale=min_scale, seed=SEED, offset=OFFSET,
                          backend=which, return_stats=stats)  # fmt: skip
        out = tuple(out) if stats else (out,)
        ups = [torch.ones_like(t) * (1 + i) for i, t in enumerate(out)]
        results.append((*out, *torch.autograd.grad(out, args, ups)))
    _compare(*results, atol, rtol)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_explicit_eps_gets_the_references_gradient(device, backend, scale, gen):
    mu = randn((4, 6), torch.float64, device, gen)
    s = _s(scale, (6,), torch.float64, device, gen)
    eps = randn((4, 6), torch.float64, device, gen)
    results = []
    for which in (backend, "reference"):
        args = [t.clone().requires_grad_() for t in (mu, s, eps)]
        out = sample_diag(args[0], args[1], eps=args[2], scale=scale, min_scale=0.1,
                          backend=which, return_stats=True)  # fmt: skip
        loss = out.z.square().sum() + 2 * out.kl.sum() + 3 * out.log_q.sum()
        results.append(torch.autograd.grad(loss, args))
    _compare(*results, 1e-10, 1e-10)


@pytest.mark.parametrize("min_scale", [0.0, 0.2])
@pytest.mark.parametrize("stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_gradcheck_and_gradgradcheck(device, backend, scale, stats, min_scale, gen):
    skip_if_interpreted_and_slow(device, backend, "test_values_and_gradients_match_the_reference")
    mu = randn((2, 5), torch.float64, device, gen).requires_grad_()
    s = _s(scale, (2, 5), torch.float64, device, gen).requires_grad_()

    def f(m, x):
        out = sample_diag(m, x, scale=scale, min_scale=min_scale, seed=SEED, backend=backend,
                          return_stats=stats)  # fmt: skip
        return tuple(out) if stats else out

    assert torch.autograd.gradcheck(f, (mu, s))
    assert torch.autograd.gradgradcheck(f, (mu, s))


@pytest.mark.parametrize("stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_opcheck_with_the_scale_arguments(device, backend, stats, gen):
    f = _families.FAMILIES["diag"]
    prefix = _families.BACKEND_PREFIX[backend]
    fwd = getattr(torch.ops.fused_reparam, prefix + f.op(stats)).default
    bwd = getattr(torch.ops.fused_reparam, prefix + f.op(stats) + "_backward").default
    mu = randn((3, 7), torch.float32, device, gen)
    s = _s("softplus", (3, 7), torch.float32, device, gen)
    so = torch.tensor([SEED, OFFSET], device=device)
    torch.library.opcheck(fwd, (mu, s.requires_grad_(), 3, None, so, None, 0.01))
    g = randn((3, 7), torch.float32, device, gen)
    if stats:
        gk, gq = randn((3,), torch.float32, device, gen), randn((3,), torch.float32, device, gen)
        torch.library.opcheck(bwd, (g, gk, gq, mu, s.detach(), None, so, False, 1, 0.5))
    else:
        torch.library.opcheck(bwd, (g, s.detach(), None, so, False, 2, 0.0))


def _exact_softplus_terms(s: float) -> tuple[float, float, float]:
    """(sigma, 2 log sigma, d log sigma / ds) of the softplus scale, in float64 math with the
    asymptotic forms where softplus(s) underflows."""
    if s < -30:
        return math.exp(s), 2 * s, 1.0
    sp = math.log1p(math.exp(s)) if s < 30 else s
    sig = 1 / (1 + math.exp(-s))
    return sp, 2 * math.log(sp), sig / sp


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_softplus_is_finite_and_exact_at_the_extremes(device, backend, dtype):
    """At s = -120 softplus(s) underflows float32 (sigma = 0), yet log q and its gradient are
    exact; at s = 60 softplus(s) = s. The stats are checked against float64 math."""
    values = [-120.0, -40.0, -21.0, -19.0, -3.0, 0.0, 4.0, 19.0, 21.0, 60.0]
    s = torch.tensor(values, dtype=dtype, device=device).requires_grad_()
    mu = torch.zeros(len(values), 1, dtype=dtype, device=device)
    s_col = s.unsqueeze(-1)
    eps = torch.zeros_like(mu)
    out = sample_diag(mu, s_col, eps=eps, scale="softplus", backend=backend, return_stats=True)
    (g,) = torch.autograd.grad(out.log_q.sum(), s)
    assert torch.isfinite(out.log_q).all() and torch.isfinite(g).all()
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    want_lq = [-0.5 * _exact_softplus_terms(v)[1] - half_log_2pi for v in values]
    want_g = [-_exact_softplus_terms(v)[2] for v in values]
    rtol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(out.log_q.double().cpu(), torch.tensor(want_lq, dtype=torch.float64),
                               rtol=rtol, atol=rtol)  # fmt: skip
    torch.testing.assert_close(g.double().cpu(), torch.tensor(want_g, dtype=torch.float64),
                               rtol=rtol, atol=rtol)  # fmt: skip


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_float32_softplus_sigma_is_within_three_ulp(device, backend):
    """sigma = softplus(s) in float32, over s in [-30, 30] at a 0.003 step, is within 3 ulp of
    the float64 value in the forward (z with mu = 0, eps = 1) and in the backward (dz/deps),
    and so is d sigma / ds of sigmoid(s): an exp within 2 ulp (CUDA's expf, numpy's under the
    Triton interpreter; 1 on the CPU) plus the log1p fit's 1.6."""
    s = torch.linspace(-30.0, 30.0, 20001, dtype=torch.float32, device=device).requires_grad_()
    eps = torch.ones_like(s).requires_grad_()
    z = sample_diag(torch.zeros_like(s), s, eps=eps, scale="softplus", backend=backend)
    g_s, g_eps = torch.autograd.grad(z.sum(), [s, eps])
    s64 = s.detach().double().cpu()
    for got, want, ulps in [
        (z, torch.nn.functional.softplus(s64, threshold=100.0), 3.0),
        (g_eps, torch.nn.functional.softplus(s64, threshold=100.0), 3.0),
        (g_s, torch.sigmoid(s64), 3.0),
    ]:
        ulp = torch.from_numpy(np.spacing(want.float().numpy()).astype(np.float64))
        err = (got.detach().double().cpu() - want).abs() / ulp
        assert err.max().item() <= ulps, (err.max().item(), s64[err.argmax()].item())


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_a_min_scale_that_rounds_to_zero_acts_as_zero(device, backend):
    """A float32 sample holds min_scale in float32: 1e-50 rounds to 0 and gives what 0 gives,
    the double backward included (finite where softplus(s) underflows)."""
    s = torch.tensor([[-120.0, -3.0, 0.5]], device=device, requires_grad=True)
    mu = torch.zeros_like(s)
    results = []
    for min_scale in (0.0, 1e-50):
        out = sample_diag(mu, s, scale="softplus", min_scale=min_scale, seed=SEED,
                          backend=backend, return_stats=True)  # fmt: skip
        (g,) = torch.autograd.grad(out.log_q.sum() + out.kl.sum(), s, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), s)
        results.append((out.z, out.log_q, g, gg))
    assert all(torch.isfinite(t).all() for t in results[1])
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_scales_of_the_same_sigma_give_the_same_sample(device, backend, gen):
    """One sigma written four ways gives one sample (up to rounding), and the gradient of each
    input is the logvar one times d logvar / ds."""
    mu = randn((6, 9), torch.float64, device, gen)
    sigma = 0.2 + torch.rand((6, 9), generator=gen, dtype=torch.float64).to(device)
    inputs = {
        "logvar": 2 * sigma.log(),
        "log_std": sigma.log(),
        "std": sigma,
        "softplus": torch.log(torch.expm1(sigma)),
    }
    dlogvar_ds = {"logvar": 1.0, "log_std": 2.0, "std": 2 / sigma,
                  "softplus": 2 * torch.sigmoid(inputs["softplus"]) / sigma}  # fmt: skip
    want, want_grad = None, None
    for scale, s in inputs.items():
        s = s.clone().requires_grad_()
        z = sample_diag(mu, s, scale=scale, seed=SEED, backend=backend)
        (g,) = torch.autograd.grad(z.sum(), s)
        if want is None:
            want, want_grad = z, g
        torch.testing.assert_close(z, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g, want_grad * dlogvar_ds[scale], rtol=1e-10, atol=1e-12)


def test_bad_scale_arguments_are_named():
    mu = torch.zeros(3)
    with pytest.raises(ValueError, match="sample_diag: scale must be one of 'logvar', "):
        sample_diag(mu, mu, scale="var")
    with pytest.raises(ValueError, match="sample_diag: scale must be one of"):
        sample_diag(mu, mu, scale=1)
    with pytest.raises(ValueError, match="sample_diag: min_scale must be finite and >= 0"):
        sample_diag(mu, mu, scale="std", min_scale=-0.1)
    with pytest.raises(ValueError, match="min_scale must be finite and >= 0, got nan"):
        sample_diag(mu, mu, min_scale=float("nan"))
    with pytest.raises(TypeError, match="sample_diag: min_scale must be a float >= 0, got bool"):
        sample_diag(mu, mu, min_scale=True)


def test_accepted_scale_arguments_are_not_reused_for_other_values_or_types(monkeypatch):
    # The checked arguments of a call are remembered: an equal value of another type (True
    # == 1) is still checked, and every min_scale gives its own sigma.
    monkeypatch.setattr(_scales, "_OP_ARGS", {})
    mu, s, eps = torch.zeros(3), torch.ones(3), torch.ones(3)
    for _ in range(2):  # return_stats=1 is refused, and remembers nothing that True could reuse
        with pytest.raises(TypeError, match="return_stats must be True or False"):
            sample_diag(mu, s, noise="laplace", return_stats=1)
        with pytest.raises(ValueError, match="noise='laplace' takes return_stats=False"):
            sample_diag(mu, s, noise="laplace", return_stats=True)
    assert torch.equal(sample_diag(mu, s, scale="std", min_scale=1, eps=eps), torch.full((3,), 2.0))
    with pytest.raises(TypeError, match="min_scale must be a float >= 0, got bool"):
        sample_diag(mu, s, scale="std", min_scale=True, eps=eps)
    with pytest.raises(ValueError, match="sample_diag: scale must be one of"):
        sample_diag(mu, s, scale=["std"], eps=eps)  # unhashable
    for k in range(300):
        z = sample_diag(mu, s, scale="std", min_scale=k / 64, eps=eps)
        assert torch.equal(z, torch.full((3,), 1 + k / 64)), k


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_the_registered_ops_check_the_scale_arguments(device, backend):
    f = _families.FAMILIES["diag"]
    op = getattr(torch.ops.fused_reparam, _families.BACKEND_PREFIX[backend] + f.op()).default
    mu = torch.zeros(3, device=device)
    with pytest.raises(
        (RuntimeError, ValueError), match=r"diag_rsample: scale must be 0 \(logvar\)"
    ):
        op(mu, mu, 4, None, None, None, 0.0)
    with pytest.raises((RuntimeError, ValueError), match="diag_rsample: min_scale must be finite"):
        op(mu, mu, 0, None, None, None, -1.0)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_softplus_of_infinity_is_infinity(device, backend):
    s = torch.tensor([math.inf, -math.inf, 0.0], device=device)
    z = sample_diag(torch.zeros(3, device=device), s, eps=torch.ones(3, device=device),
                    scale="softplus", backend=backend)  # fmt: skip
    torch.testing.assert_close(z.cpu(), torch.tensor([math.inf, 0.0, math.log(2.0)]))
