"""The Cholesky op z = mu + L eps on every backend that has it: values against a float64
reference, the noise contract, gradients (gradcheck, gradgradcheck), opcheck, torch.compile,
Monte-Carlo covariance, the upper triangle never read, and clear errors."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import DEVICES, DTYPES, chol_op_pair, randn
from fused_reparam import sample_chol, sample_diag
from fused_reparam.reference import chol as ref

OP = "chol_rsample"
DEVICE_BACKENDS = [(d, b) for d in DEVICES for b in fused_reparam.available_backends(d, OP)]
FUSED = [(d, b) for d, b in DEVICE_BACKENDS if b != "reference"]
# (mu shape, L shape): odd and prime D, broadcast batch dims both ways, D = 1, D = 65.
SHAPES = [
    ((7,), (7, 7)),
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
def test_gradcheck_and_gradgradcheck_float64(device, backend, gen):
    mu = randn((3, 5), torch.float64, device, gen).requires_grad_()
    L = randn((2, 1, 5, 5), torch.float64, device, gen).requires_grad_()
    eps = randn((2, 3, 5), torch.float64, device, gen).requires_grad_()

    def seeded(m, lt):
        return sample_chol(m, lt, seed=9, backend=backend)

    def explicit(m, lt, e):
        return sample_chol(m, lt, eps=e, backend=backend)

    # Under the Triton interpreter a call costs about 50 ms: check random projections of the
    # Jacobians there (test_triton_matches_the_cpp_cpu_op compares every gradient entry).
    fast = backend == "triton" and not device.startswith("cuda")
    assert torch.autograd.gradcheck(seeded, (mu, L), fast_mode=fast)
    assert torch.autograd.gradgradcheck(seeded, (mu, L), fast_mode=fast)
    assert torch.autograd.gradcheck(explicit, (mu, L, eps), fast_mode=fast)
    assert torch.autograd.gradgradcheck(explicit, (mu, L, eps), fast_mode=fast)


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


@pytest.mark.parametrize(("device", "backend"), FUSED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck(device, backend, dtype, gen):
    fwd, bwd = chol_op_pair(backend)
    gen_arg = () if backend == "triton" else (None,)  # the C++ forward takes a Generator
    mu = randn((3, 5), dtype, device, gen).requires_grad_()
    L = randn((5, 5), dtype, device, gen).requires_grad_()
    eps = randn((3, 5), dtype, device, gen).requires_grad_()
    so = torch.tensor([5, 9], dtype=torch.int64, device=device)
    torch.library.opcheck(fwd, (mu, L, None, so, *gen_arg))
    torch.library.opcheck(fwd, (mu, L, eps, None, *gen_arg))
    g = randn((3, 5), dtype, device, gen).requires_grad_()
    torch.library.opcheck(bwd, (g, L, None, so, False))
    torch.library.opcheck(bwd, (g, L, eps, so, True))


@pytest.mark.parametrize(("device", "backend"), FUSED)
def test_compile_fullgraph_equals_eager(device, backend, gen):
    torch._dynamo.reset()

    def loss_fn(mu, L):
        return (sample_chol(mu, L, seed=4, backend=backend) ** 2).sum()

    mu = randn((6, 5), torch.float32, device, gen).requires_grad_()
    L = randn((5, 5), torch.float32, device, gen).requires_grad_()
    loss_c = torch.compile(loss_fn, fullgraph=True)(mu, L)
    gc = torch.autograd.grad(loss_c, (mu, L))
    loss_e = loss_fn(mu, L)
    ge = torch.autograd.grad(loss_e, (mu, L))
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(gc, ge)


def test_reference_is_tril_matmul():
    mu, L, eps = torch.randn(3, 4), torch.randn(3, 4, 4), torch.randn(3, 4)
    expected = mu + torch.einsum("bij,bj->bi", torch.tril(L), eps)
    torch.testing.assert_close(ref.chol_rsample(mu, L, eps), expected)


def _bad(device):
    mu, L = torch.zeros(3, 4, device=device), torch.eye(4, device=device)
    return [
        (lambda b: sample_chol(mu, torch.zeros(4, device=device), backend=b), ValueError,
         r"scale_tril must have shape \[\.\.\., D, D\]"),
        (lambda b: sample_chol(mu, torch.zeros(4, 3, device=device), backend=b), ValueError,
         "scale_tril must be square"),
        (lambda b: sample_chol(mu, torch.eye(5, device=device), backend=b), ValueError,
         "mu has D = 4"),
        (lambda b: sample_chol(torch.zeros((), device=device), L, backend=b), ValueError,
         r"mu must have shape \[\.\.\., D\]"),
        (lambda b: sample_chol(mu, torch.zeros(2, 4, 4, device=device), backend=b), ValueError,
         "not broadcastable"),
        (lambda b: sample_chol(mu, L.double(), backend=b), TypeError, "scale_tril has dtype"),
        (lambda b: sample_chol(mu.long(), L, backend=b), TypeError, "mu must be float32"),
        (lambda b: sample_chol(mu, L, eps=torch.zeros(4, device=device), backend=b),
         ValueError, r"eps must have shape \[3, 4\]"),
        (lambda b: sample_chol(mu, L, seed=-1, backend=b), ValueError, "seed must be in"),
    ]  # fmt: skip


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("case", range(9))
def test_bad_input_raises_clear_error(device, backend, case):
    call, exc, msg = _bad(device)[case]
    with pytest.raises(exc, match=msg):
        call(backend)


@pytest.mark.parametrize(("device", "backend"), FUSED)
def test_op_checks(device, backend):
    """The ops' own checks (the C++ ops raise RuntimeError, the Triton ops ValueError)."""
    fwd, bwd = chol_op_pair(backend)
    errors = (RuntimeError, ValueError)
    z = torch.zeros(3, device=device)
    with pytest.raises(errors, match="scale_tril must be square"):
        fwd(z, torch.zeros(3, 2, device=device))
    with pytest.raises(errors, match="mu has D = 3"):
        fwd(z, torch.zeros(4, 4, device=device))
    with pytest.raises(errors, match="seed_offset must be an int64 tensor of 2 elements"):
        fwd(z, torch.eye(3, device=device), None, torch.zeros(3, dtype=torch.int64, device=device))
    with pytest.raises(errors, match="eps must have shape"):
        fwd(z, torch.eye(3, device=device), torch.zeros(2, device=device))
    so = torch.zeros(2, dtype=torch.int64, device=device)
    with pytest.raises(errors, match="need_grad_eps requires an explicit eps"):
        bwd(z, torch.eye(3, device=device), None, so, True)
    with pytest.raises(errors, match="must broadcast to grad_z's batch shape"):
        bwd(z, torch.zeros(2, 3, 3, device=device), None, so, False)


