"""The noise contract (docs/design.md) in Triton: element e of the sample takes noise e % 4 of
Philox call e // 4 of the stream (seed, offset).

`tl.philox(seed, c0, c1, c2, c3)` is Philox4x32-10 with key (lo32(seed), hi32(seed)), the
contract's block function; the uniforms and Box-Muller below are the contract's formulas,
in float32, or float64 when F64 is set. `noise_index` is the one map from a sample element to
its place in the stream; every kernel makes its noise through it.

The plain diagonal ops also take the other noise kinds (NOISE, a constexpr: one
specialization per kind), one word per element (csrc/include/fused_reparam/noise.h,
reference/noise.py); their logs are precise.py's, as the C++ ops' logf and log1pf.
"""

from __future__ import annotations

import math

import triton
import triton.language as tl

from . import precise

# Globals read by jit functions must be constexpr.
_TWO_POW_M32 = tl.constexpr(2.0**-32)  # exact in float32
_TWO_PI = tl.constexpr(2.0 * math.pi)  # rounded to float32 (6.2831855) or float64 by tl.full
# log(2 pi) of the normal log-density (log_q of the kernels with the VAE extras), made float64
# or float32 by tl.full.
LOG_2PI = tl.constexpr(math.log(2.0 * math.pi))

# The noise kinds, numbered as the diagonal ops' `noise` argument (reference/noise.py).
NORMAL = tl.constexpr(0)
LAPLACE = tl.constexpr(1)
LOGISTIC = tl.constexpr(2)
GUMBEL = tl.constexpr(3)
NUM_NOISES = 4


def check_noise(noise: int, where: str) -> None:
    """The C++ ops' error (csrc/common/diag_checks.h, check_noise) for a bad noise kind."""
    if not 0 <= noise < NUM_NOISES:
        raise RuntimeError(
            f"{where}: noise must be 0 (normal), 1 (laplace), 2 (logistic) or 3 (gumbel), "
            f"got {noise}"
        )


@triton.jit
def noise_index(rows, cols, width):
    """Stream index of element (rows, cols) of a sample cut into rows of `width` elements: its
    row-major position rows * width + cols (the caller broadcasts rows and cols). Any cut of
    the same sample gives the same index: a row kernel uses its rows of D, the elementwise
    kernel rows of 4, one Philox group each. Sample-shaped outputs are contiguous, so an
    element of one sits at this offset too."""
    return rows * width + cols


@triton.jit
def stream_key(so_ptr, so_stride, HAS_EPS: tl.constexpr):
    """(seed, offset) of the stream at so_ptr, int64 scalars (the unsigned values' bit
    patterns), or zeros when eps is given (the stream is then not read)."""
    if HAS_EPS:
        seed = tl.zeros((), tl.int64)
        offset = seed
    else:
        seed = tl.load(so_ptr)
        offset = tl.load(so_ptr + so_stride)
    return seed, offset


@triton.jit
def _philox_words(seed, offset, group):
    """The contract's Philox4x32-10 words of stream (seed, offset) for the non-negative group
    indices `group` (int32 or int64)."""
    c0 = group.to(tl.uint32)  # integer casts to uint32 keep the low 32 bits
    if group.dtype == tl.int64:
        c1 = (group >> 32).to(tl.uint32)
    else:
        c1 = tl.zeros_like(c0)
    c2 = tl.zeros_like(c0) + offset.to(tl.uint32)
    c3 = tl.zeros_like(c0) + (offset >> 32).to(tl.uint32)
    return tl.philox(seed, c0, c1, c2, c3)


@triton.jit
def _uniform(x, F64: tl.constexpr):
    """u = (x + 0.5) * 2^-32 of uint32 words x, in (0, 1]: the word rounded to the compute
    type, then the add and the multiply each rounded in it."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    return (x.to(ct) + 0.5) * _TWO_POW_M32


@triton.jit
def _box_muller(xa, xb, F64: tl.constexpr):
    """(r cos t, r sin t), r = sqrt(-2 ln ua), t = 2 pi ub, u = (x + 0.5) * 2^-32."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    # Python floats become float32 constants in Triton; 2*pi must be exact for float64.
    two_pi = tl.full((), _TWO_PI, ct)
    ua = _uniform(xa, F64)
    ub = _uniform(xb, F64)
    if F64:
        r = tl.sqrt(-2.0 * tl.log(ua))  # float64 sqrt is always correctly rounded
    else:
        r = tl.sqrt_rn(-2.0 * tl.log(ua))  # tl.sqrt of float32 may be approximate
    t = two_pi * ub
    return r * tl.cos(t), r * tl.sin(t)


