"""Values of the diagonal op against the pure-PyTorch reference, on every backend and dtype."""

from __future__ import annotations

import pytest
import torch

from conftest import (
    DEVICE_BACKENDS,
    DTYPES,
    FUSED_DEVICE_BACKENDS,
    assert_mostly_different,
    cpu_isas,
    randn,
)
from fused_reparam import sample_diag
from fused_reparam.reference import diag as ref
from fused_reparam.reference.philox import standard_normal

# Odd and prime shapes, a scalar, broadcast pairs (mu shape, logvar shape).
SHAPES = [
    ((7,), (7,)),
    ((3, 5), (3, 5)),
    ((2, 3, 11), (2, 3, 11)),
    ((13, 1031), (13, 1031)),
    ((), ()),
    ((5, 17), (17,)),
    ((17,), (5, 17)),
    ((4, 1, 9), (1, 6, 9)),
    ((3, 1), (1, 1)),
]


def assert_matches_reference(
    z: torch.Tensor, expected_f: torch.Tensor, terms: torch.Tensor | None = None
) -> None:
    """float32: rtol 1e-6; float64: 1e-12; half types: within one ulp (in z's dtype) of the
    float32 answer, plus the float32 computation's own error.

    `terms` is |mu| + |sigma * eps|: exp is not correctly rounded in any library, so two
    backends' float32 answers may differ by a few float32 ulps of the terms, which is more than
    a half ulp of z where mu and sigma * eps cancel. Exact rounding to nearest even is tested
    on exact sums by test_half_outputs_round_to_nearest_even.
    """
    if z.dtype == torch.float32:
        torch.testing.assert_close(z, expected_f.to(torch.float32), rtol=1e-6, atol=1e-6)
    elif z.dtype == torch.float64:
        torch.testing.assert_close(z, expected_f, rtol=1e-12, atol=1e-12)
    else:
        # One ulp at the magnitude of the exact (float32) answer, in z's dtype.
        ulp = torch.finfo(z.dtype).eps * expected_f.abs().clamp_min(torch.finfo(z.dtype).tiny)
        ulp = 2.0 ** torch.floor(torch.log2(ulp.double())).float()
        if terms is not None:
            ulp = ulp + 4 * torch.finfo(torch.float32).eps * terms.float()
        err = (z.float() - expected_f.float()).abs()
        assert bool((err <= ulp).all()), f"max err {err.max()} > 1 ulp"


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("mu_shape", "lv_shape"), SHAPES)
def test_explicit_eps_matches_reference(device, backend, dtype, mu_shape, lv_shape, gen):
    mu = randn(mu_shape, dtype, device, gen)
    logvar = randn(lv_shape, dtype, device, gen)
    shape = torch.broadcast_shapes(mu_shape, lv_shape)
    eps = randn(shape, dtype, device, gen)
    z = sample_diag(mu, logvar, eps=eps, backend=backend)
    assert z.shape == shape and z.dtype == dtype and z.device.type == device
    ct = ref.compute_dtype(dtype)
    scaled = torch.exp(0.5 * logvar.to(ct)) * eps.to(ct)
    expected = mu.to(ct) + scaled
    assert_matches_reference(z, expected, mu.to(ct).abs() + scaled.abs())


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numel", [1, 2, 3, 5, 7, 13, 509, 4099])
def test_seeded_noise_equals_reference_stream(device, backend, dtype, numel):
    """mu = 0, logvar = 0 gives z = eps: the noise contract on every backend."""
    seed, offset = 0x1234_5678_9ABC_DEF1, 0xFEDC_BA98_7654_3211  # both above 2^32 and 2^63
    zeros = torch.zeros(numel, dtype=dtype, device=device)
    z = sample_diag(zeros, zeros, seed=seed, offset=offset, backend=backend)
    expected = standard_normal(
        (numel,), seed, offset, dtype=ref.compute_dtype(dtype), device=device
    )
    if dtype in (torch.float32, torch.float64):
        # Library transcendental functions differ in the last bits: 1e-5 relative (contract).
        torch.testing.assert_close(z, expected.to(dtype), rtol=1e-5, atol=1e-5)
    else:
        # Rounded to a half type the streams agree to one ulp of the half type.
        err = (z.float() - expected.float()).abs()
        tol = torch.finfo(dtype).eps * expected.float().abs().clamp_min(1.0)
        assert bool((err <= tol).all()), f"max err {err.max()}"


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
@pytest.mark.parametrize(("mu_shape", "lv_shape"), SHAPES)
def test_seeded_sample_equals_reference_backend(device, backend, mu_shape, lv_shape, gen):
    mu = randn(mu_shape, torch.float32, device, gen)
    logvar = randn(lv_shape, torch.float32, device, gen, scale=0.5)
    z = sample_diag(mu, logvar, seed=99, offset=7, backend=backend)
    z_ref = sample_diag(mu, logvar, seed=99, offset=7, backend="reference")
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("isa", cpu_isas())
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_cpu_kernel_build_agrees(isa, dtype, gen):
    """The default, AVX2 and AVX-512 builds give the reference's answer (tails included)."""
    torch.ops.fused_reparam._cpu_kernel_isa(isa)
    mu = randn((3, 1237), dtype, "cpu", gen)
    logvar = randn((1237,), dtype, "cpu", gen)
    z = sample_diag(mu, logvar, seed=5, offset=2**40, backend="cpu")
    z_ref = sample_diag(mu, logvar, seed=5, offset=2**40, backend="reference")
    tol = {torch.float32: 1e-5, torch.float64: 1e-5}.get(dtype, 2 * torch.finfo(dtype).eps)
    torch.testing.assert_close(z.float(), z_ref.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_same_seed_same_z_and_different_seeds_differ(device, backend, gen):
    mu = randn((6, 33), torch.float32, device, gen)
    logvar = randn((6, 33), torch.float32, device, gen)
    a = sample_diag(mu, logvar, seed=1, backend=backend)
    b = sample_diag(mu, logvar, seed=1, backend=backend)
    c = sample_diag(mu, logvar, seed=2, backend=backend)
    d = sample_diag(mu, logvar, seed=1, offset=1, backend=backend)
    assert torch.equal(a, b)
    assert_mostly_different(a, c)
    assert_mostly_different(a, d)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_successive_calls_differ_and_manual_seed_is_respected(device, backend, gen):
    mu = randn((4, 129), torch.float32, device, gen)
    logvar = randn((4, 129), torch.float32, device, gen)
    torch.manual_seed(123)
    a = sample_diag(mu, logvar, backend=backend)
    b = sample_diag(mu, logvar, backend=backend)
    torch.manual_seed(123)
    a2 = sample_diag(mu, logvar, backend=backend)
    assert_mostly_different(a, b)
    assert torch.equal(a, a2)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_generator_is_respected(device, backend, gen):
    mu = randn((257,), torch.float32, device, gen)
    logvar = randn((257,), torch.float32, device, gen)
    g1 = torch.Generator(device=device).manual_seed(7)
    g2 = torch.Generator(device=device).manual_seed(7)
    torch.manual_seed(0)
    a = sample_diag(mu, logvar, generator=g1, backend=backend)
    torch.manual_seed(1)  # the default generator plays no part
    b = sample_diag(mu, logvar, generator=g2, backend=backend)
    assert torch.equal(a, b)
    assert not torch.equal(a, sample_diag(mu, logvar, generator=g1, backend=backend))


def test_cpu_and_reference_draw_the_same_stream_from_the_generator(gen):
    mu = randn((3, 97), torch.float32, "cpu", gen)
    logvar = randn((3, 97), torch.float32, "cpu", gen)
    if "cpu" not in [b for d, b in DEVICE_BACKENDS if d == "cpu"]:
        pytest.skip("no compiled CPU backend")
    torch.manual_seed(2024)
    a = sample_diag(mu, logvar, backend="cpu")
    torch.manual_seed(2024)
    b = sample_diag(mu, logvar, backend="reference")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _layouts(device, gen):
    """(mu, logvar) pairs that are non-contiguous, sliced, transposed or expanded."""
    base = randn((8, 12, 10), torch.float32, device, gen)
    lv = randn((12, 8, 10), torch.float32, device, gen)
    yield base.transpose(0, 1), lv  # permuted
    yield base[:, ::3, 1::2], lv.transpose(0, 1)[:, ::3, 1::2]  # strided slices
    yield base[..., 3], lv[..., 5].t()  # inner stride != 1
    yield randn((1, 12, 1), torch.float32, device, gen).expand(8, 12, 10), base  # stride 0
    storage = randn((1000,), torch.float32, device, gen)
    yield storage[1:301].view(10, 30), storage[301:331]  # storage offset 1


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_non_contiguous_inputs(device, backend, gen):
    for mu, logvar in _layouts(device, gen):
        shape = torch.broadcast_shapes(mu.shape, logvar.shape)
        eps = randn(shape, torch.float32, device, gen)
        z = sample_diag(mu, logvar, eps=eps, backend=backend)
        torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps, rtol=1e-6, atol=1e-6)
        zs = sample_diag(mu, logvar, seed=3, backend=backend)
        zc = sample_diag(mu.contiguous(), logvar.contiguous(), seed=3, backend=backend)
        assert torch.equal(zs, zc), "layout must not change the noise"
        assert zs.is_contiguous(), "z is contiguous whatever the inputs' layout"
        # Non-contiguous eps too.
        eps_t = randn(tuple(reversed(shape)), torch.float32, device, gen).permute(
            *reversed(range(len(shape)))
        )
        z = sample_diag(mu, logvar, eps=eps_t, backend=backend)
        torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps_t, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 5), (2, 0, 7)])
