"""The strided layout of a Triton kernel's operands: the one host-side description of where a
kernel reads its inputs, and `build`, which makes it from tensors.

Every kernel walks a grid of indices: the elements of the sample (the diagonal op's
elementwise kernels) or its rows (the row kernels: Cholesky, and every op with the VAE extras).
An operand is read at its grid offset (cursor.operand_offset: div/mod of the index by the
merged sizes, times its strides) plus, in a row kernel, its strides within the row. Size-1
dims are dropped and neighbouring dims merged wherever every operand allows it, so a
contiguous input costs no index math, a row-broadcast `logvar [D]` against `mu [B, D]` one
modulo, and anything else at most MAX_DIMS - 1 divisions. Broadcast operands keep stride 0
(a shared `L`, the stride-0 `mu` of num_samples) and are never copied; only when more than
MAX_DIMS dims stay unmergeable are operands made dense.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

MAX_DIMS = 4
# Offsets at or past this need int64 index math (IDX64). A module global, read at each build,
# so tests can force the int64 path on small data.
IDX64_LIMIT = 2**31

# How an operand spans one grid index: one value ("elem"), a row of the event dim D ("row": its
# last dim, broadcast along D when of size 1), or a D x D matrix ("mat": its last two dims).
EVENT_DIMS = {"elem": 0, "row": 1, "mat": 2}


@dataclass(frozen=True)
class StridedLayout:
    """Operands over a grid merged to `sizes` (outer to inner, at most MAX_DIMS): per operand
    its strides over those dims (0 where broadcast), its strides within a row, whether it is
    dense over the grid (read at the index itself), and the tensor to pass (the operand, a
    dense copy of it, or the placeholder of an absent one); `idx64` when an index or offset
    the kernel forms can reach IDX64_LIMIT."""

    sizes: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    row_strides: tuple[tuple[int, ...], ...]
    contiguous: tuple[bool, ...]
    tensors: tuple[torch.Tensor, ...]
    idx64: bool

    @property
    def ndim(self) -> int:
        """Grid dims the kernels decompose an index into (at least 1)."""
        return max(len(self.sizes), 1)

    def size_args(self) -> tuple[int, ...]:
        """Kernel arguments s1, s2, s3: the sizes padded at the front with 1s to MAX_DIMS, less
        the outermost, which no index decomposition needs."""
        return ((1,) * (MAX_DIMS - len(self.sizes)) + self.sizes)[1:]

    def stride_args(self, operands: Iterable[int]) -> list[int]:
        """Kernel arguments of `operands` (indices): each one's MAX_DIMS grid strides, padded
        at the front with 0s, then each one's strides within a row."""
        operands = list(operands)
        pad = (0,) * (MAX_DIMS - len(self.sizes))
        grid = [s for k in operands for s in pad + self.strides[k]]
        return grid + [s for k in operands for s in self.row_strides[k]]

    def constexprs(self) -> dict:
        """The layout's specializations: NDIM and IDX64."""
        return {"NDIM": self.ndim, "IDX64": self.idx64}


def _operand_strides(
    t: torch.Tensor | None, kind: str, grid: Sequence[int]
) -> tuple[list[int], tuple[int, ...]]:
    """(strides over the grid dims, strides within a row) of operand `t` broadcast to
    [*grid, <its event dims of size d>]: 0 along dims it lacks or has of size 1 (such a dim is
    only ever read at index 0). An absent operand reads nothing: all 0."""
    full = len(grid) + EVENT_DIMS[kind]
    if t is None:
        strides = [0] * full
    else:
        sized = [0 if n == 1 else st for n, st in zip(t.shape, t.stride(), strict=True)]
        strides = [0] * (full - t.dim()) + sized
    return strides[: len(grid)], tuple(strides[len(grid) :])


def _dense_strides(sizes: Sequence[int]) -> list[int]:
    """The strides of a contiguous tensor of `sizes`."""
    out, step = [], 1
    for s in reversed(sizes):
        out.append(step)
        step *= s
    return out[::-1]


def _merge(
    grid: Sequence[int], strides: list[list[int]]
) -> tuple[list[int], list[list[int]]] | None:
    """(sizes, per-operand strides) of the grid with size-1 dims dropped and dim k-1 merged
    into k wherever every operand steps over k-1 as over the whole of k; None when more than
    MAX_DIMS dims remain."""
    keep = [k for k, n in enumerate(grid) if n != 1]
    sizes = [grid[k] for k in keep]
    strides = [[st[k] for k in keep] for st in strides]
    for k in range(len(sizes) - 1, 0, -1):
        if all(st[k - 1] == st[k] * sizes[k] for st in strides):
            sizes[k - 1 : k + 1] = [sizes[k - 1] * sizes[k]]
            for st in strides:
                st[k - 1 : k + 1] = [st[k]]
    return (sizes, strides) if len(sizes) <= MAX_DIMS else None


def _dense(t: torch.Tensor | None, kind: str, grid: Sequence[int], d: int) -> torch.Tensor | None:
    """Operand `t` as a contiguous tensor of its full shape [*grid, <event dims>]."""
    if t is None:
        return None
    full = torch.Size((*grid, *(d,) * EVENT_DIMS[kind]))
    return t if t.shape == full and t.is_contiguous() else t.expand(full).contiguous()


def build(
    grid: Sequence[int],
    operands: Sequence[tuple[torch.Tensor | None, str]],
    placeholder: torch.Tensor,
    index_bound: int,
    d: int = 1,
    row_reach: int = 1,
) -> StridedLayout:
    """The layout of `operands` (tensor or None, kind of EVENT_DIMS), each broadcastable to
    [*grid, <its event dims of size d>].

    `grid` is the sample's shape for an elementwise kernel (all operands "elem"), its batch
    shape for a row kernel (rows of the event dim d). IDX64 is decided from `index_bound`, one
    past the largest element index or output offset the kernel forms (whole blocks, padded
    tiles), and from each operand's largest offset, with indices within a row up to
    `row_reach` - 1 (the kernel's padded tiles). `placeholder` stands in for absent operands
    (never read).

    When more than MAX_DIMS grid dims stay unmergeable (several interleaved broadcasts), the
    operands other than matrices are made dense first, and then, if still needed, matrices too.
    """
    kinds = [k for _, k in operands]
    tensors = [t for t, _ in operands]
    for copied in ((), ("elem", "row"), ("elem", "row", "mat")):
        tensors = [
            _dense(t, k, grid, d) if k in copied else t for t, k in zip(tensors, kinds, strict=True)
        ]
        split = [_operand_strides(t, k, grid) for t, k in zip(tensors, kinds, strict=True)]
        merged = _merge(grid, [across for across, _ in split])
        if merged is not None:
            break
    assert merged is not None, "dense operands always merge to one dim"
    sizes, strides = merged
    reach = [index_bound]
    for st, (_, within) in zip(strides, split, strict=True):
        across = sum((n - 1) * s for n, s in zip(sizes, st, strict=True))
        reach.append(across + sum((row_reach - 1) * s for s in within))
    dense = _dense_strides(sizes)
    contiguous = [t is not None and st == dense for t, st in zip(tensors, strides, strict=True)]
    return StridedLayout(
        sizes=tuple(sizes),
        strides=tuple(tuple(st) for st in strides),
        row_strides=tuple(within for _, within in split),
        contiguous=tuple(contiguous),
        tensors=tuple(placeholder if t is None else t for t in tensors),
        idx64=max(reach) >= IDX64_LIMIT,
    )
