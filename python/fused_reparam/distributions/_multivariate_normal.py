"""``MultivariateNormal``: torch's, with ``rsample`` by :func:`fused_reparam.sample_chol`."""

from __future__ import annotations

import torch
from torch import distributions as td

from .._sample import ReparamSample
from ..chol import sample_chol
from ._closed_forms import chol_kl_to_standard_normal
from ._fused_sample import NO_SAMPLE_SHAPE, SampleShape, fused_sample
from ._pyro import PYRO_BASES


class MultivariateNormal(td.MultivariateNormal, *PYRO_BASES):
    r"""``torch.distributions.MultivariateNormal`` whose ``rsample`` is one fused kernel
    (:func:`fused_reparam.sample_chol` with the Cholesky factor).

    Construct it as torch's (``covariance_matrix``, ``precision_matrix`` or ``scale_tril``);
    the factor is computed as torch computes it, and ``log_prob``, ``entropy``, the moments,
    ``expand`` and ``kl_divergence`` are torch's. Only the lower triangle of the factor is
    read by ``rsample``, as by torch's ``log_prob``.

    Args:
        loc, covariance_matrix, precision_matrix, scale_tril, validate_args: as in
            ``torch.distributions.MultivariateNormal``.
        generator: a ``torch.Generator`` for the noise of ``rsample`` (default: the device's).
        backend: the :func:`~fused_reparam.sample_chol` backend.

    Example:
        >>> L = torch.linalg.cholesky(torch.eye(3) + 0.5)
        >>> p = MultivariateNormal(torch.zeros(5, 3), scale_tril=L)
        >>> p.rsample((2,)).shape
        torch.Size([2, 5, 3])
    """

    def __init__(
        self,
        loc: torch.Tensor,
        covariance_matrix: torch.Tensor | None = None,
        precision_matrix: torch.Tensor | None = None,
        scale_tril: torch.Tensor | None = None,
        validate_args: bool | None = None,
        *,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(loc, covariance_matrix, precision_matrix, scale_tril, validate_args)
        self.generator = generator
        self.backend = backend

    def expand(
        self, batch_shape: SampleShape, _instance: MultivariateNormal | None = None
    ) -> MultivariateNormal:
        """This distribution with batch dims expanded to ``batch_shape`` (views, no copy)."""
        new = self._get_checked_instance(MultivariateNormal, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.generator = self.generator
        new.backend = self.backend
        return new

    def rsample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape, D]`` from one fused
        kernel, ``loc + L @ eps``, differentiable in ``loc`` and the factor."""
        return self._sample(sample_shape, return_stats=False)  # type: ignore[return-value]

    def rsample_with_stats(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> ReparamSample:
        """``ReparamSample(z, kl, log_q)`` from one fused call: ``kl = KL(self || N(0, I))``
        ``[*batch_shape]``, ``log_q = log_prob(z)`` ``[*sample_shape, *batch_shape]``."""
        return self._sample(sample_shape, return_stats=True)  # type: ignore[return-value]

    def rsample_and_log_prob(
        self, sample_shape: SampleShape = NO_SAMPLE_SHAPE
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log_prob(z))`` from one fused call (the total derivative, as
        ``self.log_prob(self.rsample())``)."""
        out = self.rsample_with_stats(sample_shape)
        return out.z, out.log_q

    def _sample(self, sample_shape: SampleShape, return_stats: bool) -> object:
        kl_fn, factor = chol_kl_to_standard_normal, self._unbroadcasted_scale_tril
        return fused_sample(self, sample_chol, kl_fn, factor, sample_shape, return_stats)

    def kl_to_standard_normal(self) -> torch.Tensor:
        """``KL(self || N(0, I))``, shape ``batch_shape``, in plain torch (no noise drawn)."""
        return chol_kl_to_standard_normal(self.loc, self._unbroadcasted_scale_tril)
