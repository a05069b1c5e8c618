"""The tanh squash of the diagonal stats ops in Triton, as csrc/include/fused_reparam/squash.h
computes it (reference: reference/stats.py, diag_stats): the action
a = low + half * (tanh(u) + 1), half = (high - low) / 2, of the Gaussian sample
u = mu + sigma * eps, and per element

    log |da/du| = log(half) + log_dtanh(u),  log_dtanh(u) = 2 (log 2 - u - softplus(-2u))

(log(1 - tanh(u)^2) without tanh: exact where tanh(u) rounds to +-1, no atanh, no epsilon).
The kernels take SQUASH as a constexpr (the unsquashed kernels are unchanged) and low, half
and log(half) as float64 arguments, taken on the host in float64 (squash_args) and rounded
once to the compute type in the kernel (constants), as the C++ kernels' squash_of.
"""

# Triton reads a jit function's annotations (tl.constexpr) to specialize it: only those are
# written (as for the modules named in pyproject.toml's per-file-ignores).
# ruff: noqa: ANN001

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from . import precise
from . import scale as sc

_LOG2 = tl.constexpr(math.log(2.0))


_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                torch.bfloat16: "bfloat16"}  # fmt: skip


def check_squash(squash: bool, low: float, high: float, dtype: torch.dtype, where: str) -> None:
    """The C++ ops' errors (csrc/common/diag_checks.h, check_squash) for bad bounds: finite
    and ordered, within the sample dtype's range, and (high - low) / 2 a normal number of the
    compute type whose double is finite there. The bounds are read only with squash."""
    if not squash:
        return
    # :g prints a double as C++ streams do (-1, inf, nan, 0.05).
    got = f"got low = {low:g}, high = {high:g}"
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise RuntimeError(f"{where}: low and high must be finite with low < high, {got}")
    compute = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32)
    top, top_half = torch.finfo(dtype).max, 0.5 * compute.max
    half = 0.5 * high - 0.5 * low  # no overflow in double
    if not (abs(low) <= top and abs(high) <= top and compute.tiny <= half <= top_half):
        raise RuntimeError(
            f"{where}: low and high must be within {_DTYPE_NAMES[dtype]}'s range, with "
            f"(high - low) / 2 from {compute.tiny:g} to {top_half:g}, {got}"
        )


def squash_args(squash: bool, low: float, high: float) -> tuple[float, float, float]:
    """The kernels' float64 (low, half, log(half)): the C++ kernels' constants in double (the
    defaults, unread, without squash)."""
    if not squash:
        return -1.0, 1.0, 0.0
    half = 0.5 * (float(high) - float(low))
    # high - low can underflow to 0 in half (C++'s log gives -inf there, Python's raises).
    return float(low), half, math.log(half) if half > 0.0 else -math.inf


@triton.jit
def constants(low, half, log_half, SQUASH: tl.constexpr, F64: tl.constexpr):
    """(low, half, log_half), float64 kernel arguments, each rounded once to the compute type
    (as the scale's lower bound is); unread zeros without SQUASH."""
    if SQUASH:
        return sc.lower_bound(low, F64), sc.lower_bound(half, F64), sc.lower_bound(log_half, F64)
    else:
        return 0.0, 0.0, 0.0


@triton.jit
def log_dtanh(u):
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact for every u."""
    # log 2 in u's type as a tensor (a constexpr on the left would wrap the interpreter's result).
    log2 = tl.full((), _LOG2, u.dtype)
    return 2.0 * (log2 - u - sc.softplus(0.0 - 2.0 * u))


@triton.jit
def action(u, low, half):
    """a = low + half * (tanh(u) + 1), with 1 + tanh(u) = 2 / (1 + exp(-2u)) for u < 0 (no
    cancellation as tanh(u) nears -1)."""
    e = precise.exp(-2.0 * tl.where(u < 0.0, u, 0.0))
    neg = sc.div_rn(tl.zeros_like(e) + 2.0, 1.0 + e)
    return low + half * tl.where(u < 0.0, neg, precise.tanh(u) + 1.0)


@triton.jit
def log_q_extra(u, log_half):
    """The element's share of the row's log-determinant in the log q sum, which the row's
    finish scales by -1/2: 2 log |da/du|."""
    return 2.0 * (log_dtanh(u) + log_half)


@triton.jit
def log_q_term(eps, lv, u, log_half, SQUASH: tl.constexpr):
    """The element's term of the log q sum: eps^2 + lv (stats_math.h's diag_log_q_term), plus
    log_q_extra(u) with SQUASH."""
    if SQUASH:
        return eps * eps + lv + log_q_extra(u, log_half)
    else:
        return eps * eps + lv


@triton.jit
def grad_u(dz, gq, u, half):
    """The gradient reaching u: dz through the action (da/du = half * exp(log_dtanh(u)), no
    cancellation where tanh(u) is near 1) and gq through the log-determinant, whose derivative
    d log(1 - tanh(u)^2) / du = -2 tanh(u) log q subtracts."""
    return dz * (half * precise.exp(log_dtanh(u))) + 2.0 * gq * precise.tanh(u)
