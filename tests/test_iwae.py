"""The importance-weighted bound (fused_reparam.vae.iwae_bound) from K samples and the fused
log q: it equals the bound written with torch.distributions on the same noise, it is above the
ELBO on average for K > 1, its gradients match the reference backend, and it trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")

from fused_reparam import available_backends, sample_diag
from fused_reparam.vae import (
    VAE,
    bernoulli_log_likelihood,
    evaluate_elbo,
    iwae_bound,
    load_digits_data,
    train_vae,
)

BACKENDS = available_backends("cpu", "diag_rsample_stats")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small batches through a small MLP: intra-op threads only add waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_digits_data()


@pytest.fixture(scope="module")
def trained(digits) -> VAE:
    """A VAE after 2 short epochs: its posterior is no longer the prior, so the gap between
    the bounds is clear (an untrained model has q close to p(z | x) ~ p(z))."""
    model, _ = train_vae(digits[0], epochs=2, latent=4, hidden=128, batch_size=128, seed=0)
    return model.eval()


def _iwae_with_distributions(model: VAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The same bound written with torch.distributions on given samples z [K, B, latent]."""
    mu, logvar = model.encode(x)
    log_q = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_pz = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
    decoder = Bernoulli(logits=model.decode(z), validate_args=False)  # grey levels in [0, 1]
    log_px = decoder.log_prob(x.expand(z.shape[0], *x.shape)).sum(-1)
    return torch.logsumexp(log_px + log_pz - log_q, dim=0) - math.log(z.shape[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("num_samples", [1, 7])
def test_iwae_equals_torch_distributions_on_the_same_noise(digits, backend, num_samples):
    torch.manual_seed(0)
    model = VAE(latent=5, hidden=32).double()
    x = digits[1][:50].double()
    bound = iwae_bound(model, x, num_samples, seed=1234, backend=backend)
    # The same (seed, offset) is the same noise on every backend (the noise contract), so the
    # reference's z is the z the fused op used.
    mu, logvar = model.encode(x)
    z = sample_diag(mu, logvar, num_samples=num_samples, seed=1234, backend="reference")
    assert bound.shape == (50,)
    torch.testing.assert_close(bound, _iwae_with_distributions(model, x, z), rtol=1e-10, atol=1e-9)


def test_iwae_is_above_the_elbo_on_average(digits, trained):
    """E[IWAE-K] >= E[IWAE-1] = ELBO, with equality only for K = 1. Over all 1797 digits with
    independent noise (fixed seeds): the ELBO (the mean of 16 single-sample ELBOs per image,
    with the fused KL) against IWAE-1, -4 and -16 (one stream, so IWAE-4's samples are the
    first 4 of IWAE-16's). The per-image differences give a z-score: IWAE-1 must match the ELBO
    within 4 standard errors and IWAE-4 and -16 exceed it by more than 8."""
    x = torch.cat(digits)
    with torch.no_grad():
        mu, logvar = trained.encode(x)
        s = sample_diag(mu, logvar, num_samples=16, seed=1, return_stats=True)
        elbo = (bernoulli_log_likelihood(trained.decode(s.z), x) - s.kl).mean(0)
        bounds = {k: iwae_bound(trained, x, k, seed=2) for k in (1, 4, 16)}

    def z_score(d: torch.Tensor) -> float:
        return float(d.mean() / (d.std() / math.sqrt(d.numel())))

    assert abs(z_score(bounds[1] - elbo)) < 4.0
    assert z_score(bounds[4] - elbo) > 8.0
    assert z_score(bounds[16] - elbo) > 8.0
    assert z_score(bounds[16] - bounds[4]) > 4.0  # tighter with more samples
    gap = float((bounds[16] - elbo).mean())
    assert 0.05 < gap < 5.0, gap  # tenths of a nat per image, not a broken scale


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_iwae_gradients_match_the_reference(digits, dtype):
    """Gradients of every weight through z, log q (fused backward, mu and logvar summed over
    the K samples) equal those of the reference backend on the same noise."""
    torch.manual_seed(3)
    model = VAE(latent=6, hidden=32).to(dtype)
    x = digits[1][:64].to(dtype)

    def grads(backend: str) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        iwae_bound(model, x, 5, seed=99, backend=backend).mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    tol = {"rtol": 1e-9, "atol": 1e-11} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    for got, want in zip(grads("auto"), grads("reference"), strict=True):
        torch.testing.assert_close(got, want, **tol)


def test_iwae_training_improves_the_bound(digits):
    train_x, test_x = digits
    torch.manual_seed(0)
    untrained = VAE(latent=4, hidden=64)
    before = evaluate_elbo(untrained, test_x, seed=5, num_samples=8)
    model, history = train_vae(
        train_x, epochs=2, latent=4, hidden=64, batch_size=128, seed=0, num_samples=8
    )
    after = evaluate_elbo(model, test_x, seed=5, num_samples=8)
    assert history[1].train_elbo > history[0].train_elbo
    assert after > before + 5.0, (before, after)
    assert math.isfinite(after)
