"""``Gumbel``: torch's Gumbel distribution, with ``rsample`` by
:func:`fused_reparam.sample_diag` (``scale="std"``, ``noise="gumbel"``)."""

from __future__ import annotations

from typing import Any

from torch import distributions as td

from ._fused_sample import FusedLocScale
from ._pyro import PYRO_BASES


class Gumbel(FusedLocScale, td.Gumbel, *PYRO_BASES):
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

    _noise = "gumbel"

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's transforms pickle without their cached inverses, and an inverse transform
        # (torch's Gumbel uses ExpTransform().inv) then loses the transform it inverts: they
        # are rebuilt here, as torch's __init__ makes them, from the (broadcast) parameters.
        self.__dict__.update(state)
        self.transforms = td.Gumbel(self.loc, self.scale, validate_args=False).transforms
