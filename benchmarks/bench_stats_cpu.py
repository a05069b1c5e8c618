"""CPU benchmark of the VAE step: a sample with its KL and log q, forward and forward+backward,
fused (`sample_diag(..., num_samples=K, return_stats=True)`: one kernel each way) against eager
torch, torch.distributions and torch.compile of the eager code, in one run.

Eager is what a VAE/IWAE usually writes: `std = exp(0.5 logvar)`, `z = mu + std * randn`,
`kl = 0.5 * sum(mu^2 + std^2 - 1 - logvar)`, `log_q = -0.5 * sum(((z - mu) / std)^2 + logvar +
log 2pi)`; torch.distributions is `Normal(mu, std)`'s rsample, log_prob and kl_divergence.
Runs at each thread count of --threads (default 1,2) and writes a table per thread count
(machine, versions, date) to benchmarks/results/.
Run: python benchmarks/bench_stats_cpu.py [--threads 1,2] [--no-compile] [--dtype float32]
"""

from __future__ import annotations

import math
import os
import sys

import torch
from torch.distributions import Normal, kl_divergence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _cpu_results import cpu_meta, finish_row, parse_args, use_threads, write_table
from _timing import median_ms

# (K, B, D): a VAE batch, a wide latent, and IWAE with K = 16 samples.
SIZES = [(1, 65536, 32), (1, 16384, 256), (16, 4096, 64)]
LOG_2PI = math.log(2 * math.pi)


def eager(mu: torch.Tensor, logvar: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn((k, *mu.shape), dtype=mu.dtype)
    kl = 0.5 * (mu * mu + std * std - 1 - logvar).sum(-1)
    log_q = -0.5 * (((z - mu) / std) ** 2 + logvar + LOG_2PI).sum(-1)
    return z, kl, log_q


def distributions(mu: torch.Tensor, logvar: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    q = Normal(mu, torch.exp(0.5 * logvar), validate_args=False)
    z = q.rsample((k,))
    prior = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)
    return z, kl_divergence(q, prior).sum(-1), q.log_prob(z).sum(-1)


def fused(mu: torch.Tensor, logvar: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    return tuple(fused_reparam.sample_diag(mu, logvar, num_samples=k, return_stats=True))


def time_fwd_and_fwdbwd(fn, mu, logvar, k, grad) -> tuple[float, float]:
    """Median ms of fn without grad, and of forward + backward of a loss using all outputs."""
    with torch.no_grad():
        fwd = median_ms(lambda: fn(mu, logvar, k), reps=5)

    def step() -> None:
        mu.grad = logvar.grad = None
        z, kl, log_q = fn(mu, logvar, k)
        ((z * grad).sum() + kl.sum() + log_q.sum()).backward()

    return fwd, median_ms(step, reps=5)


def main() -> None:
    args = parse_args(__doc__, "e.g. 1x1024x8,4x256x32 (K x B x D)")
    dtype = getattr(torch, args.dtype)
    sizes = SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    impl_names = ["fused", "eager", "distributions"] + ([] if args.no_compile else ["compile"])
    rows = []
    for threads in args.threads:
        use_threads(threads)
        impls = {"fused": fused, "eager": eager, "distributions": distributions}
        if not args.no_compile:
            impls["compile"] = torch.compile(eager, dynamic=True)
        for k, b, d in sizes:
            gen = torch.Generator().manual_seed(k * 10**6 + b * 1000 + d)
            mu = torch.randn(b, d, generator=gen).to(dtype).requires_grad_()
            logvar = (0.5 * torch.randn(b, d, generator=gen)).to(dtype).requires_grad_()
            grad = torch.randn(k, b, d, generator=gen).to(dtype)
            row: dict[str, float | int] = {"threads": threads, "K": k, "B": b, "D": d}
            for name, fn in impls.items():
                fwd, fwdbwd = time_fwd_and_fwdbwd(fn, mu, logvar, k, grad)
                row[f"{name}_fwd_ms"], row[f"{name}_fwdbwd_ms"] = fwd, fwdbwd
            rows.append(finish_row(row, impl_names))
    benchmark = f"diag sample + KL + log q, forward / forward+backward, {args.dtype}, CPU"
    meta = cpu_meta(benchmark, args.threads)
    stem = args.out or f"cpu_stats_{meta['date']}"
    write_table(meta, rows, impl_names, ["K", "B", "D"], args.out_dir, stem)


if __name__ == "__main__":
    main()
