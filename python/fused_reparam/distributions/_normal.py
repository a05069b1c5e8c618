"""``Normal``: torch's univariate Gaussian, with ``rsample`` by
:func:`fused_reparam.sample_diag` (``scale="std"``)."""

from __future__ import annotations

from torch import distributions as td

from ._fused_sample import FusedLocScale
from ._pyro import PYRO_BASES


class Normal(FusedLocScale, td.Normal, *PYRO_BASES):
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

    _noise = "normal"