def test_backends_say_why_they_cannot_run_the_op():
    mu, L = torch.zeros(2), torch.eye(2)
    with pytest.raises(RuntimeError, match="backend 'cuda' is not available: it runs on cuda"):
        sample_chol(mu, L, backend="cuda")
    if torch.cuda.is_available() and "cuda" not in fused_reparam.available_backends("cuda", OP):
        with pytest.raises(RuntimeError, match="backend 'cuda' is not available"):
            sample_chol(mu.cuda(), L.cuda(), backend="cuda")
    if "triton" in fused_reparam.available_backends("cpu", OP):
        expected = sample_chol(mu, L, seed=1, backend="reference")
        torch.testing.assert_close(sample_chol(mu, L, seed=1, backend="triton"), expected)
    else:
        with pytest.raises(RuntimeError, match=r"backend 'triton' is not available: (no CUDA|Tri)"):
            sample_chol(mu, L, backend="triton")


# The Triton kernels against the C++ CPU op: same stream, same numbers.
TRITON_AND_CPU = {"triton", "cpu"} <= set(fused_reparam.available_backends("cpu", OP))
needs_triton_and_cpu = pytest.mark.skipif(
    not TRITON_AND_CPU, reason="needs the Triton backend (TRITON_INTERPRET=1) and the C++ CPU op"
)
# (mu shape, L shape): a shared L, broadcast both ways, D % 4 == 0 (a Philox call feeds four
# elements of a tile) and not, strided L.
CPU_VS_TRITON = [
    ((6, 8), (8, 8)),
    ((4, 1, 5), (3, 5, 5)),
    ((1, 3, 12), (2, 1, 12, 12)),
    ((1,), (5, 1, 1)),
]


@needs_triton_and_cpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("mu_shape", "l_shape"), CPU_VS_TRITON)
def test_triton_matches_the_cpp_cpu_op(dtype, mu_shape, l_shape, gen):
    mu = randn(mu_shape, dtype, "cpu", gen)
    L = randn(l_shape, dtype, "cpu", gen)
    tol = 2e-6 if dtype == torch.float32 else 1e-13
    z_t = sample_chol(mu, L, seed=2**64 - 3, offset=2**35 + 1, backend="triton")
    z_c = sample_chol(mu, L, seed=2**64 - 3, offset=2**35 + 1, backend="cpu")
    torch.testing.assert_close(z_t, z_c, rtol=tol, atol=tol)
    # Backward, eps regenerated and given, through the ops.
    (_, bwd_t), (_, bwd_c) = chol_op_pair("triton"), chol_op_pair("cpu")
    g = randn(z_t.shape, dtype, "cpu", gen)
    eps = randn(z_t.shape, dtype, "cpu", gen)
    so = torch.tensor([7, -2], dtype=torch.int64)
    torch.testing.assert_close(bwd_t(g, L, None, so, False), bwd_c(g, L, None, so, False),
                               rtol=tol, atol=tol)  # fmt: skip
    torch.testing.assert_close(bwd_t(g, L, eps, so, True), bwd_c(g, L, eps, so, True),
                               rtol=tol, atol=tol)  # fmt: skip


