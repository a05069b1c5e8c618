"""``Gumbel``: torch's Gumbel distribution, with ``rsample`` by
:func:`fused_reparam.sample_diag` (``scale="std"``, ``noise="gumbel"``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import distributions as td

from ._fused_sample import NO_SAMPLE_SHAPE, SampleShape, loc_scale_rsample
from ._pyro import PYRO_BASES


class Gumbel(td.Gumbel, *PYRO_BASES):
    r"""``torch.distributions.Gumbel(loc, scale)`` whose ``rsample`` is one fused kernel.

    A subclass of torch's (a ``TransformedDistribution`` of a uniform there): ``log_prob``,
    ``cdf``, ``icdf``, ``entropy``, the moments, ``arg_constraints`` (``loc`` real, ``scale``
    positive), ``support``, ``base_dist``, ``transforms`` and argument validation are torch's,
    unchanged. Only the draws differ: ``rsample(sample_shape)`` is one call of
    :func:`fused_reparam.sample_diag` with ``scale="std"`` and ``noise="gumbel"`` (``z = loc +
    scale * eps``, ``eps`` a standard Gumbel variate made in the kernel from the Philox stream
    and made again in backward; the uniform ``base_dist`` is not sampled) and ``num_samples =
    prod(sample_shape)``. ``sample`` is the same draw without gradients. Unlike torch's, an
    instance unpickles with working ``transforms`` (so ``cdf`` and ``icdf``).

    Args:
        loc: the location (the mode; a tensor or a number).
        scale: the scale ``beta`` > 0, broadcastable with ``loc``.
        validate_args: as in ``torch.distributions`` (default: torch's global setting).
        generator: a ``torch.Generator`` for the noise (default: the device's default
            generator, so ``torch.manual_seed`` is respected).
        backend: the :func:`~fused_reparam.sample_diag` backend ("auto", "cpu", "cuda",
            "triton", "reference").

    Example:
        >>> p = Gumbel(torch.zeros(4, 3), torch.ones(3))
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

    def expand(self, batch_shape: SampleShape, _instance: Gumbel | None = None) -> Gumbel:
        """This distribution with its batch dims expanded to ``batch_shape`` (views of the
        parameters, no copy), of the same class, generator and backend."""
        new = self._get_checked_instance(Gumbel, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.generator = self.generator
        new.backend = self.backend
        return new

    def rsample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape]``, ``loc + scale * eps``,
        from one fused kernel, differentiable in ``loc`` and ``scale``."""
        return loc_scale_rsample(self, "gumbel", sample_shape)

    def sample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A sample ``[*sample_shape, *batch_shape]`` drawn as :meth:`rsample`, without
        gradients."""
        with torch.no_grad():
            return self.rsample(sample_shape)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's transforms pickle without their cached inverses, and an inverse transform
        # (torch's Gumbel uses ExpTransform().inv) then loses the transform it inverts: they
        # are rebuilt here, as torch's __init__ makes them, from the (broadcast) parameters.
        self.__dict__.update(state)
        self.transforms = td.Gumbel(self.loc, self.scale, validate_args=False).transforms
