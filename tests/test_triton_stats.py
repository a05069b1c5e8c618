"""What only the Triton stats ops have (tests/test_stats.py covers every backend's contract):
tile loops (forced small tiles, D = 130), rows that start inside a Philox group, stride-0
inputs read in place, the dense fallback of more than four batch dims, the int64 switch, empty
samples, argument errors, and agreement with the C++ CPU stats ops. Run under
TRITON_INTERPRET=1 on CPU tensors; small sizes (the interpreter is slow)."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import DTYPES, randn
from fused_reparam import _extension, sample_chol, sample_diag
from fused_reparam.reference import stats as ref
from fused_reparam.reference.philox import compute_dtype, standard_normal

pytestmark = pytest.mark.skipif(
    not {"diag_rsample_stats", "chol_rsample_stats"}
    <= {op for op in ("diag_rsample_stats", "chol_rsample_stats")
        if "triton" in fused_reparam.available_backends("cpu", op)},
    reason="needs the Triton backend on CPU tensors (TRITON_INTERPRET=1)",
)  # fmt: skip

OPS = torch.ops.fused_reparam
SEED, OFFSET = 2**63 + 12345, 2**33 + 7  # both words of the key and of the offset in play
# Against the reference in the compute type: float rounding of sums in another order and of
# exp/log (numpy vs torch); half types: one rounding of the result.
TOL = {torch.float32: 2e-6, torch.float64: 1e-13, torch.float16: 2**-10, torch.bfloat16: 2**-7}


def _so() -> torch.Tensor:
    return torch.tensor([SEED - 2**64, OFFSET], dtype=torch.int64)


def _noise(shape, dtype) -> torch.Tensor:
    return standard_normal(shape, SEED, OFFSET, dtype=compute_dtype(dtype), device="cpu")


def _close(actual, expected, dtype, terms=1):
    """actual (dtype) against expected (compute type): the tolerance of `terms` summed terms."""
    assert actual.dtype == dtype
    tol = TOL[dtype] * max(1, terms) ** 0.5
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol, atol=tol)


def _grads(shape, dtype, gen):
    """Upstream (grad_z, grad_kl, grad_log_q); grad_log_q a stride-0 broadcast view."""
    gz = randn(shape, dtype, "cpu", gen)
    gk = randn(shape[:-1], dtype, "cpu", gen)
    gq = randn((1,) * (len(shape) - 1), dtype, "cpu", gen).expand(shape[:-1])
    return gz, gk, gq


def _check_diag(mu, logvar, gen):
    """Forward (stream and explicit eps) and backward of the Triton diag stats ops against the
    reference formulas on the reference's noise."""
    dtype, ct = mu.dtype, compute_dtype(mu.dtype)
    shape = torch.broadcast_shapes(mu.shape, logvar.shape)
    d = shape[-1]
    e = _noise(shape, dtype)
    z, kl, log_q, used = OPS.triton_diag_rsample_stats(mu, logvar, None, _so())
    assert torch.equal(used, _so())
    rz, rkl, rlq = ref.diag_stats(mu.to(ct), logvar.to(ct), e)
    _close(z, rz, dtype)
    _close(kl, rkl, dtype, d)
    _close(log_q, rlq, dtype, d)
    gz, gk, gq = _grads(shape, dtype, gen)
    c = [t.to(ct) for t in (gz, gk, gq, mu, logvar)]
    g_mu, g_lv, g_eps = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, logvar, None,
                                                               used, False)  # fmt: skip
    r_mu, r_lv, _ = ref.diag_stats_backward(*c, e)
    _close(g_mu, r_mu.expand(shape), dtype)
    _close(g_lv, r_lv.expand(shape), dtype)
    assert g_eps.shape == (0,)
    # An explicit eps (rounded to dtype), with its gradient.
    eps = e.to(dtype)
    z2, kl2, lq2, used2 = OPS.triton_diag_rsample_stats(mu, logvar, eps)
    assert torch.equal(used2, torch.zeros(2, dtype=torch.int64))
    rz, rkl, rlq = ref.diag_stats(mu.to(ct), logvar.to(ct), eps.to(ct))
    _close(z2, rz, dtype)
    _close(kl2, rkl, dtype, d)
    _close(lq2, rlq, dtype, d)
    out = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, logvar, eps, used2, True)
    for got, want in zip(out, ref.diag_stats_backward(*c, eps.to(ct)), strict=True):
        _close(got, want.expand(shape), dtype)


