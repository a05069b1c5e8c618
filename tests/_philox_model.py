"""An independent model of the noise contract on plain Python ints (Random123's Philox4x32-10,
uniforms rounded with ``struct``, Box-Muller in float64), for the reference noise tests
(test_reference_noise_*.py)."""

from __future__ import annotations

import math
import struct

import torch

MASK32 = 0xFFFFFFFF


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
