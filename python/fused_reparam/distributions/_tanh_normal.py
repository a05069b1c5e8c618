"""``TanhNormal``: a SAC policy's tanh-squashed diagonal Gaussian, sampled with its
log-density by :func:`fused_reparam.sample_tanh_normal`."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import distributions as td
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from .. import _scales
from ..reference import scale as _ref_scale
from ..tanh import TanhSample, sample_tanh_normal
from ._fused_sample import NO_SAMPLE_SHAPE, SampleShape, _check_sample_shape
from ._pyro import PYRO_BASES


class TanhNormal(td.Distribution, *PYRO_BASES):
    r"""``low + (high - low) * (tanh(u) + 1) / 2`` of ``u ~ N(loc, diag(sigma^2))`` over the
    last dim (event ``[D]``, the action dim), sigma from ``s`` by ``scale`` (``exp(s)`` by
    default: ``s`` is the log standard deviation, as SAC policies emit it).

    :meth:`rsample_and_log_prob` is the policy step: the action and its exact log-density
    from one fused kernel (:func:`fused_reparam.sample_tanh_normal`; no epsilon, no
    ``atanh``). :meth:`log_prob` of a given action needs ``u = atanh(...)``: the action is
    first clamped into the open interval (the largest float of its dtype below 1 after
    mapping to (-1, 1)), so it is finite at the bounds, and exact only where the action is
    not rounded to a bound. :attr:`deterministic_action` is ``low + (high - low) *
    (tanh(loc) + 1) / 2``, the evaluation action.

    Args:
        loc: the mean of u, ``[*batch, D]``.
        s: the scale input, broadcastable with ``loc``.
        scale: how ``s`` gives sigma: ``"log_std"`` (default), ``"logvar"``, ``"std"`` or
            ``"softplus"``; min_scale: a lower bound added to sigma.
        low, high: the action's bounds (floats, ``low < high``).
        validate_args, generator, backend: as for :class:`Normal`.

    Example:
        >>> pi = TanhNormal(torch.zeros(256, 6), torch.full((256, 6), -1.0))
        >>> action, log_prob = pi.rsample_and_log_prob()     # [256, 6], [256]
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real_vector,
        "s": constraints.independent(constraints.real, 1),
    }
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        s: torch.Tensor,
        *,
        scale: str = "log_std",
        min_scale: float = 0.0,
        low: float = -1.0,
        high: float = 1.0,
        validate_args: bool | None = None,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        self._kind, self.min_scale = _scales.check_scale(scale, min_scale, "TanhNormal")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"TanhNormal: low and high must be finite with low < high, got "
                             f"low = {low}, high = {high}")  # fmt: skip
        self.loc, self.s = broadcast_all(loc, s)
        if self.loc.dim() < 1:
            raise ValueError("TanhNormal: loc and s need at least one dim (the action dim)")
        self.scale, self.low, self.high = scale, float(low), float(high)
        self.generator, self.backend = generator, backend
        shape = self.loc.shape
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        """The open box ``(low, high)^D``."""
        return constraints.independent(constraints.interval(self.low, self.high), 1)

    def expand(self, batch_shape: SampleShape, _instance: TanhNormal | None = None) -> TanhNormal:
        """This distribution with batch dims expanded to ``batch_shape`` (views, no copy)."""
        new = self._get_checked_instance(TanhNormal, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.loc, new.s = self.loc.expand(shape), self.s.expand(shape)
        for name in ("_kind", "min_scale", "scale", "low", "high", "generator", "backend"):
            setattr(new, name, getattr(self, name))
        td.Distribution.__init__(new, torch.Size(batch_shape), self.event_shape,
                                 validate_args=False)  # fmt: skip
        new._validate_args = self._validate_args
        return new

    def rsample_and_log_prob(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> TanhSample:
        """``TanhSample(action, log_prob)``: ``[*sample_shape, *batch, D]`` and
        ``[*sample_shape, *batch]``, one fused call, differentiable in ``loc`` and ``s``."""
        sample_shape = _check_sample_shape(sample_shape)
        shape = self._extended_shape(sample_shape)
        k = sample_shape.numel() if len(sample_shape) else None
        if k == 0:
            action = self.deterministic_action.expand(shape).clone()
            return TanhSample(action, action.sum(-1))
        out = sample_tanh_normal(self.loc, self.s, scale=self.scale, min_scale=self.min_scale,
                                 low=self.low, high=self.high, num_samples=k,
                                 generator=self.generator, backend=self.backend)  # fmt: skip
        return TanhSample(out.action.reshape(shape), out.log_prob.reshape(shape[:-1]))

    def rsample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """An action ``[*sample_shape, *batch, D]`` (see :meth:`rsample_and_log_prob`)."""
        return self.rsample_and_log_prob(sample_shape).action

    def sample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """An action drawn as :meth:`rsample`, without gradients."""
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def deterministic_action(self) -> torch.Tensor:
        """``low + (high - low) * (tanh(loc) + 1) / 2``: the action at u = loc."""
        half = 0.5 * (self.high - self.low)
        return self.low + half * (torch.tanh(self.loc) + 1.0)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log-density of an action ``[..., D]``, summed over D: u = atanh of the action
        mapped to (-1, 1) and clamped inside it (see the class notes)."""
        if self._validate_args:
            self._validate_sample(value)
        half = 0.5 * (self.high - self.low)
        y = (value - self.low) / half - 1.0
        bound = 1.0 - torch.finfo(y.dtype).eps / 2  # the largest float below 1
        u = torch.atanh(y.clamp(-bound, bound))
        sigma = _ref_scale.sigma(self.s, self._kind, self.min_scale)
        gauss = (
            -0.5 * ((u - self.loc) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
        )
        log_dtanh = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
        return (gauss - log_dtanh - math.log(half)).sum(-1)