def _chol_factor(shape, dtype, gen):
    L = randn(shape, torch.float64, "cpu", gen, scale=0.3).tril()
    L = L + torch.diag_embed(1.0 + torch.rand(shape[:-1], generator=gen, dtype=torch.float64))
    return L.to(dtype)


def _check_chol(mu, L, gen):
    """As _check_diag for the Cholesky stats ops (the upper triangle of L poisoned)."""
    dtype, ct = mu.dtype, compute_dtype(mu.dtype)
    d = mu.shape[-1]
    shape = torch.Size((*torch.broadcast_shapes(mu.shape[:-1], L.shape[:-2]), d))
    lb = L.expand(*shape, d)
    poisoned = L + torch.triu(torch.full_like(L, float("nan")), diagonal=1)
    e = _noise(shape, dtype)
    z, kl, log_q, used = OPS.triton_chol_rsample_stats(mu, poisoned, None, _so())
    assert torch.equal(used, _so())
    rz, rkl, rlq = ref.chol_stats(mu.to(ct), lb.to(ct), e)
    _close(z, rz, dtype, d)
    _close(kl, rkl, dtype, d * d)
    _close(log_q, rlq, dtype, d)
    gz, gk, gq = _grads(shape, dtype, gen)
    c = [t.to(ct) for t in (gz, gk, gq, mu, lb)]
    g_mu, g_l, g_eps = OPS.triton_chol_rsample_stats_backward(gz, gk, gq, mu, poisoned, None,
                                                              used, False)  # fmt: skip
    r_mu, r_l, _ = ref.chol_stats_backward(*c, e)
    _close(g_mu, r_mu.expand(shape), dtype)
    _close(g_l, r_l, dtype)
    assert torch.equal(g_l.triu(1), torch.zeros_like(g_l))
    assert g_eps.shape == (0,)
    eps = e.to(dtype)
    out = OPS.triton_chol_rsample_stats_backward(gz, gk, gq, mu, poisoned, eps, used, True)
    for got, want in zip(out, ref.chol_stats_backward(*c, eps.to(ct)), strict=True):
        _close(got, want.expand(got.shape), dtype, d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [7, 12])
def test_diag_small_tiles_forced(dtype, d, gen, monkeypatch):
    """Tiles of 4 x 8: several row blocks, a loop over D tiles, rows starting inside a Philox
    group (d = 7) and aligned ones (d = 12), a broadcast logvar."""
    from fused_reparam._triton import stats_ops

    monkeypatch.setattr(stats_ops, "DIAG_MAX_BLOCK_D", 8)
    monkeypatch.setattr(stats_ops, "DIAG_TILE", 32)
    mu = randn((3, 1, d), dtype, "cpu", gen)
    logvar = randn((2, d), dtype, "cpu", gen, scale=0.5)
    _check_diag(mu, logvar, gen)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_diag_d130_loops_over_tiles(dtype, gen, monkeypatch):
    """D = 130 in 64-wide tiles: three tiles, the last partial and unaligned (130 % 4 = 2)."""
    from fused_reparam._triton import stats_ops

    monkeypatch.setattr(stats_ops, "DIAG_MAX_BLOCK_D", 64)
    _check_diag(randn((3, 130), dtype, "cpu", gen), randn((130,), dtype, "cpu", gen, 0.5), gen)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 3, 7])
def test_diag_one_tile(dtype, d, gen):
    """The default tiles: one tile a row, many rows a program; D = 1 (a row is one element)."""
    _check_diag(randn((5, d), dtype, "cpu", gen), randn((5, d), dtype, "cpu", gen, 0.5), gen)


