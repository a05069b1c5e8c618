"""The tanh squash of the Triton diagonal stats ops where only they can go wrong
(tests/test_tanh_normal.py covers every backend through sample_tanh_normal): precise.tanh to
a few ulps of torch.tanh, agreement with the C++ CPU ops in every dtype on tile loops and
where tanh(u) rounds to +-1, the bounds' float64 constants, and the C++ ops' argument errors,
raised before any launch or generator draw. Run under TRITON_INTERPRET=1 on CPU tensors."""

from __future__ import annotations

import math
import re

import pytest
import torch

import fused_reparam
from conftest import DTYPES, randn
from fused_reparam import _extension
from fused_reparam.reference.philox import compute_dtype

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
from fused_reparam._triton import precise, squash, stats_ops  # noqa: E402

pytestmark = pytest.mark.skipif(
    "triton" not in fused_reparam.available_backends("cpu", "diag_rsample_stats"),
    reason="needs the Triton backend on CPU tensors (TRITON_INTERPRET=1)",
)

OPS = torch.ops.fused_reparam
FWD = "fused_reparam::triton_diag_rsample_stats"
BWD = "fused_reparam::triton_diag_rsample_stats_backward"
# Against the C++ ops in the compute type: sums in another order, exp/log/tanh of another
# library; half types: one rounding of the result.
TOL = {torch.float32: 4e-6, torch.float64: 1e-13, torch.float16: 2**-10, torch.bfloat16: 2**-7}


def _so() -> torch.Tensor:
    return torch.tensor([2**63 + 12345 - 2**64, 2**33 + 7], dtype=torch.int64)


@triton.jit
def _tanh_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    tl.store(y_ptr + o, precise.tanh(tl.load(x_ptr + o, mask=m)), mask=m)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_precise_tanh_is_within_a_few_ulps_of_torch(dtype):
    scales = (1e-30, 1e-6, 1e-3, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0)
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(4000, generator=gen, dtype=torch.float64) * s for s in scales])
    special = [0.0, -0.0, 0.55, 0.625, 9.0, 9.01, 20.0, -20.0, 400.0, math.inf, -math.inf]
    x = torch.cat([x, torch.tensor(special, dtype=torch.float64)]).to(dtype)
    y = torch.empty_like(x)
    _tanh_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)
    want = torch.tanh(x)
    ulp = torch.finfo(dtype).eps * want.abs().clamp_min(torch.finfo(dtype).tiny)
    assert ((y - want).abs() / ulp).max() <= 2.0
    assert torch.equal(y[-4:], torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=dtype))
    assert torch.signbit(y[-10]) and not torch.signbit(y[-11])  # tanh(-0) = -0


def test_squash_args_are_float64_constants():
    low, half, log_half = squash.squash_args(True, -2.0, 0.5)
    assert (low, half, log_half) == (-2.0, 1.25, math.log(1.25))
    assert squash.squash_args(False, math.nan, math.nan) == (-1.0, 1.0, 0.0)
    # high - low underflows in half: C++'s log gives -inf, not an error.
    assert squash.squash_args(True, 0.0, 5e-324)[2] == -math.inf


needs_cpp_cpu_stats = pytest.mark.skipif(
    not _extension.has_kernel("diag_rsample_stats", "CPU"),
    reason="the C++ extension has no CPU kernels of the stats ops",
)