@triton.jit
def _group_normals(seed, offset, group, F64: tl.constexpr):
    """The four normals of each group, as group's shape + [2, 2]: row-major, elements
    4 * group .. 4 * group + 3."""
    x0, x1, x2, x3 = _philox_words(seed, offset, group)
    n0, n1 = _box_muller(x0, x1, F64)
    n2, n3 = _box_muller(x2, x3, F64)
    # join(join(n0, n2), join(n1, n3)) has [.., j, k] = n_(2j + k).
    return tl.join(tl.join(n0, n2), tl.join(n1, n3))


@triton.jit
def _word_noise(x, NOISE: tl.constexpr, F64: tl.constexpr):
    """Noise of kind NOISE (laplace, logistic or gumbel) of each word x, through u and its
    mirror um = (~x + 0.5) * 2^-32 (1 - u in exact arithmetic; both in (0, 1], so every
    formula is finite):

        laplace   u <= 1/2 ? log(2 u) : -log(2 um)
        logistic  log(u) - log(um)
        gumbel    -log(E),  E = u <= 1/2 ? -log(u) : -log1p(-um)
    """
    u = _uniform(x, F64)
    um = _uniform(~x, F64)  # ~x = x ^ 0xFFFFFFFF
    low = u <= 0.5
    if NOISE == LAPLACE:
        # One log: of 2 u or of 2 um, whichever the element takes.
        lg = precise.log(2.0 * tl.where(low, u, um))
        eps = tl.where(low, lg, -lg)
    elif NOISE == LOGISTIC:
        eps = precise.log(u) - precise.log(um)
    else:
        # log1p's argument is 0 where unused: -um = -1 (x = 0) would make an unused -inf.
        e = tl.where(low, -precise.log(u), -precise.log1p(tl.where(low, 0.0, -um)))
        eps = -precise.log(e)
    return eps


@triton.jit
def stream_normals(seed, offset, group, GROUPS: tl.constexpr, F64: tl.constexpr):
    """eps of elements 4*group .. 4*group + 3 of stream (seed, offset), as [GROUPS, 4], for a
    [GROUPS] block of group indices."""
    return tl.reshape(_group_normals(seed, offset, group, F64), (GROUPS, 4))


@triton.jit
def stream_noise(seed, offset, group, GROUPS: tl.constexpr, NOISE: tl.constexpr,
                 F64: tl.constexpr):  # fmt: skip
    """Noise of kind NOISE of elements 4*group .. 4*group + 3 of stream (seed, offset), as
    [GROUPS, 4], for a [GROUPS] block of group indices: stream_normals for the normal, else
    element 4 q + j from word j of call q."""
    if NOISE == NORMAL:
        eps = stream_normals(seed, offset, group, GROUPS, F64)
    else:
        x0, x1, x2, x3 = _philox_words(seed, offset, group)
        # [.., j, k] = x_(2j + k), as _group_normals lays out the normals.
        words = tl.join(tl.join(x0, x2), tl.join(x1, x3))
        eps = tl.reshape(_word_noise(words, NOISE, F64), (GROUPS, 4))
    return eps


@triton.jit
def tile_normals(seed, offset, rows, j0, d, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
                 ALIGNED4: tl.constexpr, F64: tl.constexpr):  # fmt: skip
    """eps [BLOCK_R, BLOCK_D] of sample rows `rows` (of d elements) and columns
    j0 .. j0 + BLOCK_D - 1. ALIGNED4 (d % 4 == 0 and j0 % 4 == 0): a tile row is whole Philox
    groups, four elements a call; else each element takes its lane of its group's call."""
    if ALIGNED4:
        first = noise_index(rows[:, None], j0, d) // 4
        group = first + tl.arange(0, BLOCK_D // 4)[None, :]
        eps = tl.reshape(_group_normals(seed, offset, group, F64), (BLOCK_R, BLOCK_D))
    else:
        e = noise_index(rows[:, None], (j0 + tl.arange(0, BLOCK_D))[None, :], d)
        lane = e % 4
        x0, x1, x2, x3 = _philox_words(seed, offset, e // 4)
        low = lane < 2
        c, s = _box_muller(tl.where(low, x0, x2), tl.where(low, x1, x3), F64)
        eps = tl.where(lane % 2 == 0, c, s)
    return eps
