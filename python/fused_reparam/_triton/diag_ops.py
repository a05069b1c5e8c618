"""The Triton kernels of the diagonal op pair, registered for CUDA tensors (and for CPU
tensors under the Triton interpreter, TRITON_INTERPRET=1, which is how CI runs them):

    fused_reparam::triton_diag_rsample(mu, logvar, eps=None, seed_offset=None,
                                       generator=None) -> (z, used)
    fused_reparam::triton_diag_rsample_backward(grad_z, logvar, eps, seed_offset,
                                                need_grad_eps) -> (grad_logvar, grad_eps)

The schemas, autograd and fake kernels are those of every backend (csrc/ops.cpp,
csrc/autograd/, _fakes.py). Without seed_offset or eps the forward draws [seed, offset] from
the generator with torch.randint, as the C++ CPU op does, so both give the same z.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import triton

from .. import _checks, _seed
from . import layout as _layout
from .diag_kernels import diag_backward_kernel, diag_forward_kernel

FORWARD = "fused_reparam::triton_diag_rsample"
BACKWARD = "fused_reparam::triton_diag_rsample_backward"


def interpreted() -> bool:
    """True when the kernels were built by the Triton interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(diag_forward_kernel, triton.runtime.JITFunction)


# Elements per program: 4 * GROUPS. The interpreter runs one program at a time, in numpy, so
# it gets big blocks; the stream is indexed by element, so this changes no number.
_GROUPS = 4096 if interpreted() else 512
_NUM_WARPS = 4
# Kept alive for as long as the registrations below should last: the whole process.
_LIBRARY = torch.library.Library("fused_reparam", "IMPL")


def register_kernel(name: str) -> Callable:
    """Registers the decorated function as the kernel of `fused_reparam::<name>` for CUDA
    tensors, and for CPU tensors under the interpreter."""

    def register(fn: Callable) -> Callable:
        _LIBRARY.impl(name, fn, "CUDA")
        if interpreted():
            _LIBRARY.impl(name, fn, "CPU")
        return fn

    return register


def _grid(numel: int) -> tuple[int]:
    return (triton.cdiv(numel, 4 * _GROUPS),)


def unused_pointer(like: torch.Tensor) -> torch.Tensor:
    """A 1-element tensor for the pointer arguments a launch never reads or writes (an absent
    eps, seed_offset, grad_eps, ...), one a launch for all of them.

    Not one of the op's inputs or outputs, so no launch ever sees one tensor in two argument
    places (an output also passed as an input is what a kernel's aliasing analysis, or
    torch.compile's functionalization of a launch, would get wrong). Unused pointers sit
    behind constexpr branches, so the dtype (`like`'s) only keys the compiled variant.
    """
    return torch.empty(1, dtype=like.dtype, device=like.device)


def _check_seed_offset(seed_offset: torch.Tensor, like: torch.Tensor, where: str) -> None:
    if seed_offset.dtype != torch.int64 or seed_offset.numel() != 2:
        raise RuntimeError(
            f"{where}: seed_offset must be an int64 tensor of 2 elements [seed, offset], got "
            f"{seed_offset.dtype} of shape {list(seed_offset.shape)}"
        )
    if seed_offset.device != like.device:
        raise RuntimeError(
            f"{where}: seed_offset is on {seed_offset.device} but the inputs are on {like.device}"
        )


def forward_stream(
    like: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor | None,
    generator: torch.Generator | None,
    where: str,
) -> torch.Tensor | None:
    """The [seed, offset] a forward op uses: seed_offset (checked), else one drawn from the
    generator when eps is not given."""
    if seed_offset is None and eps is None:
        if generator is not None and generator.device != like.device:
            raise RuntimeError(
                f"{where}: generator is for {generator.device} but the inputs are on {like.device}"
            )
        return _seed.draw_seed_offset_tensor(generator, like.device)
    if seed_offset is not None:
        _check_seed_offset(seed_offset, like, where)
    return seed_offset


def _check_inputs(
    a: torch.Tensor, a_name: str, logvar: torch.Tensor, eps: torch.Tensor | None, where: str
) -> torch.Size:
    _checks.check_float_tensor(a, a_name, where)
    _checks.check_float_tensor(logvar, "logvar", where)
    _checks.check_same_dtype_device(a, a_name, logvar, "logvar", where)
    shape = _checks.broadcast_shape(a, a_name, logvar, "logvar", where)
    if eps is not None:
        _checks.check_float_tensor(eps, "eps", where)
        _checks.check_same_dtype_device(a, a_name, eps, "eps", where)
        if eps.shape != shape:
            raise ValueError(f"{where}: eps must have shape {list(shape)}, got {list(eps.shape)}")
    return shape


