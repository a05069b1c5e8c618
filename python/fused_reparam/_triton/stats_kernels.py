"""Triton kernels of the diagonal op with the VAE extras (the Cholesky op's are the STATS
variants of chol_kernels.py): z, kl and log q(z) in one pass forward, every gradient in one
pass backward.

A program covers BLOCK_R sample rows as [BLOCK_R, BLOCK_D] tiles of the event dim. The
forward program owns whole rows: it loops over their D tiles, storing z and summing each
row's extras in registers, then stores kl and log_q of its rows (no atomics, no second
launch). The backward needs no row sums (grad_kl and grad_log_q are per row), so it runs
row blocks x D tiles programs, one tile each (in grid dim 0: cursor.program_rows).

Operands are read as chol_kernels.py reads them: at cursor.operand_offset of the row (their
StridedLayout over the batch, layout.py: stride 0 where broadcast) plus a stride within the
row (0 for an operand broadcast along D), so a shared scale input s [D] or the stride-0 mu of
num_samples is never copied. Noise is cursor.tile_eps: element r*D + j of the contract
stream (noise.noise_index), four elements a Philox call when D % 4 == 0 (ALIGNED4).
The formulas are those of csrc/include/fused_reparam/stats_math.h, with sigma of s by kind
SCALE and lower bound min_scale, and lv = 2 log sigma (scale.py); SQUASH (a constexpr) adds
the tanh squash of csrc/include/fused_reparam/squash.h (squash.py). (s1..s3 are the sample's
sizes; s_* the scale input's.)
"""

from __future__ import annotations

import triton
import triton.language as tl

from . import scale as sc
from . import squash
from .casts import to_element_type
from .cursor import load_row_tile, operand_offset, program_rows, tile_eps
from .noise import LOG_2PI, stream_key


