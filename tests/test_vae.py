"""The digits VAE (fused_reparam.vae): the ELBO uses the fused KL, the fused op and the
reference train to the same ELBO, and the PNG writer writes valid files (the demo's command
line: tests/test_demo.py)."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")

from fused_reparam import _png, sample_diag
from fused_reparam.vae import VAE, evaluate_elbo, load_digits_data, train_vae

# A short run: 3 epochs of 1500 digits in batches of 128 (36 steps), ~0.4 s on one core.
SHORT = {"epochs": 3, "latent": 4, "hidden": 128, "batch_size": 128}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """A batch of 128 through a small MLP: intra-op threads only add waiting (and on a busy
    2-core machine a lot of it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_digits_data()


def test_digits_data(digits):
    train_x, test_x = digits
    assert train_x.shape == (1500, 64) and test_x.shape == (297, 64)
    assert train_x.dtype == torch.float32
    assert float(train_x.min()) == 0.0 and float(train_x.max()) == 1.0
    # The split is a function of the seed alone.
    again, _ = load_digits_data()
    assert torch.equal(train_x, again)


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_elbo_is_likelihood_minus_fused_kl(digits, backend):
    """model(x) = log p(x | z) - KL(q || N(0, I)), checked with torch.distributions on the
    same z (float64: the fused KL and the analytic one agree to rounding)."""
    torch.manual_seed(0)
    model = VAE(latent=5, hidden=32).double()
    x = digits[1][:40].double()
    elbo = model(x, seed=77, backend=backend)
    mu, logvar = model.encode(x)
    z = sample_diag(mu, logvar, seed=77, backend="reference")
    q = Normal(mu, torch.exp(0.5 * logvar))
    log_px = Bernoulli(logits=model.decode(z), validate_args=False).log_prob(x).sum(-1)
    expected = log_px - kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(elbo, expected, rtol=1e-10, atol=1e-10)


def test_fused_and_reference_reach_the_same_elbo(digits):
    """The same short training run with the fused op and with backend="reference".

    The tolerance comes from the run-to-run spread: the test ELBO's standard deviation over
    seeds (pooled over both backends). With the same seed both backends draw the same noise,
    so they may differ only by float rounding: well under a tenth of that spread. With
    independent seeds the mean final ELBO of 4 runs each must agree within 4 standard errors
    of a difference of means (4 * spread * sqrt(2 / 4)).
    """
    train_x, test_x = digits

    def final_test_elbo(backend: str, seed: int) -> float:
        _, history = train_vae(train_x, test_x, backend=backend, seed=seed, **SHORT)
        assert history[-1].train_elbo > history[0].train_elbo  # it learns
        return history[-1].test_elbo

    seeds = [0, 1, 2, 3]
    ref = [final_test_elbo("reference", s) for s in seeds]
    fused_same = final_test_elbo("auto", seeds[0])
    fused = [final_test_elbo("auto", 100 + s) for s in seeds]
    spread = ((statistics.variance(ref) + statistics.variance(fused)) / 2) ** 0.5
    assert 0.01 < spread < 1.0, f"unexpected run-to-run spread {spread}"
    assert abs(fused_same - ref[0]) < 0.1 * spread, (fused_same, ref[0], spread)
    diff = statistics.mean(fused) - statistics.mean(ref)
    assert abs(diff) < 4 * spread * (2 / len(seeds)) ** 0.5, (fused, ref, spread)
    assert -32.0 < statistics.mean(fused) < -26.0  # a VAE that learned something


def test_evaluate_elbo_is_reproducible(digits):
    torch.manual_seed(1)
    model = VAE(latent=4, hidden=32)
    x = digits[1]
    a = evaluate_elbo(model, x, seed=5, batch_size=100)
    assert a == evaluate_elbo(model, x, seed=5, batch_size=100)
    assert a != evaluate_elbo(model, x, seed=6, batch_size=100)
    iwae = evaluate_elbo(model, x, seed=5, num_samples=8)
    assert iwae > a - 1.0  # IWAE-8 is a tighter bound (up to noise)


def test_png_round_trip(tmp_path):
    g = torch.Generator().manual_seed(3)
    width, height = 13, 7  # odd sizes: no accidental row/column swap
    pixels = bytes(torch.randint(0, 256, (width * height,), generator=g).tolist())
    blob = _png.encode_gray_png(pixels, width, height)
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    assert blob[12:16] == b"IHDR" and blob.endswith(b"IEND\xaeB`\x82")
    assert _png.decode_gray_png(blob) == (width, height, pixels)
    path = tmp_path / "x.png"
    _png.write_gray_png(path, list(pixels), width, height)
    assert path.read_bytes() == blob
    with pytest.raises(ValueError, match="expected 91 pixels"):
        _png.encode_gray_png(pixels[:-1], width, height)