@pytest.mark.parametrize(("d", "block_d"), [(9, 4), (12, 4), (21, 8)])
def test_chol_small_tiles_forced(d, block_d, gen, monkeypatch):
    """Tiles smaller than D: the forward's loop over a row's tiles (row sums across tiles),
    the backward's diagonal term in the diagonal tiles only, aligned and unaligned noise."""
    from fused_reparam._triton import chol_ops

    monkeypatch.setattr(chol_ops, "MAX_BLOCK_D", block_d)
    mu = randn((3, 1, d), torch.float32, "cpu", gen)
    L = _chol_factor((2, d, d), torch.float32, gen)
    _check_chol(mu, L, gen)


def test_row_blocks_by_tiles(gen, monkeypatch):
    """Five row blocks of two rows by three tiles (D = 11 in 4-wide tiles): each backward
    program finds its (row block, tile) from its one grid index, row block fastest."""
    from fused_reparam._triton import chol_ops, stats_ops

    monkeypatch.setattr(stats_ops, "DIAG_MAX_BLOCK_D", 4)
    monkeypatch.setattr(stats_ops, "DIAG_TILE", 8)
    monkeypatch.setattr(chol_ops, "MAX_BLOCK_D", 4)
    monkeypatch.setattr(chol_ops, "_TILE", 32)
    mu = randn((5, 1, 11), torch.float32, "cpu", gen)
    _check_diag(mu, randn((2, 11), torch.float32, "cpu", gen, scale=0.5), gen)
    _check_chol(mu, _chol_factor((2, 11, 11), torch.float32, gen), gen)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chol_d130_loops_over_tiles(dtype, gen):
    """D = 130: three 64-wide tiles of the default size, one L shared by both rows."""
    _check_chol(randn((2, 130), dtype, "cpu", gen), _chol_factor((130, 130), dtype, gen), gen)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 3, 33])
def test_chol_one_tile(dtype, d, gen):
    _check_chol(randn((4, d), dtype, "cpu", gen), _chol_factor((4, d, d), dtype, gen), gen)


def test_many_interleaved_batch_dims(gen):
    """Five batch dims that do not merge: the kernels' four-dim batch index falls back to dense
    copies (diag: of the broadcast operands; chol: of mu, then L)."""
    mu = randn((2, 1, 2, 1, 2, 3), torch.float64, "cpu", gen)
    logvar = randn((1, 2, 1, 2, 1, 3), torch.float64, "cpu", gen)
    _check_diag(mu, logvar, gen)
    L = _chol_factor((1, 2, 1, 2, 1, 3, 3), torch.float64, gen)
    _check_chol(mu, L, gen)


def test_stride0_inputs_are_read_in_place(gen):
    """mu expanded over K samples and a logvar [D] shared by every row reach the kernel as
    the stride-0 views they are (no copy), with the numbers of materialized inputs."""
    from fused_reparam._triton import row_blocks

    k, b, d = 3, 4, 10
    shape = torch.Size((k, b, d))
    mu = randn((b, d), torch.float32, "cpu", gen).expand(k, b, d)
    logvar = randn((d,), torch.float32, "cpu", gen)
    blk = row_blocks.row_blocks(shape, 64, 1024, 1)
    lay = row_blocks.row_layout(shape, [(mu, "row"), (logvar, "row"), (None, "row")], mu, blk, d)
    assert lay.tensors[0] is mu and lay.tensors[1] is logvar
    # Kernel arguments: four grid strides over the batch [k, b], then the stride in a row.
    assert lay.stride_args([0]) == [0, 0, 0, d, 1] and lay.stride_args([1]) == [0, 0, 0, 0, 1]
    out = OPS.triton_diag_rsample_stats(mu, logvar, None, _so())
    dense = OPS.triton_diag_rsample_stats(mu.contiguous(), logvar.expand(k, b, d).contiguous(),
                                          None, _so())  # fmt: skip
    for x, y in zip(out, dense, strict=True):
        assert torch.equal(x, y)
    # A grad_kl of one value for every row (sum().backward()): stride 0.
    gz, gk, gq = torch.ones(k, b, d), torch.ones(()).expand(k, b), torch.zeros(k, b)
    g = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, logvar, None, _so(), False)
    g_dense = OPS.triton_diag_rsample_stats_backward(gz, gk.contiguous(), gq, mu.contiguous(),
                                                     logvar, None, _so(), False)  # fmt: skip
    for x, y in zip(g, g_dense, strict=True):
        assert torch.equal(x, y)


