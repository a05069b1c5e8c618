"""CPU benchmark of one call at the sizes a VAE step uses (a batch of tens to a thousand rows,
latent D of 8 to 64): where the per-call cost (Python, dispatch, autograd) weighs as much as
the kernel. Fused against eager torch, torch.distributions and torch.compile of the eager
code, forward and forward+backward, in microseconds per call, in one run; beside them the
registered op called directly ("raw": the public function's own cost is the difference) and
the floor of any op, one native op with C++ autograd (`torch.addcmul` on the sample's shape).

Ops: `diag` (z = mu + exp(0.5 logvar) * eps), `diag+kl` (z with its KL to N(0, I): the
fused `return_stats=True` call; the peers compute the KL in torch ops) and `chol`
(z = mu + L eps). Runs at each thread count of --threads (default 1,2) and writes a table per
thread count (machine, versions, date) to benchmarks/results/.
Run: python benchmarks/bench_latency_cpu.py [--threads 1,2] [--no-compile] [--dtype float32]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _cpu_results import cpu_meta, finish_row, parse_args, use_threads, write_table
from _timing import best_mean_us

# (op, B, D)
SIZES = [
    ("diag", 64, 8), ("diag", 128, 16), ("diag", 256, 32), ("diag", 1024, 64),
    ("diag+kl", 128, 16), ("diag+kl", 1024, 64),
    ("chol", 64, 8), ("chol", 128, 16), ("chol", 256, 32),
]  # fmt: skip


def _kl(mu: torch.Tensor, std: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mu * mu + std * std - 1 - logvar).sum(-1)


def eager_impls() -> dict[str, Callable]:
    """The eager torch line of each op (compiled for the compile column)."""

    def diag(mu, logvar):
        return (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu),)

    def diag_kl(mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(mu), _kl(mu, std, logvar)

    def chol(mu, scale_tril):
        return (mu + (scale_tril @ torch.randn_like(mu)[..., None])[..., 0],)

    return {"diag": diag, "diag+kl": diag_kl, "chol": chol}


def distributions_impls() -> dict[str, Callable]:
    """torch.distributions (validate_args off, as in a training loop)."""

    def diag(mu, logvar):
        return (Normal(mu, torch.exp(0.5 * logvar), validate_args=False).rsample(),)

    def diag_kl(mu, logvar):
        q = Normal(mu, torch.exp(0.5 * logvar), validate_args=False)
        prior = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)
        return q.rsample(), kl_divergence(q, prior).sum(-1)

    def chol(mu, scale_tril):
        return (MultivariateNormal(mu, scale_tril=scale_tril, validate_args=False).rsample(),)

    return {"diag": diag, "diag+kl": diag_kl, "chol": chol}


def fused_impls() -> dict[str, Callable]:
    def diag_kl(mu, logvar):
        s = fused_reparam.sample_diag(mu, logvar, return_stats=True)
        return s.z, s.kl

    return {
        "diag": lambda mu, logvar: (fused_reparam.sample_diag(mu, logvar),),
        "diag+kl": diag_kl,
        "chol": lambda mu, scale_tril: (fused_reparam.sample_chol(mu, scale_tril),),
    }


def raw_impls() -> dict[str, Callable]:
    """The registered ops called directly, without the public function around them."""
    ops = torch.ops.fused_reparam
    return {
        "diag": lambda mu, logvar: ops.diag_rsample.default(mu, logvar)[:1],
        "diag+kl": lambda mu, logvar: ops.diag_rsample_stats.default(mu, logvar)[:2],
        "chol": lambda mu, scale_tril: ops.chol_rsample.default(mu, scale_tril)[:1],
    }  # fmt: skip


def floor_impls() -> dict[str, Callable]:
    """One native op with C++ autograd on the sample's shape: what any op costs per call."""

    def diag(mu, logvar):
        return (torch.addcmul(mu, logvar, mu),)

    def chol(mu, scale_tril):
        return (torch.addcmul(mu, mu, mu),)

    return {"diag": diag, "diag+kl": diag, "chol": chol}


def timed_calls(fn: Callable, a: torch.Tensor, b: torch.Tensor, grad: torch.Tensor) -> tuple:
    """fn without grad, and forward + backward of a loss that uses every output (the inputs'
    .grad reset each call, as an optimizer's zero_grad does)."""

    def fwd() -> None:
        with torch.no_grad():
            fn(a, b)

    def fwdbwd() -> None:
        a.grad = b.grad = None
        outs = fn(a, b)
        loss = (outs[0] * grad).sum()
        for extra in outs[1:]:
            loss = loss + extra.sum()
        loss.backward()

    return fwd, fwdbwd


def inputs(op: str, b: int, d: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(b * 1000 + d)
    mu = torch.randn(b, d, generator=gen).to(dtype).requires_grad_()
    if op == "chol":
        lower = 0.3 * torch.randn(b, d, d, generator=gen).tril(-1)
        second = lower + torch.diag_embed(0.5 + torch.rand(b, d, generator=gen))
    else:
        second = 0.5 * torch.randn(b, d, generator=gen)
    grad = torch.randn(b, d, generator=gen).to(dtype)
    return mu, second.to(dtype).requires_grad_(), grad


def main() -> None:
    args = parse_args(__doc__, "e.g. diag:128x16,chol:64x8 (op:B x D)")
    dtype = getattr(torch, args.dtype)
    sizes = SIZES
    if args.sizes:
        sizes = []
        for item in args.sizes.split(","):
            op, bd = item.split(":")
            b, d = (int(v) for v in bd.split("x"))
            sizes.append((op, b, d))
    impl_names = ["fused", "raw", "addcmul", "eager", "distributions"]
    impl_names += [] if args.no_compile else ["compile"]
    calls = 20 if args.sizes else 300  # --sizes is the smoke test's tiny run
    rows = []
    for threads in args.threads:
        use_threads(threads)
        impls = {
            "fused": fused_impls(),
            "raw": raw_impls(),
            "addcmul": floor_impls(),
            "eager": eager_impls(),
            "distributions": distributions_impls(),
        }
        if not args.no_compile:
            compiled = {op: torch.compile(fn, dynamic=False) for op, fn in eager_impls().items()}
            impls["compile"] = compiled
        for op, b, d in sizes:
            a, second, grad = inputs(op, b, d, dtype)
            row: dict[str, float | int | str] = {"threads": threads, "op": op, "B": b, "D": d}
            fns = {}
            for name, table in impls.items():
                fwd, fwdbwd = timed_calls(table[op], a, second, grad)
                fns[f"{name}_fwd_us"], fns[f"{name}_fwdbwd_us"] = fwd, fwdbwd
            row.update(best_mean_us(fns, calls=calls))
            rows.append(finish_row(row, impl_names, unit="us"))
    benchmark = f"one call at VAE sizes, forward / forward+backward, {args.dtype}, CPU"
    meta = cpu_meta(benchmark, args.threads)
    meta["timing"] = (
        f"microseconds per call: the best of 7 rounds of the mean of {calls} calls, after "
        "warm-up; each round times every implementation in turn"
    )
    stem = args.out or f"cpu_latency_{meta['date']}"
    write_table(meta, rows, impl_names, ["op", "B", "D"], args.out_dir, stem, unit="us")


if __name__ == "__main__":
    main()