def _check_against_reference(mu, L, dtype, seed=11):
    """Forward (seeded and explicit eps) and gradients of the Triton op against the reference
    backend, with NaN above the diagonal of L (never read)."""
    poisoned = L + torch.triu(torch.full_like(L, float("nan")), diagonal=1)
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    grads = []
    for backend, lt in (("triton", poisoned), ("reference", L)):
        m, lt = mu.clone().requires_grad_(), lt.clone().requires_grad_()
        z = sample_chol(m, lt, seed=seed, backend=backend)
        w = torch.linspace(-1, 1, z.numel(), dtype=dtype).reshape(z.shape)
        (z * w).sum().backward()
        grads.append((z, m.grad, lt.grad))
    torch.testing.assert_close(grads[0], grads[1], rtol=tol, atol=tol)
    shape = grads[0][0].shape
    eps = torch.randn(shape, dtype=dtype).requires_grad_()
    e2 = eps.detach().clone().requires_grad_()
    lt = poisoned.clone().requires_grad_()
    z = sample_chol(mu, lt, eps=eps, backend="triton")
    z_ref = sample_chol(mu, L, eps=e2, backend="reference")
    torch.testing.assert_close(z, z_ref, rtol=tol, atol=tol)
    z.sum().backward()
    z_ref.sum().backward()
    torch.testing.assert_close(eps.grad, e2.grad, rtol=tol, atol=tol)
    assert torch.isfinite(lt.grad).all() and torch.equal(lt.grad.triu(1), torch.zeros_like(lt.grad))


needs_triton = pytest.mark.skipif(
    "triton" not in fused_reparam.available_backends("cpu", OP),
    reason="needs the Triton backend on CPU tensors (TRITON_INTERPRET=1)",
)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triton_large_d_loops_over_tiles(dtype, gen):
    """D = 130: three 64-wide tiles, the programs' tile loops (forward columns, grad_L rows
    and the zeros above the diagonal, grad_eps columns)."""
    mu = randn((2, 130), dtype, "cpu", gen)
    L = randn((130, 130), dtype, "cpu", gen, scale=0.1)
    _check_against_reference(mu, L, dtype)


@needs_triton
@pytest.mark.parametrize(("d", "block_d"), [(21, 8), (24, 8), (9, 4)])
def test_triton_small_tiles_forced(d, block_d, gen, monkeypatch):
    """Tiles smaller than D for small D (cheap under the interpreter): unaligned and aligned
    noise across tile boundaries, several rows a program, a broadcast batch."""
    from fused_reparam._triton import chol_ops

    monkeypatch.setattr(chol_ops, "MAX_BLOCK_D", block_d)
    mu = randn((3, 1, d), torch.float32, "cpu", gen)
    L = randn((2, d, d), torch.float32, "cpu", gen, scale=0.3)
    _check_against_reference(mu, L, torch.float32)


@needs_triton
def test_triton_row_blocks_by_tiles(gen, monkeypatch):
    """Five row blocks of two rows by three 4-wide tiles: each program finds its (row block,
    tile) from its one grid index (row block fastest)."""
    from fused_reparam._triton import chol_ops

    monkeypatch.setattr(chol_ops, "MAX_BLOCK_D", 4)
    monkeypatch.setattr(chol_ops, "_TILE", 32)
    mu = randn((5, 1, 9), torch.float32, "cpu", gen)
    L = randn((2, 9, 9), torch.float32, "cpu", gen, scale=0.3)
    _check_against_reference(mu, L, torch.float32)


@needs_triton
def test_triton_many_interleaved_batch_dims(gen):
    """Five batch dims that do not merge: the kernel's four-dim batch index falls back to
    dense copies of mu (and then L)."""
    mu = randn((2, 1, 2, 1, 2, 3), torch.float64, "cpu", gen)
    L = randn((1, 2, 1, 2, 1, 3, 3), torch.float64, "cpu", gen)
    _check_against_reference(mu, L, torch.float64)


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