def test_num_samples_through_sample_diag_and_sample_chol(gen):
    """K samples of the public functions on the Triton backend: every sample its own noise, the
    reference's numbers, gradients summed over K."""
    mu = randn((2, 5), torch.float64, "cpu", gen).requires_grad_()
    logvar = randn((5,), torch.float64, "cpu", gen, 0.5).requires_grad_()
    L = _chol_factor((2, 5, 5), torch.float64, gen).requires_grad_()
    for fn, second in ((sample_diag, logvar), (sample_chol, L)):
        outs = [fn(mu, second, num_samples=3, seed=5, offset=1, backend=b, return_stats=True)
                for b in ("triton", "reference")]  # fmt: skip
        grads = []
        for out in outs:
            loss = out.z.square().sum() + out.kl.sum() + (out.log_q * out.log_q).sum()
            grads.append(torch.autograd.grad(loss, (mu, second)))
        for x, y in zip(outs[0], outs[1], strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
        for x, y in zip(grads[0], grads[1], strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_int64_indexing_switch():
    """Offsets of 2**31 or more (here: a broadcast view of 2**32 elements, never allocated)
    switch the kernels to int64 indexing; smaller ones stay int32."""
    from fused_reparam._triton import row_blocks

    def idx64(shape, ops, tile_dims, out_row):
        blk = row_blocks.row_blocks(torch.Size(shape), 64, 4096, tile_dims)
        return row_blocks.row_layout(torch.Size(shape), ops, ops[0][0], blk, out_row).idx64

    big = torch.zeros(1, 1).expand(2**16, 2**16)
    assert idx64(big.shape, [(big, "row")], 1, 2**16)
    small = torch.zeros(2**10, 2**10)
    assert not idx64(small.shape, [(small, "row")], 1, 2**10)
    # grad_L [rows, D, D] of the Cholesky backward: 2**12 rows of 2**10 x 2**10 overflows.
    mu, L = torch.zeros(1, 2**10).expand(2**12, 2**10), torch.eye(2**10)
    assert idx64(mu.shape, [(mu, "row"), (L, "mat")], 2, 2**20)
    assert not idx64(mu.shape, [(mu, "row"), (L, "mat")], 2, 2**10)


@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_empty_samples(kind):
    """No rows: empty outputs. Rows of D = 0: empty z, and kl = log_q = 0 (empty sums)."""
    fwd = getattr(OPS, f"triton_{kind}_rsample_stats")
    bwd = getattr(OPS, f"triton_{kind}_rsample_stats_backward")
    # D = 0 for the Cholesky op stops in _checks.chol_sample_shape (shared by every backend).
    for shape in ((0, 4), (3, 0)) if kind == "diag" else ((0, 4),):
        mu = torch.zeros(shape)
        second = mu if kind == "diag" else torch.zeros(*shape, shape[-1])
        z, kl, log_q, used = fwd(mu, second, None, _so())
        assert z.shape == shape and torch.equal(used, _so())
        assert torch.equal(kl, torch.zeros(shape[0])) and torch.equal(log_q, kl)
        g = bwd(torch.zeros(shape), kl, log_q, mu, second, None, used, False)
        assert g[0].shape == shape and g[1].shape == second.shape and g[2].shape == (0,)


def test_errors_name_the_argument():
    x, lv, so = torch.zeros(2, 3), torch.zeros(3), _so()
    gk = torch.zeros(2)
    f, b = OPS.triton_diag_rsample_stats, OPS.triton_diag_rsample_stats_backward
    cf, cb = OPS.triton_chol_rsample_stats, OPS.triton_chol_rsample_stats_backward
    L = torch.eye(3)
    with pytest.raises(ValueError, match="at least one dim"):
        f(torch.zeros(()), torch.zeros(()), None, so)
    with pytest.raises(ValueError, match="eps must have shape"):
        f(x, lv, torch.zeros(3))
    with pytest.raises(TypeError, match=r"logvar has dtype torch.float64"):
        f(x, lv.double(), None, so)
    with pytest.raises(ValueError, match=r"scale_tril must be square"):
        cf(x, torch.zeros(3, 2), None, so)
    with pytest.raises(ValueError, match=r"grad_kl must have shape \[2\]"):
        b(x, torch.zeros(3), gk, x, lv, None, so, False)
    with pytest.raises(ValueError, match=r"grad_log_q must have shape \[2\]"):
        cb(x, gk, torch.zeros(2, 1), x, L, None, so, False)
    with pytest.raises(TypeError, match="grad_log_q must be float32"):
        b(x, gk, gk.int(), x, lv, None, so, False)
    with pytest.raises(ValueError, match=r"logvar .* must broadcast to grad_z's shape"):
        b(x, gk, gk, x, torch.zeros(4, 1, 3), None, so, False)
    with pytest.raises(ValueError, match=r"mu .* must broadcast to grad_z's shape"):
        cb(x, gk, gk, torch.zeros(4, 1, 3), L, None, so, False)
    with pytest.raises(ValueError, match=r"scale_tril .* must broadcast"):
        cb(x, gk, gk, x, torch.eye(3).expand(4, 1, 3, 3), None, so, False)
    with pytest.raises(ValueError, match="need_grad_eps requires an explicit eps"):
        b(x, gk, gk, x, lv, None, so, True)
    with pytest.raises(RuntimeError, match="seed_offset must be an int64 tensor"):
        cb(x, gk, gk, x, L, None, torch.zeros(3, dtype=torch.int64), False)


needs_cpp_cpu_stats = pytest.mark.skipif(
    not (_extension.has_kernel("diag_rsample_stats", "CPU")
         and _extension.has_kernel("chol_rsample_stats", "CPU")),
    reason="the C++ extension has no CPU kernels of the stats ops",
)  # fmt: skip


@needs_cpp_cpu_stats
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_matches_the_cpp_cpu_stats_ops(dtype, gen):
    """The interpreted Triton ops and the C++ CPU ops on the same stream and data: every output
    of both forward and both backward ops."""
    mu = randn((3, 2, 7), dtype, "cpu", gen)
    logvar = randn((7,), dtype, "cpu", gen, 0.5)
    L = _chol_factor((2, 7, 7), dtype, gen)
    gz, gk, gq = _grads((3, 2, 7), dtype, gen)
    for kind, second in (("diag", logvar), ("chol", L)):
        fwd_t = getattr(OPS, f"triton_{kind}_rsample_stats")
        fwd_c = getattr(OPS, f"{kind}_rsample_stats")
        bwd_t = getattr(OPS, f"triton_{kind}_rsample_stats_backward")
        bwd_c = getattr(OPS, f"{kind}_rsample_stats_backward")
        out_t, out_c = fwd_t(mu, second, None, _so()), fwd_c(mu, second, None, _so(), None)
        for x, y in zip(out_t[:3], out_c[:3], strict=True):
            _close(x, y.to(compute_dtype(dtype)), dtype, 7)
        assert torch.equal(out_t[3], out_c[3])
        g_t = bwd_t(gz, gk, gq, mu, second, None, _so(), False)
        g_c = bwd_c(gz, gk, gq, mu, second, None, _so(), False)
        for x, y in zip(g_t[:2], g_c[:2], strict=True):
            _close(x, y.to(compute_dtype(dtype)), dtype, 7)
        eps = randn((3, 2, 7), dtype, "cpu", gen)
        g_t = bwd_t(gz, gk, gq, mu, second, eps, _so(), True)
        g_c = bwd_c(gz, gk, gq, mu, second, eps, _so(), True)
        for x, y in zip(g_t, g_c, strict=True):
            _close(x, y.to(compute_dtype(dtype)), dtype, 7)