class _KernelArgs:
    """What both kernels take for (first input, logvar, eps?, [seed, offset]) with output
    `shape`: the inputs to read (after layout.make_layout), their collapsed sizes and strides
    padded to four dims, contiguity flags, and the 1-D [seed, offset] view and its stride.
    `placeholder` stands in for absent tensors (never read)."""

    def __init__(
        self,
        shape: torch.Size,
        first: torch.Tensor,
        logvar: torch.Tensor,
        eps: torch.Tensor | None,
        seed_offset: torch.Tensor | None,
        placeholder: torch.Tensor,
    ) -> None:
        self.has_eps = eps is not None
        lay, inputs = _layout.make_layout(shape, [first, logvar] + ([eps] if self.has_eps else []))
        self.first, self.logvar = inputs[0], inputs[1]
        self.eps = inputs[2] if self.has_eps else placeholder
        self.sizes = lay.padded_sizes()[1:]  # the outermost size is never needed
        eps_strides = lay.padded_strides(2) if self.has_eps else (0,) * _layout.MAX_DIMS
        self.strides = lay.padded_strides(0) + lay.padded_strides(1) + eps_strides
        self.contig = (lay.contiguous[0], lay.contiguous[1], self.has_eps and lay.contiguous[2])
        self.ndim = max(lay.ndim, 1)
        numel = shape.numel()
        self.idx64 = lay.needs_int64(numel, 4 * _GROUPS)
        self.f64 = first.dtype == torch.float64
        if self.has_eps or seed_offset is None:
            self.so, self.so_stride = placeholder, 1
        else:
            self.so = seed_offset.reshape(2)
            self.so_stride = self.so.stride(0)


@register_kernel("triton_diag_rsample")
def triton_diag_rsample(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """z = mu + exp(0.5 * logvar) * eps, and the [seed, offset] used (zeros when eps given)."""
    shape = _check_inputs(mu, "mu", logvar, eps, FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, FORWARD)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    if z.numel() == 0:
        used = seed_offset.reshape(2).clone() if eps is None else mu.new_zeros(2, dtype=torch.int64)
        return z, used
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    a = _KernelArgs(shape, mu, logvar, eps, seed_offset, placeholder=unused_pointer(mu))
    diag_forward_kernel[_grid(z.numel())](
        z, a.first, a.logvar, a.eps, a.so, used, z.numel(), a.so_stride, *a.sizes, *a.strides,
        NDIM=a.ndim, MU_CONTIG=a.contig[0], LV_CONTIG=a.contig[1], EPS_CONTIG=a.contig[2],
        HAS_EPS=a.has_eps, IDX64=a.idx64, GROUPS=_GROUPS, F64=a.f64, num_warps=_NUM_WARPS,
    )  # fmt: skip
    return z, used


@register_kernel("triton_diag_rsample_backward")
def triton_diag_rsample_backward(
    grad_z: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(0.5 * grad_z * sigma * eps, grad_z * sigma), the second empty unless need_grad_eps."""
    shape = _check_inputs(grad_z, "grad_z", logvar, eps, BACKWARD)
    if shape != grad_z.shape:
        raise ValueError(
            f"{BACKWARD}: logvar (shape {list(logvar.shape)}) must broadcast to grad_z's shape "
            f"{list(grad_z.shape)}"
        )
    has_eps = eps is not None
    if not has_eps:
        if need_grad_eps:
            raise ValueError(f"{BACKWARD}: need_grad_eps requires an explicit eps")
        _check_seed_offset(seed_offset, grad_z, BACKWARD)
    grad_logvar = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if grad_logvar.numel() == 0:
        return grad_logvar, grad_eps
    unused = unused_pointer(grad_z)
    a = _KernelArgs(shape, grad_z, logvar, eps, seed_offset, placeholder=unused)
    diag_backward_kernel[_grid(grad_logvar.numel())](
        grad_logvar, grad_eps if need_grad_eps else unused, a.first, a.logvar, a.eps, a.so,
        grad_logvar.numel(), a.so_stride, *a.sizes, *a.strides,
        NDIM=a.ndim, G_CONTIG=a.contig[0], LV_CONTIG=a.contig[1], EPS_CONTIG=a.contig[2],
        HAS_EPS=a.has_eps, NEED_GRAD_EPS=need_grad_eps, IDX64=a.idx64, GROUPS=_GROUPS,
        F64=a.f64, num_warps=_NUM_WARPS,
    )  # fmt: skip
    return grad_logvar, grad_eps
