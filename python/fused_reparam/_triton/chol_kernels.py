"""Triton kernels of the Cholesky op z = mu + L eps: one pass forward, one pass backward.

A program covers BLOCK_R sample rows and one tile t of BLOCK_D indices of the event dim
(row blocks x tiles programs, all in grid dim 0: cursor.program_rows). Tiles of L are
[BLOCK_R, BLOCK_D, BLOCK_D] (rows x i x j), loaded with the lower-triangle mask j <= i < d:
the upper triangle is never read. For D up to BLOCK_D (small D) one tile covers a whole L
and a program handles many rows; for larger D a program loops over the tiles of its row or
column panel, so registers stay bounded for any D.

- forward, tile t: z[r, i in t] = mu + sum over column tiles jt <= t of L[r, i, jt] eps[r, jt].
- backward, tile t: grad_L[r, i in t, :] = g[r, i] eps[r, j] (j <= i, zeros above), and
  grad_eps[r, j in t] = sum over row tiles it >= t of L[r, it, j]^T g[r, it]. Each output
  element is written by exactly one program (no atomics, deterministic).
- STATS (the ops with VAE extras, stats_ops.py): the forward program owns whole rows (one
  program a row block) and loops over their tiles, summing each row's extras in registers as
  it goes: |tril L|^2 from the L tiles it loads anyway, |mu|^2, |eps|^2 of the diagonal tiles
  and log|L_ii|. The backward keeps its programs and adds the extras' gradients to the outputs
  it writes, plus grad_mu (formulas of csrc/include/fused_reparam/stats_math.h).

The grid is the sample's rows: operands are read at cursor.operand_offset of the row (their
StridedLayout over the batch, layout.py: stride 0 where broadcast) plus their own strides
within a row, so broadcast and strided inputs, a shared L included, are never copied. Noise
(cursor.tile_eps, noise.tile_normals): eps[r, j] is element noise_index(r, j, D) = r*D + j of
the contract stream; with D % 4 == 0 (ALIGNED4) a tile's columns start at a multiple of 4 and
each Philox call feeds four consecutive elements, else each element takes its lane of its
group's call. IDX64 switches index math to int64.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .casts import to_element_type
from .cursor import load_row_tile, operand_offset, program_rows, tile_eps
from .noise import LOG_2PI, stream_key


@triton.jit
def _lower_tile(l_ptr, l_off, l_si, l_sj, row_ok, i, j, d, F64: tl.constexpr):
    """L[r, i, j] as [BLOCK_R, len(i), len(j)] in the compute type, 0 where j > i (never
    read) or outside the matrix."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    ii = i[None, :, None]
    jj = j[None, None, :]
    mask = row_ok[:, None, None] & (ii < d) & (jj <= ii)
    ptrs = l_ptr + l_off[:, None, None] + ii * l_si + jj * l_sj
    return tl.load(ptrs, mask=mask, other=0.0).to(ct)


