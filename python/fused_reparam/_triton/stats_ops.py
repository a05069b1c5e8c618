"""The Triton kernels of the ops with the VAE extras, registered like diag_ops.py's:

    fused_reparam::triton_diag_rsample_stats(mu, logvar, eps=None, seed_offset=None,
        generator=None) -> (z, kl, log_q, used)
    fused_reparam::triton_diag_rsample_stats_backward(grad_z, grad_kl, grad_log_q, mu, logvar,
        eps, seed_offset, need_grad_eps) -> (grad_mu, grad_logvar, grad_eps)
    fused_reparam::triton_chol_rsample_stats(mu, scale_tril, eps=None, seed_offset=None,
        generator=None) -> (z, kl, log_q, used)
    fused_reparam::triton_chol_rsample_stats_backward(grad_z, grad_kl, grad_log_q, mu,
        scale_tril, eps, seed_offset, need_grad_eps) -> (grad_mu, grad_L, grad_eps)

The C++ ops' contract (csrc/ops.cpp). kl and log_q have the sample's shape without its last
dim, in mu's dtype, summed in float32 (half types) or float64. The diagonal kernels are
stats_kernels.py, the Cholesky ones the STATS variants of chol_kernels.py. Inputs are passed
as they are (per-row batch offsets and per-operand strides, row_args.py): broadcast inputs are
never copied.
"""

from __future__ import annotations

import torch
import triton

from .. import _checks
from . import chol_ops as _chol_ops
from .chol_kernels import chol_backward_kernel, chol_forward_kernel
from .diag_ops import _check_inputs as _diag_ops_check_inputs
from .diag_ops import _check_seed_offset, forward_stream, register_kernel, unused_pointer
from .row_args import RowArgs, flat, launch_strides
from .stats_kernels import diag_stats_backward_kernel, diag_stats_forward_kernel

DIAG_FORWARD = "fused_reparam::triton_diag_rsample_stats"
DIAG_BACKWARD = "fused_reparam::triton_diag_rsample_stats_backward"
CHOL_FORWARD = "fused_reparam::triton_chol_rsample_stats"
CHOL_BACKWARD = "fused_reparam::triton_chol_rsample_stats_backward"


