"""The Triton kernels of the Cholesky op pair, registered like diag_ops.py's:

    fused_reparam::triton_chol_rsample(mu, scale_tril, eps=None, seed_offset=None,
                                       generator=None) -> (z, used)
    fused_reparam::triton_chol_rsample_backward(grad_z, scale_tril, eps, seed_offset,
                                                need_grad_eps) -> (grad_L, grad_eps)

The C++ ops' contract (csrc/ops.cpp). Inputs are passed to the kernels as they are (their
StridedLayout over the sample's batch: per-row offsets and per-operand strides): a shared or
broadcast L is never copied.
"""

from __future__ import annotations

import torch

from .. import _checks
from . import layout
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

FORWARD = "fused_reparam::triton_chol_rsample"
BACKWARD = "fused_reparam::triton_chol_rsample_backward"

# A program's tile of L is [BLOCK_R, BLOCK_D, BLOCK_D] with BLOCK_R * BLOCK_D**2 <= _TILE;
# BLOCK_D is D padded to a power of 2 (at least 4) up to MAX_BLOCK_D, beyond which programs
# loop over tiles. The interpreter runs one program at a time in numpy, so it gets bigger
# tiles; the stream is indexed by element, so neither changes a number. Read at each call
# (also by stats_ops.py), so tests can force small tiles.
MAX_BLOCK_D = 64
_TILE = 16384 if interpreted() else 4096


def blocks(shape: torch.Size) -> RowBlocks:
    """The row blocks of the Cholesky kernels over the sample `shape`."""
    return row_blocks(shape, MAX_BLOCK_D, _TILE, tile_dims=2)


def _no_stats_forward(placeholder: torch.Tensor) -> tuple:
    """The forward kernel's arguments of the VAE extras (kl_ptr, lq_ptr), unused without STATS
    (the stats ops, stats_ops.py, pass real ones)."""
    return (placeholder, placeholder)


def _no_stats_backward(placeholder: torch.Tensor) -> tuple:
    """The backward kernel's arguments of the extras' gradients (gmu, mu, grad_kl, grad_log_q
    pointers, their grid strides, mu's stride in a row), unused without STATS."""
    return (placeholder,) * 4 + (0,) * (3 * layout.MAX_DIMS + 1)


def check_inputs(
    first: torch.Tensor,
    first_name: str,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None,
    where: str,
) -> torch.Size:
    """The sample shape [*batch, D], or the C++ ops' errors (chol_checks.h check_chol_args)."""
    _checks.check_float_tensor(first, first_name, where)
    _checks.check_float_tensor(scale_tril, "scale_tril", where)
    _checks.check_same_dtype_device(first, first_name, scale_tril, "scale_tril", where)
    shape = _checks.chol_sample_shape(first, scale_tril, where, first_name)
    if eps is not None:
        _checks.check_float_tensor(eps, "eps", where)
        _checks.check_same_dtype_device(first, first_name, eps, "eps", where)
        if eps.shape != shape:
            raise ValueError(
                f"{where}: eps must have shape {list(shape)} (the sample's shape), got "
                f"{list(eps.shape)}"
            )
    return shape


@register_kernel("triton_chol_rsample")
def triton_chol_rsample(
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """z = mu + tril(scale_tril) @ eps, and the [seed, offset] used (zeros when eps given)."""
    shape = check_inputs(mu, "mu", scale_tril, eps, FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, FORWARD)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    if z.numel() == 0:
        used = seed_offset.reshape(2).clone() if eps is None else mu.new_zeros(2, dtype=torch.int64)
        return z, used
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    unused = unused_pointer(mu)
    blk = blocks(shape)
    lay = row_layout(shape, [(mu, "row"), (scale_tril, "mat"), (eps, "row")], unused, blk,
                     shape[-1])  # fmt: skip
    so, so_stride = stream_args(seed_offset, eps, unused)
    chol_forward_kernel[blk.grid(blk.tiles)](
        z, *lay.tensors, so, used, blk.rows, blk.d, so_stride, *lay.size_args(),
        *lay.stride_args(range(3)), *_no_stats_forward(unused), HAS_EPS=eps is not None,
        STATS=False, **row_constexprs(blk, lay, mu.dtype),
    )  # fmt: skip
    return z, used


@register_kernel("triton_chol_rsample_backward")
def triton_chol_rsample_backward(
    grad_z: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tril(grad_z eps^T) [*batch, D, D], L^T grad_z [*batch, D] or empty unless
    need_grad_eps), with eps read or regenerated from seed_offset."""
    shape = check_inputs(grad_z, "grad_z", scale_tril, eps, BACKWARD)
    if shape != grad_z.shape:
        raise ValueError(
            f"{BACKWARD}: scale_tril (shape {list(scale_tril.shape)}) must broadcast to grad_z's "
            f"batch shape, grad_z has shape {list(grad_z.shape)}"
        )
    if eps is None:
        if need_grad_eps:
            raise ValueError(f"{BACKWARD}: need_grad_eps requires an explicit eps")
        check_seed_offset(seed_offset, grad_z, BACKWARD)
    d = shape[-1]
    grad_l = torch.empty((*shape, d), dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if grad_z.numel() == 0:
        return grad_l, grad_eps
    unused = unused_pointer(grad_z)
    blk = blocks(shape)
    # grad_L has D * D elements a row.
    lay = row_layout(shape, [(grad_z, "row"), (scale_tril, "mat"), (eps, "row")], unused, blk,
                     d * d)  # fmt: skip
    so, so_stride = stream_args(seed_offset, eps, unused)
    chol_backward_kernel[blk.grid(blk.tiles)](
        grad_l, grad_eps if need_grad_eps else unused, *lay.tensors, so, blk.rows, blk.d,
        so_stride, *lay.size_args(), *lay.stride_args(range(3)), *_no_stats_backward(unused),
        HAS_EPS=eps is not None, NEED_GRAD_EPS=need_grad_eps, STATS=False,
        **row_constexprs(blk, lay, grad_z.dtype),
    )  # fmt: skip
    return grad_l, grad_eps
