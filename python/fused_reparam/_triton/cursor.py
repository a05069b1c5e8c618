"""The kernel side of layout.StridedLayout: which indices a program takes, and where each
operand's elements of those indices are.

A StridedLayout reaches a kernel as s1, s2, s3 (the merged grid sizes but the outermost),
each operand's grid strides t0..t3 (padded at the front with 0s), its strides within a row,
and the constexprs NDIM and IDX64 (index math in int64).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .noise import noise_index, tile_normals


@triton.jit
def program_groups(GROUPS: tl.constexpr, IDX64: tl.constexpr):
    """(element indices [GROUPS, 4], group indices [GROUPS]) of this program of an
    elementwise kernel: 4 * GROUPS consecutive elements, four (one Philox group) a row."""
    pid = tl.program_id(0)
    if IDX64:
        pid = pid.to(tl.int64)
    group = pid * GROUPS + tl.arange(0, GROUPS)
    return noise_index(group[:, None], tl.arange(0, 4)[None, :], 4), group


@triton.jit
def program_rows(rows_total, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, IDX64: tl.constexpr):
    """(sample rows [BLOCK_R], their mask, tile index t, tile's indices [BLOCK_D]) of this
    program of a row kernel.

    Programs are numbered row block fastest, then tile (so programs running together read the
    same tiles of a shared operand), all in grid dim 0: dims 1 and 2 hold at most 65535 on
    CUDA, fewer than the tiles of a long row; dim 0 holds 2**31 - 1, more than any sample that
    fits in memory needs."""
    pid = tl.program_id(0)
    if IDX64:
        pid = pid.to(tl.int64)
    row_blocks = tl.cdiv(rows_total, BLOCK_R)
    pid_r = pid % row_blocks
    t = pid // row_blocks
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    return rows, rows < rows_total, t, t * BLOCK_D + tl.arange(0, BLOCK_D)


@triton.jit
def operand_offset(index, s1, s2, s3, t0, t1, t2, t3, CONTIG: tl.constexpr, NDIM: tl.constexpr):
    """Offset of grid index `index` (an element, or a row's start) in an operand with grid
    strides (t0, t1, t2, t3) over the merged sizes (.., s1, s2, s3), NDIM of them real
    (counted from the inner end). CONTIG: the operand is dense over the grid, so the offset is
    the index itself (no division, and Triton sees the contiguity: vector loads)."""
    if CONTIG:
        off = index
    elif NDIM == 1:
        off = index * t3
    else:
        off = (index % s3) * t3
        rest = index // s3
        if NDIM == 2:
            off += rest * t2
        else:
            off += (rest % s2) * t2
            rest = rest // s2
            if NDIM == 3:
                off += rest * t1
            else:
                off += (rest % s1) * t1 + (rest // s1) * t0
    return off


@triton.jit
def load_row_tile(ptr, row_off, sj, mask, cols, F64: tl.constexpr):
    """An operand at columns `cols` of the rows at grid offsets `row_off` (its stride within a
    row `sj`, 0 when broadcast along it), [len(row_off), len(cols)], 0 where masked, in the
    compute type."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    return tl.load(ptr + row_off[:, None] + cols[None, :] * sj, mask=mask, other=0.0).to(ct)


@triton.jit
def tile_eps(eps_ptr, eps_off, eps_sj, seed, offset, rows, row_ok, j0, d,
             HAS_EPS: tl.constexpr, IDX64: tl.constexpr, BLOCK_R: tl.constexpr,
             BLOCK_D: tl.constexpr, ALIGNED4: tl.constexpr, F64: tl.constexpr):  # fmt: skip
    """eps [BLOCK_R, BLOCK_D] of a row kernel's rows and columns j0..: the eps operand read
    (0 outside the sample), or made from the stream (seed, offset)."""
    if HAS_EPS:
        j = j0 + tl.arange(0, BLOCK_D)
        if IDX64:
            j = j.to(tl.int64)
        mask = row_ok[:, None] & (j < d)[None, :]
        eps = load_row_tile(eps_ptr, eps_off, eps_sj, mask, j, F64)
    else:
        eps = tile_normals(seed, offset, rows, j0, d, BLOCK_R, BLOCK_D, ALIGNED4, F64)
    return eps
