"""The arguments of the Triton row kernels (the stats ops' kernels and the Cholesky kernels'
STATS variants): each operand's batch strides over the sample's batch collapsed to at most
four dims, its strides within a row, block sizes and the int64 switch."""

from __future__ import annotations

import torch
import triton

from . import layout as _layout

_NUM_WARPS = 4
_INT32_LIMIT = 2**31

# How an operand spans a sample row: "row" is broadcast to the whole sample [*batch, D]
# (stride 0 along D when broadcast there); "mat" is [..., D, D] over the batch; "one" is one
# value a row, [*batch].
_INNER_DIMS = {"row": 1, "mat": 2, "one": 0}


class _BatchView:
    """Batch shape and strides as layout.collapse reads them (no tensor op, nothing traced)."""

    def __init__(self, shape: torch.Size, strides: list[int]) -> None:
        self.shape = shape
        self._strides = tuple(strides)

    def dim(self) -> int:
        return len(self.shape)

    def stride(self) -> tuple[int, ...]:
        return self._strides


def _split_strides(
    t: torch.Tensor, kind: str, shape: torch.Size
) -> tuple[list[int], tuple[int, ...]]:
    """(strides over the sample's batch dims, strides within a row) of operand `t`, with 0
    along broadcast dims."""
    batch = shape[:-1]
    if kind == "row":
        lead = len(shape) - t.dim()
        full = [0] * lead + [0 if n == 1 else st for n, st in zip(t.shape, t.stride(), strict=True)]
        return full[:-1], (full[-1],)
    inner = _INNER_DIMS[kind]
    bshape, bstride = t.shape[: t.dim() - inner], t.stride()[: t.dim() - inner]
    lead = len(batch) - len(bshape)
    strides = [0] * lead + [0 if n == 1 else st for n, st in zip(bshape, bstride, strict=True)]
    return strides, tuple(t.stride()[t.dim() - inner :])


class RowArgs:
    """What a row kernel takes for `operands` (tensor or None, kind) over the sample `shape`
    [*batch, D]: the batch shape collapsed (layout.collapse) to at most four dims with each
    operand's batch strides, their strides within a row, block sizes (BLOCK_R rows of
    BLOCK_D**tile_dims elements <= tile), the int64 switch and the 1-D [seed, offset] view.
    `placeholder` stands in for absent tensors (never read)."""

    def __init__(
        self,
        shape: torch.Size,
        operands: list[tuple[torch.Tensor | None, str]],
        seed_offset: torch.Tensor | None,
        placeholder: torch.Tensor,
        max_block_d: int,
        tile: int,
        tile_dims: int,
        out_row_elems: int,
    ) -> None:
        self.d = d = shape[-1]
        self.rows = shape[:-1].numel()
        kinds = [k for _, k in operands]
        tensors = [t for t, _ in operands]
        try:
            lay = _collapse(shape, tensors, kinds)
        except ValueError:
            # More than four batch dims remain (interleaved broadcasts): make the per-element
            # and per-row operands dense over the batch, then, if still needed, scale_tril.
            tensors = [dense(t, k, shape) if k != "mat" else t for t, k in operands]
            try:
                lay = _collapse(shape, tensors, kinds)
            except ValueError:
                tensors = [dense(t, k, shape) for t, k in zip(tensors, kinds, strict=True)]
                lay = _collapse(shape, tensors, kinds)
        self.tensors = [placeholder if t is None else t for t in tensors]
        self.ndim = max(lay.ndim, 1)
        self.sizes = lay.padded_sizes()[1:]  # the outermost size is never needed
        self.batch_strides = [lay.padded_strides(k) for k in range(len(tensors))]
        inner = [
            _split_strides(t, k, shape)[1] if t is not None else (0,) * _INNER_DIMS[k]
            for t, k in zip(tensors, kinds, strict=True)
        ]
        self.inner_strides = inner
        d_pad = max(4, triton.next_power_of_2(d))
        self.block_d = min(d_pad, max_block_d)
        rows_pow2 = triton.next_power_of_2(self.rows)
        self.block_r = max(1, min(tile // self.block_d**tile_dims, rows_pow2))
        self.tiles = triton.cdiv(d, self.block_d)
        self.aligned4 = d % 4 == 0
        self.f64 = tensors[0].dtype == torch.float64
        # The largest offsets the kernels form (padded tiles included): outputs of
        # `out_row_elems` (>= D) elements a row, noise indices, and every operand's.
        cover = self.tiles * self.block_d
        rows_pad = triton.cdiv(self.rows, self.block_r) * self.block_r
        biggest = [rows_pad * out_row_elems + cover * (cover + 1)]
        for k in range(len(tensors)):
            within = sum((cover - 1) * st for st in inner[k])
            across = sum((s - 1) * st for s, st in zip(lay.sizes, lay.strides[k], strict=True))
            biggest.append(within + across)
        self.idx64 = max(biggest) >= _INT32_LIMIT
        if seed_offset is None:
            self.so, self.so_stride = placeholder, 1
        else:
            self.so = seed_offset.reshape(2)
            self.so_stride = self.so.stride(0)

    def grid(self, tiles: int) -> tuple[int]:
        """Row blocks x `tiles` programs, all in grid dim 0 (chol_kernels._program_rows)."""
        return (triton.cdiv(self.rows, self.block_r) * tiles,)

    def constexprs(self) -> dict:
        return dict(
            NDIM=self.ndim, IDX64=self.idx64, BLOCK_R=self.block_r, BLOCK_D=self.block_d,
            ALIGNED4=self.aligned4, F64=self.f64, num_warps=_NUM_WARPS,
        )  # fmt: skip


def _collapse(
    shape: torch.Size, tensors: list[torch.Tensor | None], kinds: list[str]
) -> _layout.Layout:
    """layout.collapse of the operands' batch dims (an absent operand: all strides 0)."""
    batch = shape[:-1]
    views = [
        _BatchView(batch, _split_strides(t, k, shape)[0] if t is not None else [0] * len(batch))
        for t, k in zip(tensors, kinds, strict=True)
    ]
    return _layout.collapse(batch, views)


def dense(t: torch.Tensor | None, kind: str, shape: torch.Size) -> torch.Tensor | None:
    """Operand `t` as a contiguous tensor of its full shape over the sample's batch."""
    if t is None:
        return None
    d, batch = shape[-1], shape[:-1]
    full = {"row": shape, "one": batch, "mat": torch.Size((*batch, d, d))}[kind]
    return t if t.shape == full and t.is_contiguous() else t.expand(full).contiguous()


def flat(parts: list[tuple[int, ...]]) -> list[int]:
    return [x for p in parts for x in p]


def launch_strides(a: RowArgs) -> list[int]:
    """Every operand's four batch strides, then every operand's strides within a row."""
    return flat(a.batch_strides) + flat(a.inner_strides)
