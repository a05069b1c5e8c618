"""What the sampling functions share: the `num_samples` argument and the result with the VAE
extras (`return_stats=True`)."""

from __future__ import annotations

import numbers
import operator
from typing import NamedTuple

import torch


class ReparamSample(NamedTuple):
    """A sample with its VAE extras, from ``sample_diag`` / ``sample_chol(...,
    return_stats=True)``.

    z: the sample, ``[K, *batch, D]`` with ``num_samples=K``, else ``[*batch, D]``.
    kl: KL(q || N(0, I)) per row of q, ``[*batch]`` (it does not depend on the sample).
    log_q: log q(z) per sample row, ``[K, *batch]`` or ``[*batch]``.
    """

    z: torch.Tensor
    kl: torch.Tensor
    log_q: torch.Tensor


def check_num_samples(num_samples: object, where: str) -> int | None:
    """`num_samples` (any integer, numpy's included) as an int >= 1, or None; a clear error
    otherwise."""
    if num_samples is None:
        return None
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(
            f"{where}: num_samples must be an int >= 1 or None, got {type(num_samples).__name__}"
        )
    num_samples = operator.index(num_samples)
    if num_samples < 1:
        raise ValueError(f"{where}: num_samples must be >= 1, got {num_samples}")
    return num_samples


def check_stats_shape(shape: torch.Size, where: str) -> None:
    """The extras are per row of the last dim: a sample needs at least one dim."""
    if len(shape) == 0:
        raise ValueError(
            f"{where}: return_stats=True needs inputs with at least one dim (the event dim "
            "D is the last one); got scalars"
        )


def stats_result(
    z: torch.Tensor, kl: torch.Tensor, log_q: torch.Tensor, num_samples: int | None
) -> ReparamSample:
    """The result of a stats op; with K samples the KL (the same for every k) is taken once."""
    if num_samples is not None:
        kl = kl[0]
    return ReparamSample(z, kl, log_q)
