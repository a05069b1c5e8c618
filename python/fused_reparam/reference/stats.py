"""The VAE extras of both ops in plain PyTorch (docs/design.md): per row of the sample,
KL(q || N(0, I)) and log q(z), with z. The ground truth of the fused `*_rsample_stats` ops,
and, through torch autograd, of their gradients.

Half types compute in float32 and round once, like the kernels.
"""

from __future__ import annotations

import math

import torch

from . import scale as _scale
from .philox import compute_dtype

__all__ = ["LOG_2PI", "chol_stats", "chol_stats_backward", "diag_stats", "diag_stats_backward"]

LOG_2PI = math.log(2.0 * math.pi)


def diag_stats(
    mu: torch.Tensor,
    s: torch.Tensor,
    eps: torch.Tensor,
    scale: int = 0,
    min_scale: float = 0.0,
    squash: bool = False,
    low: float = -1.0,
    high: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, kl, log_q) of the diagonal op for explicit eps of the broadcast shape [*batch, D],
    with sigma of scale kind `scale` (reference/scale.py) and lv = 2 log sigma:
    kl = 0.5 * sum(mu^2 + sigma^2 - 1 - lv), log_q = -0.5 * sum(eps^2 + lv + log 2pi),
    both over the last dim, shape [*batch]. With squash, z is the action
    low + (high - low) (tanh(u) + 1) / 2 of u = mu + sigma eps and log_q its log-density,
    less sum(log(1 - tanh(u)^2) + log((high - low) / 2)) (exact: no atanh, no epsilon)."""
    ct = compute_dtype(mu.dtype)
    m, sc, e = mu.to(ct), s.to(ct), eps.to(ct)
    m, sc = torch.broadcast_tensors(m, sc)
    sig = _scale.sigma(sc, scale, min_scale)
    lv = _scale.log_var(sc, sig, scale, min_scale)
    z = m + sig * e
    kl = 0.5 * (m * m + sig * sig - 1.0 - lv).sum(-1)
    log_q = -0.5 * (e * e + lv + LOG_2PI).sum(-1)
    if squash:
        half = 0.5 * (high - low)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact for every u.
        log_dtanh = 2.0 * (math.log(2.0) - z - torch.nn.functional.softplus(-2.0 * z))
        log_q = log_q - (log_dtanh + math.log(half)).sum(-1)
        z = low + half * (torch.tanh(z) + 1.0)
    return z.to(mu.dtype), kl.to(mu.dtype), log_q.to(mu.dtype)


def diag_stats_backward(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    s: torch.Tensor,
    eps: torch.Tensor,
    scale: int = 0,
    min_scale: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mu, grad_s, grad_eps) over the sample's shape, in torch ops (differentiable):
    the formulas of fused_reparam::diag_rsample_stats_backward, with eps a tensor."""
    gk, gq = grad_kl.unsqueeze(-1), grad_log_q.unsqueeze(-1)
    base = _scale.sigma_base(s, scale)
    sig = base + min_scale if min_scale != 0.0 else base
    dsig = _scale.dsigma(s, base, scale)
    dlog = _scale.dlog_sigma(s, sig, dsig, scale, min_scale)
    grad_mu = grad_z + gk * mu
    grad_s = dsig * (grad_z * eps + gk * sig) - dlog * (gk + gq)
    grad_eps = grad_z * sig - gq * eps
    return grad_mu, grad_s, grad_eps


def _log_abs_det(scale_tril: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(scale_tril, dim1=-2, dim2=-1).abs().log().sum(-1)


def chol_stats(
    mu: torch.Tensor, scale_tril: torch.Tensor, eps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, kl, log_q) of the Cholesky op for explicit eps [*batch, D], with
    ld = sum_i log|L_ii|: kl = 0.5 * (|tril L|_F^2 + |mu|^2 - D) - ld and
    log_q = -0.5 * |eps|^2 - ld - 0.5 * D * log 2pi, shape [*batch]. Only the lower triangle
    of L is read."""
    ct = compute_dtype(mu.dtype)
    m, e = mu.to(ct), eps.to(ct)
    lower = torch.tril(scale_tril.to(ct))
    d = mu.shape[-1]
    z = m + (lower @ e.unsqueeze(-1)).squeeze(-1)
    ld = _log_abs_det(lower)
    kl = 0.5 * (lower.square().sum((-2, -1)) + m.square().sum(-1) - d) - ld
    log_q = -0.5 * e.square().sum(-1) - ld - 0.5 * d * LOG_2PI
    batch = z.shape[:-1]
    return z.to(mu.dtype), kl.expand(batch).to(mu.dtype), log_q.expand(batch).to(mu.dtype)


def chol_stats_backward(
    grad_z: torch.Tensor,
    grad_kl: torch.Tensor,
    grad_log_q: torch.Tensor,
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    eps: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mu, grad_L, grad_eps) over the sample's batch shape, in torch ops
    (differentiable): the formulas of fused_reparam::chol_rsample_stats_backward."""
    gk, gq = grad_kl.unsqueeze(-1), grad_log_q.unsqueeze(-1)
    lower = torch.tril(scale_tril)
    diag = torch.diagonal(lower, dim1=-2, dim2=-1)
    grad_mu = grad_z + gk * mu
    grad_l = (
        torch.tril(grad_z.unsqueeze(-1) * eps.unsqueeze(-2))
        + gk.unsqueeze(-1) * lower
        - torch.diag_embed((gk + gq) / diag)
    )
    grad_eps = (lower.transpose(-1, -2) @ grad_z.unsqueeze(-1)).squeeze(-1) - gq * eps
    return grad_mu, grad_l, grad_eps
