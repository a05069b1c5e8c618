"""Tests of the reference noise contract's normals (fused_reparam/reference/philox.py):
standard_normal against Box-Muller evaluated in float64 from the Python-int words, its prefix
property, shapes and dtypes, distinct streams, bad seeds, offsets and sizes, and the same
stream on the GPU."""

from __future__ import annotations

import math

import pytest
import torch

from _philox_model import MASK32, py_normals, py_words
from _stats import correlation
from fused_reparam.reference.philox import (
    box_muller,
    philox_words,
    split_u64,
    standard_normal,
    uniforms_from_words,
)

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
