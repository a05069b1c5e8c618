"""Stream identities (seed, offset): two unsigned 64-bit integers (docs/design.md).

In tensors they travel as int64 bit patterns, `seed_offset = [seed, offset]`.
"""

from __future__ import annotations

import numbers
import operator

import torch

from . import _checks

_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1


def check_u64(value: object, name: str, where: str) -> int:
    """`value` (any integer, numpy's included) as an int in [0, 2**64), or a clear error
    naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int in [0, 2**64), got {type(value).__name__}")
    value = operator.index(value)
    if not 0 <= value < _U64:
        raise ValueError(f"{where}: {name} must be in [0, 2**64), got {value}")
    return value


def to_int64(value: int) -> int:
    """The int64 bit pattern of an unsigned 64-bit value."""
    return value - _U64 if value >= 1 << 63 else value


def seed_offset_tensor(seed: int, offset: int, device: torch.device) -> torch.Tensor:
    """[seed, offset] as an int64 tensor on `device`.

    While a CUDA graph is being captured the values are written by two fill kernels, whose
    scalars the graph keeps (each replay reads the same stream): capture rejects the
    host-to-device copy of a pageable tensor that torch.tensor would make.
    """
    values = (to_int64(seed), to_int64(offset))
    if (
        device.type == "cuda"
        and not torch.compiler.is_compiling()
        and torch.cuda.is_current_stream_capturing()
    ):
        out = torch.empty(2, dtype=torch.int64, device=device)
        out[0].fill_(values[0])
        out[1].fill_(values[1])
        return out
    return torch.tensor(values, dtype=torch.int64, device=device)


def draw_seed_offset_tensor(
    generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """[seed, offset] drawn from `generator` (default: the device's), on the generator's device.

    Two values in [0, 2**63 - 1) from torch.randint. The C++ CPU op, the Triton path and the
    reference all draw their stream this way, so they give the same z after
    torch.manual_seed. It is an out-of-place torch random op: graph-safe under CUDA-graph
    capture, and traced by torch.compile (Tensor.random_ is not).
    """
    draw_device = generator.device if generator is not None else device
    return torch.randint(_I64_MAX, (2,), dtype=torch.int64, device=draw_device, generator=generator)


def check_stream_args(
    mu: torch.Tensor,
    eps: torch.Tensor | None,
    shape: torch.Size,
    shape_desc: str,
    seed: int | None,
    offset: int,
    generator: torch.Generator | None,
    where: str,
) -> tuple[int | None, int]:
    """Checks a sampling call's noise arguments: an explicit eps (of `shape`, mu's dtype and
    device), or a stream from seed/offset, or from a generator; never two of them. Returns
    (seed, offset) as Python ints."""
    if eps is not None:
        _checks.check_float_tensor(eps, "eps", where)
        _checks.check_same_dtype_device(mu, "mu", eps, "eps", where)
        if eps.shape != shape:
            raise ValueError(
                f"{where}: eps must have shape {list(shape)} ({shape_desc}), got {list(eps.shape)}"
            )
        if seed is not None or generator is not None:
            raise ValueError(f"{where}: pass either eps or seed/generator, not both")
    _checks.check_generator(generator, mu.device, where)
    offset = check_u64(offset, "offset", where)
    if seed is not None:
        seed = check_u64(seed, "seed", where)
        if generator is not None:
            raise ValueError(f"{where}: pass either seed or generator, not both")
    elif offset != 0:
        raise ValueError(f"{where}: offset is only used together with seed")
    return seed, offset
