"""exp of user data (sigma = exp(0.5 * logvar)) to the C++ and CUDA ops' precision.

tl.exp of float32 compiles to ex2.approx.f32(x * log2(e)), and the product's rounding error
grows with |x|: sigma's relative error reaches 1e-6 at |logvar| = 40 and 2e-6 at 80.
libdevice's exp (__nv_expf, __nv_exp; CUDA's expf, 2 ulp) reduces the argument exactly first.
The interpreter cannot run libdevice functions (declarations it has no numpy for), so
interpreted kernels take tl.exp, numpy's exp there.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra import libdevice


@triton.jit
def exp(x):
    """e**x of float32 or float64 x, without the approximate float32 lowering of tl.exp."""
    if _INTERPRETED:
        return tl.exp(x)
    else:
        return libdevice.exp(x)


# Whether jit functions are interpreted (TRITON_INTERPRET=1): decided once, at import.
_INTERPRETED = tl.constexpr(not isinstance(exp, triton.runtime.JITFunction))
