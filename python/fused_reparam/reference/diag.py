"""The diagonal op in plain PyTorch, differentiated by torch autograd: the ground truth the
fused backends are tested against, and the backend of last resort.

eps comes from the same noise contract (reference/philox.py), so for one (seed, offset) it
equals the fused kernels' eps. Half types compute in float32 and round once, like the kernels.
"""

from __future__ import annotations

import torch

from . import scale as _scale
from .noise import stream_noise
from .philox import compute_dtype, standard_normal

__all__ = ["compute_dtype", "diag_noise", "diag_rsample"]


def diag_noise(
    shape: torch.Size,
    seed: int | torch.Tensor,
    offset: int | torch.Tensor,
    dtype: torch.dtype,
    device: torch.device,
    noise: int = 0,
) -> torch.Tensor:
    """eps of stream (seed, offset) for a sample of `shape`, in the compute dtype of `dtype`,
    of noise kind `noise` (reference/noise.py; the normal by default)."""
    if noise == 0:
        return standard_normal(shape, seed, offset, dtype=compute_dtype(dtype), device=device)
    return stream_noise(shape, seed, offset, noise, compute_dtype(dtype), device)


def diag_rsample(
    mu: torch.Tensor,
    s: torch.Tensor,
    eps: torch.Tensor,
    scale: int = 0,
    min_scale: float = 0.0,
    noise: int = 0,
) -> torch.Tensor:
    """z = mu + sigma(s) * eps (sigma of scale kind `scale`, reference/scale.py; exp(s / 2)
    by default), in the compute dtype, rounded to mu's dtype. `noise` is eps's kind, which
    eps already is (diag_noise)."""
    ct = compute_dtype(mu.dtype)
    z = mu.to(ct) + _scale.sigma(s.to(ct), scale, min_scale) * eps.to(ct)
    return z.to(mu.dtype)
