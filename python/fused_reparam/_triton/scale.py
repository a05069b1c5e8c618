"""The scale parametrizations of the diagonal op in Triton: sigma from the scale input s, its
derivative, and the log-variance terms of the VAE extras, as
csrc/include/fused_reparam/scale.h computes them (reference: reference/scale.py).

    SCALE       sigma           d sigma / ds
    0 logvar    exp(s / 2)      sigma / 2
    1 log_std   exp(s)          sigma
    2 std       s               1
    3 softplus  log1p(exp(s))   sigmoid(s)

then sigma += min_scale. SCALE is a constexpr (each kind its own specialization); the lower
bound `ms` is a runtime scalar in the compute type (lower_bound), so the branch on ms == 0 is
uniform over a launch.
"""

# Triton reads a jit function's annotations (tl.constexpr) to specialize it: only those are
# written (as for the modules named in pyproject.toml's per-file-ignores).
# ruff: noqa: ANN001

from __future__ import annotations

import math

import triton
import triton.language as tl

from . import precise

# The kinds, numbered as the ops' `scale` argument (constexpr: jit functions read them).
LOGVAR = tl.constexpr(0)
LOG_STD = tl.constexpr(1)
STD = tl.constexpr(2)
SOFTPLUS = tl.constexpr(3)
NUM_KINDS = 4

# Below -_TAIL, log softplus(s) = s - exp(s) / 2 to within exp(2 s), where softplus(s)
# itself underflows first (scale.h).
_TAIL = tl.constexpr(20.0)


def check_scale(scale: int, min_scale: float, where: str) -> None:
    """The C++ ops' errors (csrc/common/diag_checks.h, check_scale) for bad scale arguments."""
    if not 0 <= scale < NUM_KINDS:
        raise RuntimeError(
            f"{where}: scale must be 0 (logvar), 1 (log_std), 2 (std) or 3 (softplus), got {scale}"
        )
    if not (math.isfinite(min_scale) and min_scale >= 0.0):
        # :g prints a double as C++ streams do (-1, nan, 0.05).
        raise RuntimeError(f"{where}: min_scale must be finite and >= 0, got {min_scale:g}")


@triton.jit
def lower_bound(min_scale, F64: tl.constexpr):
    """min_scale (a float64 kernel argument, a Python float when interpreted) rounded once to
    the compute type, as the C++ kernels' S(min_scale)."""
    ct: tl.constexpr = tl.float64 if F64 else tl.float32
    return (tl.zeros((), ct) + min_scale).to(ct)


@triton.jit
def div_rn(x, y):
    """x / y rounded as IEEE division, as in C++ (Triton's float32 `/` is approximate)."""
    if x.dtype == tl.float32:
        return tl.math.div_rn(x, y)
    else:
        return x / y


@triton.jit
def log1p_unit(t):
    """log1p(t) for t in [0, 1]: in float32 scale.h's t + t^2 R(t) (R a degree-8 fit, within
    1.6 ulp, the same fused multiply-adds as the C++ kernels); float64 the library log1p."""
    if t.dtype == tl.float32:
        r = tl.fma(t, -4.449478816e-03, 2.515632287e-02)
        r = tl.fma(r, t, -6.664612889e-02)
        r = tl.fma(r, t, 1.155224741e-01)
        r = tl.fma(r, t, -1.584297866e-01)
        r = tl.fma(r, t, 1.985291094e-01)
        r = tl.fma(r, t, -2.498637289e-01)
        r = tl.fma(r, t, 3.333283365e-01)
        r = tl.fma(r, t, -4.999999702e-01)
        out = tl.fma(t * t, r, t)
    else:
        out = precise.log1p(t)
    return out


@triton.jit
def softplus(x):
    """log1p(exp(x)) as max(x, 0) + log1p(exp(-|x|)): exact for every x, one exp (as scale.h's
    softplus)."""
    # -|x| by a select (x - 2 max(x, 0) would make inf - inf at x = +inf).
    return tl.where(x > 0.0, x, 0.0) + log1p_unit(precise.exp(tl.where(x > 0.0, -x, x)))


@triton.jit
def sigma_base(s, SCALE: tl.constexpr):
    """f(s): sigma of kind SCALE before the lower bound."""
    if SCALE == LOG_STD:
        base = precise.exp(s)
    elif SCALE == STD:
        base = s
    elif SCALE == SOFTPLUS:
        base = softplus(s)
    else:
        base = precise.exp(0.5 * s)
    return base


@triton.jit
def sigma(s, SCALE: tl.constexpr, ms):
    """sigma(s) of kind SCALE, plus the lower bound ms."""
    return sigma_base(s, SCALE) + ms


@triton.jit
def dsigma(s, base, SCALE: tl.constexpr):
    """d sigma / ds, given f(s) (exact: the bound is not subtracted back out of sigma)."""
    if SCALE == LOG_STD:
        d = base
    elif SCALE == STD:
        d = tl.zeros_like(s) + 1.0
    elif SCALE == SOFTPLUS:
        d = div_rn(tl.zeros_like(s) + 1.0, 1.0 + precise.exp(0.0 - s))  # sigmoid(s)
    else:
        d = 0.5 * base
    return d


@triton.jit
def log_var(s, sig, SCALE: tl.constexpr, ms):
    """2 log sigma (the log-variance of the KL and log q terms), exact in s where it can be."""
    if SCALE == STD:
        lv = 2.0 * precise.log(sig)
    elif ms == 0.0:
        if SCALE == LOGVAR:
            lv = s
        elif SCALE == LOG_STD:
            lv = 2.0 * s
        else:
            # Finite where softplus(s) underflows.
            tail = 2.0 * (s - 0.5 * precise.exp(s))
            lv = tl.where(s < -_TAIL, tail, 2.0 * precise.log(sig))
    else:
        lv = 2.0 * precise.log(sig)
    return lv


@triton.jit
def dlog_sigma(s, sig, dsig, SCALE: tl.constexpr, ms):
    """d log sigma / ds, given sigma and d sigma / ds; finite where sigma underflows."""
    if SCALE == STD:
        d = div_rn(dsig, sig)
    elif ms == 0.0:
        if SCALE == LOGVAR:
            d = tl.zeros_like(s) + 0.5
        elif SCALE == LOG_STD:
            d = tl.zeros_like(s) + 1.0
        else:
            tail = 1.0 - 0.5 * precise.exp(s)
            d = tl.where(s < -_TAIL, tail, div_rn(dsig, sig))
    else:
        d = div_rn(dsig, sig)
    return d
