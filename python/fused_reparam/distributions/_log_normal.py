"""``LogNormal``: torch's, over the fused :class:`Normal`, so ``rsample`` is the exp of one
fused sample."""

from __future__ import annotations

import torch
from torch import distributions as td

from ._fused_sample import SampleShape
from ._normal import Normal
from ._pyro import PYRO_BASES


class LogNormal(td.LogNormal, *PYRO_BASES):
    r"""``torch.distributions.LogNormal(loc, scale)`` whose base distribution is the fused
    :class:`Normal`: ``rsample`` is ``exp`` of one :func:`fused_reparam.sample_diag` call.

    A subclass of torch's: ``log_prob``, ``entropy``, the moments, ``support``,
    ``arg_constraints`` and validation are torch's. ``base_dist`` is the fused ``Normal(loc,
    scale)`` and carries ``generator`` and ``backend``.

    Args:
        loc: the mean of ``log X`` (a tensor or a number).
        scale: the standard deviation of ``log X``, > 0, broadcastable with ``loc``.
        validate_args: as in ``torch.distributions``.
        generator: a ``torch.Generator`` for the noise (default: the device's).
        backend: the :func:`~fused_reparam.sample_diag` backend.

    Example:
        >>> p = LogNormal(torch.zeros(3), torch.full((3,), 0.5))
        >>> p.rsample((4,)).shape                  # exp of one fused sample
        torch.Size([4, 3])
    """

    base_dist: Normal

    def __init__(
        self,
        loc: torch.Tensor | float,
        scale: torch.Tensor | float,
        validate_args: bool | None = None,
        *,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        base = Normal(loc, scale, validate_args=validate_args, generator=generator, backend=backend)
        # torch's LogNormal.__init__ builds torch's Normal; this is the rest of it.
        td.TransformedDistribution.__init__(
            self, base, td.ExpTransform(), validate_args=validate_args
        )

    def expand(self, batch_shape: SampleShape, _instance: LogNormal | None = None) -> LogNormal:
        """This distribution with its batch dims expanded to ``batch_shape``: the same class,
        over the fused ``Normal`` expanded (views, same generator and backend)."""
        new = self._get_checked_instance(LogNormal, _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def generator(self) -> torch.Generator | None:
        """The base distribution's generator."""
        return self.base_dist.generator

    @property
    def backend(self) -> str:
        """The base distribution's backend."""
        return self.base_dist.backend
