"""The diagonal Gaussian op: z = mu + exp(0.5 * logvar) * eps, eps ~ N(0, I) made in-kernel."""

from __future__ import annotations

import torch

from . import _checks, _sample, _seed
from ._dispatch import sample

_WHERE = "fused_reparam.sample_diag"


def sample_diag(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    num_samples: int | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    offset: int = 0,
    backend: str = "auto",
    return_stats: bool = False,
) -> torch.Tensor | _sample.ReparamSample:
    """Reparameterized sample of a diagonal Gaussian from its log-variance, in one fused kernel.

    Returns ``z = mu + exp(0.5 * logvar) * eps`` with ``eps ~ N(0, I)``, differentiable in
    ``mu``, ``logvar`` (and ``eps`` when given). The noise is generated inside the kernel and
    regenerated in the backward pass, so nothing but the inputs is kept for backward.

    Args:
        mu: mean, any shape (the last dim is the event dim D for the extras); float32,
            float64, float16 or bfloat16.
        logvar: log-variance, broadcastable with ``mu`` and of the same dtype and device.
        num_samples: K samples per distribution: z is ``[K, *broadcast shape]``; mu and
            logvar are read in place (never copied K times) and their gradients are summed
            over the K samples.
        eps: optional explicit noise of the sample's shape (then no noise is drawn and
            ``eps`` receives a gradient if it requires one).
        generator: torch.Generator to draw the stream from (default: the device's default
            generator, so ``torch.manual_seed`` is respected).
        seed: explicit stream seed in [0, 2**64): the same (seed, offset) gives the same noise
            on every backend (docs/design.md, "The noise contract").
        offset: stream offset in [0, 2**64), used with ``seed``.
        backend: "auto", "cpu", "cuda", "triton" or "reference" (see README, "Backends").
        return_stats: also return, from the same pass, ``kl = 0.5 * sum(mu^2 + sigma^2 - 1
            - logvar)`` (KL to N(0, I)) and ``log_q = -0.5 * sum(eps^2 + logvar + log 2pi)``
            (log q(z)), both over the last dim, with their gradients fused into the backward.

    Returns:
        z with the broadcast shape of ``mu`` and ``logvar`` (``[K, ...]`` with num_samples),
        contiguous, of their dtype; with return_stats a ``ReparamSample(z, kl, log_q)``: kl
        ``[*batch]``, log_q ``[K, *batch]`` or ``[*batch]`` (batch = all dims but the last).

    Example:
        >>> mu, logvar = torch.zeros(4, 8), torch.zeros(4, 8)
        >>> z = sample_diag(mu, logvar, seed=1234)
    """
    return sample("diag", _checked, mu, logvar, num_samples=num_samples, eps=eps,
                  generator=generator, seed=seed, offset=offset, backend=backend,
                  return_stats=return_stats)  # fmt: skip


def _checked(
    mu: object,
    logvar: object,
    num_samples: object,
    eps: torch.Tensor | None,
    generator: object,
    seed: object,
    offset: object,
    return_stats: object,
) -> tuple:
    """sample_diag's arguments checked, with clear errors: (mu, expanded over num_samples,
    the sample's shape, num_samples, seed, offset)."""
    mu = _checks.check_float_tensor(mu, "mu", _WHERE)
    _checks.check_not_meta(mu, "mu", _WHERE)
    return_stats = _checks.check_flag(return_stats, "return_stats", _WHERE)
    logvar = _checks.check_float_tensor(logvar, "logvar", _WHERE)
    _checks.check_same_dtype_device(mu, "mu", logvar, "logvar", _WHERE)
    shape = _checks.broadcast_shape(mu, "mu", logvar, "logvar", _WHERE)
    num_samples = _sample.check_num_samples(num_samples, _WHERE)
    if return_stats:
        _sample.check_stats_shape(shape, _WHERE)
    if num_samples is not None:
        # A stride-0 view: the kernels broadcast it, so mu is never copied K times.
        shape = torch.Size((num_samples, *shape))
        mu = mu.expand(shape)
    desc = "[num_samples, *broadcast shape]" if num_samples else "the broadcast shape"
    seed, offset = _seed.check_stream_args(
        mu, eps, shape, f"{desc} of mu and logvar", seed, offset, generator, _WHERE
    )
    return mu, shape, num_samples, seed, offset
