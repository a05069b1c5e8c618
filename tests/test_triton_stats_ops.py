"""What only the Triton stats ops have, at the level of their inputs and outputs (their values
on tiles and scales are tests/test_triton_stats.py): stride-0 inputs read in place,
num_samples through the public functions, the int64 switch, empty samples and argument
errors. Run under TRITON_INTERPRET=1 on CPU tensors; small sizes (the interpreter is slow)."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import randn
from fused_reparam import sample_chol, sample_diag

pytestmark = pytest.mark.skipif(
    not {"diag_rsample_stats", "chol_rsample_stats"}
    <= {op for op in ("diag_rsample_stats", "chol_rsample_stats")
        if "triton" in fused_reparam.available_backends("cpu", op)},
    reason="needs the Triton backend on CPU tensors (TRITON_INTERPRET=1)",
)  # fmt: skip

OPS = torch.ops.fused_reparam
SEED, OFFSET = 2**63 + 12345, 2**33 + 7  # both words of the key and of the offset in play


def _so() -> torch.Tensor:
    return torch.tensor([SEED - 2**64, OFFSET], dtype=torch.int64)


def _chol_factor(shape, dtype, gen):
    """A well-conditioned lower-triangular factor (random below a diagonal in [1, 2))."""
    L = randn(shape, torch.float64, "cpu", gen, scale=0.3).tril()
    L = L + torch.diag_embed(1.0 + torch.rand(shape[:-1], generator=gen, dtype=torch.float64))
    return L.to(dtype)


def test_stride0_inputs_are_read_in_place(gen):
    """mu expanded over K samples and a scale input s [D] shared by every row reach the kernel
    as the stride-0 views they are (no copy), with the numbers of materialized inputs."""
    from fused_reparam._triton import row_blocks

    k, b, d = 3, 4, 10
    shape = torch.Size((k, b, d))
    mu = randn((b, d), torch.float32, "cpu", gen).expand(k, b, d)
    s = randn((d,), torch.float32, "cpu", gen)
    blk = row_blocks.row_blocks(shape, 64, 1024, 1)
    lay = row_blocks.row_layout(shape, [(mu, "row"), (s, "row"), (None, "row")], mu, blk, d)
    assert lay.tensors[0] is mu and lay.tensors[1] is s
    # Kernel arguments: four grid strides over the batch [k, b], then the stride in a row.
    assert lay.stride_args([0]) == [0, 0, 0, d, 1] and lay.stride_args([1]) == [0, 0, 0, 0, 1]
    out = OPS.triton_diag_rsample_stats(mu, s, 0, None, _so())
    dense = OPS.triton_diag_rsample_stats(mu.contiguous(), s.expand(k, b, d).contiguous(), 0,
                                          None, _so())  # fmt: skip
    for x, y in zip(out, dense, strict=True):
        assert torch.equal(x, y)
    # A grad_kl of one value for every row (sum().backward()): stride 0.
    gz, gk, gq = torch.ones(k, b, d), torch.ones(()).expand(k, b), torch.zeros(k, b)
    g = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, s, None, _so(), False)
    g_dense = OPS.triton_diag_rsample_stats_backward(gz, gk.contiguous(), gq, mu.contiguous(), s,
                                                     None, _so(), False)  # fmt: skip
    for x, y in zip(g, g_dense, strict=True):
        assert torch.equal(x, y)


def test_num_samples_through_sample_diag_and_sample_chol(gen):
    """K samples of the public functions on the Triton backend: every sample its own noise, the
    reference's numbers, gradients summed over K (the diagonal op also with a scale other than
    logvar and a lower bound)."""
    mu = randn((2, 5), torch.float64, "cpu", gen).requires_grad_()
    s = randn((5,), torch.float64, "cpu", gen, 0.5).requires_grad_()
    L = _chol_factor((2, 5, 5), torch.float64, gen).requires_grad_()
    log_std = {"scale": "log_std", "min_scale": 0.1}
    for fn, second, kw in ((sample_diag, s, {}), (sample_diag, s, log_std), (sample_chol, L, {})):
        outs = [fn(mu, second, num_samples=3, seed=5, offset=1, backend=b, return_stats=True,
                   **kw) for b in ("triton", "reference")]  # fmt: skip
        grads = []
        for out in outs:
            loss = out.z.square().sum() + out.kl.sum() + (out.log_q * out.log_q).sum()
            grads.append(torch.autograd.grad(loss, (mu, second)))
        for x, y in zip(outs[0], outs[1], strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
        for x, y in zip(grads[0], grads[1], strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_int64_indexing_switch():
    """Offsets of 2**31 or more (here: a broadcast view of 2**32 elements, never allocated)
    switch the kernels to int64 indexing; smaller ones stay int32."""
    from fused_reparam._triton import row_blocks

    def idx64(shape, ops, tile_dims, out_row):
        blk = row_blocks.row_blocks(torch.Size(shape), 64, 4096, tile_dims)
        return row_blocks.row_layout(torch.Size(shape), ops, ops[0][0], blk, out_row).idx64

    big = torch.zeros(1, 1).expand(2**16, 2**16)
    assert idx64(big.shape, [(big, "row")], 1, 2**16)
    small = torch.zeros(2**10, 2**10)
    assert not idx64(small.shape, [(small, "row")], 1, 2**10)
    # grad_L [rows, D, D] of the Cholesky backward: 2**12 rows of 2**10 x 2**10 overflows.
    mu, L = torch.zeros(1, 2**10).expand(2**12, 2**10), torch.eye(2**10)
    assert idx64(mu.shape, [(mu, "row"), (L, "mat")], 2, 2**20)
    assert not idx64(mu.shape, [(mu, "row"), (L, "mat")], 2, 2**10)


@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_empty_samples(kind):
    """No rows: empty outputs. Rows of D = 0: empty z, and kl = log_q = 0 (empty sums)."""
    fwd = getattr(OPS, f"triton_{kind}_rsample_stats")
    bwd = getattr(OPS, f"triton_{kind}_rsample_stats_backward")
    # D = 0 for the Cholesky op stops in _checks.chol_sample_shape (shared by every backend).
    for shape in ((0, 4), (3, 0)) if kind == "diag" else ((0, 4),):
        mu = torch.zeros(shape)
        second = mu if kind == "diag" else torch.zeros(*shape, shape[-1])
        z, kl, log_q, used = fwd(mu, second, seed_offset=_so())
        assert z.shape == shape and torch.equal(used, _so())
        assert torch.equal(kl, torch.zeros(shape[0])) and torch.equal(log_q, kl)
        g = bwd(torch.zeros(shape), kl, log_q, mu, second, None, used, False)
        assert g[0].shape == shape and g[1].shape == second.shape and g[2].shape == (0,)


def test_errors_name_the_argument():
    x, lv, so = torch.zeros(2, 3), torch.zeros(3), _so()
    gk = torch.zeros(2)
    f, b = OPS.triton_diag_rsample_stats, OPS.triton_diag_rsample_stats_backward
    cf, cb = OPS.triton_chol_rsample_stats, OPS.triton_chol_rsample_stats_backward
    L = torch.eye(3)
    with pytest.raises(ValueError, match="at least one dim"):
        f(torch.zeros(()), torch.zeros(()), 0, None, so)
    with pytest.raises(ValueError, match="eps must have shape"):
        f(x, lv, eps=torch.zeros(3))
    with pytest.raises(TypeError, match=r"s has dtype torch.float64"):
        f(x, lv.double(), 0, None, so)
    with pytest.raises(ValueError, match=r"scale_tril must be square"):
        cf(x, torch.zeros(3, 2), None, so)
    with pytest.raises(ValueError, match=r"grad_kl must have shape \[2\]"):
        b(x, torch.zeros(3), gk, x, lv, None, so, False)
    with pytest.raises(ValueError, match=r"grad_log_q must have shape \[2\]"):
        cb(x, gk, torch.zeros(2, 1), x, L, None, so, False)
    with pytest.raises(TypeError, match="grad_log_q must be float32"):
        b(x, gk, gk.int(), x, lv, None, so, False)
    with pytest.raises(
        ValueError, match=r"s \(shape \[4, 1, 3\]\) must broadcast to grad_z's shape"
    ):
        b(x, gk, gk, x, torch.zeros(4, 1, 3), None, so, False)
    with pytest.raises(ValueError, match=r"mu .* must broadcast to grad_z's shape"):
        cb(x, gk, gk, torch.zeros(4, 1, 3), L, None, so, False)
    with pytest.raises(ValueError, match=r"scale_tril .* must broadcast"):
        cb(x, gk, gk, x, torch.eye(3).expand(4, 1, 3, 3), None, so, False)
    with pytest.raises(ValueError, match="need_grad_eps requires an explicit eps"):
        b(x, gk, gk, x, lv, None, so, True)
    with pytest.raises(RuntimeError, match="seed_offset must be an int64 tensor"):
        cb(x, gk, gk, x, L, None, torch.zeros(3, dtype=torch.int64), False)


def test_bad_scale_arguments_are_the_cpp_errors():
    """The four diagonal ops (plain and stats, forward and backward) reject a scale kind outside
    0..3 and a min_scale that is negative or not finite, with the C++ ops' messages, before any
    launch (even of an empty sample)."""
    x, gk, so = torch.zeros(2, 3), torch.zeros(2), _so()
    calls = {
        "triton_diag_rsample": lambda k, m: OPS.triton_diag_rsample(x, x, k, None, so, None, m),
        "triton_diag_rsample_backward": lambda k, m: OPS.triton_diag_rsample_backward(
            x, x, None, so, False, k, m
        ),
        "triton_diag_rsample_stats": lambda k, m: OPS.triton_diag_rsample_stats(
            x, x, k, None, so, None, m
        ),
        "triton_diag_rsample_stats_backward": lambda k, m: OPS.triton_diag_rsample_stats_backward(
            x, gk, gk, x, x, None, so, False, k, m
        ),
    }
    kinds = r"0 \(logvar\), 1 \(log_std\), 2 \(std\) or 3 \(softplus\)"
    for name, call in calls.items():
        for kind in (-1, 4):
            msg = rf"fused_reparam::{name}: scale must be {kinds}, got {kind}$"
            with pytest.raises(RuntimeError, match=msg):
                call(kind, 0.0)
        for bad, shown in ((-0.5, "-0.5"), (float("nan"), "nan"), (float("inf"), "inf")):
            msg = rf"fused_reparam::{name}: min_scale must be finite and >= 0, got {shown}$"
            with pytest.raises(RuntimeError, match=msg):
                call(3, bad)
    empty = torch.zeros(0, 3)
    with pytest.raises(RuntimeError, match="scale must be 0"):
        OPS.triton_diag_rsample_stats(empty, torch.zeros(3), 5, None, so, None, 0.0)
    with pytest.raises(RuntimeError, match="min_scale must be finite"):
        OPS.triton_diag_rsample_backward(empty, torch.zeros(3), None, so, False, 0, -1.0)
