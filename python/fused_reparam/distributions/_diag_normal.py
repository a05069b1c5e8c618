"""``DiagNormal``: a diagonal Gaussian parametrized by the log-variance, sampled by
:func:`fused_reparam.sample_diag`."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import distributions as td
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from .._sample import ReparamSample
from ..diag import sample_diag
from ._closed_forms import LOG_2PI, diag_kl_to_standard_normal
from ._fused_sample import NO_SAMPLE_SHAPE, SampleShape, fused_sample
from ._pyro import PYRO_BASES


class DiagNormal(td.Distribution, *PYRO_BASES):
    r"""A diagonal Gaussian ``N(loc, diag(exp(logvar)))`` over the last dim, sampled by one
    fused kernel.

    The same distribution as ``Independent(Normal(loc, exp(0.5 * logvar)), 1)``: ``batch_shape
    = loc.shape[:-1]``, ``event_shape = loc.shape[-1:]`` (after broadcasting ``loc`` with
    ``logvar``), so ``log_prob`` and ``entropy`` sum over the last dim. ``rsample`` is
    :func:`fused_reparam.sample_diag` (noise made in the kernel, regenerated in backward; a
    ``sample_shape`` is one call with ``num_samples = prod(sample_shape)``, ``loc`` and
    ``logvar`` never copied). ``log_prob``, ``entropy`` and the moments are plain torch,
    with the exact formulas. (Pyro's ``LocScaleReparam`` rebuilds a distribution from ``loc``
    and ``scale``: give it ``Normal(loc, scale).to_event(1)`` rather than this class.)

    Args:
        loc: mean ``[*batch, D]`` (at least one dim).
        logvar: log-variance, broadcastable with ``loc`` (a tensor or a number), of its dtype
            and device.
        validate_args: as in ``torch.distributions``: check that ``loc`` and ``logvar`` are
            not NaN, that ``logvar`` is not -inf (a zero scale) and that values given to
            ``log_prob`` have the right shape (default: torch's global setting, on unless
            Python runs with ``-O``).
        generator: a ``torch.Generator`` for the noise of ``rsample`` (default: the device's
            default generator, so ``torch.manual_seed`` is respected).
        backend: the :func:`~fused_reparam.sample_diag` backend ("auto", "cpu", "cuda",
            "triton", "reference").

    Example:
        >>> loc, logvar = torch.zeros(4, 8), torch.zeros(4, 8)
        >>> q = DiagNormal(loc, logvar)
        >>> z = q.rsample((3,))                      # [3, 4, 8], one fused kernel
        >>> q.log_prob(z).shape, q.entropy().shape
        (torch.Size([3, 4]), torch.Size([4]))
        >>> kl = torch.distributions.kl_divergence(q, DiagNormal(torch.zeros(8), torch.zeros(8)))
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real_vector,
        # Real over the event dim, as loc: the log-variance is unconstrained (biject_to gives
        # the identity). -inf (a zero scale) is rejected apart, in __init__.
        "logvar": constraints.independent(constraints.real, 1),
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        logvar: torch.Tensor | float,
        validate_args: bool | None = None,
        *,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        if not isinstance(loc, torch.Tensor):
            raise TypeError(f"DiagNormal: loc must be a tensor, got {type(loc).__name__}")
        if loc.dim() < 1:
            raise ValueError("DiagNormal: loc must be at least one-dimensional (the event dim)")
        if isinstance(logvar, torch.Tensor) and (
            logvar.dtype != loc.dtype or logvar.device != loc.device
        ):
            raise ValueError(
                "DiagNormal: loc and logvar must have the same dtype and device, got "
                f"{loc.dtype} on {loc.device} and {logvar.dtype} on {logvar.device}"
            )
        self.loc, self.logvar = broadcast_all(loc, logvar)
        self.generator = generator
        self.backend = backend
        shape = self.loc.shape
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)
        if self._validate_args:
            self._check_positive_scale()

    def _check_positive_scale(self) -> None:
        """A ValueError naming logvar where it is -inf: a zero scale, which
        ``Normal(loc, 0.)`` rejects as torch does (NaN is caught by ``arg_constraints``)."""
        if not bool((self.logvar > -math.inf).all()):
            raise ValueError(
                f"Expected parameter logvar (Tensor of shape {tuple(self.logvar.shape)}) of "
                f"distribution {self!r} to be > -inf (a positive scale exp(0.5 * logvar)), "
                f"but found invalid values:\n{self.logvar}"
            )

    def expand(self, batch_shape: SampleShape, _instance: DiagNormal | None = None) -> DiagNormal:
        """This distribution with batch dims expanded to ``batch_shape``; the parameters
        are expanded views (no copy)."""
        new = self._get_checked_instance(DiagNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + self.event_shape
        new.loc = self.loc.expand(shape)
        new.logvar = self.logvar.expand(shape)
        new.generator = self.generator
        new.backend = self.backend
        super(DiagNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
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
        """``exp(logvar)``, per component."""
        return torch.exp(self.logvar)

    @property
    def stddev(self) -> torch.Tensor:
        """``exp(0.5 * logvar)``, per component."""
        return torch.exp(0.5 * self.logvar)

    @property
    def scale(self) -> torch.Tensor:
        """The standard deviation, as ``Normal.scale`` names it."""
        return self.stddev

    def rsample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape, D]`` from one fused
        kernel (:func:`fused_reparam.sample_diag`), differentiable in ``loc`` and
        ``logvar``."""
        return self._sample(sample_shape, return_stats=False)  # type: ignore[return-value]

    def rsample_with_stats(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> ReparamSample:
        """``ReparamSample(z, kl, log_q)`` from one fused call: ``z`` as :meth:`rsample`,
        ``kl = KL(self || N(0, I))`` ``[*batch_shape]`` and ``log_q = log_prob(z)``
        ``[*sample_shape, *batch_shape]``, all differentiable (the VAE step in one kernel)."""
        return self._sample(sample_shape, return_stats=True)  # type: ignore[return-value]

    def rsample_and_log_prob(
        self, sample_shape: SampleShape = NO_SAMPLE_SHAPE
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log_prob(z))`` from one fused call (``log_prob`` computed from the kernel's
        eps). Its gradient is that of ``self.log_prob(self.rsample())`` through both the
        parameters and z (the total derivative)."""
        out = self.rsample_with_stats(sample_shape)
        return out.z, out.log_q

    def _sample(self, sample_shape: SampleShape, return_stats: bool) -> object:
        kl_fn = diag_kl_to_standard_normal
        return fused_sample(self, sample_diag, kl_fn, self.logvar, sample_shape, return_stats)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log N(value; loc, diag(exp(logvar)))``, summed over the event dim:
        ``-0.5 * sum((value - loc)^2 * exp(-logvar) + logvar + log 2pi)``."""
        if self._validate_args:
            self._validate_sample(value)
        diff = value - self.loc
        return -0.5 * (diff * diff * torch.exp(-self.logvar) + self.logvar + LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        """``0.5 * sum(1 + log 2pi + logvar)``, shape ``batch_shape``."""
        return 0.5 * (1.0 + LOG_2PI + self.logvar).sum(-1)

    def kl_to_standard_normal(self) -> torch.Tensor:
        """``KL(self || N(0, I))``, shape ``batch_shape``, in plain torch (it draws no
        noise; :meth:`rsample_with_stats` gives it fused with a sample)."""
        return diag_kl_to_standard_normal(self.loc, self.logvar)
