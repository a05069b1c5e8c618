"""Drop-in ``torch.distributions`` whose ``rsample`` is one fused kernel.

- :class:`DiagNormal` ``(loc, logvar)``: a diagonal Gaussian with event shape ``[D]``, the
  distribution of ``torch.distributions.Independent(Normal(loc, exp(0.5 * logvar)), 1)``,
  parametrized by the log-variance as VAE encoders emit it. ``rsample`` is
  :func:`fused_reparam.sample_diag`.
- :class:`MultivariateNormal`: a subclass of ``torch.distributions.MultivariateNormal`` whose
  ``rsample`` is :func:`fused_reparam.sample_chol`; everything else is torch's.

``torch.distributions.kl_divergence`` is registered for ``DiagNormal`` against ``DiagNormal``,
``Independent(Normal(...), 1)`` and ``MultivariateNormal`` (both ways); between two
``MultivariateNormal`` torch's own registration applies.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import distributions as td
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from ._sample import ReparamSample
from .chol import sample_chol
from .diag import sample_diag

__all__ = ["DiagNormal", "MultivariateNormal"]

_LOG_2PI = math.log(2.0 * math.pi)

SampleShape = torch.Size | tuple[int, ...] | list[int]
_NO_SAMPLE_SHAPE = torch.Size()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the half types (as the kernels compute), else the dtype itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def diag_kl_to_standard_normal(loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, diag(exp(logvar))) || N(0, I)) over the last dim, in plain torch:
    ``0.5 * sum(loc^2 + exp(logvar) - 1 - logvar)``, shape ``[*batch]`` (the broadcast shape
    of loc and logvar without its last dim). Half types compute in float32."""
    ct = _compute_dtype(loc.dtype)
    m, lv = torch.broadcast_tensors(loc.to(ct), logvar.to(ct))
    return (0.5 * (m * m + torch.exp(lv) - 1.0 - lv).sum(-1)).to(loc.dtype)


