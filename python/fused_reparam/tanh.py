"""The tanh-squashed Gaussian of SAC policies in one fused op: the action
``low + (high - low) * (tanh(u) + 1) / 2`` of ``u = mu + sigma * eps`` and its log-density,
from the diagonal op with the extras in its squash mode."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from . import _checks, _scales, _stl
from ._dispatch import sample
from .diag import _checked

_WHERE = "fused_reparam.sample_tanh_normal"


class TanhSample(NamedTuple):
    """A squashed sample and its log-density, from :func:`sample_tanh_normal`.

    action: ``low + (high - low) * (tanh(u) + 1) / 2``, the sample's shape.
    log_prob: log-density of the action, summed over the last dim: ``[*batch]`` (``[K,
    *batch]`` with ``num_samples=K``).
    """

    action: torch.Tensor
    log_prob: torch.Tensor


def _bound(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{_WHERE}: {name} must be a finite float, got {value!r}")
    return float(value)


def sample_tanh_normal(
    mu: torch.Tensor,
    s: torch.Tensor,
    *,
    scale: str = "log_std",
    min_scale: float = 0.0,
    low: float = -1.0,
    high: float = 1.0,
    num_samples: int | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    offset: int = 0,
    backend: str = "auto",
    stl: bool = False,
) -> TanhSample:
    """A tanh-squashed diagonal Gaussian sample and its log-density in one fused kernel, as a
    SAC policy draws its action.

    ``u = mu + sigma * eps`` (sigma from ``s`` by ``scale``, ``exp(s)`` by default: ``s`` is
    the log standard deviation), ``action = low + (high - low) * (tanh(u) + 1) / 2`` and

        log_prob = sum_d [log N(u; mu, sigma) - log(1 - tanh(u)^2) - log((high - low) / 2)]

    with ``log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))``: exact where ``tanh(u)``
    rounds to +-1, never through ``atanh(action)`` and with no epsilon. Both outputs'
    gradients come from one backward kernel that makes eps again.

    Args:
        mu: mean of u, ``[*batch, D]`` (D, the action dim, is the last dim).
        s: the scale input, broadcastable with ``mu``, as ``scale`` says (see
            :func:`~fused_reparam.sample_diag`).
        scale: ``"log_std"`` (default), ``"logvar"``, ``"std"`` or ``"softplus"``.
        min_scale: a lower bound added to sigma, >= 0.
        low, high: the action's bounds (floats, ``low < high``).
        num_samples, eps, generator, seed, offset, backend: as for
            :func:`~fused_reparam.sample_diag`.
        stl: log_prob's gradient flows only through u ("sticking the landing"): the
            Gaussian's parameters' direct term is dropped. Then the Gaussian and its log q
            are the fused op's and the squash is a few torch ops.

    Returns:
        ``TanhSample(action, log_prob)``.

    Example:
        >>> mu, log_std = torch.zeros(256, 6), torch.full((256, 6), -1.0)
        >>> action, log_prob = sample_tanh_normal(mu, log_std)   # [256, 6], [256]
    """
    kind, min_scale = _scales.check_scale(scale, min_scale, _WHERE)
    low, high = _bound(low, "low"), _bound(high, "high")
    if not low < high:
        raise ValueError(f"{_WHERE}: low must be below high, got low = {low}, high = {high}")
    if all(isinstance(t, torch.Tensor) and t.dim() == 0 for t in (mu, s)):
        raise ValueError(f"{_WHERE}: mu and s need at least one dim (the last is the action's)")
    stl = _checks.check_flag(stl, "stl", _WHERE) and _stl.landing_needed()
    extra = (kind, min_scale) if stl else (kind, min_scale, True, low, high)
    out = sample("diag", functools.partial(_checked, where=_WHERE), mu, s,
                 num_samples=num_samples, eps=eps, generator=generator, seed=seed,
                 offset=offset, backend=backend, return_stats=True, extra=extra,
                 with_eps=stl)  # fmt: skip
    if not stl:
        return TanhSample(out.z, out.log_q)
    u = out[0].z
    log_q = _stl.diag_log_q(*out, s, kind, min_scale).log_q
    half = 0.5 * (high - low)
    log_dtanh = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
    log_prob = log_q - (log_dtanh + math.log(half)).sum(-1).to(log_q.dtype)
    return TanhSample(low + half * (torch.tanh(u) + 1.0), log_prob)
