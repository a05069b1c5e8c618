"""What every Triton op needs around its launch: registration of the op's kernel, the stream
[seed, offset] it reads, and the dummy tensor of the pointer arguments it never touches.

The ops are registered for CUDA tensors, and for CPU tensors under the Triton interpreter
(TRITON_INTERPRET=1, which is how CI runs them), on the schemas of every backend
(csrc/ops.cpp; autograd and fake kernels are csrc/autograd/ and _fakes.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import triton

from .. import _seed
from . import precise

NUM_WARPS = 4
# Kept alive for as long as the registrations should last: the whole process.
_LIBRARY = torch.library.Library("fused_reparam", "IMPL")


def interpreted() -> bool:
    """True when the kernels were built by the Triton interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(precise.exp, triton.runtime.JITFunction)


def register_kernel(name: str) -> Callable:
    """Registers the decorated function as the kernel of `fused_reparam::<name>` for CUDA
    tensors, and for CPU tensors under the interpreter."""

    def register(fn: Callable) -> Callable:
        _LIBRARY.impl(name, fn, "CUDA")
        if interpreted():
            _LIBRARY.impl(name, fn, "CPU")
        return fn

    return register


def unused_pointer(like: torch.Tensor) -> torch.Tensor:
    """A 1-element tensor for the pointer arguments a launch never reads or writes (an absent
    eps, seed_offset, grad_eps, ...), one a launch for all of them.

    Not one of the op's inputs or outputs, so no launch ever sees one tensor in two argument
    places (an output also passed as an input is what a kernel's aliasing analysis, or
    torch.compile's functionalization of a launch, would get wrong). Unused pointers sit
    behind constexpr branches, so the dtype (`like`'s) only keys the compiled variant.
    """
    return torch.empty(1, dtype=like.dtype, device=like.device)


def check_seed_offset(seed_offset: torch.Tensor, like: torch.Tensor, where: str) -> None:
    """The C++ ops' errors for a seed_offset that is not int64 [seed, offset] on like's device."""
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
    generator with torch.randint (as the C++ CPU op does, so both give the same z) when eps is
    not given."""
    if seed_offset is None and eps is None:
        if generator is not None and generator.device != like.device:
            raise RuntimeError(
                f"{where}: generator is for {generator.device} but the inputs are on {like.device}"
            )
        return _seed.draw_seed_offset_tensor(generator, like.device)
    if seed_offset is not None:
        check_seed_offset(seed_offset, like, where)
    return seed_offset


def stream_args(
    seed_offset: torch.Tensor | None, eps: torch.Tensor | None, placeholder: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """The kernels' (so_ptr, so_stride): the 1-D [seed, offset] and its stride, or the
    placeholder when eps is given (the stream is then never read)."""
    if eps is not None or seed_offset is None:
        return placeholder, 1
    so = seed_offset.reshape(2)
    return so, so.stride(0)
