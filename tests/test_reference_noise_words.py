"""Tests of the reference noise contract's words and uniforms
(fused_reparam/reference/philox.py): the Philox words against published known answers and an
independent pure-Python-int implementation, the words' layout, uniforms against exact float32
rounding done with ``struct``, and Box-Muller at the edge uniforms."""

from __future__ import annotations

import math

import pytest
import torch

from _philox_model import MASK32, py_philox4x32_10, py_uniform32, py_uniform64, py_words
from fused_reparam.reference.philox import (
    box_muller,
    philox4x32_10,
    philox_words,
    split_u64,
    uniforms_from_words,
)

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
