"""The Cholesky (full-covariance) Gaussian op: z = mu + L @ eps, eps ~ N(0, I) made in-kernel."""

from __future__ import annotations

import torch

from . import _backend, _checks, _extension, _seed
from ._chol_autograd import register_chol_op_pair
from .reference import chol as _reference

_WHERE = "fused_reparam.sample_chol"

if _extension.has_extension():
    register_chol_op_pair("fused_reparam::chol_rsample", "fused_reparam::chol_rsample_backward")


def sample_chol(
    mu: torch.Tensor,
    scale_tril: torch.Tensor,
    *,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    offset: int = 0,
    backend: str = "auto",
) -> torch.Tensor:
    """Reparameterized sample of a full-covariance Gaussian N(mu, L L^T), in one fused kernel.

    Returns ``z = mu + L @ eps`` with ``eps ~ N(0, I)``, differentiable in ``mu``,
    ``scale_tril`` (the gradient is zero above the diagonal) and ``eps`` when given. Only the
    lower triangle of ``scale_tril`` is read. The noise is generated inside the kernel and
    regenerated in the backward pass; nothing but the inputs is kept for backward.

    Args:
        mu: mean ``[..., D]``; float32, float64, float16 or bfloat16.
        scale_tril: lower-triangular factor ``[..., D, D]`` (e.g. a Cholesky factor); its
            batch dims broadcast with those of ``mu``. Same dtype and device as ``mu``.
        eps: optional explicit noise of the sample's shape ``[*batch, D]``.
        generator: torch.Generator to draw the stream from (default: the device's).
        seed: explicit stream seed in [0, 2**64): the same (seed, offset) gives the same noise
            on every backend, and the same eps as ``sample_diag`` for a sample of that shape.
        offset: stream offset in [0, 2**64), used with ``seed``.
        backend: "auto", "cpu", "cuda", "triton" or "reference" (see README, "Backends").

    Returns:
        z of shape ``[*batch, D]`` (the broadcast batch shape), contiguous, of mu's dtype.

    Example:
        >>> mu, L = torch.zeros(4, 3), torch.eye(3)
        >>> z = sample_chol(mu, L, seed=1234)
    """
    mu = _checks.check_float_tensor(mu, "mu", _WHERE)
    scale_tril = _checks.check_float_tensor(scale_tril, "scale_tril", _WHERE)
    _checks.check_same_dtype_device(mu, "mu", scale_tril, "scale_tril", _WHERE)
    shape = _checks.chol_sample_shape(mu, scale_tril, _WHERE)
    _seed.check_stream_args(
        mu, eps, shape, "the sample's shape [*batch, D]", seed, offset, generator, _WHERE
    )

    which = _backend.resolve_backend(backend, mu.device, "chol_rsample")
    if which == "reference":
        if eps is None:
            if seed is None:
                seed, offset = _seed.draw_seed_offset(generator, mu.device)
            eps = _reference.chol_noise(shape, seed, offset, mu.dtype, mu.device)
        return _reference.chol_rsample(mu, scale_tril, eps)
    seed_offset = _seed.fused_seed_offset(which, eps, seed, offset, generator, mu.device)
    if which == "triton":
        z, _used = torch.ops.fused_reparam.triton_chol_rsample(mu, scale_tril, eps, seed_offset)
        return z
    z, _used = torch.ops.fused_reparam.chol_rsample(mu, scale_tril, eps, seed_offset, generator)
    return z
