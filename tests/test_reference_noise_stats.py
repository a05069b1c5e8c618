"""Statistics of the reference noise stream (fused_reparam/reference/philox.py) on 2**20
samples: moments, Kolmogorov-Smirnov per lane, tails, correlations within and between
counters and offsets; and a sanity check of the statistics helpers themselves."""

from __future__ import annotations

import math

import pytest
import torch

from _stats import (
    correlation,
    ks_normal,
    lag1_correlation,
    normal_moments_ok,
    tail_fraction_ok,
)
from fused_reparam.reference.philox import standard_normal

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