@triton.jit
def diag_stats_forward_kernel(
    z_ptr, kl_ptr, lq_ptr, mu_ptr, s_ptr, eps_ptr, so_ptr, used_ptr,
    rows_total, d, so_stride, s1, s2, s3,
    mu_t0, mu_t1, mu_t2, mu_t3,
    s_t0, s_t1, s_t2, s_t3,
    eps_t0, eps_t1, eps_t2, eps_t3,
    mu_sj, s_sj, eps_sj, min_scale: tl.float64,
    low: tl.float64, half: tl.float64, log_half: tl.float64,
    NDIM: tl.constexpr, HAS_EPS: tl.constexpr, IDX64: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr, ALIGNED4: tl.constexpr, F64: tl.constexpr, SCALE: tl.constexpr,
    SQUASH: tl.constexpr,
):  # fmt: skip
    """z = mu + sigma(s) * eps over whole rows, and per row, with lv = 2 log sigma,
    kl = 0.5 * sum(mu^2 + sigma^2 - 1 - lv), log_q = -0.5 * (sum(eps^2 + lv) + D log 2pi);
    eps is read, or made from the stream [seed, offset] at so_ptr. With SQUASH, z is the
    action low + half * (tanh(u) + 1) of u = mu + sigma * eps and log_q's sum adds
    2 (log_dtanh(u) + log_half) an element (squash.py)."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    rows, row_ok, _t, _i = program_rows(rows_total, BLOCK_R, BLOCK_D, IDX64)
    mu_off = operand_offset(rows, s1, s2, s3, mu_t0, mu_t1, mu_t2, mu_t3, False, NDIM)
    s_off = operand_offset(rows, s1, s2, s3, s_t0, s_t1, s_t2, s_t3, False, NDIM)
    eps_off = operand_offset(rows, s1, s2, s3, eps_t0, eps_t1, eps_t2, eps_t3, False, NDIM)
    seed, offset = stream_key(so_ptr, so_stride, HAS_EPS)
    if tl.program_id(0) == 0:
        # The stream used (zeros for an explicit eps), so backward regenerates the same eps.
        tl.store(used_ptr, seed)
        tl.store(used_ptr + 1, offset)
    ms = sc.lower_bound(min_scale, F64)
    sq_low, sq_half, sq_log_half = squash.constants(low, half, log_half, SQUASH, F64)
    kl_sum = tl.zeros((BLOCK_R,), ct)
    lq_sum = tl.zeros((BLOCK_R,), ct)
    for jt in range(0, tl.cdiv(d, BLOCK_D)):
        j0 = jt * BLOCK_D
        j = j0 + tl.arange(0, BLOCK_D)
        if IDX64:
            j = j.to(tl.int64)
        mask = row_ok[:, None] & (j < d)[None, :]
        mu = load_row_tile(mu_ptr, mu_off, mu_sj, mask, j, F64)
        s = load_row_tile(s_ptr, s_off, s_sj, mask, j, F64)
        eps = tile_eps(eps_ptr, eps_off, eps_sj, seed, offset, rows, row_ok, j0, d,
                        HAS_EPS, IDX64, BLOCK_R, BLOCK_D, ALIGNED4, F64)  # fmt: skip
        sigma = sc.sigma(s, SCALE, ms)
        lv = sc.log_var(s, sigma, SCALE, ms)
        u = mu + sigma * eps
        z = u
        if SQUASH:
            z = squash.action(u, sq_low, sq_half)
        tl.store(z_ptr + rows[:, None] * d + j[None, :], to_element_type(z, z_ptr), mask=mask)
        kl_sum += tl.sum(tl.where(mask, mu * mu + sigma * sigma - 1.0 - lv, 0.0), axis=1)
        lq = squash.log_q_term(eps, lv, u, sq_log_half, SQUASH)
        lq_sum += tl.sum(tl.where(mask, lq, 0.0), axis=1)
    d_ct = tl.zeros((BLOCK_R,), ct) + d
    kl = 0.5 * kl_sum
    log_q = -0.5 * (lq_sum + d_ct * tl.full((), LOG_2PI, ct))
    tl.store(kl_ptr + rows, to_element_type(kl, kl_ptr), mask=row_ok)
    tl.store(lq_ptr + rows, to_element_type(log_q, lq_ptr), mask=row_ok)


@triton.jit
def diag_stats_backward_kernel(
    gmu_ptr, gs_ptr, geps_ptr, g_ptr, gk_ptr, gq_ptr, mu_ptr, s_ptr, eps_ptr, so_ptr,
    rows_total, d, so_stride, s1, s2, s3,
    g_t0, g_t1, g_t2, g_t3,
    gk_t0, gk_t1, gk_t2, gk_t3,
    gq_t0, gq_t1, gq_t2, gq_t3,
    mu_t0, mu_t1, mu_t2, mu_t3,
    s_t0, s_t1, s_t2, s_t3,
    eps_t0, eps_t1, eps_t2, eps_t3,
    g_sj, mu_sj, s_sj, eps_sj, min_scale: tl.float64, half: tl.float64,
    NDIM: tl.constexpr, HAS_EPS: tl.constexpr, NEED_GRAD_EPS: tl.constexpr,
    IDX64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
    ALIGNED4: tl.constexpr, F64: tl.constexpr, SCALE: tl.constexpr, SQUASH: tl.constexpr,
):  # fmt: skip
    """For this program's rows and D tile, with gk = grad_kl[r], gq = grad_log_q[r],
    sigma' = d sigma / ds and dlog = d log sigma / ds: grad_mu = g + gk * mu,
    grad_s = sigma' * (g * eps + gk * sigma) - dlog * (gk + gq) and, when asked,
    grad_eps = g * sigma - gq * eps; eps read or regenerated. With SQUASH, g (the action's
    gradient) is first replaced by the gradient reaching u = mu + sigma * eps:
    g * half * exp(log_dtanh(u)) + 2 gq tanh(u) (squash.py)."""
    rows, row_ok, t, j = program_rows(rows_total, BLOCK_R, BLOCK_D, IDX64)
    g_off = operand_offset(rows, s1, s2, s3, g_t0, g_t1, g_t2, g_t3, False, NDIM)
    gk_off = operand_offset(rows, s1, s2, s3, gk_t0, gk_t1, gk_t2, gk_t3, False, NDIM)
    gq_off = operand_offset(rows, s1, s2, s3, gq_t0, gq_t1, gq_t2, gq_t3, False, NDIM)
    mu_off = operand_offset(rows, s1, s2, s3, mu_t0, mu_t1, mu_t2, mu_t3, False, NDIM)
    s_off = operand_offset(rows, s1, s2, s3, s_t0, s_t1, s_t2, s_t3, False, NDIM)
    eps_off = operand_offset(rows, s1, s2, s3, eps_t0, eps_t1, eps_t2, eps_t3, False, NDIM)
    seed, offset = stream_key(so_ptr, so_stride, HAS_EPS)
    mask = row_ok[:, None] & (j < d)[None, :]
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    gk = tl.load(gk_ptr + gk_off, mask=row_ok, other=0.0).to(ct)[:, None]
    gq = tl.load(gq_ptr + gq_off, mask=row_ok, other=0.0).to(ct)[:, None]
    g = load_row_tile(g_ptr, g_off, g_sj, mask, j, F64)
    mu = load_row_tile(mu_ptr, mu_off, mu_sj, mask, j, F64)
    s = load_row_tile(s_ptr, s_off, s_sj, mask, j, F64)
    eps = tile_eps(eps_ptr, eps_off, eps_sj, seed, offset, rows, row_ok, t * BLOCK_D, d,
                    HAS_EPS, IDX64, BLOCK_R, BLOCK_D, ALIGNED4, F64)  # fmt: skip
    ms = sc.lower_bound(min_scale, F64)
    base = sc.sigma_base(s, SCALE)
    sigma = base + ms
    if SQUASH:
        g = squash.grad_u(g, gq, mu + sigma * eps, sc.lower_bound(half, F64))
    dsig = sc.dsigma(s, base, SCALE)
    dlog = sc.dlog_sigma(s, sigma, dsig, SCALE, ms)
    out = rows[:, None] * d + j[None, :]
    tl.store(gmu_ptr + out, to_element_type(g + gk * mu, gmu_ptr), mask=mask)
    gs = dsig * (g * eps + gk * sigma) - dlog * (gk + gq)
    tl.store(gs_ptr + out, to_element_type(gs, gs_ptr), mask=mask)
    if NEED_GRAD_EPS:
        tl.store(geps_ptr + out, to_element_type(g * sigma - gq * eps, geps_ptr), mask=mask)
