"""``Logistic``: the logistic distribution (torch has none), with ``rsample`` by
:func:`fused_reparam.sample_diag` (``scale="std"``, ``noise="logistic"``)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import distributions as td
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from ._fused_sample import NO_SAMPLE_SHAPE, SampleShape, loc_scale_rsample
from ._pyro import PYRO_BASES


class Logistic(td.Distribution, *PYRO_BASES):
    r"""The logistic distribution ``Logistic(loc, scale)``, sampled by one fused kernel.

    The density is ``p(x) = exp(-y) / (s (1 + exp(-y))^2)`` with ``y = (x - loc) / s``, ``s =
    scale``: ``cdf`` is ``sigmoid(y)``, ``icdf(p)`` is ``loc + s * logit(p)``, the mean,
    median and mode are ``loc``, the variance ``pi^2 s^2 / 3``, the entropy ``log s + 2``.
    ``log_prob`` is ``-|y| - 2 softplus(-|y|) - log s``, accurate far in both tails. A scalar
    event; ``batch_shape`` is the broadcast shape of ``loc`` and ``scale``. ``rsample`` is one
    call of :func:`fused_reparam.sample_diag` with ``scale="std"`` and ``noise="logistic"``
    (``z = loc + scale * eps``, ``eps = logit(u)`` made in the kernel from the Philox stream
    and made again in backward) and ``num_samples = prod(sample_shape)``; ``sample`` is the
    same draw without gradients.

    Args:
        loc: the location (a tensor or a number).
        scale: the scale ``s`` > 0, broadcastable with ``loc``.
        validate_args: as in ``torch.distributions``: check that ``loc`` is real, ``scale``
            positive, and values given to ``log_prob`` and ``cdf`` real and of a
            broadcastable shape (default: torch's global setting).
        generator: a ``torch.Generator`` for the noise (default: the device's default
            generator, so ``torch.manual_seed`` is respected).
        backend: the :func:`~fused_reparam.sample_diag` backend ("auto", "cpu", "cuda",
            "triton", "reference").

    Example:
        >>> p = Logistic(torch.zeros(4, 3), torch.ones(3))
        >>> z = p.rsample((2,))                    # [2, 4, 3], one fused kernel
        >>> p.log_prob(z).shape
        torch.Size([2, 4, 3])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor | float,
        scale: torch.Tensor | float,
        validate_args: bool | None = None,
        *,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)
        self.generator = generator
        self.backend = backend

    def expand(self, batch_shape: SampleShape, _instance: Logistic | None = None) -> Logistic:
        """This distribution with its batch dims expanded to ``batch_shape`` (views of the
        parameters, no copy), of the same class, generator and backend."""
        new = self._get_checked_instance(Logistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        td.Distribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        new.generator = self.generator
        new.backend = self.backend
        return new

    @property
    def mean(self) -> torch.Tensor:
        """``loc``."""
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        """``loc``."""
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        """``pi^2 scale^2 / 3``."""
        return (math.pi**2 / 3) * self.scale.pow(2)

    @property
    def stddev(self) -> torch.Tensor:
        """``pi scale / sqrt(3)``."""
        return (math.pi / math.sqrt(3)) * self.scale

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``-|y| - 2 softplus(-|y|) - log scale``, ``y = (value - loc) / scale`` (the log
        density is even in ``y``; no large terms cancel)."""
        if self._validate_args:
            self._validate_sample(value)
        y = ((value - self.loc) / self.scale).abs()
        return -y - 2 * torch.nn.functional.softplus(-y) - self.scale.log()

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """``sigmoid((value - loc) / scale)``."""
        if self._validate_args:
            self._validate_sample(value)
        return torch.sigmoid((value - self.loc) / self.scale)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        """``loc + scale * logit(value)`` (``-inf`` at 0, ``inf`` at 1)."""
        return self.loc + self.scale * torch.logit(value)

    def entropy(self) -> torch.Tensor:
        """``log scale + 2`` (nats), of the batch shape."""
        return self.scale.log() + 2

    def rsample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape]``, ``loc + scale * eps``,
        from one fused kernel, differentiable in ``loc`` and ``scale``."""
        return loc_scale_rsample(self, "logistic", sample_shape)

    def sample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A sample ``[*sample_shape, *batch_shape]`` drawn as :meth:`rsample`, without
        gradients."""
        with torch.no_grad():
            return self.rsample(sample_shape)
