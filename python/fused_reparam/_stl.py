"""``stl=True`` ("sticking the landing", Roeder et al. 2017): log q(z) whose gradient flows
only through the sample z, not through the distribution's parameters directly, which removes
the score-function term of zero mean from the ELBO's gradient.

The value is the fused log q itself (unchanged). Its gradient comes from the Gaussian's
log-density with the parameters detached, ``-0.5 |(z - mu) / sigma|^2`` (diagonal) or
``-0.5 |L^-1 (z - mu)|^2`` (Cholesky), added as ``g - g.detach()`` (exactly zero), so it
reaches mu, the scale input and eps through the fused op's backward of z; the fused log q's
own gradient is detached. That is one elementwise pass (a triangular solve for the Cholesky
op) on top of the fused kernels.
"""

from __future__ import annotations

import torch

from . import _checks
from ._sample import ReparamSample
from .reference import scale as _ref_scale
from .reference.philox import compute_dtype


def check_stl(stl: object, return_stats: object, where: str) -> bool:
    """`stl` as a bool; True needs return_stats=True (it changes log_q's gradient)."""
    stl = _checks.check_flag(stl, "stl", where)
    if stl and return_stats is not True:
        raise ValueError(f"{where}: stl=True changes log_q's gradient: it needs return_stats=True")
    return stl


def _landing(log_q: torch.Tensor, quad: torch.Tensor) -> torch.Tensor:
    """log_q's value with the gradient of -0.5 * sum(quad) only."""
    g = -0.5 * quad.sum(-1)
    return log_q.detach() + (g - g.detach()).to(log_q.dtype)


def diag_log_q(
    out: ReparamSample, mu: torch.Tensor, s: torch.Tensor, kind: int, min_scale: float
) -> ReparamSample:
    """The diagonal op's extras with log_q's gradient through z only."""
    ct = compute_dtype(out.z.dtype)
    sigma = _ref_scale.sigma(s.detach().to(ct), kind, min_scale)
    r = (out.z.to(ct) - mu.detach().to(ct)) / sigma
    return ReparamSample(out.z, out.kl, _landing(out.log_q, r * r))


def chol_log_q(out: ReparamSample, mu: torch.Tensor, scale_tril: torch.Tensor) -> ReparamSample:
    """The Cholesky op's extras with log_q's gradient through z only."""
    ct = compute_dtype(out.z.dtype)
    lower = torch.tril(scale_tril.detach().to(ct))
    d = (out.z.to(ct) - mu.detach().to(ct)).unsqueeze(-1)
    r = torch.linalg.solve_triangular(lower, d, upper=False).squeeze(-1)
    return ReparamSample(out.z, out.kl, _landing(out.log_q, r * r))
