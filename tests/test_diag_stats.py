"""Statistics of the op's noise on every backend: moments, Kolmogorov-Smirnov, 4-sigma tails,
no correlation between neighbours or between calls."""

from __future__ import annotations

import pytest
import torch

from _stats import correlation, ks_normal, lag1_correlation, normal_moments_ok, tail_fraction_ok
from conftest import DEVICE_BACKENDS
from fused_reparam import sample_diag

N = 1 << 20


def _noise(device, backend, n=N, **kw):
    zeros = torch.zeros(n, device=device)
    return sample_diag(zeros, zeros, backend=backend, **kw).double().cpu()


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_noise_is_standard_normal(device, backend):
    x = _noise(device, backend, seed=2718)
    normal_moments_ok(x)
    _, p = ks_normal(x)
    assert p > 1e-3, f"KS p-value {p}"
    tail_fraction_ok(x, k=4.0)
    # Every position mod 4 (the four Box-Muller outputs) is itself standard normal.
    for j in range(4):
        normal_moments_ok(x[j::4])


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_no_correlation_between_neighbours_or_calls(device, backend):
    torch.manual_seed(5)
    a = _noise(device, backend)
    b = _noise(device, backend)
    bound = 5.0 / N**0.5
    assert abs(lag1_correlation(a)) < bound
    assert abs(correlation(a, b)) < bound
    # Pairs sharing a Philox call: (n0, n1) come from one Box-Muller pair, (n1, n2) from two.
    assert abs(correlation(a[0::4], a[1::4])) < 5.0 / (N / 4) ** 0.5
    assert abs(correlation(a[1::4], a[2::4])) < 5.0 / (N / 4) ** 0.5
    # r and t of Box-Muller are independent, so even the squares do not correlate.
    assert abs(correlation(a[0::4] ** 2, a[1::4] ** 2)) < 5.0 / (N / 4) ** 0.5


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_sample_has_the_requested_mean_and_variance(device, backend):
    mu = torch.full((N,), 1.5, device=device)
    logvar = torch.full((N,), 2.0 * torch.log(torch.tensor(0.25)).item(), device=device)
    z = sample_diag(mu, logvar, seed=9, backend=backend).double().cpu()
    normal_moments_ok((z - 1.5) / 0.25)
