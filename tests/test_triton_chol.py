"""What only the Triton Cholesky kernels have (test_chol_values.py, test_chol_ops.py and
test_chol_errors.py cover every backend): agreement with the C++ CPU op, tile loops (D = 130
and forced small tiles), row blocks by tiles, and the dense fallback of many batch dims. Run
under TRITON_INTERPRET=1 on CPU tensors."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from _chol_cases import OP
from conftest import chol_op_pair, randn
from fused_reparam import sample_chol

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
