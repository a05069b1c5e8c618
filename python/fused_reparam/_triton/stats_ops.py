"""The Triton kernels of the ops with the VAE extras, registered like diag_ops.py's:

    fused_reparam::triton_diag_rsample_stats(mu, logvar, eps=None, seed_offset=None,
        generator=None) -> (z, kl, log_q, used)
    fused_reparam::triton_diag_rsample_stats_backward(grad_z, grad_kl, grad_log_q, mu, logvar,
        eps, seed_offset, need_grad_eps) -> (grad_mu, grad_logvar, grad_eps)
    fused_reparam::triton_chol_rsample_stats(mu, scale_tril, eps=None, seed_offset=None,
        generator=None) -> (z, kl, log_q, used)
    fused_reparam::triton_chol_rsample_stats_backward(grad_z, grad_kl, grad_log_q, mu,
        scale_tril, eps, seed_offset, need_grad_eps) -> (grad_mu, grad_L, grad_eps)

The C++ ops' contract (csrc/ops.cpp). kl and log_q have the sample's shape without its last
dim, in mu's dtype, summed in float32 (half types) or float64. The diagonal kernels are
stats_kernels.py, the Cholesky ones the STATS variants of chol_kernels.py. Inputs are passed
as they are (per-row batch offsets and per-operand strides, _RowArgs): broadcast inputs are
never copied.
"""

from __future__ import annotations

import torch
import triton

from .. import _checks
from . import chol_ops as _chol_ops
from . import layout as _layout
from .chol_kernels import chol_backward_kernel, chol_forward_kernel
from .diag_ops import _check_inputs as _diag_ops_check_inputs
from .diag_ops import _check_seed_offset, forward_stream, register_kernel, unused_pointer
from .stats_kernels import diag_stats_backward_kernel, diag_stats_forward_kernel

DIAG_FORWARD = "fused_reparam::triton_diag_rsample_stats"
DIAG_BACKWARD = "fused_reparam::triton_diag_rsample_stats_backward"
CHOL_FORWARD = "fused_reparam::triton_chol_rsample_stats"
CHOL_BACKWARD = "fused_reparam::triton_chol_rsample_stats_backward"


def interpreted() -> bool:
    """True when the kernels were built by the Triton interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(diag_stats_forward_kernel, triton.runtime.JITFunction)


# Diagonal tiles are [BLOCK_R, BLOCK_D] with BLOCK_R * BLOCK_D <= DIAG_TILE; BLOCK_D is D padded
# to a power of 2 (at least 4) up to DIAG_MAX_BLOCK_D, beyond which a program loops over tiles.
# The Cholesky ops take chol_ops' sizes. Read at each call, so tests can force small tiles; the
# stream is indexed by element, so no size changes a number.
DIAG_MAX_BLOCK_D = 256 if interpreted() else 1024
DIAG_TILE = 16384 if interpreted() else 2048
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


class _RowArgs:
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
            tensors = [_dense(t, k, shape) if k != "mat" else t for t, k in operands]
            try:
                lay = _collapse(shape, tensors, kinds)
            except ValueError:
                tensors = [_dense(t, k, shape) for t, k in zip(tensors, kinds, strict=True)]
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


def _dense(t: torch.Tensor | None, kind: str, shape: torch.Size) -> torch.Tensor | None:
    """Operand `t` as a contiguous tensor of its full shape over the sample's batch."""
    if t is None:
        return None
    d, batch = shape[-1], shape[:-1]
    full = {"row": shape, "one": batch, "mat": torch.Size((*batch, d, d))}[kind]
    return t if t.shape == full and t.is_contiguous() else t.expand(full).contiguous()


def _flat(parts: list[tuple[int, ...]]) -> list[int]:
    return [x for p in parts for x in p]


def _launch_strides(a: _RowArgs) -> list[int]:
    """Every operand's four batch strides, then every operand's strides within a row."""
    return _flat(a.batch_strides) + _flat(a.inner_strides)


def _check_sample_dims(shape: torch.Size, where: str) -> None:
    if len(shape) == 0:
        raise ValueError(
            f"{where}: the extras are per row of the last dim (the event dim D), so the sample "
            "needs at least one dim; got scalars"
        )


