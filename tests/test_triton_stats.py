"""The values of the Triton stats ops where only they can go wrong (tests/test_stats.py covers
every backend's contract; their inputs, outputs and errors are tests/test_triton_stats_ops.py):
tile loops (forced small tiles, D = 130), rows that start inside a Philox group, the dense
fallback of more than four batch dims, every scale kind of the diagonal op with and without a
lower bound, and agreement with the C++ CPU stats ops. Run under TRITON_INTERPRET=1 on CPU
tensors; small sizes (the interpreter is slow)."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import DTYPES, randn
from fused_reparam import _extension
from fused_reparam.reference import scale as ref_scale
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


def _check_diag(mu, s, gen, scale=0, min_scale=0.0):
    """Forward (stream and explicit eps) and backward of the Triton diag stats ops against the
    reference formulas on the reference's noise, with scale kind `scale` and `min_scale`."""
    dtype, ct = mu.dtype, compute_dtype(mu.dtype)
    shape = torch.broadcast_shapes(mu.shape, s.shape)
    d = shape[-1]
    e = _noise(shape, dtype)
    sc = (scale, min_scale)
    z, kl, log_q, used = OPS.triton_diag_rsample_stats(mu, s, scale, None, _so(), None, min_scale)
    assert torch.equal(used, _so())
    rz, rkl, rlq = ref.diag_stats(mu.to(ct), s.to(ct), e, *sc)
    _close(z, rz, dtype)
    _close(kl, rkl, dtype, d)
    _close(log_q, rlq, dtype, d)
    gz, gk, gq = _grads(shape, dtype, gen)
    c = [t.to(ct) for t in (gz, gk, gq, mu, s)]
    g_mu, g_s, g_eps = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, s, None, used,
                                                              False, *sc)  # fmt: skip
    r_mu, r_s, _ = ref.diag_stats_backward(*c, e, *sc)
    _close(g_mu, r_mu.expand(shape), dtype)
    _close(g_s, r_s.expand(shape), dtype)
    assert g_eps.shape == (0,)
    # An explicit eps (rounded to dtype), with its gradient.
    eps = e.to(dtype)
    z2, kl2, lq2, used2 = OPS.triton_diag_rsample_stats(mu, s, scale, eps, None, None, min_scale)
    assert torch.equal(used2, torch.zeros(2, dtype=torch.int64))
    rz, rkl, rlq = ref.diag_stats(mu.to(ct), s.to(ct), eps.to(ct), *sc)
    _close(z2, rz, dtype)
    _close(kl2, rkl, dtype, d)
    _close(lq2, rlq, dtype, d)
    out = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, s, eps, used2, True, *sc)
    for got, want in zip(out, ref.diag_stats_backward(*c, eps.to(ct), *sc), strict=True):
        _close(got, want.expand(shape), dtype)


def _scale_input(scale, shape, dtype, gen):
    """A scale input s in the range its kind is used in (std: positive)."""
    x = randn(shape, torch.float64, "cpu", gen, scale=0.5)
    return (0.3 + x.abs() if scale == ref_scale.STD else x).to(dtype)


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
    s = randn((1, 2, 1, 2, 1, 3), torch.float64, "cpu", gen)
    _check_diag(mu, s, gen)
    L = _chol_factor((1, 2, 1, 2, 1, 3, 3), torch.float64, gen)
    _check_chol(mu, L, gen)


@pytest.mark.parametrize("min_scale", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("scale", [1, 2, 3], ids=ref_scale.SCALES[1:])
def test_diag_scales_small_tiles_forced(scale, dtype, min_scale, gen, monkeypatch):
    """Each scale kind but logvar (every test above), with and without a lower bound, on tiles
    of 4 x 8 (a loop over D tiles, rows starting inside a Philox group) and a broadcast s."""
    from fused_reparam._triton import stats_ops

    monkeypatch.setattr(stats_ops, "DIAG_MAX_BLOCK_D", 8)
    monkeypatch.setattr(stats_ops, "DIAG_TILE", 32)
    mu = randn((3, 1, 11), dtype, "cpu", gen)
    _check_diag(mu, _scale_input(scale, (2, 11), dtype, gen), gen, scale, min_scale)


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
        out_t = fwd_t(mu, second, seed_offset=_so())
        out_c = fwd_c(mu, second, seed_offset=_so(), generator=None)
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


@needs_cpp_cpu_stats
@pytest.mark.parametrize("min_scale", [0.0, 0.05])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1, 2, 3], ids=ref_scale.SCALES[1:])
def test_triton_matches_the_cpp_cpu_diag_stats_ops_for_every_scale(scale, dtype, min_scale, gen):
    """As above for the diagonal ops with a scale other than logvar, with and without a lower
    bound, including the softplus tail (s < -20) that has its own formulas."""
    mu = randn((3, 7), dtype, "cpu", gen)
    s = _scale_input(scale, (3, 7), dtype, gen)
    if scale == ref_scale.SOFTPLUS:
        s[0, :3] = torch.tensor([-25.0, -40.0, 30.0], dtype=dtype)
    gz, gk, gq = _grads((3, 7), dtype, gen)
    eps = randn((3, 7), dtype, "cpu", gen)
    sc = (scale, min_scale)
    out_t = OPS.triton_diag_rsample_stats(mu, s, scale, None, _so(), None, min_scale)
    out_c = OPS.diag_rsample_stats(mu, s, scale, None, _so(), None, min_scale)
    g_t = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, s, eps, _so(), True, *sc)
    g_c = OPS.diag_rsample_stats_backward(gz, gk, gq, mu, s, eps, _so(), True, *sc)
    for x, y in zip((*out_t[:3], *g_t), (*out_c[:3], *g_c), strict=True):
        _close(x, y.to(compute_dtype(dtype)), dtype, 7)
