"""Values of the Cholesky op z = mu + L eps on every backend that has it: against a float64
reference, the noise contract, Monte-Carlo covariance, seeds and generators, the upper triangle
never read, strided and empty inputs, and num_samples without copies."""

from __future__ import annotations

import pytest
import torch

from _chol_cases import DEVICE_BACKENDS, FUSED
from conftest import DTYPES, randn
from fused_reparam import sample_chol, sample_diag
from fused_reparam.reference import chol as ref

# (mu shape, L shape): odd and prime D, broadcast batch dims both ways, D = 1, D = 8 (on
# AVX-512 two rows of L share a vector up to D = 8), D = 65.
SHAPES = [
    ((7,), (7, 7)),
    ((6, 8), (6, 8, 8)),
    ((5, 3), (3, 3)),
    ((4, 1, 13), (3, 13, 13)),
    ((13,), (2, 13, 13)),
    ((9, 1), (1, 1)),
    ((2, 65), (2, 65, 65)),
]


def _half_tolerance(dtype, mu, L, eps, z):
    """Error bound for half types: 2x torch's own half matmul error on the same data."""
    exact = mu.double() + (torch.tril(L.double()) @ eps.double()[..., None])[..., 0]
    torch_half = mu + (torch.tril(L) @ eps.to(dtype)[..., None])[..., 0]
    return 2 * (torch_half.double() - exact).abs().max().item() + torch.finfo(dtype).eps


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("mu_shape", "l_shape"), SHAPES)
def test_explicit_eps_matches_float64_reference(device, backend, dtype, mu_shape, l_shape, gen):
    mu = randn(mu_shape, dtype, device, gen)
    L = randn(l_shape, dtype, device, gen, scale=0.3)
    shape = torch.Size((*torch.broadcast_shapes(mu_shape[:-1], l_shape[:-2]), mu_shape[-1]))
    eps = randn(shape, dtype, device, gen)
    z = sample_chol(mu, L, eps=eps, backend=backend)
    assert z.shape == shape and z.dtype == dtype
    exact = mu.double() + (torch.tril(L.double()) @ eps.double()[..., None])[..., 0]
    if dtype in (torch.float32, torch.float64):
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(z.double(), exact, rtol=tol, atol=tol)
    else:
        err = (z.double() - exact).abs().max().item()
        assert err <= _half_tolerance(dtype, mu, L, eps, z), err