def diag_log_q_at_mean(loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(loc) of N(loc, diag(exp(logvar))), ``-0.5 * sum(logvar + log 2pi)``, shape
    ``[*batch]``: the fused ``log_q`` with eps = 0."""
    ct = _compute_dtype(loc.dtype)
    lv = torch.broadcast_tensors(loc.to(ct), logvar.to(ct))[1]
    return (-0.5 * (lv + _LOG_2PI).sum(-1)).to(loc.dtype)


def _chol_log_det(lower: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(lower, dim1=-2, dim2=-1).abs().log().sum(-1)


def _chol_batch(loc: torch.Tensor, scale_tril: torch.Tensor) -> torch.Size:
    return torch.broadcast_shapes(loc.shape[:-1], scale_tril.shape[:-2])


def chol_kl_to_standard_normal(loc: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, L L^T) || N(0, I)), in plain torch, reading only the lower triangle of L:
    ``0.5 * (|tril L|_F^2 + |loc|^2 - D) - sum_i log|L_ii|``, shape ``[*batch]``."""
    ct = _compute_dtype(loc.dtype)
    m, lower = loc.to(ct), torch.tril(scale_tril.to(ct))
    d = loc.shape[-1]
    kl = 0.5 * (lower.square().sum((-2, -1)) + m.square().sum(-1) - d) - _chol_log_det(lower)
    return kl.expand(_chol_batch(loc, scale_tril)).to(loc.dtype)


def chol_log_q_at_mean(loc: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log q(loc) of N(loc, L L^T), ``-sum_i log|L_ii| - 0.5 * D * log 2pi``, shape
    ``[*batch]``: the fused ``log_q`` with eps = 0."""
    ct = _compute_dtype(loc.dtype)
    lq = -_chol_log_det(scale_tril.to(ct)) - 0.5 * loc.shape[-1] * _LOG_2PI
    return lq.expand(_chol_batch(loc, scale_tril)).to(loc.dtype)


def _check_sample_shape(sample_shape: object) -> torch.Size:
    """`sample_shape` as a torch.Size of integers >= 0, else an error naming it."""
    try:
        dims = list(sample_shape)  # type: ignore[call-overload]
    except TypeError:
        dims = None
    if dims is None or any(
        isinstance(n, bool) or not isinstance(n, numbers.Integral) for n in dims
    ):
        raise TypeError(
            f"fused_reparam.distributions: sample_shape must be a sequence of ints, such as "
            f"(4,) or torch.Size([2, 3]), got {sample_shape!r}"
        )
    if any(n < 0 for n in dims):
        raise ValueError(
            f"fused_reparam.distributions: sample_shape must have sizes >= 0, got {sample_shape!r}"
        )
    return torch.Size(int(n) for n in dims)


def _fused_sample(
    dist: DiagNormal | MultivariateNormal,
    op: Callable[..., torch.Tensor | ReparamSample],
    kl_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    param: torch.Tensor,
    sample_shape: SampleShape,
    return_stats: bool,
) -> torch.Tensor | ReparamSample:
    """``op(dist.loc, param)`` for ``sample_shape``: one call with num_samples =
    prod(sample_shape), the result reshaped to ``[*sample_shape, *batch_shape, D]``."""
    sample_shape = _check_sample_shape(sample_shape)
    k = sample_shape.numel() if len(sample_shape) else None
    z_shape = dist._extended_shape(sample_shape)
    loc = dist.loc
    if k == 0:
        # The ops take num_samples >= 1; an empty sample is still connected to the graph.
        z = loc.expand(z_shape).clone()
        return ReparamSample(z, kl_fn(loc, param), z.sum(-1)) if return_stats else z
    kwargs = {"generator": dist.generator, "backend": dist.backend}
    out = op(loc, param, num_samples=k, return_stats=return_stats, **kwargs)
    if not return_stats:
        return out.reshape(z_shape)
    return ReparamSample(out.z.reshape(z_shape), out.kl, out.log_q.reshape(z_shape[:-1]))


class DiagNormal(td.Distribution):
    r"""A diagonal Gaussian ``N(loc, diag(exp(logvar)))`` over the last dim, sampled by one
    fused kernel.

    The same distribution as ``Independent(Normal(loc, exp(0.5 * logvar)), 1)``: ``batch_shape
    = loc.shape[:-1]``, ``event_shape = loc.shape[-1:]`` (after broadcasting ``loc`` with
    ``logvar``), so ``log_prob`` and ``entropy`` sum over the last dim. ``rsample`` is
    :func:`fused_reparam.sample_diag` (noise made in the kernel, regenerated in backward; a
    ``sample_shape`` is one call with ``num_samples = prod(sample_shape)``, ``loc`` and
    ``logvar`` never copied). ``log_prob``, ``entropy`` and the moments are plain torch,
    with the exact formulas.

    Args:
        loc: mean ``[*batch, D]`` (at least one dim).
        logvar: log-variance, broadcastable with ``loc`` (a tensor or a number), of its dtype
            and device.
        validate_args: as in ``torch.distributions``: check that ``loc`` and ``logvar`` are
            not NaN and that values given to ``log_prob`` have the right shape (default:
            torch's global setting, on unless Python runs with ``-O``).
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
        "logvar": constraints.real,
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

    def rsample(self, sample_shape: SampleShape = _NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape, D]`` from one fused
        kernel (:func:`fused_reparam.sample_diag`), differentiable in ``loc`` and
        ``logvar``."""
        return self._sample(sample_shape, return_stats=False)  # type: ignore[return-value]

    def rsample_with_stats(self, sample_shape: SampleShape = _NO_SAMPLE_SHAPE) -> ReparamSample:
        """``ReparamSample(z, kl, log_q)`` from one fused call: ``z`` as :meth:`rsample`,
        ``kl = KL(self || N(0, I))`` ``[*batch_shape]`` and ``log_q = log_prob(z)``
        ``[*sample_shape, *batch_shape]``, all differentiable (the VAE step in one kernel)."""
        return self._sample(sample_shape, return_stats=True)  # type: ignore[return-value]

    def rsample_and_log_prob(
        self, sample_shape: SampleShape = _NO_SAMPLE_SHAPE
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log_prob(z))`` from one fused call (``log_prob`` computed from the kernel's
        eps). Its gradient is that of ``self.log_prob(self.rsample())`` through both the
        parameters and z (the total derivative)."""
        out = self.rsample_with_stats(sample_shape)
        return out.z, out.log_q

    def _sample(self, sample_shape: SampleShape, return_stats: bool) -> object:
        kl_fn = diag_kl_to_standard_normal
        return _fused_sample(self, sample_diag, kl_fn, self.logvar, sample_shape, return_stats)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log N(value; loc, diag(exp(logvar)))``, summed over the event dim:
        ``-0.5 * sum((value - loc)^2 * exp(-logvar) + logvar + log 2pi)``."""
        if self._validate_args:
            self._validate_sample(value)
        diff = value - self.loc
        return -0.5 * (diff * diff * torch.exp(-self.logvar) + self.logvar + _LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        """``0.5 * sum(1 + log 2pi + logvar)``, shape ``batch_shape``."""
        return 0.5 * (1.0 + _LOG_2PI + self.logvar).sum(-1)

    def kl_to_standard_normal(self) -> torch.Tensor:
        """``KL(self || N(0, I))``, shape ``batch_shape``, in plain torch (it draws no
        noise; :meth:`rsample_with_stats` gives it fused with a sample)."""
        return diag_kl_to_standard_normal(self.loc, self.logvar)


class MultivariateNormal(td.MultivariateNormal):
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

    def rsample(self, sample_shape: SampleShape = _NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape, D]`` from one fused
        kernel, ``loc + L @ eps``, differentiable in ``loc`` and the factor."""
        return self._sample(sample_shape, return_stats=False)  # type: ignore[return-value]

    def rsample_with_stats(self, sample_shape: SampleShape = _NO_SAMPLE_SHAPE) -> ReparamSample:
        """``ReparamSample(z, kl, log_q)`` from one fused call: ``kl = KL(self || N(0, I))``
        ``[*batch_shape]``, ``log_q = log_prob(z)`` ``[*sample_shape, *batch_shape]``."""
        return self._sample(sample_shape, return_stats=True)  # type: ignore[return-value]

    def rsample_and_log_prob(
        self, sample_shape: SampleShape = _NO_SAMPLE_SHAPE
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log_prob(z))`` from one fused call (the total derivative, as
        ``self.log_prob(self.rsample())``)."""
        out = self.rsample_with_stats(sample_shape)
        return out.z, out.log_q

    def _sample(self, sample_shape: SampleShape, return_stats: bool) -> object:
        kl_fn, factor = chol_kl_to_standard_normal, self._unbroadcasted_scale_tril
        return _fused_sample(self, sample_chol, kl_fn, factor, sample_shape, return_stats)

    def kl_to_standard_normal(self) -> torch.Tensor:
        """``KL(self || N(0, I))``, shape ``batch_shape``, in plain torch (no noise drawn)."""
        return chol_kl_to_standard_normal(self.loc, self._unbroadcasted_scale_tril)


# ---- kl_divergence registrations -------------------------------------------------------------


def _check_events(p: td.Distribution, q: td.Distribution) -> None:
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"kl_divergence: event shapes differ ({tuple(p.event_shape)} vs "
            f"{tuple(q.event_shape)}); KL is defined between distributions over the same space"
        )


def _loc_logvar(d: td.Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """(loc, logvar) of a DiagNormal or an Independent(Normal, 1); NotImplementedError else."""
    if isinstance(d, DiagNormal):
        return d.loc, d.logvar
    if (
        isinstance(d, td.Independent)
        and isinstance(d.base_dist, td.Normal)
        and d.reinterpreted_batch_ndims == 1
    ):
        return d.base_dist.loc, 2.0 * torch.log(d.base_dist.scale)
    raise NotImplementedError


def _kl_diag(p: td.Distribution, q: td.Distribution) -> torch.Tensor:
    """KL of two diagonal Gaussians in (loc, logvar): the sum over the event dim of torch's
    Normal-Normal KL, ``0.5 * (r + (mp - mq)^2 / vq - 1 - log r)`` with ``r = vp / vq``."""
    _check_events(p, q)
    mp, lp = _loc_logvar(p)
    mq, lq = _loc_logvar(q)
    diff = mp - mq
    log_ratio = lp - lq
    return 0.5 * (torch.exp(log_ratio) + diff * diff * torch.exp(-lq) - 1.0 - log_ratio).sum(-1)


@td.register_kl(DiagNormal, DiagNormal)
def _kl_diagnormal_diagnormal(p: DiagNormal, q: DiagNormal) -> torch.Tensor:
    return _kl_diag(p, q)


@td.register_kl(DiagNormal, td.Independent)
def _kl_diagnormal_independent(p: DiagNormal, q: td.Independent) -> torch.Tensor:
    return _kl_diag(p, q)


@td.register_kl(td.Independent, DiagNormal)
def _kl_independent_diagnormal(p: td.Independent, q: DiagNormal) -> torch.Tensor:
    return _kl_diag(p, q)


def _as_torch_mvn(d: DiagNormal) -> td.MultivariateNormal:
    return td.MultivariateNormal(d.loc, scale_tril=torch.diag_embed(d.stddev), validate_args=False)


@td.register_kl(DiagNormal, td.MultivariateNormal)
def _kl_diagnormal_mvn(p: DiagNormal, q: td.MultivariateNormal) -> torch.Tensor:
    _check_events(p, q)
    return td.kl_divergence(_as_torch_mvn(p), q)


@td.register_kl(td.MultivariateNormal, DiagNormal)
def _kl_mvn_diagnormal(p: td.MultivariateNormal, q: DiagNormal) -> torch.Tensor:
    _check_events(p, q)
    return td.kl_divergence(p, _as_torch_mvn(q))
