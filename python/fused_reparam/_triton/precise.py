"""exp, log, log1p and tanh of user data (sigma of the scale input s, 2 log sigma, and the
squashed action) to the C++ and CUDA ops' precision.

tl.exp of float32 compiles to ex2.approx.f32(x * log2(e)), and the product's rounding error
grows with |x|: sigma's relative error reaches 1e-6 at |logvar| = 40 and 2e-6 at 80; tl.log
is lg2.approx times ln 2, whose relative error is large near x = 1. libdevice's functions
(__nv_expf, __nv_logf, __nv_log1pf and their double forms: CUDA's expf, logf, log1pf) reduce
the argument exactly first. The interpreter cannot run libdevice functions (declarations it
has no numpy for), so interpreted kernels take tl.exp and tl.log, numpy's functions there;
tl has no tanh, so interpreted kernels call numpy's on the tensor's data (_numpy_tanh).
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


@triton.jit
def log(x):
    """log(x) of float32 or float64 x, without the approximate float32 lowering of tl.log."""
    if _INTERPRETED:
        return tl.log(x)
    else:
        return libdevice.log(x)


@triton.jit
def log1p(x):
    """log(1 + x), exact for small x (softplus of very negative s)."""
    if _INTERPRETED:
        # The interpreter has no log1p: log(u) * x / (u - 1) with u = 1 + x cancels u's
        # rounding (Goldberg), within a few ulps; x itself where u rounds to 1.
        u = 1.0 + x
        one = u == 1.0
        return tl.where(one, x, tl.log(u) * (x / tl.where(one, 1.0, u - 1.0)))
    else:
        return libdevice.log1p(x)


@triton.jit
def tanh(x):
    """tanh(x) of float32 or float64 x: libdevice's (CUDA's tanhf, tanh), numpy's interpreted."""
    if _INTERPRETED:
        return _numpy_tanh(x)
    else:
        return libdevice.tanh(x)


# Whether jit functions are interpreted (TRITON_INTERPRET=1): decided once, at import.
_INTERPRETED = tl.constexpr(not isinstance(exp, triton.runtime.JITFunction))


if _INTERPRETED:

    def _numpy_tanh(x: tl.tensor) -> tl.tensor:
        """np.tanh of an interpreted tensor's data (numpy arrays there), in its dtype."""
        import numpy as np
        from triton.runtime.interpreter import TensorHandle

        return tl.tensor(TensorHandle(np.tanh(x.handle.data), x.handle.dtype), x.type)

else:
    # Never called compiled (the branch above is constexpr); None is no function reference
    # for Triton's dependency scan of tanh.
    _numpy_tanh = None
