"""The ``rsample`` shared by the distributions: a ``sample_shape`` checked and drawn as one
fused call with ``num_samples = prod(sample_shape)`` (:func:`fused_sample` for the vector
families, :func:`loc_scale_rsample` for the univariate location-scale ones)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .._sample import ReparamSample
from ..diag import sample_diag

if TYPE_CHECKING:
    from ._diag_normal import DiagNormal
    from ._multivariate_normal import MultivariateNormal

SampleShape = torch.Size | tuple[int, ...] | list[int]
NO_SAMPLE_SHAPE = torch.Size()


def _check_sample_shape(sample_shape: object) -> torch.Size:
    """`sample_shape` as a torch.Size of integers >= 0 (given as any sequence of them, a 1-D
    integer tensor included, as torch's distributions take), else an error naming it."""
    try:
        dims = [_integer(n) for n in sample_shape]  # type: ignore[union-attr]
    except TypeError:
        dims = None
    if dims is None or any(n is None for n in dims):
        raise TypeError(
            f"fused_reparam.distributions: sample_shape must be a sequence of ints, such as "
            f"(4,) or torch.Size([2, 3]), got {sample_shape!r}"
        )
    if any(n < 0 for n in dims):
        raise ValueError(
            f"fused_reparam.distributions: sample_shape must have sizes >= 0, got {sample_shape!r}"
        )
    return torch.Size(dims)


def _integer(n: object) -> int | None:
    """`n` as an int when it is one (numpy's and 0-dim integer tensors included), else None."""
    if isinstance(n, torch.Tensor):
        integral = n.dim() == 0 and not n.is_floating_point() and not n.is_complex()
        return int(n) if integral and n.dtype != torch.bool else None
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        return None
    return int(n)


def fused_sample(
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


def loc_scale_rsample(
    dist: torch.distributions.Distribution, noise: str, sample_shape: SampleShape
) -> torch.Tensor:
    """``dist.loc + dist.scale * eps`` for ``sample_shape``, ``eps`` the standard ``noise``
    ("normal", "laplace", "logistic", "gumbel"): one :func:`~fused_reparam.sample_diag` call
    (``scale="std"``) with num_samples = prod(sample_shape), reshaped to ``[*sample_shape,
    *batch_shape]``, differentiable in ``loc`` and ``scale``. ``dist`` is a univariate
    location-scale distribution: ``loc`` and ``scale`` of its batch shape (a mixed dtype
    promoted, as torch's samplers do), its ``generator`` and ``backend``."""
    sample_shape = _check_sample_shape(sample_shape)
    shape = dist._extended_shape(sample_shape)
    loc, scale = dist.loc, dist.scale
    if loc.dtype != scale.dtype:
        # torch's rsample promotes (loc + eps * scale); the fused op takes one dtype.
        dtype = torch.promote_types(loc.dtype, scale.dtype)
        loc, scale = loc.to(dtype), scale.to(dtype)
    k = sample_shape.numel() if len(sample_shape) else None
    if k == 0:
        # The op takes num_samples >= 1; an empty sample stays connected to the graph.
        return (loc + 0.0 * scale).expand(shape).clone()
    z = sample_diag(
        loc, scale, scale="std", noise=noise, num_samples=k,
        generator=dist.generator, backend=dist.backend,
    )  # fmt: skip
    return z.reshape(shape)


class FusedLocScale:
    """What the subclasses of torch's univariate location-scale distributions (Normal,
    Laplace, Gumbel) add to them, their class attribute ``_noise`` naming the standard variate:
    the ``generator`` and ``backend`` keywords, an ``expand`` that keeps them (and the class),
    and ``rsample``/``sample`` by :func:`loc_scale_rsample`. Listed first among the bases, so
    ``super()`` is torch's class."""

    _noise: str

    def __init__(
        self,
        loc: torch.Tensor | float,
        scale: torch.Tensor | float,
        validate_args: bool | None = None,
        *,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(loc, scale, validate_args=validate_args)  # type: ignore[call-arg]
        self.generator = generator
        self.backend = backend

    def expand(self, batch_shape: SampleShape, _instance: object = None) -> FusedLocScale:
        """This distribution with its batch dims expanded to ``batch_shape`` (views of the
        parameters, no copy), of the same class, generator and backend."""
        # The fused class itself (the one naming _noise): a subclass with another __init__
        # must define its own expand, as torch's _get_checked_instance asks.
        cls = next(c for c in type(self).__mro__ if "_noise" in c.__dict__)
        new = self._get_checked_instance(cls, _instance)  # type: ignore[attr-defined]
        new = super().expand(batch_shape, _instance=new)  # type: ignore[misc]
        new.generator = self.generator
        new.backend = self.backend
        return new

    def rsample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A reparameterized sample ``[*sample_shape, *batch_shape]``, ``loc + scale * eps``,
        from one fused kernel, differentiable in ``loc`` and ``scale``."""
        return loc_scale_rsample(self, self._noise, sample_shape)  # type: ignore[arg-type]

    def sample(self, sample_shape: SampleShape = NO_SAMPLE_SHAPE) -> torch.Tensor:
        """A sample ``[*sample_shape, *batch_shape]`` drawn as :meth:`rsample`, without
        gradients."""
        with torch.no_grad():
            return self.rsample(sample_shape)
