"""``Normal``: torch's univariate Gaussian, with ``rsample`` by
:func:`fused_reparam.sample_diag` (``scale="std"``)."""

from __future__ import annotations

import torch
from torch import distributions as td

from ._fused_sample import NO_SAMPLE_SHAPE, SampleShape, loc_scale_rsample
from ._pyro import PYRO_BASES


class Normal(td.Normal, *PYRO_BASES):
    r"""``torch.distributions.Normal(loc, scale)`` whose ``rsample`` is one fused kernel.

    A subclass of torch's: ``log_prob``, ``cdf``, ``icdf``, ``entropy``, the moments,
    ``arg_constraints`` (``loc`` real, ``scale`` positive), ``support``, argument validation
    and ``kl_divergence`` are torch's, unchanged. ``rsample(sample_shape)`` is one call of
    :func:`fused_reparam.sample_diag` with ``scale="std"`` (``z = loc + scale * eps``, the
    noise made in the kernel and made again in backward) and ``num_samples =
    prod(sample_shape)``, so ``loc`` and ``scale`` are read in place, never copied per sample.
    ``sample`` is the same draw without gradients.

    Args:
        loc: the mean (a tensor or a number).
        scale: the standard deviation, > 0, broadcastable with ``loc``.
        validate_args: as in ``torch.distributions`` (default: torch's global setting).
        generator: a ``torch.Generator`` for the noise (default: the device's default
            generator, so ``torch.manual_seed`` is respected).
        backend: the :func:`~fused_reparam.sample_diag` backend ("auto", "cpu", "cuda",
            "triton", "reference").

    Example:
        >>> p = Normal(torch.zeros(4, 3), torch.ones(3))
        >>> z = p.rsample((2,))                    # [2, 4, 3], one fused kernel
        >>> p.log_prob(z).shape
        torch.Size([2, 4, 3])
    """

    def __init__(
        self,
        loc: torch.Tensor | float,
        scale: torch.Tensor | float,
        validate_args: bool | None = None,
        *,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(loc, scale, validate_args=validate_args)
        self.generator = generator
        self.backend = backend

    def expand(self, batch_shape: SampleShape, _instance: Normal | None = None) -> Normal:
        """This distribution with its batch dims expanded to ``batch_shape`` (views of the
        parameters, no copy), of the same class, generator and backend."""
        new = self._get_checked_instance(Normal, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.generator = self.generator
        new.backend = self.backend
        return new

    def rsample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape]``, ``loc + scale * eps``,
        from one fused kernel, differentiable in ``loc`` and ``scale``."""
        return loc_scale_rsample(self, "normal", sample_shape)

    def sample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A sample ``[*sample_shape, *batch_shape]`` drawn as :meth:`rsample`, without
        gradients."""
        with torch.no_grad():
            return self.rsample(sample_shape)
