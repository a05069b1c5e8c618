"""Casts to the output dtype that round the same compiled and interpreted.

The Triton interpreter truncates float32 -> bfloat16 (and its "rtne" mode does not carry into
the exponent), while the GPU rounds to nearest even. Rounding bfloat16 with integer ops, as
c10::BFloat16 does, gives the same bits on both and on the C++ CPU op.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _bf16_round_nearest_even(x):
    """float32 x to bfloat16, round to nearest even; NaN stays a (quiet) NaN."""
    bits = x.to(tl.uint32, bitcast=True)
    rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16
    quiet_nan = (bits >> 16) | 0x40
    out = tl.where(x != x, quiet_nan, rounded).to(tl.uint16)
    return out.to(tl.bfloat16, bitcast=True)


@triton.jit
def to_element_type(x, ptr):
    """x converted to the element type of `ptr`, rounded to nearest even."""
    out_ty: tl.constexpr = ptr.dtype.element_ty
    if out_ty == tl.bfloat16:
        return _bf16_round_nearest_even(x.to(tl.float32))
    else:
        return x.to(out_ty)
