"""``Laplace``: torch's Laplace distribution, with ``rsample`` by
:func:`fused_reparam.sample_diag` (``scale="std"``, ``noise="laplace"``)."""

from __future__ import annotations

from torch import distributions as td

from ._fused_sample import FusedLocScale
from ._pyro import PYRO_BASES


class Laplace(FusedLocScale, td.Laplace, *PYRO_BASES):
    r"""``torch.distributions.Laplace(loc, scale)`` whose ``rsample`` is one fused kernel.

    A subclass of torch's: ``log_prob``, ``cdf``, ``icdf``, ``entropy``, the moments,
    ``arg_constraints`` (``loc`` real, ``scale`` positive), ``support``, argument validation
    and ``kl_divergence`` are torch's, unchanged. ``rsample(sample_shape)`` is one call of
    :func:`fused_reparam.sample_diag` with ``scale="std"`` and ``noise="laplace"`` (``z = loc
    + scale * eps``, ``eps`` a standard Laplace variate made in the kernel from the Philox
    stream and made again in backward) and ``num_samples = prod(sample_shape)``. ``sample``
    is the same draw without gradients.

    Args:
        loc: the location (mean and median; a tensor or a number).
        scale: the scale ``b`` > 0 (variance ``2 b^2``), broadcastable with ``loc``.
        validate_args: as in ``torch.distributions`` (default: torch's global setting).
        generator: a ``torch.Generator`` for the noise (default: the device's default
            generator, so ``torch.manual_seed`` is respected).
        backend: the :func:`~fused_reparam.sample_diag` backend ("auto", "cpu", "cuda",
            "triton", "reference").

    Example:
        >>> p = Laplace(torch.zeros(4, 3), torch.ones(3))
        >>> z = p.rsample((2,))                    # [2, 4, 3], one fused kernel
        >>> p.log_prob(z).shape
        torch.Size([2, 4, 3])
    """

    _noise = "laplace"
