"""Deterministic statistical helpers shared by the test files (no fixtures, no randomness).

Everything is computed in float64 on the CPU, whatever the input's dtype or device.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def _f64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(-1).to(device="cpu", dtype=torch.float64)


def normal_cdf(x: float) -> float:
    """Phi(x), the standard normal CDF."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: sum_{k>=1} 2 (-1)^(k-1) exp(-2 k^2 lam^2)."""
    if lam <= 0.0:
        return 1.0
    if lam < 0.2:  # the alternating series converges badly here and the value is 1 to 1e-15
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1.0) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-17:
            break
    return min(max(total, 0.0), 1.0)


def ks_test(x: torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
    """One-sample Kolmogorov-Smirnov test of ``x`` against the distribution with CDF ``cdf``
    (a function of a float64 tensor).

    Returns:
        ``(D, p)``: the statistic ``D = sup |F_n - F|`` and its asymptotic p-value, using the
        effective size ``sqrt(n) + 0.12 + 0.11 / sqrt(n)`` (Stephens' correction).
    """
    v = torch.sort(_f64(x)).values
    n = v.numel()
    if n == 0:
        raise ValueError("ks_test needs at least one sample")
    f = cdf(v)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d_plus = (i / n - f).max().item()
    d_minus = (f - (i - 1) / n).max().item()
    d = max(d_plus, d_minus)
    sqrt_n = math.sqrt(n)
    p = kolmogorov_sf((sqrt_n + 0.12 + 0.11 / sqrt_n) * d)
    return d, p


def ks_normal(x: torch.Tensor) -> tuple[float, float]:
    """One-sample Kolmogorov-Smirnov test of ``x`` against N(0, 1) (see ks_test)."""
    return ks_test(x, torch.special.ndtr)


def normal_moments_ok(x: torch.Tensor, sigmas: float = 5.0) -> None:
    """Assert mean and variance of ``x`` are within ``sigmas`` standard errors of 0 and 1.

    Standard errors for N(0, 1) samples: ``1 / sqrt(n)`` for the mean and ``sqrt(2 / (n - 1))``
    for the (unbiased) variance.
    """
    v = _f64(x)
    n = v.numel()
    assert n >= 2, f"need at least 2 samples for moments, got {n}"
    mean = v.mean().item()
    var = v.var(unbiased=True).item()
    se_mean = 1.0 / math.sqrt(n)
    se_var = math.sqrt(2.0 / (n - 1))
    assert abs(mean) <= sigmas * se_mean, (
        f"mean {mean:.6g} is {abs(mean) / se_mean:.2f} std errors from 0 "
        f"(allowed {sigmas}, n={n}, std error {se_mean:.3g})"
    )
    assert abs(var - 1.0) <= sigmas * se_var, (
        f"variance {var:.6g} is {abs(var - 1.0) / se_var:.2f} std errors from 1 "
        f"(allowed {sigmas}, n={n}, std error {se_var:.3g})"
    )


def tail_fraction_ok(x: torch.Tensor, k: float = 4.0, sigmas: float = 5.0) -> None:
    """Assert the fraction of ``|x| > k`` matches ``2 (1 - Phi(k))`` within ``sigmas``
    binomial standard errors."""
    v = _f64(x)
    n = v.numel()
    assert n >= 1, "need at least 1 sample for tail fractions"
    p = 2.0 * (1.0 - normal_cdf(k))
    count = int((v.abs() > k).sum().item())
    frac = count / n
    se = math.sqrt(p * (1.0 - p) / n)
    assert abs(frac - p) <= sigmas * se, (
        f"fraction with |x| > {k}: {frac:.6g} ({count} of {n}), expected {p:.6g} "
        f"(~{p * n:.1f} samples); off by {abs(frac - p) / se:.2f} std errors "
        f"(allowed {sigmas})"
    )


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation coefficient of two equally sized tensors (flattened)."""
    va, vb = _f64(a), _f64(b)
    if va.numel() != vb.numel():
        raise ValueError(f"sizes differ: {va.numel()} vs {vb.numel()}")
    da = va - va.mean()
    db = vb - vb.mean()
    denom = math.sqrt((da * da).sum().item() * (db * db).sum().item())
    if denom == 0.0:
        raise ValueError("correlation of a constant tensor is undefined")
    return (da * db).sum().item() / denom


def lag1_correlation(x: torch.Tensor) -> float:
    """Correlation between consecutive elements of ``x`` (flattened, row-major)."""
    v = _f64(x)
    return correlation(v[:-1], v[1:])
