"""How a row kernel (the Cholesky kernels, the kernels with the VAE extras) covers the sample
[rows, D]: programs of BLOCK_R rows by one BLOCK_D-wide tile of the event dim, all in grid
dim 0 (cursor.program_rows decodes them), and the StridedLayout of its operands over the
sample's batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton

from . import layout
from .launch import NUM_WARPS


@dataclass(frozen=True)
class RowBlocks:
    """BLOCK_R rows by BLOCK_D columns a program, over `rows` rows of `d` elements."""

    rows: int
    d: int
    block_r: int
    block_d: int

    @property
    def tiles(self) -> int:
        """BLOCK_D-wide tiles a row."""
        return triton.cdiv(self.d, self.block_d)

    @property
    def row_reach(self) -> int:
        """One past the largest column index the kernels form: whole tiles, padding included."""
        return self.tiles * self.block_d

    def index_bound(self, out_row_elems: int) -> int:
        """One past the largest output offset or noise index the kernels form (padded row
        blocks and tiles), with outputs of `out_row_elems` (>= D) elements a row."""
        rows_pad = triton.cdiv(self.rows, self.block_r) * self.block_r
        return rows_pad * out_row_elems + self.row_reach * (self.row_reach + 1)

    def grid(self, tiles: int) -> tuple[int]:
        """Row blocks x `tiles` programs (1: a program loops over its rows' tiles)."""
        return (triton.cdiv(self.rows, self.block_r) * tiles,)

    def constexprs(self) -> dict:
        """BLOCK_R, BLOCK_D, and ALIGNED4 (D % 4 == 0: a tile's Philox calls each feed four
        consecutive elements)."""
        return {"BLOCK_R": self.block_r, "BLOCK_D": self.block_d, "ALIGNED4": self.d % 4 == 0}


def row_blocks(shape: torch.Size, max_block_d: int, tile: int, tile_dims: int) -> RowBlocks:
    """Blocks over the sample `shape` [*batch, D]: BLOCK_D is D padded to a power of 2 (at
    least 4) up to max_block_d, and BLOCK_R * BLOCK_D**tile_dims <= tile (tile_dims 2 for
    tiles of L)."""
    rows, d = shape[:-1].numel(), shape[-1]
    block_d = min(max(4, triton.next_power_of_2(d)), max_block_d)
    block_r = max(1, min(tile // block_d**tile_dims, triton.next_power_of_2(rows)))
    return RowBlocks(rows, d, block_r, block_d)


def row_layout(
    shape: torch.Size,
    operands: Sequence[tuple[torch.Tensor | None, str]],
    placeholder: torch.Tensor,
    blocks: RowBlocks,
    out_row_elems: int,
) -> layout.StridedLayout:
    """layout.build of a row kernel's operands over the batch of `shape` [*batch, D], whose
    outputs have `out_row_elems` elements a row (D, or D * D for grad_L)."""
    index_bound = blocks.index_bound(out_row_elems)
    return layout.build(shape[:-1], operands, placeholder, index_bound, shape[-1], blocks.row_reach)


def row_constexprs(blocks: RowBlocks, lay: layout.StridedLayout, dtype: torch.dtype) -> dict:
    """The specializations of a row kernel's launch: its blocks', its layout's, F64 (compute
    in float64, else float32) and num_warps."""
    return dict(F64=dtype == torch.float64, num_warps=NUM_WARPS, **blocks.constexprs(),
                **lay.constexprs())  # fmt: skip
