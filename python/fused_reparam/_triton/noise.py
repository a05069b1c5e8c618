"""The noise contract (docs/design.md) in Triton: four normals per Philox call.

`tl.philox(seed, c0, c1, c2, c3)` is Philox4x32-10 with key (lo32(seed), hi32(seed)), the
contract's block function; the uniforms and Box-Muller below are the contract's formulas,
in float32, or float64 when F64 is set.
"""

from __future__ import annotations

import math

import triton
import triton.language as tl

# Globals read by jit functions must be constexpr.
_TWO_POW_M32 = tl.constexpr(2.0**-32)  # exact in float32
_TWO_PI = tl.constexpr(2.0 * math.pi)  # rounded to float32 (6.2831855) or float64 by tl.full


@triton.jit
def _box_muller(xa, xb, F64: tl.constexpr):
    """(r cos t, r sin t), r = sqrt(-2 ln ua), t = 2 pi ub, u = (x + 0.5) * 2^-32."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    # Python floats become float32 constants in Triton; 2*pi must be exact for float64.
    two_pi = tl.full((), _TWO_PI, ct)
    ua = (xa.to(ct) + 0.5) * _TWO_POW_M32
    ub = (xb.to(ct) + 0.5) * _TWO_POW_M32
    if F64:
        r = tl.sqrt(-2.0 * tl.log(ua))  # float64 sqrt is always correctly rounded
    else:
        r = tl.sqrt_rn(-2.0 * tl.log(ua))  # tl.sqrt of float32 may be approximate
    t = two_pi * ub
    return r * tl.cos(t), r * tl.sin(t)


@triton.jit
def stream_normals(seed, offset, group, GROUPS: tl.constexpr, F64: tl.constexpr):
    """eps of elements 4*group .. 4*group + 3 of stream (seed, offset), as [GROUPS, 4].

    seed and offset are int64 scalars (the bit patterns of the unsigned values); group is a
    [GROUPS] block of non-negative group indices, int32 or int64.
    """
    # Integer casts to uint32 keep the low 32 bits.
    c0 = group.to(tl.uint32)
    if group.dtype == tl.int64:
        c1 = (group >> 32).to(tl.uint32)
    else:
        c1 = tl.zeros_like(c0)
    c2 = tl.zeros_like(c0) + offset.to(tl.uint32)
    c3 = tl.zeros_like(c0) + (offset >> 32).to(tl.uint32)
    x0, x1, x2, x3 = tl.philox(seed, c0, c1, c2, c3)
    n0, n1 = _box_muller(x0, x1, F64)
    n2, n3 = _box_muller(x2, x3, F64)
    # join(join(n0, n2), join(n1, n3)) is [GROUPS, 2, 2] with [g, j, k] = n_(2j + k).
    return tl.reshape(tl.join(tl.join(n0, n2), tl.join(n1, n3)), (GROUPS, 4))
