"""The Triton backend's index layouts (pure Python) and the kernels' index paths: every
collapsed rank, the dense fallback past four dims, and int64 indexing forced on small data."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import randn
from fused_reparam import sample_diag
from fused_reparam._triton import layout as L

TRITON_DEVICES = [d for d in ("cpu", "cuda") if "triton" in fused_reparam.available_backends(d)]


def test_contiguous_inputs_collapse_to_one_dim():
    a, b = torch.zeros(2, 3, 5), torch.zeros(2, 3, 5)
    lay = L.collapse(a.shape, [a, b])
    assert lay.sizes == (30,) and lay.contiguous == (True, True)


def test_row_broadcast_keeps_two_dims_and_one_contiguous_input():
    mu, lv = torch.zeros(7, 11), torch.zeros(11)
    lay = L.collapse(mu.shape, [mu, lv])
    assert lay.sizes == (7, 11)
    assert lay.contiguous == (True, False)
    assert lay.strides[1] == (0, 1)


def test_size_one_dims_are_dropped_and_expanded_scalars_have_stride_zero():
    mu = torch.zeros(1, 5, 1, 3)
    lv = torch.zeros(()).expand(1, 5, 1, 3)
    lay = L.collapse(mu.shape, [mu, lv])
    assert lay.sizes == (15,) and lay.strides == ((1,), (0,))
    assert lay.padded_sizes() == (1, 1, 1, 15) and lay.padded_strides(1) == (0, 0, 0, 0)


def test_transposed_input_is_strided():
    mu = torch.zeros(4, 6).t()
    lv = torch.zeros(6, 4)
    lay = L.collapse(lv.shape, [mu, lv])
    assert lay.sizes == (6, 4) and lay.contiguous == (False, True)
    assert lay.strides[0] == (1, 6)


def _five_dim_pair():
    # Broadcast dims alternate between the inputs, so nothing merges: five dims remain.
    a = torch.zeros(2, 1, 3, 1, 5)
    b = torch.zeros(1, 4, 1, 6, 1)
    return a, b, torch.broadcast_shapes(a.shape, b.shape)


def test_more_than_four_dims_fall_back_to_dense_copies():
    a, b, shape = _five_dim_pair()
    with pytest.raises(ValueError, match="5 dims remain"):
        L.collapse(shape, [a, b])
    lay, inputs = L.make_layout(shape, [a, b])
    assert lay.ndim <= L.MAX_DIMS
    assert all(t.shape == shape and t.is_contiguous() for t in inputs)


def test_int64_indexing_threshold_counts_whole_blocks_and_offsets():
    t = torch.zeros(1)
    lay = L.collapse(torch.Size([10]), [t.expand(10)])
    block = 2048
    assert not lay.needs_int64(2**31 - 2 * block, block)
    assert lay.needs_int64(2**31 - 1, block)  # the last block's indices pass 2^31
    big = L.Layout(sizes=(3, 5), strides=((2**30, 1),), contiguous=(False,))
    assert big.needs_int64(15, block)  # offset 2 * 2^30 + 4


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
    monkeypatch.setattr(L.Layout, "needs_int64", lambda self, numel, block: True)
    forced = run()
    for a, b in zip(base, forced, strict=True):
        assert torch.equal(a, b)
