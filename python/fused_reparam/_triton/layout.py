"""Index layouts for the Triton kernels: each input of an elementwise op, broadcast to the
output shape, reduced to at most MAX_DIMS dims of (size, stride).

Dims of size 1 are dropped and neighbouring dims merged wherever every input allows it, so a
contiguous input costs no index math (`contiguous`), a row-broadcast `logvar [D]` against
`mu [B, D]` one modulo, and anything else at most MAX_DIMS - 1 divisions per element.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_DIMS = 4
_INT32_LIMIT = 2**31


@dataclass(frozen=True)
class Layout:
    """Collapsed output sizes (outer to inner) and, per input, its strides and contiguity."""

    sizes: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    contiguous: tuple[bool, ...]

    @property
    def ndim(self) -> int:
        return len(self.sizes)

    def padded_sizes(self) -> tuple[int, ...]:
        """The sizes padded at the front with 1s to MAX_DIMS entries (kernel arguments)."""
        return (1,) * (MAX_DIMS - self.ndim) + self.sizes

    def padded_strides(self, i: int) -> tuple[int, ...]:
        """Input i's strides padded at the front with 0s to MAX_DIMS entries."""
        return (0,) * (MAX_DIMS - self.ndim) + self.strides[i]

    def needs_int64(self, numel: int, block: int) -> bool:
        """Whether an element index (up to numel rounded up to whole blocks, as the kernels
        compute it before masking) or an input offset can reach 2**31."""
        if -(-numel // block) * block >= _INT32_LIMIT:
            return True
        for strides in self.strides:
            if sum((s - 1) * t for s, t in zip(self.sizes, strides, strict=True)) >= _INT32_LIMIT:
                return True
        return False


def _broadcast_strides(t: torch.Tensor, shape: torch.Size) -> list[int]:
    """t's strides as an input broadcast to `shape` (0 along broadcast dims)."""
    lead = len(shape) - t.dim()
    out = [0] * lead
    for size, stride in zip(t.shape, t.stride(), strict=True):
        out.append(0 if size == 1 else stride)
    return out


def _contiguous_strides(sizes: list[int]) -> list[int]:
    out, step = [], 1
    for s in reversed(sizes):
        out.append(step)
        step *= s
    return out[::-1]


def collapse(shape: torch.Size, inputs: list[torch.Tensor]) -> Layout:
    """The collapsed layout of `inputs`, each broadcastable to `shape`.

    Raises ValueError when more than MAX_DIMS dims remain; `make_layout` handles that.
    """
    keep = [d for d, s in enumerate(shape) if s != 1]
    sizes = [shape[d] for d in keep]
    strides = [[st[d] for d in keep] for st in (_broadcast_strides(t, shape) for t in inputs)]
    # Merge dim d-1 into d (inner) when every input steps over d-1 as over the whole of d.
    d = len(sizes) - 1
    while d > 0:
        if all(st[d - 1] == st[d] * sizes[d] for st in strides):
            sizes[d - 1 : d + 1] = [sizes[d - 1] * sizes[d]]
            for st in strides:
                st[d - 1 : d + 1] = [st[d]]
        d -= 1
    if len(sizes) > MAX_DIMS:
        raise ValueError(f"{len(sizes)} dims remain after collapsing; at most {MAX_DIMS}")
    dense = _contiguous_strides(sizes)
    # Size-1... dims are gone, so a contiguous input has exactly the dense strides.
    contiguous = tuple(st == dense for st in strides)
    return Layout(tuple(sizes), tuple(tuple(st) for st in strides), contiguous)


def make_layout(shape: torch.Size, inputs: list[torch.Tensor]) -> tuple[Layout, list[torch.Tensor]]:
    """The layout of `inputs` and the inputs to pass to the kernel.

    When more than MAX_DIMS dims would remain (rare: several interleaved broadcasts), the
    non-contiguous inputs are first copied to contiguous tensors of the full `shape`.
    """
    try:
        return collapse(shape, inputs), inputs
    except ValueError:
        dense = [
            t if t.is_contiguous() and t.shape == shape else t.expand(shape).contiguous()
            for t in inputs
        ]
        return collapse(shape, dense), dense