@triton.jit
def _forward_tile(z_ptr, mu_ptr, l_ptr, eps_ptr, seed, offset, rows, row_ok, t, d,
                  mu_off, l_off, eps_off, mu_sj, l_si, l_sj, eps_sj,
                  HAS_EPS: tl.constexpr, IDX64: tl.constexpr, BLOCK_R: tl.constexpr,
                  BLOCK_D: tl.constexpr, ALIGNED4: tl.constexpr, F64: tl.constexpr,
                  STATS: tl.constexpr):  # fmt: skip
    """Stores z[r, i] for i in tile t. Returns, with STATS, the tile's per-row partial sums
    (sum_{i in t, j <= i} L[i, j]^2 + sum_{i in t} mu_i^2, sum_{i in t} eps_i^2,
    sum_{i in t} log|L[i, i]|), else zeros."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    if IDX64:
        t = t.to(tl.int64)
    i = t * BLOCK_D + tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_R, BLOCK_D), ct)
    sq = tl.zeros((BLOCK_R,), ct)
    e_sq = tl.zeros((BLOCK_R,), ct)
    log_det = tl.zeros((BLOCK_R,), ct)
    if STATS:
        eps_t = tl.zeros((BLOCK_R, BLOCK_D), ct)
    for jt in range(0, t + 1):  # column tiles up to the diagonal tile
        j0 = jt * BLOCK_D
        eps = tile_eps(eps_ptr, eps_off, eps_sj, seed, offset, rows, row_ok, j0, d,
                        HAS_EPS, IDX64, BLOCK_R, BLOCK_D, ALIGNED4, F64)  # fmt: skip
        lt = _lower_tile(l_ptr, l_off, l_si, l_sj, row_ok, i, j0 + tl.arange(0, BLOCK_D), d,
                         F64)  # fmt: skip
        acc += tl.sum(lt * eps[:, None, :], axis=2)
        if STATS:
            sq += tl.sum(tl.sum(lt * lt, axis=2), axis=1)
            eps_t = eps  # the last tile, jt == t, is the diagonal one: eps of columns i
    mask = row_ok[:, None] & (i < d)[None, :]
    mu = load_row_tile(mu_ptr, mu_off, mu_sj, mask, i, F64)
    z = mu + acc
    tl.store(z_ptr + rows[:, None] * d + i[None, :], to_element_type(z, z_ptr), mask=mask)
    if STATS:
        diag = tl.load(l_ptr + l_off[:, None] + i[None, :] * (l_si + l_sj), mask=mask,
                       other=1.0).to(ct)  # fmt: skip
        sq += tl.sum(mu * mu, axis=1)
        e_sq = tl.sum(tl.where(mask, eps_t * eps_t, 0.0), axis=1)
        log_det = tl.sum(tl.log(tl.abs(diag)), axis=1)
    return sq, e_sq, log_det


@triton.jit
def chol_forward_kernel(
    z_ptr, mu_ptr, l_ptr, eps_ptr, so_ptr, used_ptr,
    rows_total, d, so_stride, s1, s2, s3,
    mu_t0, mu_t1, mu_t2, mu_t3,
    l_t0, l_t1, l_t2, l_t3,
    eps_t0, eps_t1, eps_t2, eps_t3,
    mu_sj, l_si, l_sj, eps_sj,
    kl_ptr, lq_ptr,
    NDIM: tl.constexpr, HAS_EPS: tl.constexpr, IDX64: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr, ALIGNED4: tl.constexpr, F64: tl.constexpr, STATS: tl.constexpr,
):  # fmt: skip
    """z[r, i] = mu[r, i] + sum_{j <= i} L[r, i, j] eps[r, j] for the rows and tile (of i)
    of this program; eps is read, or made from the stream [seed, offset] at so_ptr.

    STATS (one program a row block): the program loops over every tile of its rows and also
    stores, per row, kl = 0.5 * (sum_{j <= i} L_ij^2 + |mu|^2 - D) - ld and
    log_q = -0.5 * |eps|^2 - ld - 0.5 * D * log(2 pi), ld = sum_i log|L_ii| (kl_ptr, lq_ptr
    are unused otherwise)."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    rows, row_ok, t, _i = program_rows(rows_total, BLOCK_R, BLOCK_D, IDX64)
    mu_off = operand_offset(rows, s1, s2, s3, mu_t0, mu_t1, mu_t2, mu_t3, False, NDIM)
    l_off = operand_offset(rows, s1, s2, s3, l_t0, l_t1, l_t2, l_t3, False, NDIM)
    eps_off = operand_offset(rows, s1, s2, s3, eps_t0, eps_t1, eps_t2, eps_t3, False, NDIM)
    seed, offset = stream_key(so_ptr, so_stride, HAS_EPS)
    if tl.program_id(0) == 0:
        # The stream used (zeros for an explicit eps), so backward regenerates the same eps;
        # written here rather than by a separate fill or copy launch.
        tl.store(used_ptr, seed)
        tl.store(used_ptr + 1, offset)
    if STATS:
        sq = tl.zeros((BLOCK_R,), ct)
        e_sq = tl.zeros((BLOCK_R,), ct)
        log_det = tl.zeros((BLOCK_R,), ct)
        for tt in range(0, tl.cdiv(d, BLOCK_D)):
            a, b, c = _forward_tile(z_ptr, mu_ptr, l_ptr, eps_ptr, seed, offset, rows, row_ok,
                                    tt, d, mu_off, l_off, eps_off, mu_sj, l_si, l_sj, eps_sj,
                                    HAS_EPS, IDX64, BLOCK_R, BLOCK_D, ALIGNED4, F64,
                                    STATS)  # fmt: skip
            sq += a
            e_sq += b
            log_det += c
        d_ct = tl.zeros((BLOCK_R,), ct) + d
        kl = 0.5 * (sq - d_ct) - log_det
        log_q = -0.5 * e_sq - log_det - (0.5 * d_ct) * tl.full((), LOG_2PI, ct)
        tl.store(kl_ptr + rows, to_element_type(kl, kl_ptr), mask=row_ok)
        tl.store(lq_ptr + rows, to_element_type(log_q, lq_ptr), mask=row_ok)
    else:
        _forward_tile(z_ptr, mu_ptr, l_ptr, eps_ptr, seed, offset, rows, row_ok, t, d,
                      mu_off, l_off, eps_off, mu_sj, l_si, l_sj, eps_sj,
                      HAS_EPS, IDX64, BLOCK_R, BLOCK_D, ALIGNED4, F64, STATS)  # fmt: skip


