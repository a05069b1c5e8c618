"""The Triton kernels of the ops with the VAE extras, registered like diag_ops.py's:

    fused_reparam::triton_diag_rsample_stats(mu, s, scale=0, eps=None, seed_offset=None,
        generator=None, min_scale=0., squash=False, low=-1., high=1.)
        -> (z, kl, log_q, used)
    fused_reparam::triton_diag_rsample_stats_backward(grad_z, grad_kl, grad_log_q, mu, s,
        eps, seed_offset, need_grad_eps, scale=0, min_scale=0., squash=False, low=-1.,
        high=1.) -> (grad_mu, grad_s, grad_eps)
    fused_reparam::triton_chol_rsample_stats(mu, scale_tril, eps=None, seed_offset=None,
        generator=None) -> (z, kl, log_q, used)
    fused_reparam::triton_chol_rsample_stats_backward(grad_z, grad_kl, grad_log_q, mu,
        scale_tril, eps, seed_offset, need_grad_eps) -> (grad_mu, grad_L, grad_eps)

The C++ ops' contract (csrc/ops.cpp). kl and log_q have the sample's shape without its last
dim, in mu's dtype, summed in float32 (half types) or float64. The diagonal kernels are
stats_kernels.py, the Cholesky ones the STATS variants of chol_kernels.py. Inputs are passed
as they are (their StridedLayout over the sample's batch, row_blocks.row_layout): broadcast
inputs are never copied.
"""

from __future__ import annotations

import torch

from .. import _checks
from . import chol_ops, diag_ops
from .chol_kernels import chol_backward_kernel, chol_forward_kernel
from .launch import (
    check_seed_offset,
    forward_stream,
    interpreted,
    register_kernel,
    stream_args,
    unused_pointer,
)
from .row_blocks import RowBlocks, row_blocks, row_constexprs, row_layout
from .scale import check_scale
from .squash import check_squash, squash_args
from .stats_kernels import diag_stats_backward_kernel, diag_stats_forward_kernel

DIAG_FORWARD = "fused_reparam::triton_diag_rsample_stats"
DIAG_BACKWARD = "fused_reparam::triton_diag_rsample_stats_backward"
CHOL_FORWARD = "fused_reparam::triton_chol_rsample_stats"
CHOL_BACKWARD = "fused_reparam::triton_chol_rsample_stats_backward"


# Diagonal tiles are [BLOCK_R, BLOCK_D] with BLOCK_R * BLOCK_D <= DIAG_TILE; BLOCK_D is D padded
# to a power of 2 (at least 4) up to DIAG_MAX_BLOCK_D, beyond which a program loops over tiles.
# The Cholesky ops take chol_ops' sizes. Read at each call, so tests can force small tiles; the
# stream is indexed by element, so no size changes a number.
DIAG_MAX_BLOCK_D = 256 if interpreted() else 1024
DIAG_TILE = 16384 if interpreted() else 2048


def _diag_blocks(shape: torch.Size) -> RowBlocks:
    """The row blocks of the diagonal kernels over the sample `shape`."""
    return row_blocks(shape, DIAG_MAX_BLOCK_D, DIAG_TILE, tile_dims=1)


def _check_sample_dims(shape: torch.Size, where: str) -> None:
    """The C++ ops' error for a sample without an event dim (a scalar)."""
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
        check_seed_offset(seed_offset, grad_z, where)
    return shape


