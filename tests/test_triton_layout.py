"""The Triton backend's strided layout (layout.build, pure Python) and the kernels' index
paths: every merged rank, the dense fallback past four dims, row kernels' operands, and int64
indexing forced on small data."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import randn
from fused_reparam import sample_diag
from fused_reparam._triton import layout as L

TRITON_DEVICES = [d for d in ("cpu", "cuda") if "triton" in fused_reparam.available_backends(d)]


def _elementwise(shape, *inputs):
    """The layout of an elementwise kernel over `shape`, indexed up to numel."""
    shape = torch.Size(shape)
    return L.build(shape, [(t, "elem") for t in inputs], torch.zeros(1), shape.numel())


def test_contiguous_inputs_merge_to_one_dim():
    a, b = torch.zeros(2, 3, 5), torch.zeros(2, 3, 5)
    lay = _elementwise(a.shape, a, b)
    assert lay.sizes == (30,) and lay.contiguous == (True, True)
    assert lay.tensors[0] is a and lay.tensors[1] is b


def test_row_broadcast_keeps_two_dims_and_one_contiguous_input():
    mu, lv = torch.zeros(7, 11), torch.zeros(11)
    lay = _elementwise(mu.shape, mu, lv)
    assert lay.sizes == (7, 11)
    assert lay.contiguous == (True, False)
    assert lay.strides[1] == (0, 1)


def test_size_one_dims_are_dropped_and_expanded_scalars_have_stride_zero():
    mu = torch.zeros(1, 5, 1, 3)
    lv = torch.zeros(()).expand(1, 5, 1, 3)
    lay = _elementwise(mu.shape, mu, lv)
    assert lay.sizes == (15,) and lay.strides == ((1,), (0,))
    # Kernel arguments: s1, s2, s3, then each operand's four grid strides.
    assert lay.size_args() == (1, 1, 15) and lay.stride_args([0, 1]) == [0, 0, 0, 1, 0, 0, 0, 0]


def test_transposed_input_is_strided():
    mu = torch.zeros(4, 6).t()
    lv = torch.zeros(6, 4)
    lay = _elementwise(lv.shape, mu, lv)
    assert lay.sizes == (6, 4) and lay.contiguous == (False, True)
    assert lay.strides[0] == (1, 6)


def test_absent_operand_reads_nothing():
    mu, placeholder = torch.zeros(3, 4), torch.zeros(1)
    lay = L.build(mu.shape, [(mu, "elem"), (None, "elem")], placeholder, mu.numel())
    assert lay.tensors[1] is placeholder and lay.strides[1] == (0,)
    assert lay.contiguous == (True, False)


def _five_dim_pair():
    # Broadcast dims alternate between the inputs, so nothing merges: five dims remain.
    a = torch.zeros(2, 1, 3, 1, 5)
    b = torch.zeros(1, 4, 1, 6, 1)
    return a, b, torch.broadcast_shapes(a.shape, b.shape)


def test_more_than_four_dims_fall_back_to_dense_copies():
    a, b, shape = _five_dim_pair()
    lay = _elementwise(shape, a, b)
    assert lay.ndim == 1 and lay.contiguous == (True, True)
    assert all(t.shape == shape and t.is_contiguous() for t in lay.tensors)
    # Four dims: read in place.
    a4, b4 = torch.zeros(2, 1, 3, 1), torch.zeros(1, 4, 1, 5)
    lay = _elementwise(torch.broadcast_shapes(a4.shape, b4.shape), a4, b4)
    assert lay.ndim == 4 and lay.tensors[0] is a4 and lay.tensors[1] is b4


def test_row_operands_over_the_batch():
    """A row kernel's grid is the batch: a shared L and a logvar [D] keep stride 0 over it
    (no copy), their strides within a row are their own, a per-row operand has none."""
    d = 5
    mu, lv, L_ = torch.zeros(3, 4, d), torch.zeros(d), torch.zeros(d, d).t()
    gk = torch.zeros(3, 4)
    ops = [(mu, "row"), (L_, "mat"), (lv, "row"), (gk, "elem")]
    lay = L.build(mu.shape[:-1], ops, torch.zeros(1), 0, d, d)
    assert lay.sizes == (12,) and lay.tensors[1] is L_ and lay.tensors[2] is lv
    assert lay.strides == ((d,), (0,), (0,), (1,))
    assert lay.row_strides == ((1,), (1, d), (1,), ())
    # A row operand broadcast along D has stride 0 within the row.
    lay = L.build((3,), [(torch.zeros(3, 1), "row")], torch.zeros(1), 0, d, d)
    assert lay.row_strides == ((0,),)


def test_row_kernels_copy_rows_before_matrices():
    """Five unmergeable batch dims: the per-element operands are made dense first, so a
    shared L stays in place when that suffices; otherwise L is made dense too."""
    d = 3
    mu = torch.zeros(2, 1, 2, 1, 2, d)
    lv = torch.zeros(1, 2, 1, 2, 1, d)
    batch = torch.broadcast_shapes(mu.shape, lv.shape)[:-1]
    shared = torch.zeros(d, d)
    lay = L.build(batch, [(mu, "row"), (lv, "row"), (shared, "mat")], torch.zeros(1), 0, d, d)
    assert lay.tensors[2] is shared and lay.tensors[0].shape == (*batch, d)
    L5 = torch.zeros(1, 2, 1, 2, 1, d, d)
    lay = L.build(batch, [(mu, "row"), (L5, "mat")], torch.zeros(1), 0, d, d)
    assert lay.ndim == 1 and lay.tensors[1].shape == (*batch, d, d)


def test_int64_indexing_threshold_counts_whole_blocks_and_offsets():
    meta = torch.empty(1, device="meta")
    assert not L.build((10,), [(meta.expand(10), "elem")], meta, 2**31 - 1).idx64
    assert L.build((10,), [(meta.expand(10), "elem")], meta, 2**31).idx64
    big = torch.empty_strided((3, 5), (2**30, 1), device="meta")  # never allocated
    assert L.build(big.shape, [(big, "elem")], meta, 15).idx64  # offset 2 * 2^30 + 4
    # Within-row offsets count the kernel's padded tiles (row_reach).
    rows = torch.empty_strided((2, 100), (100, 2**24), device="meta")
    assert not L.build((2,), [(rows, "row")], meta, 0, 100, 100).idx64
    assert L.build((2,), [(rows, "row")], meta, 0, 100, 129).idx64


def test_elementwise_kernels_count_whole_blocks():
    """The diagonal op's index bound: numel rounded up to whole blocks (the kernels form
    indices of the last block before masking)."""
    pytest.importorskip("triton")
    from fused_reparam._triton import diag_ops

    block = 4 * diag_ops._GROUPS
    meta = torch.empty(1, device="meta")
    for numel, want in ((2**31 - 2 * block, False), (2**31 - 1, True)):
        shape = torch.Size([numel])
        x = meta.expand(shape)
        assert diag_ops.elementwise_layout(shape, x, x, None, meta).idx64 == want


@pytest.mark.skipif(not TRITON_DEVICES, reason="the Triton backend cannot run here")
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_every_rank_and_the_dense_fallback_give_the_reference_values(device, gen):
    a5, b5, _ = _five_dim_pair()
    pairs = [
        (torch.zeros(30), torch.zeros(30)),  # 1 dim, contiguous
        (torch.zeros(7, 11), torch.zeros(11)),  # 2 dims, row broadcast
        (torch.zeros(3, 1, 5), torch.zeros(1, 4, 5)),  # 3 dims
        (torch.zeros(2, 1, 3, 1), torch.zeros(1, 4, 1, 5)),  # 4 dims
        (a5, b5),  # 5 dims: dense fallback
    ]
    for mu0, lv0 in pairs:
        mu = randn(mu0.shape, torch.float32, device, gen)
        lv = randn(lv0.shape, torch.float32, device, gen, scale=0.5)
        shape = torch.broadcast_shapes(mu.shape, lv.shape)
        eps = randn(shape, torch.float32, device, gen)
        z = sample_diag(mu, lv, eps=eps, backend="triton")
        torch.testing.assert_close(z, mu + torch.exp(0.5 * lv) * eps, rtol=1e-6, atol=1e-6)
        zs = sample_diag(mu, lv, seed=4, offset=2**35, backend="triton")
        zr = sample_diag(mu, lv, seed=4, offset=2**35, backend="reference")
        torch.testing.assert_close(zs, zr, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not TRITON_DEVICES, reason="the Triton backend cannot run here")
@pytest.mark.parametrize("device", TRITON_DEVICES)
def test_int64_index_path_gives_the_same_numbers(device, gen, monkeypatch):
    """The kernels' int64 path, forced on small data, equals the int32 path, forward and
    backward, with regenerated and explicit eps, contiguous and strided."""
    mu = randn((5, 1031), torch.float32, device, gen)
    lv = randn((1031,), torch.float32, device, gen, scale=0.5)
    eps = randn((1031, 5), torch.float32, device, gen).t()
    grad = randn((5, 1031), torch.float32, device, gen)

    def run():
        out = []
        for kw in ({"seed": 2**60 + 3, "offset": 7}, {"eps": eps}):
            m, v = mu.clone().requires_grad_(), lv.clone().requires_grad_()
            z = sample_diag(m, v, backend="triton", **kw)
            z.backward(grad)
            out += [z, m.grad, v.grad]
        return out

    base = run()
    monkeypatch.setattr(L, "IDX64_LIMIT", 0)
    forced = run()
    for a, b in zip(base, forced, strict=True):
        assert torch.equal(a, b)
