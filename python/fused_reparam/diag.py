"""The diagonal Gaussian op: z = mu + exp(0.5 * logvar) * eps, eps ~ N(0, I) made in-kernel."""

from __future__ import annotations

import torch

from . import _backend, _checks, _extension, _seed
from ._diag_autograd import register_diag_op_pair
from .reference import diag as _reference

_WHERE = "fused_reparam.sample_diag"

if _extension.has_extension():
    register_diag_op_pair("fused_reparam::diag_rsample", "fused_reparam::diag_rsample_backward")


def sample_diag(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    offset: int = 0,
    backend: str = "auto",
) -> torch.Tensor:
    """Reparameterized sample of a diagonal Gaussian from its log-variance, in one fused kernel.

    Returns ``z = mu + exp(0.5 * logvar) * eps`` with ``eps ~ N(0, I)``, differentiable in
    ``mu``, ``logvar`` (and ``eps`` when given). The noise is generated inside the kernel and
    regenerated in the backward pass, so nothing but the inputs is kept for backward.

    Args:
        mu: mean, any shape; float32, float64, float16 or bfloat16.
        logvar: log-variance, broadcastable with ``mu`` and of the same dtype and device.
        eps: optional explicit noise of the broadcast shape (then no noise is drawn and
            ``eps`` receives a gradient if it requires one).
        generator: torch.Generator to draw the stream from (default: the device's default
            generator, so ``torch.manual_seed`` is respected).
        seed: explicit stream seed in [0, 2**64): the same (seed, offset) gives the same noise
            on every backend (DESIGN.md section 4).
        offset: stream offset in [0, 2**64), used with ``seed``.
        backend: "auto", "cpu", "cuda", "triton" or "reference" (see README, "Backends").

    Returns:
        z with the broadcast shape of ``mu`` and ``logvar``, contiguous, of their dtype.

    Example:
        >>> mu, logvar = torch.zeros(4, 8), torch.zeros(4, 8)
        >>> z = sample_diag(mu, logvar, seed=1234)
    """
    mu = _checks.check_float_tensor(mu, "mu", _WHERE)
    logvar = _checks.check_float_tensor(logvar, "logvar", _WHERE)
    _checks.check_same_dtype_device(mu, "mu", logvar, "logvar", _WHERE)
    shape = _checks.broadcast_shape(mu, "mu", logvar, "logvar", _WHERE)
    _seed.check_stream_args(
        mu, eps, shape, "the broadcast shape of mu and logvar", seed, offset, generator, _WHERE
    )

    which = _backend.resolve_backend(backend, mu.device, "diag_rsample")
    if which == "reference":
        if eps is None:
            if seed is None:
                seed, offset = _seed.draw_seed_offset(generator, mu.device)
            eps = _reference.diag_noise(shape, seed, offset, mu.dtype, mu.device)
        return _reference.diag_rsample(mu, logvar, eps)
    seed_offset = _seed.fused_seed_offset(which, eps, seed, offset, generator, mu.device)
    if which == "triton":
        z, _used = torch.ops.fused_reparam.triton_diag_rsample(mu, logvar, eps, seed_offset)
        return z
    z, _used = torch.ops.fused_reparam.diag_rsample(mu, logvar, eps, seed_offset, generator)
    return z