@needs_cpp_cpu_stats
@pytest.mark.parametrize("small_tiles", [False, True], ids=["one-tile", "tile-loop"])
@pytest.mark.parametrize("scale", [0, 1, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_triton_matches_the_cpp_cpu_ops_squashed(dtype, scale, small_tiles, gen, monkeypatch):
    """Both ops, stream and explicit eps, with a shared s [D] and a u that saturates tanh."""
    if small_tiles:
        # Rows of 13 over tiles of 4: the forward loops over a row's tiles.
        monkeypatch.setattr(stats_ops, "DIAG_MAX_BLOCK_D", 4)
        monkeypatch.setattr(stats_ops, "DIAG_TILE", 16)
    d = 13
    mu = randn((3, 2, d), dtype, "cpu", gen, scale=2.0)
    mu[0, 0, :4] = torch.tensor([25.0, -30.0, 9.5, -12.0], dtype=dtype)
    s = randn((d,), dtype, "cpu", gen, scale=0.3)
    eps = randn((3, 2, d), dtype, "cpu", gen)
    gz, gq = randn((3, 2, d), dtype, "cpu", gen), randn((3, 2), dtype, "cpu", gen)
    gk = randn((3, 2), dtype, "cpu", gen)
    sq = (scale, 0.0, True, -2.0, 0.5)
    ct = compute_dtype(dtype)
    tol = TOL[dtype] * math.sqrt(d)
    for e in (None, eps):
        out_t = OPS.triton_diag_rsample_stats(mu, s, sq[0], e, _so(), None, *sq[1:])
        out_c = OPS.diag_rsample_stats(mu, s, sq[0], e, _so(), None, *sq[1:])
        need = e is not None
        g_t = OPS.triton_diag_rsample_stats_backward(gz, gk, gq, mu, s, e, _so(), need, *sq)
        g_c = OPS.diag_rsample_stats_backward(gz, gk, gq, mu, s, e, _so(), need, *sq)
        assert torch.equal(out_t[3], out_c[3])
        assert ((out_t[0] >= -2.0) & (out_t[0] <= 0.5)).all()
        for x, y in zip((*out_t[:3], *g_t), (*out_c[:3], *g_c), strict=True):
            assert x.dtype == dtype and x.shape == y.shape
            torch.testing.assert_close(x.to(ct), y.to(ct), rtol=tol, atol=tol)


def test_the_bounds_are_read_only_with_squash(gen):
    mu, s = randn((2, 5), torch.float32, "cpu", gen), randn((2, 5), torch.float32, "cpu", gen)
    plain = OPS.triton_diag_rsample_stats(mu, s, 0, None, _so())
    off = OPS.triton_diag_rsample_stats(mu, s, 0, None, _so(), None, 0.0, False, math.nan, -5.0)
    for x, y in zip(plain, off, strict=True):
        assert torch.equal(x, y)


def test_bad_bounds_are_the_cpp_errors_before_any_draw():
    """Both ops reject bounds that are not finite or not ordered with the C++ message (numbers
    as C++ streams print them), after the scale check, before a launch or a generator draw
    (even of an empty sample)."""
    x, g, so = torch.zeros(2, 3), torch.zeros(2), _so()
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    calls = {
        FWD: lambda lo, hi, k=1, x=x: OPS.triton_diag_rsample_stats(
            x, x, k, None, None, gen, 0.0, True, lo, hi
        ),
        BWD: lambda lo, hi, k=1, x=x: OPS.triton_diag_rsample_stats_backward(
            x, g[: len(x)], g[: len(x)], x, x, None, so, False, k, 0.0, True, lo, hi
        ),
    }
    bad = [(1.0, 1.0, "1", "1"), (0.5, -0.25, "0.5", "-0.25"), (-math.inf, 1.0, "-inf", "1"),
           (-1.0, math.nan, "-1", "nan"), (2.5e300, 1e-300, "2.5e+300", "1e-300")]  # fmt: skip
    for where, call in calls.items():
        for lo, hi, lo_s, hi_s in bad:
            text = f"{where}: low and high must be finite with low < high, got low = {lo_s}, "
            msg = "^" + re.escape(f"{text}high = {hi_s}") + "$"
            with pytest.raises(RuntimeError, match=msg):
                call(lo, hi)
            with pytest.raises(RuntimeError, match=msg):
                call(lo, hi, x=torch.zeros(0, 3))
        with pytest.raises(RuntimeError, match="scale must be 0"):
            call(1.0, 0.0, k=7)  # the scale is checked first
    assert torch.equal(gen.get_state(), state)


@needs_cpp_cpu_stats
def test_bad_bounds_messages_are_the_cpp_ops_messages():
    """The same bounds give the same message from both ops, including bounds outside the
    sample dtype's range (an inf or NaN action) and a half range below the compute type's
    smallest normal number (log(half) = -inf)."""
    cases = [(1.0, 1.0, torch.float32), (0.5, -0.25, torch.float32),
             (-math.inf, 1.0, torch.float32), (2.5e300, 1e-300, torch.float32),
             (0.1, math.nan, torch.float32), (-1e39, 1.0, torch.float32),
             (0.0, 1e-300, torch.float32), (-1e5, 1.0, torch.float16),
             (0.0, 1e39, torch.bfloat16), (0.0, 1e-310, torch.float64),
             (-3e38, 3e38, torch.float32), (-1e308, 1e308, torch.float64)]  # fmt: skip
    for lo, hi, dtype in cases:
        x = torch.zeros(2, 3, dtype=dtype)
        msgs = []
        for prefix in ("triton_", ""):
            op = getattr(OPS, prefix + "diag_rsample_stats")
            with pytest.raises(RuntimeError) as info:
                op(x, x, 0, None, _so(), None, 0.0, True, lo, hi)
            msgs.append(str(info.value).splitlines()[0].replace("triton_", ""))
        assert msgs[0] == msgs[1]
        assert "low and high must be" in msgs[0]
    # The widest bounds of each dtype are accepted, and give finite actions.
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        compute_max = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).max
        top = min(torch.finfo(dtype).max, 0.5 * compute_max)
        x = torch.zeros(2, 3, dtype=dtype)
        for prefix in ("triton_", ""):
            z = getattr(OPS, prefix + "diag_rsample_stats")(x, x, 0, None, _so(), None, 0.0,
                                                             True, -top, top)[0]  # fmt: skip
            assert torch.isfinite(z).all(), (prefix, dtype)
