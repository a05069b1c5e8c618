"""Prints the coefficient table of the AVX-512 float32 softplus (csrc/cpu/softplus_avx512.h).

g(a) = log1p(exp(a)) for a in [-8, 0] is cut into 32 intervals of width 1/4; on each, a
degree-4 polynomial in u = a - center. Fitted by least squares in relative error on 400
Chebyshev nodes of the (slightly widened) interval; the constant term is rounded to float
first and the others fitted again around it, so the rounding of the value's leading term is
the only one at its scale. Then checked in float32 arithmetic (fused multiply-adds as the
kernel does them) against float64 over a dense grid: the worst error is printed.

Run: python scripts/fit_softplus_table.py > table.txt (needs numpy).
"""

from __future__ import annotations

import re

import numpy as np

INTERVALS, WIDTH, LOW, DEGREE, NODES = 32, 0.25, -8.0, 4, 400


def exact(a: np.ndarray) -> np.ndarray:
    """log1p(exp(a)) in float64."""
    return np.log1p(np.exp(a))


def fit() -> np.ndarray:
    """[DEGREE + 1, INTERVALS] float32 coefficients, row j the coefficient of u^j."""
    k = np.arange(NODES)
    u = np.cos(np.pi * (k + 0.5) / NODES) * (WIDTH / 2) * 1.001
    powers = np.vander(u, DEGREE + 1, increasing=True)
    table = np.empty((DEGREE + 1, INTERVALS), dtype=np.float32)
    for i in range(INTERVALS):
        y = exact(LOW + (i + 0.5) * WIDTH + u)
        w = 1.0 / y
        p = np.linalg.lstsq(powers * w[:, None], y * w, rcond=None)[0]
        c0 = np.float32(p[0])
        rest = np.linalg.lstsq(powers[:, 1:] * w[:, None], (y - float(c0)) * w, rcond=None)[0]
        table[:, i] = [c0, *rest.astype(np.float32)]
    return table


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c rounded once to float32 (the product of two floats is exact in float64)."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def softplus32(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The kernel's table part in float32: max(x, 0) + g(-|x|), for |x| <= 8."""
    a = -np.abs(x.astype(np.float32))
    t = fma32(a, np.float32(4.0), np.float32(32.0))
    idx = np.minimum(np.trunc(t).astype(np.int64), INTERVALS - 1)
    center = fma32(idx.astype(np.float32), np.float32(0.25), np.float32(-7.875))
    u = (a - center).astype(np.float32)
    p = table[DEGREE, idx]
    for j in range(DEGREE - 1, -1, -1):
        p = fma32(p, u, table[j, idx])
    return (np.maximum(x, np.float32(0.0)) + p).astype(np.float32)


def worst_ulps(table: np.ndarray) -> float:
    """The largest error in float32 ulps over a dense grid of [-8, 8] and small |x|."""
    small = np.logspace(-30, 0.9, 200_000).astype(np.float32)
    x = np.concatenate([np.linspace(-8, 8, 4_000_001, dtype=np.float32), small, -small])
    want = np.log1p(np.exp(-np.abs(x.astype(np.float64)))) + np.maximum(x, 0)
    spacing = np.spacing(want.astype(np.float32)).astype(np.float64)
    return float((np.abs(softplus32(x, table) - want) / spacing).max())


def main() -> None:
    table = fit()
    print(f"// Worst error over a dense grid of [-8, 8]: {worst_ulps(table):.2f} ulp.")
    for j, row in enumerate(table):
        values = [re.sub(r"\.?0*p", "p", float(v).hex()) for v in row]
        lines = [", ".join(f"{v}f" for v in values[k : k + 4]) for k in range(0, INTERVALS, 4)]
        body = ",\n     ".join(lines)
        print(f"    {{{body}}},  // u^{j}")


if __name__ == "__main__":
    main()
