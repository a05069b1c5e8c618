"""Values and gradients on the GPU of the ops with the VAE extras (`diag_rsample_stats`,
`chol_rsample_stats` and their backward ops), for each GPU backend (the CUDA kernels and
Triton), through the public API (`return_stats=True`): against a float64 evaluation of the
reference (python/fused_reparam/reference/stats.py) with explicit eps and with the stream's
eps (the reference noise), every dtype, odd D on every kernel path of each op, broadcast and
strided inputs, num_samples, the CPU path for one seed, grids of many blocks. Skipped without
a GPU (each backend's cases where that backend is unavailable)."""

from __future__ import annotations

import warnings

import pytest
import torch

from _gpu import (
    DEV,
    clean,
    dtype_id,
    each_gpu_backend,
    new_leaves,
    outputs_and_grads,
    signed_factor,
    stats_inputs,
    stats_sample,
    upstream_grads,
)
from conftest import DTYPES, op_pair, randn
from fused_reparam import sample_chol, sample_diag
from fused_reparam.reference import stats as ref
from fused_reparam.reference.philox import compute_dtype, standard_normal

each_backend = each_gpu_backend("diag_rsample_stats", "chol_rsample_stats")
each_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
# Diagonal: the CUDA kernels take tiles of rows up to D = 1024 (a row per warp or less up to
# 128, several warps above), a block per row beyond; Triton tiles of rows up to 1024, a loop
# over tiles beyond. Cholesky: tiles up to 64, a block per row (Triton: a loop) above.
DIAG_D = [1, 3, 7, 33, 128, 130, 600, 1031]
CHOL_D = [1, 3, 7, 33, 64, 65, 130]
SEED, OFFSET = 2**63 + 17, 2**34 + 3


def _tol(dtype, d) -> dict:
    """Sums over D (and the Cholesky dot products) grow their rounding with sqrt(D)."""
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-10 * max(1, d)}
    if dtype == torch.float32:
        return {"rtol": 2e-5, "atol": 2e-5 * max(1.0, d**0.5)}
    eps = torch.finfo(dtype).eps  # one rounding of the float32 result
    return {"rtol": 2 * eps, "atol": 2 * eps * max(1.0, d**0.5)}


def _close(got, want, dtype, d) -> None:
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double().cpu(), w.double().cpu(), **_tol(dtype, d))


def _stream_eps(shape, dtype, seed=SEED, offset=OFFSET) -> torch.Tensor:
    """The contract's eps for a sample of `shape` in the kernels' compute dtype (reference)."""
    return standard_normal(torch.Size(shape), seed, offset, compute_dtype(dtype), DEV)


# ---- diagonal ---------------------------------------------------------------------------


