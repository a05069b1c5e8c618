"""``torch.distributions.kl_divergence`` for ``DiagNormal`` against ``DiagNormal``,
``Independent(Normal(...), 1)`` and ``MultivariateNormal``, both ways; registered on import."""

from __future__ import annotations

import torch
from torch import distributions as td

from ._diag_normal import DiagNormal


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