@triton.jit
def chol_backward_kernel(
    gl_ptr, geps_ptr, g_ptr, l_ptr, eps_ptr, so_ptr,
    rows_total, d, so_stride, s1, s2, s3,
    g_t0, g_t1, g_t2, g_t3,
    l_t0, l_t1, l_t2, l_t3,
    eps_t0, eps_t1, eps_t2, eps_t3,
    g_sj, l_si, l_sj, eps_sj,
    gmu_ptr, mu_ptr, gk_ptr, gq_ptr,
    mu_t0, mu_t1, mu_t2, mu_t3,
    gk_t0, gk_t1, gk_t2, gk_t3,
    gq_t0, gq_t1, gq_t2, gq_t3,
    mu_sj,
    NDIM: tl.constexpr, HAS_EPS: tl.constexpr, NEED_GRAD_EPS: tl.constexpr,
    IDX64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
    ALIGNED4: tl.constexpr, F64: tl.constexpr, STATS: tl.constexpr,
):  # fmt: skip
    """grad_L[r, i, j] = g[r, i] eps[r, j] (j <= i, else 0) for i in this program's tile, and
    when asked grad_eps[r, j] = sum_{i >= j} L[r, i, j] g[r, i] for j in the tile.

    STATS adds the gradients of the extras, with gk = grad_kl[r] and gq = grad_log_q[r]:
    grad_L += gk * L[r, i, j] (j <= i) and, on the diagonal, -(gk + gq) / L[r, i, i];
    grad_eps -= gq * eps[r, j]; and grad_mu[r, i] = g[r, i] + gk * mu[r, i] for i in the tile
    (the gmu_ptr .. mu_sj arguments are unused otherwise)."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    rows, row_ok, t, i = program_rows(rows_total, BLOCK_R, BLOCK_D, IDX64)
    g_off = operand_offset(rows, s1, s2, s3, g_t0, g_t1, g_t2, g_t3, False, NDIM)
    l_off = operand_offset(rows, s1, s2, s3, l_t0, l_t1, l_t2, l_t3, False, NDIM)
    eps_off = operand_offset(rows, s1, s2, s3, eps_t0, eps_t1, eps_t2, eps_t3, False, NDIM)
    seed, offset = stream_key(so_ptr, so_stride, HAS_EPS)
    i_ok = i < d
    mask = row_ok[:, None] & i_ok[None, :]
    g = load_row_tile(g_ptr, g_off, g_sj, mask, i, F64)
    if STATS:
        gk_off = operand_offset(rows, s1, s2, s3, gk_t0, gk_t1, gk_t2, gk_t3, False, NDIM)
        gq_off = operand_offset(rows, s1, s2, s3, gq_t0, gq_t1, gq_t2, gq_t3, False, NDIM)
        mu_off = operand_offset(rows, s1, s2, s3, mu_t0, mu_t1, mu_t2, mu_t3, False, NDIM)
        gk = tl.load(gk_ptr + gk_off, mask=row_ok, other=0.0).to(ct)
        gq = tl.load(gq_ptr + gq_off, mask=row_ok, other=0.0).to(ct)
        mu = load_row_tile(mu_ptr, mu_off, mu_sj, mask, i, F64)
        gmu = g + gk[:, None] * mu
        tl.store(gmu_ptr + rows[:, None] * d + i[None, :], to_element_type(gmu, gmu_ptr),
                 mask=mask)  # fmt: skip
        diag = tl.load(l_ptr + l_off[:, None] + i[None, :] * (l_si + l_sj), mask=mask,
                       other=1.0).to(ct)  # fmt: skip
        # (gk + gq) / L_ii for i in the tile, correctly rounded (a float32 `/` is approximate).
        gkq = tl.broadcast_to((gk + gq)[:, None], (BLOCK_R, BLOCK_D))
        if F64:
            diag_term = gkq / diag
        else:
            diag_term = tl.div_rn(gkq, diag)
    # grad_L rows i of this tile, row-major [BLOCK_R, BLOCK_D (i), BLOCK_D (j)] tiles.
    gl_rows = gl_ptr + rows[:, None, None] * d * d + i[None, :, None] * d
    row_mask = row_ok[:, None, None] & i_ok[None, :, None]
    for jt in range(0, t + 1):  # column tiles that meet the lower triangle
        j = jt * BLOCK_D + tl.arange(0, BLOCK_D)
        eps = tile_eps(eps_ptr, eps_off, eps_sj, seed, offset, rows, row_ok, jt * BLOCK_D, d,
                        HAS_EPS, IDX64, BLOCK_R, BLOCK_D, ALIGNED4, F64)  # fmt: skip
        jj = j[None, None, :]
        gl = g[:, :, None] * eps[:, None, :]
        if STATS:
            lt = _lower_tile(l_ptr, l_off, l_si, l_sj, row_ok, i, j, d, F64)
            gl = gl + gk[:, None, None] * lt
            gl = tl.where(jj == i[None, :, None], gl - diag_term[:, :, None], gl)
        gl = tl.where(jj <= i[None, :, None], gl, 0.0)
        tl.store(gl_rows + jj, to_element_type(gl, gl_ptr), mask=row_mask & (jj < d))
    zeros = tl.zeros((BLOCK_R, BLOCK_D, BLOCK_D), ct)
    for jt in range(t + 1, tl.cdiv(d, BLOCK_D)):  # column tiles above the diagonal: zeros
        jj = (jt * BLOCK_D + tl.arange(0, BLOCK_D))[None, None, :]
        tl.store(gl_rows + jj, to_element_type(zeros, gl_ptr), mask=row_mask & (jj < d))
    if NEED_GRAD_EPS:
        # Columns j of this tile: sum over the row tiles at or below the diagonal.
        acc = tl.zeros((BLOCK_R, BLOCK_D), ct)
        for it in range(t, tl.cdiv(d, BLOCK_D)):
            ri = it * BLOCK_D + tl.arange(0, BLOCK_D)
            gi = load_row_tile(g_ptr, g_off, g_sj, row_ok[:, None] & (ri < d)[None, :], ri, F64)
            lt = _lower_tile(l_ptr, l_off, l_si, l_sj, row_ok, ri, i, d, F64)
            acc += tl.sum(lt * gi[:, :, None], axis=1)
        if STATS:
            # eps of this tile's columns (an explicit eps: need_grad_eps requires one).
            eps_t = tile_eps(eps_ptr, eps_off, eps_sj, seed, offset, rows, row_ok,
                              t * BLOCK_D, d, HAS_EPS, IDX64, BLOCK_R, BLOCK_D, ALIGNED4,
                              F64)  # fmt: skip
            acc = acc - gq[:, None] * eps_t
        tl.store(geps_ptr + rows[:, None] * d + i[None, :], to_element_type(acc, geps_ptr),
                 mask=mask)  # fmt: skip
