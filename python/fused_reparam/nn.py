"""``torch.nn`` modules for the reparameterization step of VAEs and stochastic policies.

- :class:`Reparameterize`: ``forward(mu, s)`` -> ``mu + sigma(s) * eps`` in training (one
  fused kernel, :func:`fused_reparam.sample_diag`; sigma = exp(0.5 * s) by default, s the
  log-variance), ``mu`` in eval.
- :class:`CholReparameterize`: ``forward(mu, scale_tril)`` -> ``mu + L @ eps`` in training
  (:func:`fused_reparam.sample_chol`), ``mu`` in eval.

In eval mode (unless ``sample_in_eval=True``) the modules return the mean, as if eps were 0:
``z`` is ``mu`` broadcast to the sample's shape (a view, no copy), and with
``return_stats=True`` ``kl`` is the same KL and ``log_q`` is ``log q(mu)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn as torch_nn

from . import _checks, _scales
from ._sample import ReparamSample, check_num_samples, check_stats_shape
from .chol import sample_chol
from .diag import sample_diag
from .distributions import (
    chol_kl_to_standard_normal,
    chol_log_q_at_mean,
    diag_kl_to_standard_normal,
    diag_log_q_at_mean,
)
from .reference import scale as _ref_scale

__all__ = ["CholReparameterize", "Reparameterize"]


def _check_pair(
    a: object, a_name: str, b: object, b_name: str, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ops' input checks, for the eval path (which runs no op): floating tensors of one
    dtype and device."""
    a = _checks.check_float_tensor(a, a_name, where)
    b = _checks.check_float_tensor(b, b_name, where)
    _checks.check_same_dtype_device(a, a_name, b, b_name, where)
    return a, b