@pytest.mark.parametrize(("device", "backend"), FUSED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("mu_shape", "l_shape"), SHAPES)
def test_seeded_sample_matches_reference_backend(device, backend, dtype, mu_shape, l_shape, gen):
    mu = randn(mu_shape, dtype, device, gen)
    L = randn(l_shape, dtype, device, gen, scale=0.3)
    z = sample_chol(mu, L, seed=2**63 + 5, offset=2**40 + 3, backend=backend)
    z_ref = sample_chol(mu, L, seed=2**63 + 5, offset=2**40 + 3, backend="reference")
    tol = {torch.float32: 2e-5, torch.float64: 1e-10}.get(dtype, 4 * torch.finfo(dtype).eps)
    torch.testing.assert_close(z.double(), z_ref.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_noise_is_the_contract_stream_shared_with_the_diagonal_op(device, backend, gen):
    """L = I: z - mu is the stream's eps, the same numbers sample_diag draws for that shape."""
    mu = randn((6, 11), torch.float32, device, gen)
    z = sample_chol(mu, torch.eye(11, device=device), seed=77, offset=5, backend=backend)
    eps = sample_diag(torch.zeros_like(mu), torch.zeros_like(mu), seed=77, offset=5)
    torch.testing.assert_close(z - mu, eps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_upper_triangle_is_never_read(device, backend, gen):
    mu = randn((5, 9), torch.float32, device, gen)
    L = randn((5, 9, 9), torch.float32, device, gen).tril()
    poisoned = L + torch.triu(torch.full_like(L, float("nan")), diagonal=1)
    a = sample_chol(mu, L, seed=3, backend=backend)
    b = sample_chol(mu, poisoned, seed=3, backend=backend)
    assert torch.equal(a, b)
    m = mu.clone().requires_grad_()
    p = poisoned.clone().requires_grad_()
    sample_chol(m, p, seed=3, backend=backend).sum().backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(m.grad).all()
    assert torch.equal(p.grad.triu(1), torch.zeros_like(p.grad))


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("d", range(1, 10))
@pytest.mark.parametrize("pad", [0, 3])
def test_small_d_with_strided_rows_and_nan_above_the_diagonal(device, backend, d, pad, gen):
    # Rows of L `d + pad` elements apart, NaN in the upper triangle and in the padding.
    base = torch.full((6, d, d + pad), float("nan"), device=device)
    nan_above = torch.triu(torch.full((d, d), float("nan"), device=device), diagonal=1)
    base[..., :d] = torch.tril(randn((6, d, d), torch.float32, device, gen)) + nan_above
    L = base[..., :d].requires_grad_()
    assert L.stride(-2) == d + pad
    mu = randn((6, d), torch.float32, device, gen).requires_grad_()
    eps = randn((6, d), torch.float32, device, gen).requires_grad_()
    grad = randn((6, d), torch.float32, device, gen)
    z = sample_chol(mu, L, eps=eps, backend=backend)
    clean = [t.detach().nan_to_num().double().requires_grad_() for t in (mu, L, eps)]
    exact = clean[0] + (torch.tril(clean[1]) @ clean[2][..., None])[..., 0]
    torch.testing.assert_close(z.double(), exact, rtol=1e-5, atol=1e-5)
    got = torch.autograd.grad(z, (mu, L, eps), grad)
    want = torch.autograd.grad(exact, clean, grad.double())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-5)
    if backend == "cpu":  # eps[j] and grad_z[i] enter only rows i >= j: inf stays there
        e = eps.detach().clone()
        e[:, -1] = float("inf")
        z_inf = sample_chol(mu, L, eps=e.requires_grad_(), backend=backend)
        assert torch.isfinite(z_inf[:, :-1]).all()
        g = grad.clone()
        g[:, 0] = float("inf")
        (g_eps,) = torch.autograd.grad(z_inf, e, g)
        assert torch.isfinite(g_eps[:, 1:]).all()
    # Drawn noise, regenerated in the backward: as the reference backend draws it.
    seeded = sample_chol(mu, L, seed=11, backend=backend)
    ref_z = sample_chol(clean[0], torch.tril(clean[1]), seed=11, backend="reference")
    torch.testing.assert_close(seeded.double(), ref_z, rtol=2e-5, atol=2e-5)
    got = torch.autograd.grad(seeded, (mu, L), grad)
    want = torch.autograd.grad(ref_z, clean[:2], grad.double())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), w, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_monte_carlo_covariance_is_l_l_transpose(device, backend, gen):
    d, n = 4, 1 << 17
    L = torch.tensor(
        [[1.0, 0, 0, 0], [0.5, 0.8, 0, 0], [-0.3, 0.2, 0.6, 0], [0.1, -0.4, 0.3, 0.9]],
        device=device,
    )
    mu = torch.tensor([1.0, -2.0, 0.5, 0.0], device=device).expand(n, d)
    z = sample_chol(mu, L, seed=123, backend=backend).double().cpu()
    cov = torch.cov(z.T)
    # Entries of a sample covariance have standard error <= sqrt(2/n) * max variance.
    torch.testing.assert_close(cov, (L @ L.T).double().cpu(), rtol=0, atol=6 * (2 / n) ** 0.5)
    torch.testing.assert_close(z.mean(0), mu[0].double().cpu(), rtol=0, atol=6 / n**0.5)


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_manual_seed_generator_and_fresh_draws(device, backend, gen):
    mu = randn((4, 6), torch.float32, device, gen)
    L = randn((6, 6), torch.float32, device, gen)
    torch.manual_seed(5)
    a = sample_chol(mu, L, backend=backend)
    b = sample_chol(mu, L, backend=backend)
    torch.manual_seed(5)
    assert torch.equal(a, sample_chol(mu, L, backend=backend))
    assert not torch.isclose(a, b).all()
    g1 = torch.Generator(device=device).manual_seed(1)
    g2 = torch.Generator(device=device).manual_seed(1)
    assert torch.equal(
        sample_chol(mu, L, generator=g1, backend=backend),
        sample_chol(mu, L, generator=g2, backend=backend),
    )


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_non_contiguous_and_empty_inputs(device, backend, gen):
    base = randn((7, 6, 9), torch.float32, device, gen)
    mu = base[:, ::2, 3]  # [7, 3] strided
    L = randn((3, 3, 7), torch.float32, device, gen).transpose(0, 2)  # [7, 3, 3] transposed
    eps = randn((3, 7), torch.float32, device, gen).t()
    z = sample_chol(mu, L, eps=eps, backend=backend)
    expected = sample_chol(mu.contiguous(), L.contiguous(), eps=eps.contiguous(), backend=backend)
    assert torch.equal(z, expected)
    zs = sample_chol(mu, L, seed=8, backend=backend)
    assert torch.equal(zs, sample_chol(mu.contiguous(), L.contiguous(), seed=8, backend=backend))
    eye = torch.eye(4, device=device)
    empty = sample_chol(torch.zeros(0, 4, device=device), eye, seed=1, backend=backend)
    assert empty.shape == (0, 4)
    # D = 0: an empty sample, and zero-length sums in the extras.
    mu0 = torch.zeros(3, 0, device=device, requires_grad=True)
    L0 = torch.zeros(3, 0, 0, device=device, requires_grad=True)
    z0, kl0, lq0 = sample_chol(mu0, L0, seed=1, backend=backend, return_stats=True)
    assert z0.shape == (3, 0) and torch.equal(kl0, torch.zeros(3, device=device))
    assert torch.equal(lq0, torch.zeros(3, device=device))
    (z0.sum() + kl0.sum() + lq0.sum()).backward()
    assert mu0.grad.shape == (3, 0) and L0.grad.shape == (3, 0, 0)


def test_reference_is_tril_matmul():
    mu, L, eps = torch.randn(3, 4), torch.randn(3, 4, 4), torch.randn(3, 4)
    expected = mu + torch.einsum("bij,bj->bi", torch.tril(L), eps)
    torch.testing.assert_close(ref.chol_rsample(mu, L, eps), expected)


@pytest.mark.parametrize(("device", "backend"), FUSED)
def test_num_samples_never_copies_a_strided_mu_k_times(device, backend, gen):
    from torch.profiler import ProfilerActivity, profile

    mu = randn((5, 3), torch.float32, device, gen).t()  # rows of stride 3
    scale_tril = torch.eye(5, device=device)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        z = sample_chol(mu, scale_tril, num_samples=100, seed=1, backend=backend)
    copied = [e.input_shapes[0] for e in prof.events() if e.name in ("aten::clone", "aten::copy_")]
    assert [100, 3, 5] not in copied, copied
    torch.testing.assert_close(z, sample_chol(mu.contiguous(), scale_tril, num_samples=100,
                                              seed=1, backend=backend))  # fmt: skip