def interpreted() -> bool:
    """True when the kernels were built by the Triton interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(diag_stats_forward_kernel, triton.runtime.JITFunction)


# Diagonal tiles are [BLOCK_R, BLOCK_D] with BLOCK_R * BLOCK_D <= DIAG_TILE; BLOCK_D is D padded
# to a power of 2 (at least 4) up to DIAG_MAX_BLOCK_D, beyond which a program loops over tiles.
# The Cholesky ops take chol_ops' sizes. Read at each call, so tests can force small tiles; the
# stream is indexed by element, so no size changes a number.
DIAG_MAX_BLOCK_D = 256 if interpreted() else 1024
DIAG_TILE = 16384 if interpreted() else 2048


def _check_sample_dims(shape: torch.Size, where: str) -> None:
    if len(shape) == 0:
        raise ValueError(
            f"{where}: the extras are per row of the last dim (the event dim D), so the sample "
            "needs at least one dim; got scalars"
        )


def _empty_forward(
    shape: torch.Size, mu: torch.Tensor, eps: torch.Tensor | None, seed_offset: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """An empty sample: no rows, or rows of D = 0 (whose sums are 0: kl = log_q = 0)."""
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.zeros(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.zeros(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = seed_offset.reshape(2).clone() if eps is None else mu.new_zeros(2, dtype=torch.int64)
    return z, kl, log_q, used


def _check_backward_inputs(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
    where: str,
) -> torch.Size:
    """grad_z's shape (the sample's), after the checks the two backward ops share."""
    named = [("grad_z", grad_z), ("grad_kl", grad_kl), ("grad_log_q", grad_log_q), ("mu", mu)]
    for name, t in named:
        _checks.check_float_tensor(t, name, where)
        if name != "grad_z":
            _checks.check_same_dtype_device(grad_z, "grad_z", t, name, where)
    shape = grad_z.shape
    _check_sample_dims(shape, where)
    if _checks.broadcast_shape(grad_z, "grad_z", mu, "mu", where) != shape:
        raise ValueError(
            f"{where}: mu (shape {list(mu.shape)}) must broadcast to grad_z's shape {list(shape)}"
        )
    for name, t in named[1:3]:
        if t.shape != shape[:-1]:
            raise ValueError(
                f"{where}: {name} must have shape {list(shape[:-1])} (grad_z's shape without its "
                f"last dim), got {list(t.shape)}"
            )
    if eps is not None:
        _checks.check_float_tensor(eps, "eps", where)
        _checks.check_same_dtype_device(grad_z, "grad_z", eps, "eps", where)
        if eps.shape != shape:
            raise ValueError(f"{where}: eps must have shape {list(shape)}, got {list(eps.shape)}")
    else:
        if need_grad_eps:
            raise ValueError(f"{where}: need_grad_eps requires an explicit eps")
        _check_seed_offset(seed_offset, grad_z, where)
    return shape


@register_kernel("triton_diag_rsample_stats")
def triton_diag_rsample_stats(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, kl, log_q, [seed, offset] used): z = mu + exp(0.5 * logvar) * eps and per row
    kl = 0.5 * sum(mu^2 + sigma^2 - 1 - logvar), log_q = -0.5 * sum(eps^2 + logvar + log 2pi)."""
    shape = _diag_ops_check_inputs(mu, "mu", logvar, eps, DIAG_FORWARD)
    _check_sample_dims(shape, DIAG_FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, DIAG_FORWARD)
    if shape.numel() == 0:
        return _empty_forward(shape, mu, eps, seed_offset)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    a = RowArgs(shape, [(mu, "row"), (logvar, "row"), (eps, "row")],
                 seed_offset if eps is None else None, unused_pointer(mu), DIAG_MAX_BLOCK_D,
                 DIAG_TILE, 1, shape[-1])  # fmt: skip
    diag_stats_forward_kernel[a.grid(1)](
        z, kl, log_q, *a.tensors, a.so, used, a.rows, a.d, a.so_stride, *a.sizes,
        *launch_strides(a), HAS_EPS=eps is not None, **a.constexprs(),
    )  # fmt: skip
    return z, kl, log_q, used


@register_kernel("triton_diag_rsample_stats_backward")
def triton_diag_rsample_stats_backward(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mu, grad_logvar, grad_eps) over grad_z's shape, with gk = grad_kl[r] and
    gq = grad_log_q[r]: grad_z + gk * mu, 0.5 * (grad_z * sigma * eps + gk * (sigma^2 - 1)
    - gq), and grad_z * sigma - gq * eps (empty unless need_grad_eps)."""
    where = DIAG_BACKWARD
    shape = _check_backward_inputs(grad_z, grad_kl, grad_log_q, mu, eps, seed_offset,
                                   need_grad_eps, where)  # fmt: skip
    _checks.check_float_tensor(logvar, "logvar", where)
    _checks.check_same_dtype_device(grad_z, "grad_z", logvar, "logvar", where)
    if _checks.broadcast_shape(grad_z, "grad_z", logvar, "logvar", where) != shape:
        raise ValueError(
            f"{where}: logvar (shape {list(logvar.shape)}) must broadcast to grad_z's shape "
            f"{list(shape)}"
        )
    grad_mu = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_logvar = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if shape.numel() == 0:
        return grad_mu, grad_logvar, grad_eps
    unused = unused_pointer(grad_z)
    a = RowArgs(shape, [(grad_z, "row"), (grad_kl, "one"), (grad_log_q, "one"), (mu, "row"),
                         (logvar, "row"), (eps, "row")],
                 seed_offset if eps is None else None, unused, DIAG_MAX_BLOCK_D, DIAG_TILE, 1,
                 shape[-1])  # fmt: skip
    diag_stats_backward_kernel[a.grid(a.tiles)](
        grad_mu, grad_logvar, grad_eps if need_grad_eps else unused, *a.tensors, a.so,
        a.rows, a.d, a.so_stride, *a.sizes, *launch_strides(a),
        HAS_EPS=eps is not None, NEED_GRAD_EPS=need_grad_eps, **a.constexprs(),
    )  # fmt: skip
    return grad_mu, grad_logvar, grad_eps


@register_kernel("triton_chol_rsample_stats")
def triton_chol_rsample_stats(
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, kl, log_q, [seed, offset] used): z = mu + tril(L) @ eps and per row, with
    ld = sum_i log|L_ii|, kl = 0.5 * (|tril L|^2 + |mu|^2 - D) - ld and
    log_q = -0.5 * |eps|^2 - ld - 0.5 * D * log 2pi."""
    shape = _chol_ops._check_inputs(mu, "mu", scale_tril, eps, CHOL_FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, CHOL_FORWARD)
    if shape.numel() == 0:
        return _empty_forward(shape, mu, eps, seed_offset)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    a = RowArgs(shape, [(mu, "row"), (scale_tril, "mat"), (eps, "row")],
                 seed_offset if eps is None else None, unused_pointer(mu),
                 _chol_ops.MAX_BLOCK_D, _chol_ops._TILE, 2, shape[-1])  # fmt: skip
    # One program a row block, looping over the row's tiles (so the row sums stay in it).
    chol_forward_kernel[a.grid(1)](
        z, *a.tensors, a.so, used, a.rows, a.d, a.so_stride, *a.sizes, *launch_strides(a),
        kl, log_q, HAS_EPS=eps is not None, STATS=True, **a.constexprs(),
    )  # fmt: skip
    return z, kl, log_q, used


