"""``stl=True`` ("sticking the landing", Roeder et al. 2017): log q(z) whose gradient flows
only through the sample z, not through the distribution's parameters directly, which removes
the score-function term of zero mean from the ELBO's gradient.

The value is the fused log q itself (unchanged). Its gradient comes from the Gaussian's
log-density with the parameters detached, ``-0.5 |r|^2`` with ``r = (z - mu) / sigma``
(diagonal) or ``L^-1 (z - mu)`` (Cholesky), added as ``g - g.detach()`` (exactly zero), so it
reaches mu, the scale input and eps through the fused op's backward of z; the fused log q's
own gradient is detached. r is written ``eps + (z - z.detach()) / sigma`` (``L^-1`` applied
to the difference), with eps the call's own in the compute type: its value is eps exactly,
not eps recovered from z rounded to its dtype (in half types, or where sigma * eps is below
z's rounding, that recovery would lose the gradient), and its derivatives in z are the
density's. That is one elementwise pass (a triangular solve for the Cholesky op) on top of
the fused kernels and the eps drawn again. Where sigma itself is 0, the density's gradient
at the sample is infinite: log_q and its gradient are NaN there.
"""

from __future__ import annotations

import torch

from . import _checks
from ._sample import ReparamSample
from .reference import scale as _ref_scale


def check_stl(stl: object, return_stats: object, where: str) -> bool:
    """`stl` as a bool; True needs return_stats=True (it changes log_q's gradient)."""
    stl = _checks.check_flag(stl, "stl", where)
    if stl and return_stats is not True:
        raise ValueError(f"{where}: stl=True changes log_q's gradient: it needs return_stats=True")
    return stl


def landing_needed() -> bool:
    """Whether the gradient term is worth making: not under no_grad or inference_mode, where
    log_q's value alone is wanted (making it draws the noise a second time)."""
    return torch.is_grad_enabled()


def _landing(log_q: torch.Tensor, quad: torch.Tensor) -> torch.Tensor:
    """log_q's value with the gradient of -0.5 * sum(quad) only."""
    g = -0.5 * quad.sum(-1)
    return log_q.detach() + (g - g.detach()).to(log_q.dtype)


def diag_log_q(
    out: ReparamSample,
    eps: torch.Tensor,
    s: torch.Tensor,
    kind: int,
    min_scale: float,
) -> ReparamSample:
    """The diagonal op's extras with log_q's gradient through z only; `eps` is the call's, in
    the compute type."""
    sigma = _ref_scale.sigma(s.detach().to(eps.dtype), kind, min_scale)
    z = out.z.to(eps.dtype)
    r = eps + (z - z.detach()) / sigma
    return ReparamSample(out.z, out.kl, _landing(out.log_q, r * r))


def chol_log_q(out: ReparamSample, eps: torch.Tensor, scale_tril: torch.Tensor) -> ReparamSample:
    """The Cholesky op's extras with log_q's gradient through z only; `eps` is the call's, in
    the compute type."""
    lower = torch.tril(scale_tril.detach().to(eps.dtype))
    z = out.z.to(eps.dtype)
    d = torch.linalg.solve_triangular(lower, (z - z.detach()).unsqueeze(-1), upper=False)
    r = eps + d.squeeze(-1)
    return ReparamSample(out.z, out.kl, _landing(out.log_q, r * r))