def _empty_forward(
    shape: torch.Size, mu: torch.Tensor, eps: torch.Tensor | None, seed_offset: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """An empty sample: no rows, or rows of D = 0 (whose sums are 0: kl = log_q = 0)."""
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.zeros(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.zeros(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = seed_offset.reshape(2).clone() if eps is None else mu.new_zeros(2, dtype=torch.int64)
    return z, kl, log_q, used


def _check_backward_inputs(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
    where: str,
) -> torch.Size:
    """grad_z's shape (the sample's), after the checks the two backward ops share."""
    named = [("grad_z", grad_z), ("grad_kl", grad_kl), ("grad_log_q", grad_log_q), ("mu", mu)]
    for name, t in named:
        _checks.check_float_tensor(t, name, where)
        if name != "grad_z":
            _checks.check_same_dtype_device(grad_z, "grad_z", t, name, where)
    shape = grad_z.shape
    _check_sample_dims(shape, where)
    if _checks.broadcast_shape(grad_z, "grad_z", mu, "mu", where) != shape:
        raise ValueError(
            f"{where}: mu (shape {list(mu.shape)}) must broadcast to grad_z's shape {list(shape)}"
        )
    for name, t in named[1:3]:
        if t.shape != shape[:-1]:
            raise ValueError(
                f"{where}: {name} must have shape {list(shape[:-1])} (grad_z's shape without its "
                f"last dim), got {list(t.shape)}"
            )
    if eps is not None:
        _checks.check_float_tensor(eps, "eps", where)
        _checks.check_same_dtype_device(grad_z, "grad_z", eps, "eps", where)
        if eps.shape != shape:
            raise ValueError(f"{where}: eps must have shape {list(shape)}, got {list(eps.shape)}")
    else:
        if need_grad_eps:
            raise ValueError(f"{where}: need_grad_eps requires an explicit eps")
        _check_seed_offset(seed_offset, grad_z, where)
    return shape


@register_kernel("triton_diag_rsample_stats")
def triton_diag_rsample_stats(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, kl, log_q, [seed, offset] used): z = mu + exp(0.5 * logvar) * eps and per row
    kl = 0.5 * sum(mu^2 + sigma^2 - 1 - logvar), log_q = -0.5 * sum(eps^2 + logvar + log 2pi)."""
    shape = _diag_ops_check_inputs(mu, "mu", logvar, eps, DIAG_FORWARD)
    _check_sample_dims(shape, DIAG_FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, DIAG_FORWARD)
    if shape.numel() == 0:
        return _empty_forward(shape, mu, eps, seed_offset)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    a = _RowArgs(shape, [(mu, "row"), (logvar, "row"), (eps, "row")],
                 seed_offset if eps is None else None, unused_pointer(mu), DIAG_MAX_BLOCK_D,
                 DIAG_TILE, 1, shape[-1])  # fmt: skip
    diag_stats_forward_kernel[a.grid(1)](
        z, kl, log_q, *a.tensors, a.so, used, a.rows, a.d, a.so_stride, *a.sizes,
        *_launch_strides(a), HAS_EPS=eps is not None, **a.constexprs(),
    )  # fmt: skip
    return z, kl, log_q, used


@register_kernel("triton_diag_rsample_stats_backward")
def triton_diag_rsample_stats_backward(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mu, grad_logvar, grad_eps) over grad_z's shape, with gk = grad_kl[r] and
    gq = grad_log_q[r]: grad_z + gk * mu, 0.5 * (grad_z * sigma * eps + gk * (sigma^2 - 1)
    - gq), and grad_z * sigma - gq * eps (empty unless need_grad_eps)."""
    where = DIAG_BACKWARD
    shape = _check_backward_inputs(grad_z, grad_kl, grad_log_q, mu, eps, seed_offset,
                                   need_grad_eps, where)  # fmt: skip
    _checks.check_float_tensor(logvar, "logvar", where)
    _checks.check_same_dtype_device(grad_z, "grad_z", logvar, "logvar", where)
    if _checks.broadcast_shape(grad_z, "grad_z", logvar, "logvar", where) != shape:
        raise ValueError(
            f"{where}: logvar (shape {list(logvar.shape)}) must broadcast to grad_z's shape "
            f"{list(shape)}"
        )
    grad_mu = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_logvar = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if shape.numel() == 0:
        return grad_mu, grad_logvar, grad_eps
    unused = unused_pointer(grad_z)
    a = _RowArgs(shape, [(grad_z, "row"), (grad_kl, "one"), (grad_log_q, "one"), (mu, "row"),
                         (logvar, "row"), (eps, "row")],
                 seed_offset if eps is None else None, unused, DIAG_MAX_BLOCK_D, DIAG_TILE, 1,
                 shape[-1])  # fmt: skip
    diag_stats_backward_kernel[a.grid(a.tiles)](
        grad_mu, grad_logvar, grad_eps if need_grad_eps else unused, *a.tensors, a.so,
        a.rows, a.d, a.so_stride, *a.sizes, *_launch_strides(a),
        HAS_EPS=eps is not None, NEED_GRAD_EPS=need_grad_eps, **a.constexprs(),
    )  # fmt: skip
    return grad_mu, grad_logvar, grad_eps


@register_kernel("triton_chol_rsample_stats")
def triton_chol_rsample_stats(
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None = None,
    seed_offset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, kl, log_q, [seed, offset] used): z = mu + tril(L) @ eps and per row, with
    ld = sum_i log|L_ii|, kl = 0.5 * (|tril L|^2 + |mu|^2 - D) - ld and
    log_q = -0.5 * |eps|^2 - ld - 0.5 * D * log 2pi."""
    shape = _chol_ops._check_inputs(mu, "mu", scale_tril, eps, CHOL_FORWARD)
    seed_offset = forward_stream(mu, eps, seed_offset, generator, CHOL_FORWARD)
    if shape.numel() == 0:
        return _empty_forward(shape, mu, eps, seed_offset)
    z = torch.empty(shape, dtype=mu.dtype, device=mu.device)
    kl = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    log_q = torch.empty(shape[:-1], dtype=mu.dtype, device=mu.device)
    used = torch.empty(2, dtype=torch.int64, device=mu.device)  # written by the kernel
    a = _RowArgs(shape, [(mu, "row"), (scale_tril, "mat"), (eps, "row")],
                 seed_offset if eps is None else None, unused_pointer(mu),
                 _chol_ops.MAX_BLOCK_D, _chol_ops._TILE, 2, shape[-1])  # fmt: skip
    # One program a row block, looping over the row's tiles (so the row sums stay in it).
    chol_forward_kernel[a.grid(1)](
        z, *a.tensors, a.so, used, a.rows, a.d, a.so_stride, *a.sizes, *_launch_strides(a),
        kl, log_q, HAS_EPS=eps is not None, STATS=True, **a.constexprs(),
    )  # fmt: skip
    return z, kl, log_q, used


@register_kernel("triton_chol_rsample_stats_backward")
def triton_chol_rsample_stats_backward(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    need_grad_eps: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mu, grad_L, grad_eps) over grad_z's batch shape, with gk = grad_kl[r] and
    gq = grad_log_q[r]: grad_z + gk * mu, tril(grad_z eps^T) + gk * tril(L)
    - diag((gk + gq) / L_ii) ([*batch, D, D], zeros above the diagonal), and
    L^T grad_z - gq * eps (empty unless need_grad_eps)."""
    where = CHOL_BACKWARD
    shape = _check_backward_inputs(grad_z, grad_kl, grad_log_q, mu, eps, seed_offset,
                                   need_grad_eps, where)  # fmt: skip
    _checks.check_float_tensor(scale_tril, "scale_tril", where)
    _checks.check_same_dtype_device(grad_z, "grad_z", scale_tril, "scale_tril", where)
    if _checks.chol_sample_shape(grad_z, scale_tril, where, "grad_z") != shape:
        raise ValueError(
            f"{where}: scale_tril (shape {list(scale_tril.shape)}) must broadcast to grad_z's "
            f"batch shape, grad_z has shape {list(shape)}"
        )
    d = shape[-1]
    grad_mu = torch.empty(shape, dtype=grad_z.dtype, device=grad_z.device)
    grad_l = torch.empty((*shape, d), dtype=grad_z.dtype, device=grad_z.device)
    grad_eps = torch.empty(shape if need_grad_eps else (0,), dtype=grad_z.dtype,
                           device=grad_z.device)  # fmt: skip
    if shape.numel() == 0:
        return grad_mu, grad_l, grad_eps
    unused = unused_pointer(grad_z)
    a = _RowArgs(shape, [(grad_z, "row"), (scale_tril, "mat"), (eps, "row"), (mu, "row"),
                         (grad_kl, "one"), (grad_log_q, "one")],
                 seed_offset if eps is None else None, unused, _chol_ops.MAX_BLOCK_D,
                 _chol_ops._TILE, 2, d * d)  # fmt: skip
    g, lt, e, m, gk, gq = a.tensors
    chol_backward_kernel[a.grid(a.tiles)](
        grad_l, grad_eps if need_grad_eps else unused, g, lt, e, a.so,
        a.rows, a.d, a.so_stride, *a.sizes,
        *_flat(a.batch_strides[:3]), *_flat(a.inner_strides[:3]),
        grad_mu, m, gk, gq, *_flat(a.batch_strides[3:]), *a.inner_strides[3],
        HAS_EPS=eps is not None, NEED_GRAD_EPS=need_grad_eps, STATS=True, **a.constexprs(),
    )  # fmt: skip
    return grad_mu, grad_l, grad_eps