@register_kernel("triton_chol_rsample_stats_backward")
def triton_chol_rsample_stats_backward(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mu, grad_L, grad_eps) over grad_z's batch shape, with gk = grad_kl[r] and
    gq = grad_log_q[r]: grad_z + gk * mu, tril(grad_z eps^T) + gk * tril(L)
    - diag((gk + gq) / L_ii) ([*batch, D, D], zeros above the diagonal), and
    L^T grad_z - gq * eps (empty unless need_grad_eps)."""
    where = CHOL_BACKWARD
    shape = _check_backward_inputs(grad_z, grad_kl, grad_log_q, mu, eps, seed_offset,
                                   need_grad_eps, where)  # fmt: skip
    _checks.check_float_tensor(scale_tril, "scale_tril", where)
    _checks.check_same_dtype_device(grad_z, "grad_z", scale_tril, "scale_tril", where)
    if _checks.chol_sample_shape(grad_z, scale_tril, where, "grad_z") != shape:
        raise ValueError(
            f"{where}: scale_tril (shape {list(scale_tril.shape)}) must broadcast to grad_z's "
            f"batch shape, grad_z has shape {list(shape)}"
        )
    d = shape[-1]
    grad_mu = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_l = torch.empty((*shape, d), dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if shape.numel() == 0:
        return grad_mu, grad_l, grad_eps
    unused = unused_pointer(grad_z)
    a = RowArgs(shape, [(grad_z, "row"), (scale_tril, "mat"), (eps, "row"), (mu, "row"),
                         (grad_kl, "one"), (grad_log_q, "one")],
                 seed_offset if eps is None else None, unused, _chol_ops.MAX_BLOCK_D,
                 _chol_ops._TILE, 2, d * d)  # fmt: skip
    g, lt, e, m, gk, gq = a.tensors
    chol_backward_kernel[a.grid(a.tiles)](
        grad_l, grad_eps if need_grad_eps else unused, g, lt, e, a.so,
        a.rows, a.d, a.so_stride, *a.sizes,
        *flat(a.batch_strides[:3]), *flat(a.inner_strides[:3]),
        grad_mu, m, gk, gq, *flat(a.batch_strides[3:]), *a.inner_strides[3],
        HAS_EPS=eps is not None, NEED_GRAD_EPS=need_grad_eps, STATS=True, **a.constexprs(),
    )  # fmt: skip
    return grad_mu, grad_l, grad_eps
