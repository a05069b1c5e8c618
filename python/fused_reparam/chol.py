"""The Cholesky (full-covariance) Gaussian op: z = mu + L @ eps, eps ~ N(0, I) made in-kernel."""

from __future__ import annotations

import torch

from . import _checks, _sample, _seed, _stl
from ._dispatch import sample

_WHERE = "fused_reparam.sample_chol"


def sample_chol(
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    *,
    num_samples: int | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    offset: int = 0,
    backend: str = "auto",
    return_stats: bool = False,
    stl: bool = False,
) -> torch.Tensor | _sample.ReparamSample:
    """Reparameterized sample of a full-covariance Gaussian N(mu, L L^T), in one fused kernel.

    Returns ``z = mu + L @ eps`` with ``eps ~ N(0, I)``, differentiable in ``mu``,
    ``scale_tril`` (the gradient is zero above the diagonal) and ``eps`` when given. Only the
    lower triangle of ``scale_tril`` is read. The noise is generated inside the kernel and
    regenerated in the backward pass; nothing but the inputs is kept for backward.

    Args:
        mu: mean ``[..., D]``; float32, float64, float16 or bfloat16.
        scale_tril: lower-triangular factor ``[..., D, D]`` (e.g. a Cholesky factor); its
            batch dims broadcast with those of ``mu``. Same dtype and device as ``mu``.
        num_samples: K samples per distribution: z is ``[K, *batch, D]``; mu and L are read
            in place (never copied K times) and their gradients are summed over the K samples.
        eps: optional explicit noise of the sample's shape ``[*batch, D]`` (``[K, ...]``).
        generator: torch.Generator to draw the stream from (default: the device's).
        seed: explicit stream seed in [0, 2**64): the same (seed, offset) gives the same noise
            on every backend, and the same eps as ``sample_diag`` for a sample of that shape.
        offset: stream offset in [0, 2**64), used with ``seed``.
        backend: "auto", "cpu", "cuda", "triton" or "reference" (see README, "Backends").
        return_stats: also return, from the same pass, with ``ld = sum_i log|L_ii|``:
            ``kl = 0.5 * (|tril L|_F^2 + |mu|^2 - D) - ld`` (KL to N(0, I)) and
            ``log_q = -0.5 * |eps|^2 - ld - 0.5 * D * log 2pi`` (log q(z)).
        stl: with return_stats, log_q's gradient flows only through z ("sticking the
            landing"): the same value, without the parameters' direct (zero-mean) term.

    Returns:
        z of shape ``[*batch, D]`` (the broadcast batch shape; ``[K, ...]`` with num_samples),
        contiguous, of mu's dtype; with return_stats a ``ReparamSample(z, kl, log_q)``: kl
        ``[*batch]``, log_q ``[K, *batch]`` or ``[*batch]``.

    Example:
        >>> mu, L = torch.zeros(4, 3), torch.eye(3)
        >>> z = sample_chol(mu, L, seed=1234)
    """
    stl = stl is not False and _stl.check_stl(stl, return_stats, _WHERE) and _stl.landing_needed()
    out = sample("chol", _checked, mu, scale_tril, num_samples=num_samples, eps=eps,
                 generator=generator, seed=seed, offset=offset, backend=backend,
                 return_stats=return_stats, with_eps=stl)  # fmt: skip
    return _stl.chol_log_q(*out, scale_tril) if stl else out


def _checked(
    mu: object,
    scale_tril: object,
    num_samples: object,
    eps: torch.Tensor | None,
    generator: object,
    seed: object,
    offset: object,
    return_stats: object,
) -> tuple:
    """sample_chol's arguments checked, with clear errors: (mu, expanded over num_samples,
    the sample's shape, num_samples, seed, offset)."""
    mu = _checks.check_float_tensor(mu, "mu", _WHERE)
    _checks.check_not_meta(mu, "mu", _WHERE)
    _checks.check_flag(return_stats, "return_stats", _WHERE)
    scale_tril = _checks.check_float_tensor(scale_tril, "scale_tril", _WHERE)
    _checks.check_same_dtype_device(mu, "mu", scale_tril, "scale_tril", _WHERE)
    shape = _checks.chol_sample_shape(mu, scale_tril, _WHERE)
    num_samples = _sample.check_num_samples(num_samples, _WHERE)
    if num_samples is not None:
        # A stride-0 view: the kernels broadcast it, so mu and L are never copied K times.
        # The kernels read rows of unit stride: a strided mu is made so once, before the view.
        if mu.size(-1) > 1 and mu.stride(-1) != 1:
            mu = mu.contiguous()
        shape = torch.Size((num_samples, *shape))
        mu = mu.expand(shape)
    desc = "[num_samples, *batch, D]" if num_samples else "[*batch, D]"
    seed, offset = _seed.check_stream_args(
        mu, eps, shape, f"the sample's shape {desc}", seed, offset, generator, _WHERE
    )
    return mu, shape, num_samples, seed, offset
