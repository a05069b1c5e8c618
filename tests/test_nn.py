"""fused_reparam.nn: the Reparameterize modules in train and eval mode."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from conftest import DEVICE_BACKENDS, randn
from fused_reparam import ReparamSample, sample_chol, sample_diag
from fused_reparam.distributions import DiagNormal
from fused_reparam.nn import CholReparameterize, Reparameterize

pytestmark = pytest.mark.filterwarnings("ignore:fused_reparam. no fused backend:RuntimeWarning")

F64 = torch.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}


def _tril(batch, d, gen):
    a = randn((*batch, d, d), F64, "cpu", gen, scale=0.3)
    diag = torch.rand((*batch, d), generator=gen, dtype=F64)
    return torch.tril(a, -1) + torch.diag_embed(0.5 + diag)


def test_nn_module_does_not_shadow_torch_nn():
    import fused_reparam

    assert fused_reparam.nn.Reparameterize is Reparameterize
    assert isinstance(Reparameterize(), torch.nn.Module)
    assert not list(Reparameterize().parameters()) and not Reparameterize().state_dict()
    assert "num_samples=3" in repr(Reparameterize(3))


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("num_samples", [None, 1, 3])
def test_train_mode_is_sample_diag(device, backend, num_samples, gen):
    mu = randn((5, 7), torch.float32, device, gen)
    logvar = randn((7,), torch.float32, device, gen)  # shared across the batch
    m = Reparameterize(num_samples, backend=backend)
    assert m.training
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        z = m(mu, logvar)
        torch.manual_seed(3)
        ref = sample_diag(mu, logvar, num_samples=num_samples, backend=backend)
    assert z.shape == ((num_samples,) if num_samples else ()) + (5, 7)
    torch.testing.assert_close(z, ref, rtol=0, atol=0)


@pytest.mark.parametrize("num_samples", [None, 4])
def test_eval_mode_returns_the_mean(num_samples, gen):
    mu = randn((3, 6), F64, "cpu", gen)
    logvar = randn((3, 6), F64, "cpu", gen)
    m = Reparameterize(num_samples).eval()
    z = m(mu, logvar)
    k = (num_samples,) if num_samples else ()
    assert torch.equal(z, mu.expand(*k, 3, 6))
    assert z.data_ptr() == mu.data_ptr()  # a view: no copy
    # Broadcasting: the mean has the shape a sample would have.
    assert m(mu[:1], logvar).shape == (*k, 3, 6)
    # sample_in_eval draws in eval mode too.
    s = Reparameterize(num_samples, sample_in_eval=True).eval()
    assert s(mu, logvar).shape == z.shape and not torch.equal(s(mu, logvar), z)
    # Back to training: samples again.
    assert not torch.equal(m.train()(mu, logvar), z)
    # Scalars: the mean of a 0-dim pair is 0-dim.
    scalar = torch.tensor(0.5, dtype=F64)
    assert torch.equal(Reparameterize(num_samples).eval()(scalar, scalar), scalar.expand(k))


def test_return_stats_train_and_eval(gen):
    mu = randn((2, 3, 5), F64, "cpu", gen)
    logvar = randn((2, 3, 5), F64, "cpu", gen)
    q = DiagNormal(mu, logvar)
    m = Reparameterize(num_samples=4, return_stats=True)
    out = m(mu, logvar)
    assert isinstance(out, ReparamSample)
    assert out.z.shape == (4, 2, 3, 5) and out.kl.shape == (2, 3) and out.log_q.shape == (4, 2, 3)
    torch.testing.assert_close(out.kl, q.kl_to_standard_normal(), **TOL)
    torch.testing.assert_close(out.log_q, q.log_prob(out.z), **TOL)
    z, kl, log_q = m.eval()(mu, logvar)  # as if eps = 0
    assert torch.equal(z, mu.expand(4, 2, 3, 5))
    torch.testing.assert_close(kl, q.kl_to_standard_normal(), **TOL)
    torch.testing.assert_close(log_q, q.log_prob(mu).expand(4, 2, 3), **TOL)
    with pytest.raises(ValueError, match="at least one dim"):
        m(torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64))


@pytest.mark.parametrize("scale", ["log_std", "softplus"])
def test_scale_in_train_and_eval(scale, gen):
    """The module's scale is sample_diag's; in eval the extras are the fused ones at eps = 0."""
    mu = randn((3, 5), F64, "cpu", gen)
    s = randn((3, 5), F64, "cpu", gen)
    m = Reparameterize(scale=scale, min_scale=0.01, return_stats=True)
    assert "scale='" + scale + "', min_scale=0.01" in repr(m)
    torch.manual_seed(3)
    got = m(mu, s)
    torch.manual_seed(3)
    want = sample_diag(mu, s, scale=scale, min_scale=0.01, return_stats=True)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, **TOL)
    at_mean = sample_diag(mu, s, scale=scale, min_scale=0.01, eps=torch.zeros_like(mu),
                          return_stats=True)  # fmt: skip
    for g, w in zip(m.eval()(mu, s), at_mean, strict=True):
        torch.testing.assert_close(g, w, **TOL)
    with pytest.raises(ValueError, match="Reparameterize: scale must be one of"):
        Reparameterize(scale="variance")


def test_gradients_flow_through_a_vae_step(gen):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
        enc, dec = torch.nn.Linear(6, 2 * 3), torch.nn.Linear(3, 6)
        reparam = Reparameterize(num_samples=2, return_stats=True)
        x = torch.randn(4, 6)
        z, kl, _ = reparam(*enc(x).chunk(2, dim=-1))
        loss = (dec(z) - x).square().sum(-1).mean() + kl.mean()
        loss.backward()
    for p in (*enc.parameters(), *dec.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # In eval mode the gradient reaches mu only through z = mu (and logvar through the KL).
    mu = randn((4, 3), F64, "cpu", gen).requires_grad_()
    logvar = randn((4, 3), F64, "cpu", gen).requires_grad_()
    Reparameterize().eval()(mu, logvar).sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    assert logvar.grad is None


def test_chol_reparameterize(gen):
    mu = randn((3, 4), F64, "cpu", gen)
    tril = _tril((), 4, gen)  # one factor shared by the batch
    m = CholReparameterize(num_samples=2, return_stats=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(8)
        out = m(mu, tril)
        torch.manual_seed(8)
        ref = sample_chol(mu, tril, num_samples=2)
    torch.testing.assert_close(out.z, ref, rtol=0, atol=0)
    mvn = td.MultivariateNormal(mu, scale_tril=tril)
    std = td.MultivariateNormal(torch.zeros(4, dtype=F64), scale_tril=torch.eye(4, dtype=F64))
    torch.testing.assert_close(out.kl, td.kl_divergence(mvn, std), **TOL)
    torch.testing.assert_close(out.log_q, mvn.log_prob(out.z), **TOL)
    z, kl, log_q = m.eval()(mu, tril)
    assert torch.equal(z, mu.expand(2, 3, 4))
    torch.testing.assert_close(kl, td.kl_divergence(mvn, std), **TOL)
    torch.testing.assert_close(log_q, mvn.log_prob(mu).expand(2, 3), **TOL)
    # The mean has the batch of mu and L broadcast.
    batched = _tril((5, 1), 4, gen)
    assert CholReparameterize().eval()(mu, batched).shape == (5, 3, 4)
    assert CholReparameterize()(mu, batched).shape == (5, 3, 4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_samples"):
        Reparameterize(0)
    with pytest.raises(TypeError, match="num_samples"):
        Reparameterize(num_samples=2.0)
    m = Reparameterize().eval()
    with pytest.raises((TypeError, ValueError), match="dtype"):
        m(torch.zeros(3), torch.zeros(3, dtype=F64))
    with pytest.raises((TypeError, ValueError)):
        m(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises((TypeError, ValueError)):
        CholReparameterize().eval()(torch.zeros(3), torch.eye(4))


def test_module_under_no_grad_and_half(gen):
    mu = randn((2, 8), torch.bfloat16, "cpu", gen)
    logvar = randn((2, 8), torch.bfloat16, "cpu", gen)
    with torch.no_grad():
        z = Reparameterize()(mu, logvar)
    assert z.dtype == torch.bfloat16 and z.shape == (2, 8)
    out = Reparameterize(return_stats=True).eval()(mu, logvar)
    expected = 0.5 * (mu.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).sum(-1)
    torch.testing.assert_close(out.kl.float(), expected, rtol=1e-2, atol=1e-2)
    assert out.log_q.dtype == torch.bfloat16
    assert math.isfinite(out.log_q.float().sum().item())
