"""Values and gradients of the Cholesky op on the GPU, for each GPU backend (the CUDA kernels
and Triton; tests/test_chol_values.py, test_chol_ops.py and test_chol_errors.py run on the GPU
too, through the device parametrization): D on both sides of 64 (the CUDA kernels' small path,
tiles of rows, and large path, a block per slice of a row; Triton's single tile and its loop
over tiles) against a float64 reference, GPU/CPU agreement for one seed, a shared L over a
large batch, grids of many blocks with a partial last one, int64 indexing. Skipped without a
GPU (each backend's cases where that backend is unavailable)."""

from __future__ import annotations

import pytest
import torch

from _gpu import DEV, chol_exact, chol_factor, chol_stream_eps, dtype_id, each_gpu_backend
from conftest import op_pair, randn
from fused_reparam import sample_chol

each_backend = each_gpu_backend("chol_rsample")
# Small-D path up to 64, large-D path above; odd, prime and power-of-two sizes around both.
D_VALUES = [2, 3, 8, 17, 32, 63, 64, 65, 128, 1024]


def _tol(dtype, d) -> float:
    return {torch.float64: 1e-10, torch.float32: 2e-5 * max(1.0, d**0.5)}[dtype]


@each_backend
@pytest.mark.parametrize("d", D_VALUES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
def test_forward_and_backward_match_float64_reference(dtype, d, backend, gen):
    rows = max(3, 4096 // d) if d <= 128 else 3
    mu = randn((rows, d), dtype, DEV, gen)
    L = chol_factor((rows,), d, dtype, gen)
    seed, offset = 2**63 + 11, 2**35 + 7
    z = sample_chol(mu, L, seed=seed, offset=offset, backend=backend)
    eps = chol_stream_eps((rows, d), seed, offset, dtype)
    tol = _tol(dtype, d)
    torch.testing.assert_close(z.double(), chol_exact(mu, L, eps), rtol=tol, atol=tol)

    # Backward of the seeded op (eps regenerated) and of the explicit-eps op (grad_eps).
    fwd, bwd = op_pair("chol", backend)
    g = randn((rows, d), dtype, DEV, gen)
    so = torch.tensor([seed - 2**64, offset], dtype=torch.int64, device=DEV)
    grad_l, empty = bwd(g, L, None, so, False)
    assert empty.numel() == 0 and grad_l.shape == (rows, d, d)
    exact_gl = torch.tril(g.double()[..., :, None] * eps.double()[..., None, :])
    torch.testing.assert_close(grad_l.double(), exact_gl, rtol=tol, atol=tol)
    e = randn((rows, d), dtype, DEV, gen)
    grad_l2, grad_e = bwd(g, L, e, so, True)
    exact_gl2 = torch.tril(g.double()[..., :, None] * e.double()[..., None, :])
    lower = torch.tril(torch.nan_to_num(L.double(), nan=0.0))
    exact_ge = (lower.transpose(-1, -2) @ g.double()[..., None])[..., 0]
    torch.testing.assert_close(grad_l2.double(), exact_gl2, rtol=tol, atol=tol)
    torch.testing.assert_close(grad_e.double(), exact_ge, rtol=tol, atol=tol)
    z2, used = fwd(mu, L, e, None, None)
    torch.testing.assert_close(z2.double(), chol_exact(mu, L, e), rtol=tol, atol=tol)
    assert used.tolist() == [0, 0]


@each_backend
@pytest.mark.parametrize("d", [2, 5, 64, 65, 200])
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=dtype_id
)
def test_gpu_and_cpu_give_the_same_sample_and_gradients(dtype, d, backend, gen):
    rows = 37
    mu = randn((rows, d), dtype, "cpu", gen)
    L = chol_factor((rows,), d, dtype, gen, device="cpu")
    g = randn((rows, d), dtype, "cpu", gen)
    kw = {"seed": 2**40 + 1, "offset": 2**63 + 5}
    results = []
    for device in ("cpu", DEV):
        m = mu.to(device).requires_grad_()
        lt = L.to(device).requires_grad_()
        z = sample_chol(m, lt, backend=backend if device == DEV else "cpu", **kw)
        z.backward(g.to(device))
        results.append((z.detach().cpu(), lt.grad.cpu(), m.grad.cpu()))
    (zc, glc, gmc), (zg, glg, gmg) = results
    if dtype == torch.float64:
        tol = {"rtol": 1e-12, "atol": 1e-12}
    elif dtype == torch.float32:
        tol = {"rtol": 1e-5, "atol": 1e-5 * d**0.5}
    else:  # one rounding of the float32 result; the sums may differ in order
        tol = {"rtol": 2 * torch.finfo(dtype).eps, "atol": 4 * torch.finfo(dtype).eps * d**0.5}
    torch.testing.assert_close(zg, zc, **tol)
    torch.testing.assert_close(glg, glc, **tol)
    torch.testing.assert_close(gmg, gmc, rtol=0, atol=0)


@each_backend
@pytest.mark.parametrize(("rows", "d"), [(200_003, 16), (3001, 96)])
def test_shared_l_over_a_huge_batch(rows, d, backend, gen):
    """One L [D, D] (batch stride 0) for every row: values and the batch-summed grad_L."""
    mu = randn((rows, d), torch.float32, DEV, gen).requires_grad_()
    L = chol_factor((), d, torch.float32, gen).nan_to_num(0.0).requires_grad_()
    g = randn((rows, d), torch.float32, DEV, gen)
    z = sample_chol(mu, L, seed=21, offset=4, backend=backend)
    eps = chol_stream_eps((rows, d), 21, 4, torch.float32).double()
    torch.testing.assert_close(
        z.double(), chol_exact(mu.detach(), L.detach(), eps), rtol=1e-5, atol=1e-4
    )
    z.backward(g)
    expected = torch.tril(g.double().T @ eps)
    torch.testing.assert_close(L.grad.double(), expected, rtol=1e-4, atol=1e-3 * rows**0.5)
    torch.testing.assert_close(mu.grad, g)


@each_backend
@pytest.mark.parametrize(("rows", "d"), [(300_007, 2), (300_001, 3), (1_001, 65)])
def test_large_grids_cover_every_row(rows, d, backend, gen):
    """Thousands of tiles of rows (or row slices), the last one partial: the CUDA kernels'
    grid-stride loops (more units than the grid's 8 blocks per SM), Triton's grid of one
    program per row block and tile."""
    if backend == "cuda":  # the CUDA kernels' grid size and units of work
        sms = torch.cuda.get_device_properties(DEV).multi_processor_count
        units = rows // max(1, min(256, 1024 // d)) if d <= 64 else rows * ((d + 31) // 32)
        assert units > 8 * sms
    mu = randn((rows, d), torch.float32, DEV, gen)
    L = chol_factor((rows,), d, torch.float32, gen)
    z = sample_chol(mu, L, seed=99, backend=backend)
    eps = chol_stream_eps((rows, d), 99, 0, torch.float32)
    torch.testing.assert_close(z.double(), chol_exact(mu, L, eps), rtol=1e-5, atol=1e-4)
    _, bwd = op_pair("chol", backend)
    g = randn((rows, d), torch.float32, DEV, gen)
    so = torch.tensor([99, 0], dtype=torch.int64, device=DEV)
    grad_l, _ = bwd(g, L, None, so, False)
    exact_gl = torch.tril(g[..., :, None] * eps[..., None, :])
    torch.testing.assert_close(grad_l, exact_gl, rtol=1e-6, atol=1e-6)
    _, grad_e = bwd(g, L, eps, so, True)
    lower = torch.tril(torch.nan_to_num(L.double(), nan=0.0))
    exact_ge = (lower.transpose(-1, -2) @ g.double()[..., None])[..., 0]
    torch.testing.assert_close(grad_e.double(), exact_ge, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
@each_backend
def test_grad_l_over_2_31_elements(backend):
    """grad_L [2049, 1024, 1024] (over 2^31 elements) from a shared L: int64 offsets."""
    rows, d = 2049, 1024
    _, bwd = op_pair("chol", backend)
    try:
        L = torch.eye(d, dtype=torch.float16, device=DEV)
        g = torch.ones(rows, d, dtype=torch.float16, device=DEV)
        so = torch.tensor([3, 2**33], dtype=torch.int64, device=DEV)
        grad_l, _ = bwd(g, L, None, so, False)
    except torch.OutOfMemoryError:
        pytest.skip("not enough GPU memory")
    assert grad_l.numel() > 2**31
    eps_last = chol_stream_eps((rows, d), 3, 2**33, torch.float32)[-1]
    torch.testing.assert_close(grad_l[-1, -1].float(), eps_last.half().float(), rtol=0, atol=0)
    torch.testing.assert_close(grad_l[-1, :, 0].float(), eps_last[0].half().float().expand(d))
    assert torch.equal(grad_l[-1].triu(1), torch.zeros_like(grad_l[-1]))
    del grad_l
