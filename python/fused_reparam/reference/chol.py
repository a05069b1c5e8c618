"""The Cholesky op in plain PyTorch, differentiated by torch autograd: the ground truth the
fused backends are tested against, and the backend of last resort.

z = mu + tril(L) @ eps. eps comes from the noise contract (reference/philox.py), element i of
the sample [*batch, D] in row-major order, so for one (seed, offset) it equals the fused
kernels' eps. Only the lower triangle of L is read: torch.tril zeroes the rest (so NaN or inf
above the diagonal changes nothing). Half types compute in float32 and round once.
"""

from __future__ import annotations

import torch

from .philox import compute_dtype, standard_normal

__all__ = ["chol_noise", "chol_rsample"]


def chol_noise(
    shape: torch.Size, seed: int, offset: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """eps of stream (seed, offset) for a sample of `shape`, in the compute dtype of `dtype`."""
    return standard_normal(shape, seed, offset, dtype=compute_dtype(dtype), device=device)


def chol_rsample(mu: torch.Tensor, scale_tril: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + tril(scale_tril) @ eps, in the compute dtype, rounded to mu's dtype."""
    ct = compute_dtype(mu.dtype)
    lower = torch.tril(scale_tril.to(ct))
    z = mu.to(ct) + (lower @ eps.to(ct).unsqueeze(-1)).squeeze(-1)
    return z.to(mu.dtype)
