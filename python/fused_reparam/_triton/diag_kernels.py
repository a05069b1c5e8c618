"""Triton kernels of the diagonal op: one pass forward, one pass backward.

Each program covers 4 * GROUPS consecutive output elements as a [GROUPS, 4] block
(cursor.program_groups), so one Philox call feeds the four elements of a group. The grid is
the sample's elements: inputs are read at cursor.operand_offset of the element index (their
StridedLayout, layout.py): a contiguous input at the index itself (CONTIG), others through at
most three divisions. IDX64 switches all index math to int64. The formulas are those of
csrc/include/fused_reparam/diag_math.h, with sigma of the scale input s by kind SCALE and
lower bound min_scale (scale.py), and stream noise of kind NOISE (noise.py; the backward
regenerates the forward's, so both take the same kind).
"""

from __future__ import annotations

import triton
import triton.language as tl

from . import scale as sc
from .casts import to_element_type
from .cursor import operand_offset, program_groups
from .noise import stream_key, stream_noise


@triton.jit
def _load(ptr, idx, mask, s1, s2, s3, t0, t1, t2, t3, CONTIG: tl.constexpr,
          NDIM: tl.constexpr, F64: tl.constexpr):  # fmt: skip
    """One operand at elements `idx`, in the compute type."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    off = operand_offset(idx, s1, s2, s3, t0, t1, t2, t3, CONTIG, NDIM)
    return tl.load(ptr + off, mask=mask).to(ct)


@triton.jit
def _eps(eps_ptr, so_ptr, so_stride, idx, group, mask, s1, s2, s3, t0, t1, t2, t3,
         EPS_CONTIG: tl.constexpr, HAS_EPS: tl.constexpr, NDIM: tl.constexpr,
         GROUPS: tl.constexpr, NOISE: tl.constexpr, F64: tl.constexpr):  # fmt: skip
    """(eps, seed, offset): eps read from eps_ptr (then seed = offset = 0), or made from the
    stream [seed, offset] at so_ptr (noise of kind NOISE)."""
    seed, offset = stream_key(so_ptr, so_stride, HAS_EPS)
    if HAS_EPS:
        eps = _load(eps_ptr, idx, mask, s1, s2, s3, t0, t1, t2, t3, EPS_CONTIG, NDIM, F64)
    else:
        eps = stream_noise(seed, offset, group, GROUPS, NOISE, F64)
    return eps, seed, offset


@triton.jit
def diag_forward_kernel(
    z_ptr, mu_ptr, s_ptr, eps_ptr, so_ptr, used_ptr,
    numel, so_stride, s1, s2, s3,
    mu_t0, mu_t1, mu_t2, mu_t3,
    s_t0, s_t1, s_t2, s_t3,
    eps_t0, eps_t1, eps_t2, eps_t3,
    min_scale: tl.float64,
    NDIM: tl.constexpr, MU_CONTIG: tl.constexpr, S_CONTIG: tl.constexpr,
    EPS_CONTIG: tl.constexpr, HAS_EPS: tl.constexpr, IDX64: tl.constexpr,
    GROUPS: tl.constexpr, F64: tl.constexpr, SCALE: tl.constexpr, NOISE: tl.constexpr,
):  # fmt: skip
    """z = mu + sigma(s) * eps; eps is read, or made from the stream at so_ptr (kind NOISE).
    (s1..s3 are the sample's sizes; s_* the scale input's.)"""
    idx, group = program_groups(GROUPS, IDX64)
    mask = idx < numel
    mu = _load(mu_ptr, idx, mask, s1, s2, s3, mu_t0, mu_t1, mu_t2, mu_t3, MU_CONTIG, NDIM, F64)
    s = _load(s_ptr, idx, mask, s1, s2, s3, s_t0, s_t1, s_t2, s_t3, S_CONTIG, NDIM, F64)
    eps, seed, offset = _eps(eps_ptr, so_ptr, so_stride, idx, group, mask, s1, s2, s3,
                             eps_t0, eps_t1, eps_t2, eps_t3, EPS_CONTIG, HAS_EPS, NDIM,
                             GROUPS, NOISE, F64)  # fmt: skip
    if tl.program_id(0) == 0:
        # The stream used (zeros for an explicit eps), so backward regenerates the same eps;
        # written here rather than by a separate fill or copy launch.
        tl.store(used_ptr, seed)
        tl.store(used_ptr + 1, offset)
    z = mu + sc.sigma(s, SCALE, sc.lower_bound(min_scale, F64)) * eps
    tl.store(z_ptr + idx, to_element_type(z, z_ptr), mask=mask)


@triton.jit
def diag_backward_kernel(
    gs_ptr, geps_ptr, g_ptr, s_ptr, eps_ptr, so_ptr,
    numel, so_stride, s1, s2, s3,
    g_t0, g_t1, g_t2, g_t3,
    s_t0, s_t1, s_t2, s_t3,
    eps_t0, eps_t1, eps_t2, eps_t3,
    min_scale: tl.float64,
    NDIM: tl.constexpr, G_CONTIG: tl.constexpr, S_CONTIG: tl.constexpr,
    EPS_CONTIG: tl.constexpr, HAS_EPS: tl.constexpr, NEED_GRAD_EPS: tl.constexpr,
    IDX64: tl.constexpr, GROUPS: tl.constexpr, F64: tl.constexpr, SCALE: tl.constexpr,
    NOISE: tl.constexpr,
):  # fmt: skip
    """ds = (dz * sigma'(s)) * eps and, when asked, deps = dz * sigma, with eps read or
    regenerated from the stream at so_ptr (kind NOISE, the forward's)."""
    idx, group = program_groups(GROUPS, IDX64)
    mask = idx < numel
    g = _load(g_ptr, idx, mask, s1, s2, s3, g_t0, g_t1, g_t2, g_t3, G_CONTIG, NDIM, F64)
    s = _load(s_ptr, idx, mask, s1, s2, s3, s_t0, s_t1, s_t2, s_t3, S_CONTIG, NDIM, F64)
    eps, _seed, _offset_used = _eps(eps_ptr, so_ptr, so_stride, idx, group, mask, s1, s2, s3,
                                    eps_t0, eps_t1, eps_t2, eps_t3, EPS_CONTIG, HAS_EPS, NDIM,
                                    GROUPS, NOISE, F64)  # fmt: skip
    ms = sc.lower_bound(min_scale, F64)
    base = sc.sigma_base(s, SCALE)  # unused by softplus's dsigma unless NEED_GRAD_EPS
    gs = (g * sc.dsigma(s, base, SCALE)) * eps
    tl.store(gs_ptr + idx, to_element_type(gs, gs_ptr), mask=mask)
    if NEED_GRAD_EPS:
        tl.store(geps_ptr + idx, to_element_type(g * (base + ms), geps_ptr), mask=mask)
