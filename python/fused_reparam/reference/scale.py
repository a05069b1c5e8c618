"""The diagonal op's scale parametrizations in plain PyTorch (differentiable): sigma from the
scale input s, and 2 log sigma for the VAE extras, as the kernels compute them
(docs/design.md, "Scales"). Kinds are numbered as in the ops' `scale` argument."""

from __future__ import annotations

import torch

__all__ = [
    "LOGVAR",
    "LOG_STD",
    "SCALES",
    "SOFTPLUS",
    "STD",
    "dlog_sigma",
    "dsigma",
    "log_var",
    "sigma",
]

LOGVAR, LOG_STD, STD, SOFTPLUS = 0, 1, 2, 3
# The public names, by kind.
SCALES = ("logvar", "log_std", "std", "softplus")

# Below -_TAIL, log softplus(s) = s - exp(s) / 2 to within exp(2 s).
_TAIL = 20.0


def sigma_base(s: torch.Tensor, kind: int = LOGVAR) -> torch.Tensor:
    """f(s): sigma of scale `kind` before the lower bound."""
    if kind == LOG_STD:
        return torch.exp(s)
    if kind == STD:
        return s
    if kind == SOFTPLUS:
        # Exact for every s, and so is its gradient, sigmoid(s) (torch's softplus returns s
        # itself above a threshold).
        return torch.logaddexp(s, torch.zeros_like(s))
    return torch.exp(0.5 * s)


def sigma(s: torch.Tensor, kind: int = LOGVAR, min_scale: float = 0.0) -> torch.Tensor:
    """sigma(s) of scale `kind`, plus min_scale."""
    out = sigma_base(s, kind)
    return out + min_scale if min_scale != 0.0 else out


def log_var(
    s: torch.Tensor, sig: torch.Tensor, kind: int = LOGVAR, min_scale: float = 0.0
) -> torch.Tensor:
    """2 log sigma, given sigma = sigma(s, kind, min_scale): exact in s where it can be, and
    finite (with finite gradients) where softplus(s) underflows."""
    if min_scale == 0.0:
        if kind == LOGVAR:
            return s
        if kind == LOG_STD:
            return 2.0 * s
        if kind == SOFTPLUS:
            tail = s < -_TAIL
            # Each branch on inputs where it is finite, so neither gives a NaN gradient.
            s_tail = torch.where(tail, s, torch.full_like(s, -_TAIL))
            sig_safe = torch.where(tail, torch.ones_like(sig), sig)
            return torch.where(
                tail, 2.0 * (s_tail - 0.5 * torch.exp(s_tail)), 2.0 * torch.log(sig_safe)
            )
    return 2.0 * torch.log(sig)


def dsigma(s: torch.Tensor, base: torch.Tensor, kind: int = LOGVAR) -> torch.Tensor:
    """d sigma / ds, given f(s) = sigma_base(s, kind) (the lower bound does not change it)."""
    if kind == LOG_STD:
        return base
    if kind == STD:
        return torch.ones_like(s)
    if kind == SOFTPLUS:
        return torch.sigmoid(s)
    return 0.5 * base


def dlog_sigma(
    s: torch.Tensor,
    sig: torch.Tensor,
    dsig: torch.Tensor,
    kind: int = LOGVAR,
    min_scale: float = 0.0,
) -> torch.Tensor:
    """d log sigma / ds, given sigma and its derivative; finite where softplus(s) underflows."""
    if min_scale == 0.0:
        if kind == LOGVAR:
            return torch.full_like(s, 0.5)
        if kind == LOG_STD:
            return torch.ones_like(s)
        if kind == SOFTPLUS:
            tail = s < -_TAIL
            s_tail = torch.where(tail, s, torch.full_like(s, -_TAIL))
            sig_safe = torch.where(tail, torch.ones_like(sig), sig)
            return torch.where(tail, 1.0 - 0.5 * torch.exp(s_tail), dsig / sig_safe)
    return dsig / sig
