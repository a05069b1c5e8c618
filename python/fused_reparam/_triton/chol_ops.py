"""The Triton kernels of the Cholesky op pair, registered like diag_ops.py's:

    fused_reparam::triton_chol_rsample(mu, scale_tril, eps=None, seed_offset=None,
                                       generator=None) -> (z, used)
    fused_reparam::triton_chol_rsample_backward(grad_z, scale_tril, eps, seed_offset,
                                                need_grad_eps) -> (grad_L, grad_eps)

The C++ ops' contract (csrc/ops.cpp). Inputs are passed to the kernels as they are (per-row
batch offsets and per-operand strides): a shared or broadcast L is never copied.
"""

from __future__ import annotations

import torch
import triton

from .. import _checks
from . import layout as _layout
from .chol_kernels import chol_backward_kernel, chol_forward_kernel
from .diag_ops import _check_seed_offset, forward_stream, register_kernel, unused_pointer

FORWARD = "fused_reparam::triton_chol_rsample"
BACKWARD = "fused_reparam::triton_chol_rsample_backward"


def interpreted() -> bool:
    """True when the kernels were built by the Triton interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(chol_forward_kernel, triton.runtime.JITFunction)


# A program's tile of L is [BLOCK_R, BLOCK_D, BLOCK_D] with BLOCK_R * BLOCK_D**2 <= _TILE;
# BLOCK_D is D padded to a power of 2 (at least 4) up to MAX_BLOCK_D, beyond which programs
# loop over tiles. The interpreter runs one program at a time in numpy, so it gets bigger
# tiles; the stream is indexed by element, so neither changes a number.
MAX_BLOCK_D = 64
_TILE = 16384 if interpreted() else 4096
_NUM_WARPS = 4
_INT32_LIMIT = 2**31


def _no_stats_forward(placeholder: torch.Tensor) -> tuple:
    """The forward kernel's arguments of the VAE extras (kl_ptr, lq_ptr), unused without STATS
    (the stats ops, stats_ops.py, pass real ones)."""
    return (placeholder, placeholder)


def _no_stats_backward(placeholder: torch.Tensor) -> tuple:
    """The backward kernel's arguments of the extras' gradients (gmu, mu, grad_kl, grad_log_q
    pointers, their batch strides, mu's stride in a row), unused without STATS."""
    return (placeholder,) * 4 + (0,) * (3 * _layout.MAX_DIMS + 1)


def _check_inputs(
    first: torch.Tensor,
    first_name: str,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None,
    where: str,
) -> torch.Size:
    """The sample shape [*batch, D], or the C++ ops' errors (chol_problem.h check_chol_args)."""
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


def _max_offset(
    t: torch.Tensor, event_dims: int, d_pad: int, sizes: tuple[int, ...], strides: tuple[int, ...]
) -> int:
    """Largest element offset the kernels can form for `t` (padded tiles included), whose
    last `event_dims` dims are the event dims."""
    inner = sum((d_pad - 1) * t.stride(k) for k in range(-event_dims, 0))
    return inner + sum((s - 1) * st for s, st in zip(sizes, strides, strict=True))


class _BatchView:
    """The batch dims of a tensor (its shape and strides without the last `event_dims`), as
    layout.collapse reads them: no tensor op, so nothing is traced under torch.compile."""

    def __init__(self, t: torch.Tensor, event_dims: int) -> None:
        self.shape = t.shape[: t.dim() - event_dims]
        self._strides = t.stride()[: t.dim() - event_dims]

    def dim(self) -> int:
        return len(self.shape)

    def stride(self) -> tuple[int, ...]:
        return self._strides


class _KernelArgs:
    """What both kernels take for (first [..., D], L [..., D, D], eps?, [seed, offset]) over
    the sample `shape`: the batch shape collapsed (layout.collapse on the operands' batch
    views) to at most four dims with each operand's batch strides, the strides within a row,
    block sizes, and the 1-D [seed, offset] view. `placeholder` stands in for absent tensors."""

    def __init__(
        self,
        shape: torch.Size,
        first: torch.Tensor,
        scale_tril: torch.Tensor,
        eps: torch.Tensor | None,
        seed_offset: torch.Tensor | None,
        placeholder: torch.Tensor,
        grad_l: bool,
    ) -> None:
        d = shape[-1]
        batch = shape[:-1]
        self.has_eps = eps is not None
        ops = [first, scale_tril] + ([eps] if self.has_eps else [])
        try:
            lay = self._collapse(batch, ops)
        except ValueError:
            # More than four batch dims remain (interleaved broadcasts): make mu (grad_z) and
            # eps dense over the batch (D elements a row), then, if still needed, L too.
            ops = [ops[0].expand(shape).contiguous(), ops[1]] + [e.contiguous() for e in ops[2:]]
            try:
                lay = self._collapse(batch, ops)
            except ValueError:
                ops[1] = ops[1].expand(*shape, d).contiguous()
                lay = self._collapse(batch, ops)
        self.first, self.l = ops[0], ops[1]
        self.eps = ops[2] if self.has_eps else placeholder
        self.ndim = max(lay.ndim, 1)
        self.sizes = lay.padded_sizes()[1:]  # the outermost size is never needed
        eps_strides = lay.padded_strides(2) if self.has_eps else (0,) * _layout.MAX_DIMS
        self.strides = lay.padded_strides(0) + lay.padded_strides(1) + eps_strides
        self.row_strides = (
            self.first.stride(-1),
            self.l.stride(-2),
            self.l.stride(-1),
            self.eps.stride(-1) if self.has_eps else 0,
        )
        self.rows = batch.numel()
        self.d = d
        d_pad = max(4, triton.next_power_of_2(d))
        self.block_d = min(d_pad, MAX_BLOCK_D)
        self.block_r = max(1, min(_TILE // self.block_d**2, triton.next_power_of_2(self.rows)))
        self.tiles = triton.cdiv(d, self.block_d)
        self.aligned4 = d % 4 == 0
        self.f64 = first.dtype == torch.float64
        rows_pad = triton.cdiv(self.rows, self.block_r) * self.block_r
        # Output offsets (z or grad_eps [rows, D], grad_L [rows, D, D]) and noise indices.
        biggest = [rows_pad * d_pad * (d_pad if grad_l else 1)]
        biggest += [
            _max_offset(t, 2 if k == 1 else 1, d_pad, lay.sizes, lay.strides[k])
            for k, t in enumerate(ops)
        ]
        self.idx64 = max(biggest) >= _INT32_LIMIT
        if self.has_eps or seed_offset is None:
            self.so, self.so_stride = placeholder, 1
        else:
            self.so = seed_offset.reshape(2)
            self.so_stride = self.so.stride(0)

    @staticmethod
    def _collapse(batch: torch.Size, ops: list[torch.Tensor]) -> _layout.Layout:
        views = [_BatchView(t, 2 if k == 1 else 1) for k, t in enumerate(ops)]
        return _layout.collapse(batch, views)

    def grid(self) -> tuple[int]:
        """Row blocks x tiles programs, all in grid dim 0 (chol_kernels._program_rows)."""
        return (triton.cdiv(self.rows, self.block_r) * self.tiles,)

    def launch_args(self) -> list:
        return [self.rows, self.d, self.so_stride, *self.sizes, *self.strides, *self.row_strides]

    def constexprs(self) -> dict:
        return dict(
            NDIM=self.ndim, HAS_EPS=self.has_eps, IDX64=self.idx64, BLOCK_R=self.block_r,
            BLOCK_D=self.block_d, ALIGNED4=self.aligned4, F64=self.f64, num_warps=_NUM_WARPS,
        )  # fmt: skip


@register_kernel("triton_chol_rsample")
def triton_chol_rsample(
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """z = mu + tril(scale_tril) @ eps, and the [seed, offset] used (zeros when eps given)."""
    shape = _check_inputs(mu, "mu", scale_tril, eps, FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, FORWARD)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    if z.numel() == 0:
        used = seed_offset.reshape(2).clone() if eps is None else mu.new_zeros(2, dtype=torch.int64)
        return z, used
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    unused = unused_pointer(mu)
    a = _KernelArgs(shape, mu, scale_tril, eps, seed_offset, placeholder=unused, grad_l=False)
    chol_forward_kernel[a.grid()](
        z, a.first, a.l, a.eps, a.so, used, *a.launch_args(), *_no_stats_forward(unused),
        STATS=False, **a.constexprs(),
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
    shape = _check_inputs(grad_z, "grad_z", scale_tril, eps, BACKWARD)
    if shape != grad_z.shape:
        raise ValueError(
            f"{BACKWARD}: scale_tril (shape {list(scale_tril.shape)}) must broadcast to grad_z's "
            f"batch shape, grad_z has shape {list(grad_z.shape)}"
        )
    if eps is None:
        if need_grad_eps:
            raise ValueError(f"{BACKWARD}: need_grad_eps requires an explicit eps")
        _check_seed_offset(seed_offset, grad_z, BACKWARD)
    d = shape[-1]
    grad_l = torch.empty((*shape, d), dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if grad_z.numel() == 0:
        return grad_l, grad_eps
    unused = unused_pointer(grad_z)
    a = _KernelArgs(shape, grad_z, scale_tril, eps, seed_offset, placeholder=unused,
                    grad_l=True)  # fmt: skip
    chol_backward_kernel[a.grid()](
        grad_l, grad_eps if need_grad_eps else unused, a.first, a.l, a.eps, a.so,
        *a.launch_args(), *_no_stats_backward(unused), NEED_GRAD_EPS=need_grad_eps,
        STATS=False, **a.constexprs(),
    )  # fmt: skip
    return grad_l, grad_eps