def test_empty_inputs_give_empty_outputs(device, backend, shape):
    mu = torch.zeros(shape, device=device, requires_grad=True)
    logvar = torch.zeros(shape, device=device, requires_grad=True)
    z = sample_diag(mu, logvar, backend=backend)
    assert z.shape == shape
    z.sum().backward()
    assert mu.grad.shape == shape and logvar.grad.shape == shape


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_non_finite_values_propagate_as_in_the_reference(device, backend):
    inf, nan = float("inf"), float("nan")
    mu = torch.tensor([nan, 0.0, inf, 1.0, 0.0, -inf, 0.0, 1.0], device=device)
    logvar = torch.tensor([0.0, nan, 0.0, inf, -inf, 0.0, 200.0, -200.0], device=device)
    z = sample_diag(mu, logvar, seed=11, backend=backend)
    z_ref = sample_diag(mu, logvar, seed=11, backend="reference")
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_random_seeds_offsets_and_sizes_match_the_reference_stream(device, backend, gen):
    """Fresh (seed, offset) pairs over the whole 64-bit range and sizes not a multiple of 4."""
    for _ in range(12):
        seed = int(torch.randint(0, 2**62, (), generator=gen)) * 4 + int(
            torch.randint(0, 4, (), generator=gen)
        )
        offset = int(torch.randint(0, 2**62, (), generator=gen)) << int(
            torch.randint(0, 3, (), generator=gen)
        )
        numel = int(torch.randint(1, 3000, (), generator=gen))
        zeros = torch.zeros(numel, device=device)
        z = sample_diag(zeros, zeros, seed=seed, offset=offset, backend=backend)
        expected = standard_normal((numel,), seed, offset, dtype=torch.float32, device=device)
        torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_outputs_round_to_nearest_even(device, backend, dtype):
    """Exact float32 sums (sigma = 1) that need rounding up, ties to even, a carry into the
    exponent, and negatives: z must have the bits of torch's own round-to-nearest-even cast."""
    ulp = torch.finfo(dtype).eps  # spacing at 1.0
    f64 = torch.float64
    mu = torch.tensor([1.0, 1.0, 1.0 + ulp, 2.0 - ulp, -1.0, -(2.0 - ulp), 0.0], dtype=f64)
    eps = torch.tensor([0.75, 0.5, 0.5, 0.75, -0.75, -0.75, 1.0], dtype=f64) * ulp
    mu, eps = mu.to(dtype).to(device), eps.to(dtype).to(device)
    z = sample_diag(mu, torch.zeros_like(mu), eps=eps, backend=backend)
    expected = (mu.float() + eps.float()).to(dtype)
    assert torch.equal(z.view(torch.int16), expected.view(torch.int16)), (z, expected)
