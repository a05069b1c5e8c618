"""The Triton kernels of the diagonal op pair, registered for CUDA tensors (and for CPU
tensors under the Triton interpreter, TRITON_INTERPRET=1, which is how CI runs them):

    fused_reparam::triton_diag_rsample(mu, s, scale=0, eps=None, seed_offset=None,
                                       generator=None, min_scale=0., noise=0) -> (z, used)
    fused_reparam::triton_diag_rsample_backward(grad_z, s, eps, seed_offset, need_grad_eps,
                                                scale=0, min_scale=0., noise=0)
                                                -> (grad_s, grad_eps)

with sigma(s) of the scale kind `scale` plus min_scale (scale.py), and stream noise of kind
`noise` (noise.py: 0 normal, 1 laplace, 2 logistic, 3 gumbel; the backward regenerates the
forward's). An explicit eps makes the kind moot: its launches take the normal's NOISE, so no
kind compiles a variant of its own for them.

The schemas, autograd and fake kernels are those of every backend (csrc/ops.cpp,
csrc/autograd/, _fakes.py). Without seed_offset or eps the forward draws [seed, offset] from
the generator with torch.randint, as the C++ CPU op does, so both give the same z.
"""

from __future__ import annotations

import torch
import triton

from .. import _checks
from . import layout
from .diag_kernels import diag_backward_kernel, diag_forward_kernel
from .launch import (
    NUM_WARPS,
    check_seed_offset,
    forward_stream,
    interpreted,
    register_kernel,
    stream_args,
    unused_pointer,
)
from .noise import check_noise
from .scale import check_scale

FORWARD = "fused_reparam::triton_diag_rsample"
BACKWARD = "fused_reparam::triton_diag_rsample_backward"

# Elements per program: 4 * GROUPS. The interpreter runs one program at a time, in numpy, so
# it gets big blocks; the stream is indexed by element, so this changes no number.
_GROUPS = 4096 if interpreted() else 512


def _grid(numel: int) -> tuple[int]:
    """One program per block of 4 * GROUPS elements."""
    return (triton.cdiv(numel, 4 * _GROUPS),)


def check_inputs(
    a: torch.Tensor, a_name: str, s: torch.Tensor, eps: torch.Tensor | None, where: str
) -> torch.Size:
    """The broadcast shape of (a, s), eps's too, or the C++ ops' errors."""
    _checks.check_float_tensor(a, a_name, where)
    _checks.check_float_tensor(s, "s", where)
    _checks.check_same_dtype_device(a, a_name, s, "s", where)
    shape = _checks.broadcast_shape(a, a_name, s, "s", where)
    if eps is not None:
        _checks.check_float_tensor(eps, "eps", where)
        _checks.check_same_dtype_device(a, a_name, eps, "eps", where)
        if eps.shape != shape:
            raise ValueError(f"{where}: eps must have shape {list(shape)}, got {list(eps.shape)}")
    return shape


def elementwise_layout(
    shape: torch.Size,
    first: torch.Tensor,
    s: torch.Tensor,
    eps: torch.Tensor | None,
    placeholder: torch.Tensor,
) -> layout.StridedLayout:
    """The elementwise layout of (first, s, eps) over the sample: the grid is its elements,
    indexed up to whole blocks."""
    blocks = 4 * _GROUPS
    index_bound = triton.cdiv(shape.numel(), blocks) * blocks
    operands = [(first, "elem"), (s, "elem"), (eps, "elem")]
    return layout.build(shape, operands, placeholder, index_bound)


@register_kernel("triton_diag_rsample")
def triton_diag_rsample(
    mu: torch.Tensor,
    s: torch.Tensor,
    scale: int = 0,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    min_scale: float = 0.0,
    noise: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """z = mu + sigma(s) * eps, and the [seed, offset] used (zeros when eps given)."""
    shape = check_inputs(mu, "mu", s, eps, FORWARD)
    check_scale(scale, min_scale, FORWARD)
    check_noise(noise, FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, FORWARD)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    if z.numel() == 0:
        used = seed_offset.reshape(2).clone() if eps is None else mu.new_zeros(2, dtype=torch.int64)
        return z, used
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    unused = unused_pointer(mu)
    lay = elementwise_layout(shape, mu, s, eps, unused)
    so, so_stride = stream_args(seed_offset, eps, unused)
    diag_forward_kernel[_grid(z.numel())](
        z, *lay.tensors, so, used, z.numel(), so_stride, *lay.size_args(),
        *lay.stride_args(range(3)), float(min_scale), MU_CONTIG=lay.contiguous[0],
        S_CONTIG=lay.contiguous[1], EPS_CONTIG=lay.contiguous[2], HAS_EPS=eps is not None,
        GROUPS=_GROUPS, F64=mu.dtype == torch.float64, SCALE=scale,
        NOISE=noise if eps is None else 0, num_warps=NUM_WARPS, **lay.constexprs(),
    )  # fmt: skip
    return z, used


@register_kernel("triton_diag_rsample_backward")
def triton_diag_rsample_backward(
    grad_z: torch.Tensor,
    s: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
    scale: int = 0,
    min_scale: float = 0.0,
    noise: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_z * sigma'(s) * eps, grad_z * sigma), the second empty unless need_grad_eps."""
    shape = check_inputs(grad_z, "grad_z", s, eps, BACKWARD)
    if shape != grad_z.shape:
        raise ValueError(
            f"{BACKWARD}: s (shape {list(s.shape)}) must broadcast to grad_z's shape "
            f"{list(grad_z.shape)}"
        )
    if eps is None:
        if need_grad_eps:
            raise ValueError(f"{BACKWARD}: need_grad_eps requires an explicit eps")
        check_seed_offset(seed_offset, grad_z, BACKWARD)
    check_scale(scale, min_scale, BACKWARD)
    check_noise(noise, BACKWARD)
    grad_s = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if grad_s.numel() == 0:
        return grad_s, grad_eps
    unused = unused_pointer(grad_z)
    lay = elementwise_layout(shape, grad_z, s, eps, unused)
    so, so_stride = stream_args(seed_offset, eps, unused)
    diag_backward_kernel[_grid(grad_s.numel())](
        grad_s, grad_eps if need_grad_eps else unused, *lay.tensors, so, grad_s.numel(),
        so_stride, *lay.size_args(), *lay.stride_args(range(3)), float(min_scale),
        G_CONTIG=lay.contiguous[0], S_CONTIG=lay.contiguous[1], EPS_CONTIG=lay.contiguous[2],
        HAS_EPS=eps is not None, NEED_GRAD_EPS=need_grad_eps, GROUPS=_GROUPS,
        F64=grad_z.dtype == torch.float64, SCALE=scale, NOISE=noise if eps is None else 0,
        num_warps=NUM_WARPS, **lay.constexprs(),
    )  # fmt: skip
    return grad_s, grad_eps
