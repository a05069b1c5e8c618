"""What the distribution tests (test_distributions_*.py) share: their warning filter,
tolerances, batch and sample shapes, a seeded DiagNormal and its torch twin, well-conditioned
Cholesky factors and seeded generators."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as td

from conftest import randn
from fused_reparam.distributions import DiagNormal

# The CPU stats kernels may not be built yet: return_stats then falls back to the reference
# with a one-time warning. These tests do not depend on either.
NO_FUSED_BACKEND_WARNING_IGNORED = pytest.mark.filterwarnings(
    "ignore:fused_reparam. no fused backend:RuntimeWarning"
)

F64 = torch.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}
BATCHES = [(), (3,), (2, 5)]
SAMPLE_SHAPES = [(), (1,), (4,), (2, 3)]


def diag_normal(batch, d, gen, device="cpu", dtype=F64, **kw):
    loc = randn((*batch, d), dtype, device, gen)
    logvar = randn((*batch, d), dtype, device, gen, scale=0.7)
    return loc, logvar, DiagNormal(loc, logvar, **kw)


def torch_diag(loc, logvar):
    return td.Independent(td.Normal(loc, torch.exp(0.5 * logvar)), 1)


def tril_factor(batch, d, dtype, device, gen):
    """A well-conditioned lower-triangular factor with a positive diagonal."""
    a = randn((*batch, d, d), dtype, device, gen, scale=0.3)
    diag = torch.rand((*batch, d), generator=gen, dtype=torch.float64).to(dtype).to(device)
    return torch.tril(a, -1) + torch.diag_embed(0.5 + diag)


def seeded_gen(seed, device="cpu"):
    return torch.Generator(device).manual_seed(seed)
