"""KL to ``N(0, I)`` and ``log q`` at the mean of both Gaussian families, in plain torch: no
noise drawn (the modules' eval path and the distributions' empty samples)."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the half types (as the kernels compute), else the dtype itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def diag_kl_to_standard_normal(loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, diag(exp(logvar))) || N(0, I)) over the last dim, in plain torch:
    ``0.5 * sum(loc^2 + exp(logvar) - 1 - logvar)``, shape ``[*batch]`` (the broadcast shape
    of loc and logvar without its last dim). Half types compute in float32."""
    ct = _compute_dtype(loc.dtype)
    m, lv = torch.broadcast_tensors(loc.to(ct), logvar.to(ct))
    return (0.5 * (m * m + torch.exp(lv) - 1.0 - lv).sum(-1)).to(loc.dtype)


def diag_log_q_at_mean(loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(loc) of N(loc, diag(exp(logvar))), ``-0.5 * sum(logvar + log 2pi)``, shape
    ``[*batch]``: the fused ``log_q`` with eps = 0."""
    ct = _compute_dtype(loc.dtype)
    lv = torch.broadcast_tensors(loc.to(ct), logvar.to(ct))[1]
    return (-0.5 * (lv + LOG_2PI).sum(-1)).to(loc.dtype)


def _chol_log_det(lower: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(lower, dim1=-2, dim2=-1).abs().log().sum(-1)


def _chol_batch(loc: torch.Tensor, scale_tril: torch.Tensor) -> torch.Size:
    return torch.broadcast_shapes(loc.shape[:-1], scale_tril.shape[:-2])


def chol_kl_to_standard_normal(loc: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, L L^T) || N(0, I)), in plain torch, reading only the lower triangle of L:
    ``0.5 * (|tril L|_F^2 + |loc|^2 - D) - sum_i log|L_ii|``, shape ``[*batch]``."""
    ct = _compute_dtype(loc.dtype)
    m, lower = loc.to(ct), torch.tril(scale_tril.to(ct))
    d = loc.shape[-1]
    kl = 0.5 * (lower.square().sum((-2, -1)) + m.square().sum(-1) - d) - _chol_log_det(lower)
    return kl.expand(_chol_batch(loc, scale_tril)).to(loc.dtype)


def chol_log_q_at_mean(loc: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log q(loc) of N(loc, L L^T), ``-sum_i log|L_ii| - 0.5 * D * log 2pi``, shape
    ``[*batch]``: the fused ``log_q`` with eps = 0."""
    ct = _compute_dtype(loc.dtype)
    lq = -_chol_log_det(scale_tril.to(ct)) - 0.5 * loc.shape[-1] * LOG_2PI
    return lq.expand(_chol_batch(loc, scale_tril)).to(loc.dtype)