@each_backend
@pytest.mark.parametrize("d", DIAG_D)
@each_dtype
@pytest.mark.parametrize("explicit", [False, True])
def test_diag_values_and_grads_match_reference(explicit, dtype, d, backend, gen):
    rows = max(3, 2048 // d)
    mu, logvar = randn((rows, d), dtype, DEV, gen), randn((rows, d), dtype, DEV, gen, scale=0.5)
    eps = randn((rows, d), dtype, DEV, gen) if explicit else None
    ups = upstream_grads((rows, d), dtype, gen)

    def fused(m, lv, *e):
        kw = {"eps": e[0]} if e else {"seed": SEED, "offset": OFFSET}
        return sample_diag(m, lv, return_stats=True, backend=backend, **kw)

    leaves = new_leaves(mu, logvar, *([eps] if explicit else []))
    got, got_g = outputs_and_grads(fused, leaves, ups)
    e64 = (eps if explicit else _stream_eps((rows, d), dtype)).double()
    want, want_g = outputs_and_grads(
        ref.diag_stats,
        new_leaves(mu.double(), logvar.double(), e64, grad=True),
        tuple(u.double() for u in ups),
    )
    _close(got, want, dtype, d)
    _close(got_g, want_g[: len(got_g)], dtype, d)


@each_backend
@pytest.mark.parametrize("d", [5, 130])
def test_diag_broadcast_logvar_and_num_samples(d, backend, gen):
    """logvar [D] and [B, 1] shared by rows, mu expanded over K samples (stride 0): read in
    place; gradients summed over the broadcast dims."""
    k, b, dtype = 3, 37, torch.float32
    mu = randn((b, d), dtype, DEV, gen)
    for lv_shape in ((d,), (b, 1)):
        logvar = randn(lv_shape, dtype, DEV, gen, scale=0.5)
        ups = upstream_grads((k, b, d), dtype, gen)

        def fused(m, lv):
            r = sample_diag(m, lv, num_samples=k, return_stats=True, backend=backend, seed=SEED)
            return r.z, r.kl.expand(k, b), r.log_q  # kl is the same for each sample

        got, got_g = outputs_and_grads(fused, new_leaves(mu, logvar), ups)
        e64 = _stream_eps((k, b, d), dtype, offset=0).double()
        want, want_g = outputs_and_grads(
            lambda m, lv, e: ref.diag_stats(m.expand(k, b, d), lv, e),
            [*new_leaves(mu.double(), logvar.double()), e64],
            [u.double() for u in ups],
        )
        assert got[0].shape == (k, b, d) and got[2].shape == (k, b)
        _close(got, want, dtype, d)
        _close(got_g, want_g, dtype, d * k * b)


@each_backend
def test_diag_strided_inputs_match_contiguous_copies(backend, gen):
    d = 33
    base = randn((64, 2 * d), torch.float32, DEV, gen, scale=0.5)
    mu, logvar = base[:, ::2], base[:, 1::2]  # stride 2 along D
    eps = randn((d, 64), torch.float32, DEV, gen).t()  # transposed
    for kw in ({"seed": 5}, {"eps": eps}):
        a = sample_diag(mu, logvar, return_stats=True, backend=backend, **kw)
        kw2 = {"eps": eps.contiguous()} if "eps" in kw else kw
        b = sample_diag(
            mu.contiguous(), logvar.contiguous(), return_stats=True, backend=backend, **kw2
        )
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)


# ---- Cholesky ---------------------------------------------------------------------------


