"""Tests of the reference noise contract (fused_reparam/reference/philox.py).

The Philox words are checked against published known answers and against an independent
pure-Python-int implementation; uniforms against exact float32 rounding done with ``struct``;
normals against Box-Muller evaluated in float64 from the Python-int words; and the stream's
statistics on 2**20 samples.
"""

from __future__ import annotations

import math
import struct

import pytest
import torch

from _stats import (
    correlation,
    ks_normal,
    lag1_correlation,
    normal_moments_ok,
    tail_fraction_ok,
)
from fused_reparam.reference.philox import (
    box_muller,
    philox4x32_10,
    philox_words,
    split_u64,
    standard_normal,
    uniforms_from_words,
)

MASK32 = 0xFFFFFFFF


# ---------------------------------------------------------------- independent Python model


def py_philox4x32_10(ctr: tuple[int, ...], key: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Philox4x32-10 on plain Python ints (Random123 definition)."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for rnd in range(10):
        if rnd:
            k0 = (k0 + 0x9E3779B9) & MASK32
            k1 = (k1 + 0xBB67AE85) & MASK32
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
    return c0, c1, c2, c3


def f32(v: float) -> float:
    """Round a Python float to the nearest float32 (ties to even)."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def py_uniform32(word: int) -> float:
    # float32(word), then a float32 add and a float32 multiply (by 2**-32: exact).
    return f32(f32(f32(float(word)) + 0.5) * 2.0**-32)


def py_uniform64(word: int) -> float:
    return (float(word) + 0.5) * 2.0**-32  # exact in float64


TWO_PI_F32 = f32(2.0 * math.pi)


def py_normals(numel: int, seed: int, offset: int, float32: bool) -> list[float]:
    """eps_0..eps_{numel-1} from the Python-int Philox, Box-Muller evaluated in float64.

    With ``float32`` the uniforms and the angle ``t`` are rounded exactly as in the float32
    contract; only log/sqrt/cos/sin and the final products stay in float64.
    """
    key = (seed & MASK32, seed >> 32)
    out: list[float] = []
    for j in range((numel + 3) // 4):
        words = py_philox4x32_10((j & MASK32, j >> 32, offset & MASK32, offset >> 32), key)
        to_u = py_uniform32 if float32 else py_uniform64
        u = [to_u(w) for w in words]
        for a, b in ((u[0], u[1]), (u[2], u[3])):
            r = math.sqrt(-2.0 * math.log(a))
            t = f32(TWO_PI_F32 * b) if float32 else 2.0 * math.pi * b
            out += [r * math.cos(t), r * math.sin(t)]
    return out[:numel]


def py_words(numel: int, seed: int, offset: int) -> torch.Tensor:
    key = (seed & MASK32, seed >> 32)
    rows = [
        py_philox4x32_10((j & MASK32, j >> 32, offset & MASK32, offset >> 32), key)
        for j in range((numel + 3) // 4)
    ]
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 4)


# ---------------------------------------------------------------- Philox block function

KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("ctr", "key", "expected"), KNOWN_ANSWERS)
def test_philox_known_answers(ctr, key, expected):
    out = philox4x32_10(torch.tensor(ctr, dtype=torch.int64), torch.tensor(key, dtype=torch.int64))
    assert out.dtype == torch.int64
    assert out.shape == (4,)
    assert tuple(out.tolist()) == expected
    assert py_philox4x32_10(ctr, key) == expected


def test_philox_matches_python_ints():
    g = torch.Generator().manual_seed(20240607)
    n = 2000
    ctr = torch.randint(0, 2**32, (n, 4), generator=g, dtype=torch.int64)
    key = torch.randint(0, 2**32, (n, 2), generator=g, dtype=torch.int64)
    # Edge values: all ones, 2**31, small values, a mix.
    ctr[0], key[0] = MASK32, MASK32
    ctr[1], key[1] = 2**31, 2**31
    ctr[2], key[2] = 0, 0
    ctr[3] = torch.tensor([MASK32, 0, 2**31, 1])
    key[3] = torch.tensor([0, MASK32])
    ctr[4] = torch.tensor([2**31 - 1, 2**31 + 1, MASK32 - 1, 2**16])
    assert bool((ctr >= 2**31).any()) and bool((key >= 2**31).any())
    out = philox4x32_10(ctr, key)
    expected = [
        py_philox4x32_10(tuple(c), tuple(k))
        for c, k in zip(ctr.tolist(), key.tolist(), strict=True)
    ]
    assert out.tolist() == [list(e) for e in expected]
    assert int(out.min()) >= 0 and int(out.max()) <= MASK32


def test_philox_broadcasts():
    g = torch.Generator().manual_seed(5)
    ctr = torch.randint(0, 2**32, (7, 4), generator=g, dtype=torch.int64)
    key = torch.randint(0, 2**32, (2,), generator=g, dtype=torch.int64)
    out = philox4x32_10(ctr, key)
    assert out.shape == (7, 4)
    k = tuple(key.tolist())
    for i in range(7):
        assert out[i].tolist() == list(py_philox4x32_10(tuple(ctr[i].tolist()), k))
    keys = torch.randint(0, 2**32, (3, 1, 2), generator=g, dtype=torch.int64)
    out2 = philox4x32_10(ctr, keys)
    assert out2.shape == (3, 7, 4)
    assert torch.equal(out2[1, 4], philox4x32_10(ctr[4], keys[1, 0]))


def test_philox_rejects_bad_words():
    with pytest.raises(ValueError, match="counter"):
        philox4x32_10(torch.tensor([0, 0, 2**32, 0]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="key"):
        philox4x32_10(torch.tensor([0, 0, 0, 0]), torch.tensor([-1, 0]))
    with pytest.raises(TypeError):
        philox4x32_10(torch.zeros(4, dtype=torch.int32), torch.zeros(2, dtype=torch.int64))


def test_philox_words_layout():
    seed, offset = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    w = philox_words(10, seed, offset)
    assert w.shape == (3, 4) and w.dtype == torch.int64
    assert torch.equal(w, py_words(10, seed, offset))
    assert philox_words(0, seed, offset).shape == (0, 4)
    # Chunk boundaries inside philox_words must not show: compare with one direct call.
    n_rows = (1 << 16) + 3
    j = torch.arange(n_rows, dtype=torch.int64)
    lo, hi = split_u64(offset)
    ctr = torch.stack((j, torch.zeros_like(j), torch.full_like(j, lo), torch.full_like(j, hi)), -1)
    key = torch.tensor(split_u64(seed), dtype=torch.int64)
    assert torch.equal(philox_words(4 * n_rows - 1, seed, offset), philox4x32_10(ctr, key))


# ---------------------------------------------------------------- uniforms

EDGE_WORDS = [0, 1, 2**24 - 1, 2**24, 2**24 + 1, 2**31, 2**32 - 2, 2**32 - 1]


def test_uniforms_float32_exact():
    words = torch.tensor(EDGE_WORDS, dtype=torch.int64)
    u = uniforms_from_words(words, torch.float32)
    assert u.dtype == torch.float32
    assert u.tolist() == [py_uniform32(w) for w in EDGE_WORDS]
    assert u[0].item() == 2.0**-33
    assert u[2].item() == 2.0**-8  # 2**24 - 0.5 is a tie in float32: rounds to even, 2**24
    assert u[3].item() == 2.0**-8  # 2**24 + 0.5 is a tie too: rounds back to 2**24
    assert u[4].item() == 2.0**-8  # float32(2**24 + 1) = 2**24, then + 0.5 rounds back
    assert u[5].item() == 0.5
    assert u[-1].item() == 1.0  # float32(2**32 - 1) = 2**32
    assert bool((u > 0).all()) and bool((u <= 1).all())


def test_uniforms_float64_exact():
    words = torch.tensor(EDGE_WORDS, dtype=torch.int64)
    u = uniforms_from_words(words, torch.float64)
    assert u.dtype == torch.float64
    assert u.tolist() == [py_uniform64(w) for w in EDGE_WORDS]
    assert u[-1].item() < 1.0
    assert bool((u > 0).all()) and bool((u <= 1).all())


def test_uniforms_random_words_exact_and_in_range():
    g = torch.Generator().manual_seed(11)
    words = torch.randint(0, 2**32, (3000,), generator=g, dtype=torch.int64)
    u32 = uniforms_from_words(words, torch.float32)
    assert u32.tolist() == [py_uniform32(w) for w in words.tolist()]
    big = philox_words(1 << 16, 3, 4)
    for dtype in (torch.float32, torch.float64):
        u = uniforms_from_words(big, dtype)
        assert bool((u > 0).all()) and bool((u <= 1).all())


def test_uniforms_reject_bad_dtype():
    with pytest.raises(ValueError):
        uniforms_from_words(torch.zeros(4, dtype=torch.int64), torch.float16)


def test_box_muller_edge_uniforms():
    u = torch.tensor([[1.0, 0.25, 2.0**-33, 0.5]], dtype=torch.float32)
    n = box_muller(u)
    assert n[0, 0].item() == 0.0 and n[0, 1].item() == 0.0  # r = 0 at u = 1
    r = math.sqrt(-2.0 * math.log(2.0**-33))
    assert n[0, 2].item() == pytest.approx(-r, rel=1e-6)  # cos(pi) = -1
    assert abs(n[0, 3].item()) < 1e-5
    assert bool(torch.isfinite(n).all())


# ---------------------------------------------------------------- standard_normal

STREAMS = [
    (0, 0),
    (12345, 67),
    (2**32 + 5, 2**33 + 7),
    (2**64 - 1, 2**64 - 2),
    (0xDEADBEEFCAFEBABE, 2**63),
]
SIZES = [1, 2, 3, 5, 7, 13, 4097]


@pytest.mark.parametrize(("seed", "offset"), STREAMS)
def test_standard_normal_matches_python_model(seed, offset):
    m = max(SIZES)
    ref32 = torch.tensor(py_normals(m, seed, offset, float32=True), dtype=torch.float64)
    ref64 = torch.tensor(py_normals(m, seed, offset, float32=False), dtype=torch.float64)
    # Exact composition from the Python-int words (checks indexing and the i -> (i>>2, i%4)
    # layout bit for bit).
    words = py_words(m, seed, offset)
    comp32 = box_muller(uniforms_from_words(words, torch.float32)).reshape(-1)
    comp64 = box_muller(uniforms_from_words(words, torch.float64)).reshape(-1)
    for n in SIZES:
        e32 = standard_normal(n, seed, offset)
        e64 = standard_normal(n, seed, offset, dtype=torch.float64)
        assert e32.shape == (n,) and e32.dtype == torch.float32
        assert e64.shape == (n,) and e64.dtype == torch.float64
        assert torch.equal(e32, comp32[:n])
        assert torch.equal(e64, comp64[:n])
        torch.testing.assert_close(e32.double(), ref32[:n], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(e64, ref64[:n], rtol=1e-12, atol=1e-12)


def test_standard_normal_prefix_property():
    seed, offset = 2**40 + 3, 99
    full = standard_normal(10001, seed, offset)
    full64 = standard_normal(10001, seed, offset, dtype=torch.float64)
    for n in (0, 1, 2, 3, 4, 5, 7, 13, 4096, 4097, 10000):
        assert torch.equal(standard_normal(n, seed, offset), full[:n])
        assert torch.equal(standard_normal(n, seed, offset, dtype=torch.float64), full64[:n])


def test_standard_normal_empty():
    e = standard_normal(0, 1, 2)
    assert e.shape == (0,) and e.dtype == torch.float32
    assert standard_normal((0, 3), 1, 2).shape == (0, 3)


def test_standard_normal_shape():
    seed, offset = 7, 8
    flat = standard_normal(105, seed, offset)
    shaped = standard_normal((3, 5, 7), seed, offset)
    assert shaped.shape == (3, 5, 7)
    assert torch.equal(shaped, flat.reshape(3, 5, 7))
    assert torch.equal(standard_normal(torch.Size([15, 7]), seed, offset), flat.reshape(15, 7))
    scalar = standard_normal((), seed, offset)
    assert scalar.shape == () and scalar.item() == flat[0].item()
    assert torch.equal(standard_normal([5], seed, offset, dtype=torch.float16), flat[:5].half())


def test_different_streams_differ():
    n = 4096
    seed, offset = 2**33 + 17, 2**35 + 3
    base = standard_normal(n, seed, offset)
    others = {
        "offset+1": standard_normal(n, seed, offset + 1),
        "seed+1": standard_normal(n, seed + 1, offset),
        "seed+2**32": standard_normal(n, seed + 2**32, offset),
        "offset+2**32": standard_normal(n, seed, offset + 2**32),
        "swapped": standard_normal(n, offset, seed),
    }
    for name, other in others.items():
        assert int((other == base).sum()) == 0, name
        assert abs(correlation(base, other)) < 5.0 / math.sqrt(n), name


def test_float64_and_float32_agree():
    seed, offset = 31337, 2**62 + 1
    e32 = standard_normal(1 << 16, seed, offset)
    e64 = standard_normal(1 << 16, seed, offset, dtype=torch.float64)
    torch.testing.assert_close(e32.double(), e64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_round_float32(dtype):
    seed, offset = 4242, 17
    for n in (1, 7, 4097):
        e = standard_normal(n, seed, offset, dtype=dtype)
        assert e.dtype == dtype
        assert torch.equal(e, standard_normal(n, seed, offset).to(dtype))


def test_unsupported_dtype():
    with pytest.raises(ValueError):
        standard_normal(4, 0, 0, dtype=torch.int32)


# ---------------------------------------------------------------- statistics

N_STAT = 1 << 20


@pytest.fixture(scope="module")
def stat_sample() -> torch.Tensor:
    return standard_normal(N_STAT, 0x5EED5EED5EED, 12345)


def test_moments(stat_sample):
    normal_moments_ok(stat_sample)


def test_ks(stat_sample):
    d, p = ks_normal(stat_sample)
    assert p > 1e-3, f"KS D={d:.3g}, p={p:.3g}"


def test_ks_per_lane(stat_sample):
    lanes = stat_sample.reshape(-1, 4)
    for k in range(4):
        d, p = ks_normal(lanes[:, k])
        assert p > 1e-3, f"lane {k}: KS D={d:.3g}, p={p:.3g}"
        normal_moments_ok(lanes[:, k])


def test_tails(stat_sample):
    tail_fraction_ok(stat_sample, k=4.0)
    tail_fraction_ok(stat_sample, k=3.0)


def test_lag1_correlation(stat_sample):
    rho = lag1_correlation(stat_sample)
    assert abs(rho) < 5.0 / math.sqrt(N_STAT), rho


def test_correlation_between_offsets(stat_sample):
    other = standard_normal(N_STAT, 0x5EED5EED5EED, 12346)
    rho = correlation(stat_sample, other)
    assert abs(rho) < 5.0 / math.sqrt(N_STAT), rho


def test_correlation_within_and_between_counters(stat_sample):
    lanes = stat_sample.reshape(-1, 4)
    rows = lanes.shape[0]
    bound = 5.0 / math.sqrt(rows - 1)
    for a in range(4):
        for b in range(a + 1, 4):
            rho = correlation(lanes[:, a], lanes[:, b])
            assert abs(rho) < bound, (a, b, rho)
        for b in range(4):
            rho = correlation(lanes[:-1, a], lanes[1:, b])  # neighbouring counters
            assert abs(rho) < bound, ("next", a, b, rho)
    # The two components of a pair share r, so they are uncorrelated but not independent;
    # check that r**2 = n0**2 + n1**2 has the chi-square(2) mean of 2 (its std is 2).
    r2 = lanes[:, 0].double() ** 2 + lanes[:, 1].double() ** 2
    assert abs(r2.mean().item() - 2.0) < 5.0 * 2.0 / math.sqrt(rows)


# ---------------------------------------------------------------- the stats helpers themselves


def test_stats_helpers_sanity():
    n = 1 << 14
    q = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)
    d, p = ks_normal(q)
    assert d == pytest.approx(0.5 / n, rel=1e-6)
    assert p == 1.0
    d, p = ks_normal(q + 0.1)
    assert p < 1e-6 and d > 0.03
    with pytest.raises(AssertionError, match="mean"):
        normal_moments_ok(q + 0.1)
    with pytest.raises(AssertionError, match="variance"):
        normal_moments_ok(q * 1.1)
    with pytest.raises(AssertionError, match=r"\|x\| > 2"):
        tail_fraction_ok(q * 1.2, k=2.0)
    x = torch.arange(10, dtype=torch.float64)
    assert correlation(x, 2 * x + 1) == pytest.approx(1.0)
    assert correlation(x, -x) == pytest.approx(-1.0)
    assert lag1_correlation(x) == pytest.approx(1.0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [-1, 2**64, 2**70, -(2**63)])
def test_bad_seed_and_offset(bad):
    with pytest.raises(ValueError, match="seed"):
        standard_normal(8, bad, 0)
    with pytest.raises(ValueError, match="offset"):
        standard_normal(8, 0, bad)
    with pytest.raises(ValueError, match="seed"):
        philox_words(8, bad, 0)
    with pytest.raises(ValueError, match="offset"):
        philox_words(8, 0, bad)
    with pytest.raises(ValueError):
        split_u64(bad)


def test_bad_types_and_sizes():
    with pytest.raises(TypeError, match="seed"):
        standard_normal(8, 1.5, 0)
    with pytest.raises(ValueError, match="numel"):
        standard_normal(-1, 0, 0)
    with pytest.raises(ValueError):
        standard_normal((2, -1), 0, 0)


def test_split_u64():
    assert split_u64(0) == (0, 0)
    assert split_u64(2**64 - 1) == (MASK32, MASK32)
    assert split_u64(0x0123456789ABCDEF) == (0x89ABCDEF, 0x01234567)
    assert split_u64(torch.tensor(5).item()) == (5, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    seed, offset = 2**64 - 5, 2**40 + 9
    cpu = philox_words(40001, seed, offset)
    gpu = philox_words(40001, seed, offset, device="cuda")
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
    for dtype in (torch.float32, torch.float64):
        e = standard_normal(40001, seed, offset, dtype=dtype, device="cuda")
        torch.testing.assert_close(e.cpu(), standard_normal(40001, seed, offset, dtype=dtype))
