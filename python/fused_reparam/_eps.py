"""eps as a tensor, for the few backward paths that need it whole (double backward of the
stats ops, the gradient of a broadcast scale_tril): the backend's own diagonal forward op with
mu = logvar = 0 gives z = 0 + exp(0) * eps = eps exactly, from the same stream."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._eager_ops import call
from .reference.philox import compute_dtype


def regenerate_eps(
    diag_fwd: Callable,
    eps: torch.Tensor | None,
    seed_offset: torch.Tensor,
    shape: torch.Size,
    like: torch.Tensor,
) -> torch.Tensor:
    """eps of stream `seed_offset` for a sample of `shape`, in the compute dtype of `like`
    (float32 for half types); `eps` itself (converted) when it was given."""
    ct = compute_dtype(like.dtype)
    if eps is not None:
        return eps.to(ct)
    zero = torch.zeros((), dtype=ct, device=like.device).expand(shape)
    return call(diag_fwd, zero, zero, None, seed_offset)[0]