@each_backend
@pytest.mark.parametrize("d", CHOL_D)
@each_dtype
@pytest.mark.parametrize("explicit", [False, True])
def test_chol_values_and_grads_match_reference(explicit, dtype, d, backend, gen):
    rows = max(3, 1024 // d) if d <= 64 else 5
    mu, L = randn((rows, d), dtype, DEV, gen), signed_factor((rows,), d, dtype, gen)
    eps = randn((rows, d), dtype, DEV, gen) if explicit else None
    ups = upstream_grads((rows, d), dtype, gen)

    def fused(m, lt, *e):
        kw = {"eps": e[0]} if e else {"seed": SEED, "offset": OFFSET}
        return sample_chol(m, lt, return_stats=True, backend=backend, **kw)

    leaves = new_leaves(mu, L, *([eps] if explicit else []))
    got, got_g = outputs_and_grads(fused, leaves, ups)
    e64 = (eps if explicit else _stream_eps((rows, d), dtype)).double()
    want, want_g = outputs_and_grads(
        ref.chol_stats,
        new_leaves(mu.double(), clean(L.double()), e64),
        tuple(u.double() for u in ups),
    )
    assert not got_g[1].triu(1).any()  # zeros above the diagonal, NaN never read
    # grad_L sums grad_z eps^T over nothing but L's diagonal term grows like 1 / L_ii.
    _close(got, want, dtype, d)
    _close(got_g, want_g[: len(got_g)], dtype, 2 * d)


@each_backend
@pytest.mark.parametrize("d", [6, 70])
def test_chol_shared_factor_and_num_samples(d, backend, gen):
    """One L [D, D] for a batch, and K samples of each row (mu expanded with stride 0)."""
    k, b, dtype = 2, 19, torch.float32
    mu, L = randn((b, d), dtype, DEV, gen), clean(signed_factor((), d, dtype, gen))
    ups = upstream_grads((k, b, d), dtype, gen)

    def fused(m, lt):
        r = sample_chol(m, lt, num_samples=k, return_stats=True, backend=backend, seed=SEED)
        return r.z, r.kl.expand(k, b), r.log_q

    got, got_g = outputs_and_grads(fused, new_leaves(mu, L), ups)
    e64 = _stream_eps((k, b, d), dtype, offset=0).double()

    def exact(m, lt):
        return ref.chol_stats(m.expand(k, b, d), lt, e64)

    want, want_g = outputs_and_grads(
        exact, new_leaves(mu.double(), L.double()), [u.double() for u in ups]
    )
    _close(got, want, dtype, d)
    _close(got_g, want_g, dtype, d * k * b)


@each_backend
@pytest.mark.parametrize("mu_shape", ["shared row", "broadcast along D"])
def test_chol_backward_op_reads_broadcast_operands_in_place(mu_shape, backend, gen):
    """The backward op itself with mu [D] shared by every row (or mu [rows, 1], broadcast
    along D, as the CPU op accepts it) and grad_kl of stride 0."""
    rows, d = 50, 9
    mu = randn((d,) if mu_shape == "shared row" else (rows, 1), torch.float64, DEV, gen)
    L = signed_factor((rows,), d, torch.float64, gen)
    gz = randn((rows, d), torch.float64, DEV, gen)
    gk = torch.full((), 0.7, dtype=torch.float64, device=DEV).expand(rows)
    gq = randn((rows,), torch.float64, DEV, gen)
    e = randn((rows, d), torch.float64, DEV, gen)
    so = torch.zeros(2, dtype=torch.int64, device=DEV)
    _, bwd = op_pair("chol", backend, stats=True)
    got = bwd(gz, gk, gq, mu, L, e, so, True)
    want = ref.chol_stats_backward(gz, gk, gq, mu.expand(rows, d), clean(L), e)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


# ---- both -------------------------------------------------------------------------------


@each_backend
@pytest.mark.parametrize(
    ("kind", "d"), [("diag", 5), ("diag", 33), ("diag", 130), ("chol", 5), ("chol", 70)]
)
def test_same_seed_on_cpu_and_gpu_agrees(kind, d, backend, gen):
    """The CPU path (its fused op, or the reference where it has none) and the GPU backend
    give the same numbers for one seed, within 1e-5 relative in float32."""
    a, b = stats_inputs(kind, 41, d, torch.float32, gen)
    gpu = stats_sample(kind, a, b, seed=SEED, offset=OFFSET, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # auto may fall back to the reference on the CPU
        cpu = stats_sample(kind, a.cpu(), b.cpu(), seed=SEED, offset=OFFSET)
    for x, y in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(x.cpu(), y, rtol=1e-5, atol=1e-5 * d**0.5)


@each_backend
@pytest.mark.parametrize(
    ("kind", "rows", "d"),
    [
        ("diag", 300_007, 3),
        ("diag", 6001, 130),
        ("diag", 1201, 1100),
        ("chol", 300_001, 3),
        ("chol", 1201, 65),
    ],
)
def test_large_grids_cover_every_row(kind, rows, d, backend, gen):
    """Thousands of tiles of rows, the last one partial: the CUDA kernels' grid-stride loops
    (more tiles / rows than the grid's 8 blocks per SM), Triton's grid of one program per
    row block (and tile)."""
    a, b = stats_inputs(kind, rows, d, torch.float32, gen)
    got = stats_sample(kind, a, b, seed=99, backend=backend)
    e = _stream_eps((rows, d), torch.float32, seed=99, offset=0)
    want = (ref.diag_stats if kind == "diag" else ref.chol_stats)(a, b, e)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y, rtol=2e-5, atol=2e-5 * d**0.5)