class _ReparameterizeBase(torch_nn.Module):
    """Options shared by the two modules."""

    def __init__(
        self,
        num_samples: int | None = None,
        *,
        sample_in_eval: bool = False,
        return_stats: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.num_samples = check_num_samples(num_samples, type(self).__name__)
        self.sample_in_eval = bool(sample_in_eval)
        self.return_stats = bool(return_stats)
        self.backend = backend

    def extra_repr(self) -> str:
        """The options, for ``print(module)``."""
        return (
            f"num_samples={self.num_samples}, sample_in_eval={self.sample_in_eval}, "
            f"return_stats={self.return_stats}, backend={self.backend!r}"
        )

    def _samples(self) -> bool:
        return self.training or self.sample_in_eval

    def _mean(
        self,
        mu: torch.Tensor,
        param: torch.Tensor,
        shape: torch.Size,
        kl_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        log_q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        where: str,
    ) -> torch.Tensor | ReparamSample:
        """The eval-mode result, as if eps = 0: mu broadcast to the sample's ``shape`` (K
        times with num_samples; a view), and with return_stats the KL and log q(mu)."""
        k = () if self.num_samples is None else (self.num_samples,)
        z = mu.expand((*k, *shape))
        if not self.return_stats:
            return z
        check_stats_shape(shape, where)
        log_q = log_q_fn(mu, param)
        return ReparamSample(z, kl_fn(mu, param), log_q.expand((*k, *log_q.shape)))


class Reparameterize(_ReparameterizeBase):
    r"""The VAE reparameterization ``z = mu + sigma * eps`` as a module, sigma from the
    second input by ``scale`` (the log-variance by default: ``exp(0.5 * logvar)``).

    In training mode ``forward`` is :func:`fused_reparam.sample_diag` (one fused kernel
    forward and backward, noise from torch's generator). In eval mode it returns the mean
    ``mu`` (broadcast with the second input; a view, no copy), unless ``sample_in_eval=True``.

    Args:
        scale: what the second input holds, as :func:`~fused_reparam.sample_diag`'s
            ``scale``: ``"logvar"`` (default), ``"log_std"``, ``"std"`` or ``"softplus"``.
        min_scale: a lower bound added to sigma (>= 0).
        num_samples: draw K samples per input: ``z`` is ``[K, *shape]`` (IWAE); in eval mode
            ``mu`` is expanded to that shape.
        sample_in_eval: sample in eval mode too (default: return the mean).
        return_stats: return ``ReparamSample(z, kl, log_q)`` from the same fused pass:
            ``kl = KL(q || N(0, I))`` ``[*batch]`` and ``log_q = log q(z)`` ``[K, *batch]`` or
            ``[*batch]`` (sums over the last dim). In eval mode ``log_q = log q(mu)``.
        backend: the :func:`~fused_reparam.sample_diag` backend.

    Example:
        >>> enc = torch.nn.Linear(16, 2 * 8)
        >>> reparam = Reparameterize(return_stats=True)
        >>> mu, logvar = enc(torch.randn(4, 16)).chunk(2, dim=-1)
        >>> z, kl, log_q = reparam(mu, logvar)        # z [4, 8], kl [4]: one fused kernel
        >>> _ = reparam.eval()
        >>> torch.equal(reparam(mu, logvar).z, mu)    # the mean in eval mode
        True
    """

    def __init__(
        self,
        num_samples: int | None = None,
        *,
        scale: str = "logvar",
        min_scale: float = 0.0,
        sample_in_eval: bool = False,
        return_stats: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__(num_samples, sample_in_eval=sample_in_eval, return_stats=return_stats,
                         backend=backend)  # fmt: skip
        self._kind, self.min_scale = _scales.check_scale(
            scale, min_scale, "fused_reparam.nn.Reparameterize"
        )
        self.scale = scale

    def extra_repr(self) -> str:
        """The options, for ``print(module)``."""
        return f"{super().extra_repr()}, scale={self.scale!r}, min_scale={self.min_scale}"

    def forward(self, mu: torch.Tensor, s: torch.Tensor) -> torch.Tensor | ReparamSample:
        """``z`` (or ``ReparamSample(z, kl, log_q)`` with ``return_stats``) for ``mu`` and
        the scale input ``s`` (the log-variance by default) of broadcastable shapes."""
        if self._samples():
            return sample_diag(
                mu,
                s,
                scale=self.scale,
                min_scale=self.min_scale,
                num_samples=self.num_samples,
                backend=self.backend,
                return_stats=self.return_stats,
            )
        where = "fused_reparam.nn.Reparameterize"
        mu, s = _check_pair(mu, "mu", s, "s", where)
        shape = _checks.broadcast_shape(mu, "mu", s, "s", where)
        if self.return_stats and (self._kind, self.min_scale) != (_ref_scale.LOGVAR, 0.0):
            # The closed forms take the log-variance: 2 log sigma, in the compute type.
            ct = torch.float64 if s.dtype == torch.float64 else torch.float32
            sc = s.to(ct)
            sig = _ref_scale.sigma(sc, self._kind, self.min_scale)
            s = _ref_scale.log_var(sc, sig, self._kind, self.min_scale)
        kl_fn, log_q_fn = diag_kl_to_standard_normal, diag_log_q_at_mean
        return self._mean(mu, s, shape, kl_fn, log_q_fn, where)


class CholReparameterize(_ReparameterizeBase):
    r"""The full-covariance reparameterization ``z = mu + L @ eps`` as a module.

    In training mode ``forward(mu, scale_tril)`` is :func:`fused_reparam.sample_chol` (only
    the lower triangle of ``scale_tril`` is read); in eval mode it returns ``mu`` broadcast to
    ``[*batch, D]``, unless ``sample_in_eval=True``. Options as in :class:`Reparameterize`;
    with ``return_stats`` the KL and ``log_q`` use ``sum_i log|L_ii|``.

    Example:
        >>> reparam = CholReparameterize(num_samples=5)
        >>> mu, L = torch.zeros(4, 3), torch.eye(3)
        >>> reparam(mu, L).shape
        torch.Size([5, 4, 3])
    """

    def forward(self, mu: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor | ReparamSample:
        """``z`` (or ``ReparamSample(z, kl, log_q)``) for ``mu [..., D]`` and
        ``scale_tril [..., D, D]`` with broadcastable batch dims."""
        if self._samples():
            return sample_chol(
                mu,
                scale_tril,
                num_samples=self.num_samples,
                backend=self.backend,
                return_stats=self.return_stats,
            )
        where = "fused_reparam.nn.CholReparameterize"
        mu, scale_tril = _check_pair(mu, "mu", scale_tril, "scale_tril", where)
        shape = _checks.chol_sample_shape(mu, scale_tril, where)
        kl_fn, log_q_fn = chol_kl_to_standard_normal, chol_log_q_at_mean
        return self._mean(mu, scale_tril, shape, kl_fn, log_q_fn, where)