@register_kernel("triton_diag_rsample_stats")
def triton_diag_rsample_stats(
    mu: torch.Tensor,
    s: torch.Tensor,
    scale: int = 0,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    min_scale: float = 0.0,
    squash: bool = False,
    low: float = -1.0,
    high: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, kl, log_q, [seed, offset] used): z = mu + sigma(s) * eps and per row, with
    lv = 2 log sigma, kl = 0.5 * sum(mu^2 + sigma^2 - 1 - lv) and
    log_q = -0.5 * sum(eps^2 + lv + log 2pi). With squash, z is the action
    low + (high - low) (tanh(u) + 1) / 2 of u = mu + sigma(s) * eps and log_q its
    log-density (squash.py)."""
    shape = diag_ops.check_inputs(mu, "mu", s, eps, DIAG_FORWARD)
    _check_sample_dims(shape, DIAG_FORWARD)
    check_scale(scale, min_scale, DIAG_FORWARD)
    check_squash(squash, low, high, mu.dtype, DIAG_FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, DIAG_FORWARD)
    if shape.numel() == 0:
        return _empty_forward(shape, mu, eps, seed_offset)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    unused = unused_pointer(mu)
    blk = _diag_blocks(shape)
    lay = row_layout(shape, [(mu, "row"), (s, "row"), (eps, "row")], unused, blk,
                     shape[-1])  # fmt: skip
    so, so_stride = stream_args(seed_offset, eps, unused)
    # One program a row block, looping over the row's tiles (so the row sums stay in it).
    diag_stats_forward_kernel[blk.grid(1)](
        z, kl, log_q, *lay.tensors, so, used, blk.rows, blk.d, so_stride, *lay.size_args(),
        *lay.stride_args(range(3)), float(min_scale), *squash_args(squash, low, high),
        HAS_EPS=eps is not None, SCALE=scale, SQUASH=bool(squash),
        **row_constexprs(blk, lay, mu.dtype),
    )  # fmt: skip
    return z, kl, log_q, used


@register_kernel("triton_diag_rsample_stats_backward")
def triton_diag_rsample_stats_backward(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    s: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
    scale: int = 0,
    min_scale: float = 0.0,
    squash: bool = False,
    low: float = -1.0,
    high: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mu, grad_s, grad_eps) over grad_z's shape, with gk = grad_kl[r],
    gq = grad_log_q[r], sigma' = d sigma / ds and dlog = d log sigma / ds: grad_z + gk * mu,
    sigma' * (grad_z * eps + gk * sigma) - dlog * (gk + gq), and grad_z * sigma - gq * eps
    (empty unless need_grad_eps). With squash, grad_z stands for the gradient reaching u:
    grad_z * da/du + 2 gq tanh(u), u = mu + sigma(s) * eps."""
    where = DIAG_BACKWARD
    shape = _check_backward_inputs(grad_z, grad_kl, grad_log_q, mu, eps, seed_offset,
                                   need_grad_eps, where)  # fmt: skip
    _checks.check_float_tensor(s, "s", where)
    _checks.check_same_dtype_device(grad_z, "grad_z", s, "s", where)
    if _checks.broadcast_shape(grad_z, "grad_z", s, "s", where) != shape:
        raise ValueError(
            f"{where}: s (shape {list(s.shape)}) must broadcast to grad_z's shape {list(shape)}"
        )
    check_scale(scale, min_scale, where)
    check_squash(squash, low, high, grad_z.dtype, where)
    grad_mu = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_s = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if shape.numel() == 0:
        return grad_mu, grad_s, grad_eps
    unused = unused_pointer(grad_z)
    blk = _diag_blocks(shape)
    operands = [(grad_z, "row"), (grad_kl, "elem"), (grad_log_q, "elem"), (mu, "row"),
                (s, "row"), (eps, "row")]  # fmt: skip
    lay = row_layout(shape, operands, unused, blk, shape[-1])
    so, so_stride = stream_args(seed_offset, eps, unused)
    diag_stats_backward_kernel[blk.grid(blk.tiles)](
        grad_mu, grad_s, grad_eps if need_grad_eps else unused, *lay.tensors, so,
        blk.rows, blk.d, so_stride, *lay.size_args(), *lay.stride_args(range(6)),
        float(min_scale), squash_args(squash, low, high)[1], HAS_EPS=eps is not None,
        NEED_GRAD_EPS=need_grad_eps, SCALE=scale, SQUASH=bool(squash),
        **row_constexprs(blk, lay, grad_z.dtype),
    )  # fmt: skip
    return grad_mu, grad_s, grad_eps


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
    shape = chol_ops.check_inputs(mu, "mu", scale_tril, eps, CHOL_FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, CHOL_FORWARD)
    if shape.numel() == 0:
        return _empty_forward(shape, mu, eps, seed_offset)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    unused = unused_pointer(mu)
    blk = chol_ops.blocks(shape)
    lay = row_layout(shape, [(mu, "row"), (scale_tril, "mat"), (eps, "row")], unused, blk,
                     shape[-1])  # fmt: skip
    so, so_stride = stream_args(seed_offset, eps, unused)
    # One program a row block, looping over the row's tiles (so the row sums stay in it).
    chol_forward_kernel[blk.grid(1)](
        z, *lay.tensors, so, used, blk.rows, blk.d, so_stride, *lay.size_args(),
        *lay.stride_args(range(3)), kl, log_q, HAS_EPS=eps is not None, STATS=True,
        **row_constexprs(blk, lay, mu.dtype),
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
    blk = chol_ops.blocks(shape)
    operands = [(grad_z, "row"), (scale_tril, "mat"), (eps, "row"), (mu, "row"),
                (grad_kl, "elem"), (grad_log_q, "elem")]  # fmt: skip
    # grad_L has D * D elements a row.
    lay = row_layout(shape, operands, unused, blk, d * d)
    so, so_stride = stream_args(seed_offset, eps, unused)
    g, lt, e, m, gk, gq = lay.tensors
    chol_backward_kernel[blk.grid(blk.tiles)](
        grad_l, grad_eps if need_grad_eps else unused, g, lt, e, so, blk.rows, blk.d,
        so_stride, *lay.size_args(), *lay.stride_args(range(3)),
        grad_mu, m, gk, gq, *lay.stride_args(range(3, 6)),
        HAS_EPS=eps is not None, NEED_GRAD_EPS=need_grad_eps, STATS=True,
        **row_constexprs(blk, lay, grad_z.dtype),
    )  # fmt: skip
    return grad_mu, grad_l, grad_eps
