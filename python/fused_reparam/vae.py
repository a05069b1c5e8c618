"""A small MLP VAE on scikit-learn's bundled digits (8x8 images), trained with the fused op.

The model behind the demo (``python -m fused_reparam.demo``), importable on its own:

    >>> from fused_reparam.vae import load_digits_data, train_vae
    >>> train_x, test_x = load_digits_data()
    >>> model, history = train_vae(train_x, test_x, epochs=5)

One ``sample_diag(mu, logvar, return_stats=True)`` call draws ``z`` and gives the KL term of
the ELBO from the same fused kernel (its gradient fused into the same backward kernel);
``iwae_bound`` uses ``num_samples=K`` and the fused ``log q(z|x)``.

The decoder is Bernoulli over pixels scaled to [0, 1] (the usual cross-entropy likelihood; for
grey levels between 0 and 1 it is not a normalized density, so the ELBO values are comparable
between runs and models of this file, not with published log-likelihoods of binarized data).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .diag import sample_diag

__all__ = [
    "VAE",
    "EpochStats",
    "bernoulli_log_likelihood",
    "evaluate_elbo",
    "iwae_bound",
    "load_digits_data",
    "standard_normal_log_prob",
    "train_vae",
]

LOG_2PI = math.log(2.0 * math.pi)


def load_digits_data(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    test_size: int = 297,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits (1797 images of 8x8, bundled, no download) as ``[N, 64]`` pixels
    in [0, 1], shuffled with `seed` and split into (train, test); test has `test_size` rows."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits data needs scikit-learn: pip install scikit-learn "
            "(scripts/install.sh installs it)"
        ) from err
    x = torch.tensor(load_digits().data, dtype=torch.float64) / 16.0
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    x = x[perm].to(device=device, dtype=dtype)
    return x[test_size:].contiguous(), x[:test_size].contiguous()


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) of a Bernoulli decoder with `logits`, summed over the last dim; `x`
    (pixels in [0, 1]) broadcasts against `logits` (for example ``[B, D]`` against
    ``[K, B, D]``)."""
    logits, x = torch.broadcast_tensors(logits, x)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dim."""
    return -0.5 * (z * z + LOG_2PI).sum(-1)


class VAE(nn.Module):
    """MLP encoder ``x -> (mu, logvar)`` and MLP decoder ``z -> Bernoulli logits``.

    ``model(x, generator=..., seed=..., backend=...)`` returns the per-example ELBO
    ``log p(x | z) - KL(q(z | x) || N(0, I))`` with ``z`` and the KL from one fused
    ``sample_diag(..., return_stats=True)`` call. The noise arguments go to `sample_diag`.
    """

    def __init__(self, data_dim: int = 64, latent: int = 8, hidden: int = 256) -> None:
        super().__init__()
        self.data_dim, self.latent = data_dim, latent
        self.encoder = nn.Sequential(
            nn.Linear(data_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, data_dim),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x), each ``[..., latent]``."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of p(x | z), ``[..., data_dim]``."""
        return self.decoder(z)

    def forward(
        self,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        offset: int = 0,
        backend: str = "auto",
    ) -> torch.Tensor:
        """Per-example ELBO ``[B]`` of pixels `x` ``[B, data_dim]`` (one sample of z each)."""
        mu, logvar = self.encode(x)
        s = sample_diag(
            mu, logvar, generator=generator, seed=seed, offset=offset, backend=backend,
            return_stats=True,
        )  # fmt: skip
        return bernoulli_log_likelihood(self.decode(s.z), x) - s.kl

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean pixels of p(x | z = mu(x)), in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x)[0]))

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean pixels of p(x | z) for `n` draws z ~ N(0, I), in [0, 1]."""
        p = next(self.parameters())
        z = torch.randn(n, self.latent, generator=generator, device=p.device, dtype=p.dtype)
        return torch.sigmoid(self.decode(z))


def iwae_bound(
    model: VAE,
    x: torch.Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    offset: int = 0,
    backend: str = "auto",
) -> torch.Tensor:
    """Per-example importance-weighted bound ``[B]`` (Burda et al., 2016) with K = `num_samples`:

    ``log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x)``, z_k ~ q(z | x),

    with ``z`` ``[K, B, latent]`` and ``log q(z_k | x)`` ``[K, B]`` from one fused
    ``sample_diag(mu, logvar, num_samples=K, return_stats=True)`` call (mu and logvar are not
    copied K times; their gradients are summed over K in the fused backward). K = 1 is an
    unbiased estimate of the ELBO; the bound grows with K towards log p(x).
    """
    mu, logvar = model.encode(x)
    s = sample_diag(
        mu, logvar, num_samples=num_samples, generator=generator, seed=seed, offset=offset,
        backend=backend, return_stats=True,
    )  # fmt: skip
    log_w = bernoulli_log_likelihood(model.decode(s.z), x) + standard_normal_log_prob(s.z)
    log_w = log_w - s.log_q
    return torch.logsumexp(log_w, dim=0) - math.log(num_samples)


@torch.no_grad()
def evaluate_elbo(
    model: VAE,
    x: torch.Tensor,
    *,
    seed: int = 0,
    backend: str = "auto",
    batch_size: int = 4096,
    num_samples: int | None = None,
) -> float:
    """Mean per-example ELBO of `x` (or, with `num_samples` K, the IWAE-K bound), with the
    noise fixed by `seed` so that repeated evaluations are comparable."""
    total = 0.0
    for i, start in enumerate(range(0, x.shape[0], batch_size)):
        xb = x[start : start + batch_size]
        if num_samples is None:
            values = model(xb, seed=seed, offset=i, backend=backend)
        else:
            values = iwae_bound(model, xb, num_samples, seed=seed, offset=i, backend=backend)
        total += values.sum().item()
    return total / x.shape[0]


@dataclass
class EpochStats:
    """One epoch of `train_vae`: mean training objective over its batches (per example),
    the test ELBO after it (None without test data) and its training time in seconds."""

    epoch: int
    train_elbo: float
    test_elbo: float | None
    seconds: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_vae(
    train_x: torch.Tensor,
    test_x: torch.Tensor | None = None,
    *,
    epochs: int = 30,
    latent: int = 8,
    hidden: int = 256,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    backend: str = "auto",
    num_samples: int | None = None,
    on_step: Callable[[int, int, int, float], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> tuple[VAE, list[EpochStats]]:
    """Trains a `VAE` on the rows of `train_x` with Adam; returns (model, per-epoch stats).

    The run is a function of `seed` alone: the initial weights, the batch order and the noise
    (a ``torch.Generator`` on the data's device, passed to `sample_diag`), so the same seed
    with ``backend="reference"`` draws the same noise as the fused default. The global torch
    RNG is left untouched. With `num_samples` K the objective is the IWAE-K bound
    (`iwae_bound`) instead of the ELBO.

    Args:
        train_x, test_x: ``[N, data_dim]`` pixels in [0, 1]; the model lives on their device
            and dtype.
        on_step: called after each step as ``on_step(epoch, step, steps, objective)``.
        on_epoch: called with each epoch's `EpochStats`.
    """
    device = train_x.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VAE(train_x.shape[-1], latent, hidden).to(device=device, dtype=train_x.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order_gen = torch.Generator().manual_seed(seed + 1)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 2)
    n = train_x.shape[0]
    steps = math.ceil(n / batch_size)
    history: list[EpochStats] = []
    for epoch in range(1, epochs + 1):
        model.train()
        _sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=order_gen).to(device)
        total = torch.zeros((), device=device, dtype=torch.float64)
        for step in range(steps):
            xb = train_x[perm[step * batch_size : (step + 1) * batch_size]]
            if num_samples is None:
                objective = model(xb, generator=noise_gen, backend=backend)
            else:
                objective = iwae_bound(model, xb, num_samples, generator=noise_gen, backend=backend)
            loss = -objective.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += objective.detach().sum()
            if on_step is not None:
                on_step(epoch, step + 1, steps, -loss.item())
        train_elbo = total.item() / n
        _sync(device)
        seconds = time.perf_counter() - t0
        model.eval()
        test_elbo = None
        if test_x is not None:
            test_elbo = evaluate_elbo(model, test_x, seed=seed + 3, backend=backend)
        stats = EpochStats(epoch, train_elbo, test_elbo, seconds)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return model, history
