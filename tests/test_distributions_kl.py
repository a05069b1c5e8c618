"""kl_divergence of fused_reparam.distributions against torch's: DiagNormal against DiagNormal,
Independent(Normal, 1) and MultivariateNormal both ways, KL to N(0, I), and torch's own
registration between two MultivariateNormal."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as td

from _distribution_data import (
    F64,
    NO_FUSED_BACKEND_WARNING_IGNORED,
    TOL,
    diag_normal,
    torch_diag,
    tril_factor,
)
from conftest import randn
from fused_reparam.distributions import DiagNormal, MultivariateNormal

pytestmark = NO_FUSED_BACKEND_WARNING_IGNORED


def test_diag_kl_to_standard_normal_matches_torch(gen):
    loc, logvar, d = diag_normal((2, 3), 4, gen)
    prior = torch_diag(torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64))
    expected = td.kl_divergence(torch_diag(loc, logvar), prior)
    torch.testing.assert_close(d.kl_to_standard_normal(), expected, **TOL)


def test_diag_kl_divergence_matches_torch(gen):
    loc_p, logvar_p, p = diag_normal((4,), 5, gen)
    loc_q, logvar_q, q = diag_normal((), 5, gen)  # broadcasts against p's batch
    tp, tq = torch_diag(loc_p, logvar_p), torch_diag(loc_q, logvar_q)
    expected = td.kl_divergence(tp, tq)
    for a, b in ((p, q), (p, tq), (tp, q)):
        torch.testing.assert_close(td.kl_divergence(a, b), expected, **TOL)
    torch.testing.assert_close(td.kl_divergence(q, p), td.kl_divergence(tq, tp), **TOL)
    # Against a full-covariance Gaussian, both ways (the fused subclass too).
    loc_m = randn((4, 5), F64, "cpu", gen)
    tril = tril_factor((), 5, F64, "cpu", gen)
    diag_as_mvn = td.MultivariateNormal(loc_p, scale_tril=torch.diag_embed(p.stddev))
    for cls in (td.MultivariateNormal, MultivariateNormal):
        m = cls(loc_m, scale_tril=tril)
        torch.testing.assert_close(td.kl_divergence(p, m), td.kl_divergence(diag_as_mvn, m), **TOL)
        torch.testing.assert_close(td.kl_divergence(m, p), td.kl_divergence(m, diag_as_mvn), **TOL)
    # Distributions built on DiagNormal dispatch to it.
    ip, iq = td.Independent(p, 1), td.Independent(td.Laplace(loc_q, torch.exp(logvar_q)), 1)
    iq_ok = td.Independent(q.expand((4,)), 1)
    torch.testing.assert_close(td.kl_divergence(ip, iq_ok), expected.sum(), **TOL)
    with pytest.raises(NotImplementedError):
        td.kl_divergence(p, iq)
    with pytest.raises(ValueError, match="event shapes"):
        td.kl_divergence(p, DiagNormal(torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64)))


def test_diag_kl_gradients_match_torch(gen):
    params = [
        t.requires_grad_() for t in (*diag_normal((3,), 4, gen)[:2], *diag_normal((3,), 4, gen)[:2])
    ]
    kl = td.kl_divergence(DiagNormal(*params[:2]), DiagNormal(*params[2:]))
    g1 = torch.autograd.grad(kl.sum(), params)
    tp, tq = torch_diag(*params[:2]), torch_diag(*params[2:])
    g2 = torch.autograd.grad(td.kl_divergence(tp, tq).sum(), params)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_mvn_kl_uses_torch_registration(gen):
    assert td.kl._dispatch_kl(MultivariateNormal, MultivariateNormal) is td.kl._dispatch_kl(
        td.MultivariateNormal, td.MultivariateNormal
    )
    a = (randn((3, 4), F64, "cpu", gen), tril_factor((3,), 4, F64, "cpu", gen))
    b = (randn((4,), F64, "cpu", gen), tril_factor((), 4, F64, "cpu", gen))
    expected = td.kl_divergence(
        td.MultivariateNormal(a[0], scale_tril=a[1]), td.MultivariateNormal(b[0], scale_tril=b[1])
    )
    fa, fb = MultivariateNormal(a[0], scale_tril=a[1]), MultivariateNormal(b[0], scale_tril=b[1])
    torch.testing.assert_close(td.kl_divergence(fa, fb), expected, **TOL)
    tb = td.MultivariateNormal(b[0], scale_tril=b[1])
    torch.testing.assert_close(td.kl_divergence(fa, tb), expected, **TOL)
    eye = torch.eye(4, dtype=F64)
    std_normal = td.MultivariateNormal(torch.zeros(4, dtype=F64), scale_tril=eye)
    torch.testing.assert_close(fa.kl_to_standard_normal(), td.kl_divergence(fa, std_normal), **TOL)
