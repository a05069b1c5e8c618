"""CPU benchmark of the diagonal op's scales: `sample_diag(mu, s, scale=...)` for each scale
against the same op at the default scale (logvar: each scale should cost within 10% of it),
the eager torch code users write for that scale, and `torch.distributions.Normal(mu,
sigma).rsample()`.

Forward, and forward+backward (mu and s), float32, at 64 x 8 and 2^16, 2^20, 2^22 elements,
at each thread count of --threads (default 1,2), implementations interleaved in --rounds
rounds (default 21: a 10% target needs ratios steadier than this machine's spread). Small
sizes (<= 2^16) time the mean of 200 back-to-back calls per round. A speed-up is the median
of the rounds' ratios. Writes the table (with the machine, versions and date) to
benchmarks/results/.
Run: python benchmarks/bench_scales_cpu.py [--threads 1,2] [--max-log2 22] [--rounds 21]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _cpu_results import add_threads_argument, cpu_meta, finish_row, use_threads, write_table
from _timing import shape_cell, size_timed_ms, size_timed_text

# sigma as users compute it in torch, per scale.
SIGMA: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "logvar": lambda s: torch.exp(0.5 * s),
    "log_std": torch.exp,
    "std": lambda s: s,
    "softplus": F.softplus,
}
IMPLS = ["fused", "logvar", "eager", "dist"]


def implementations(scale: str) -> dict[str, Callable]:
    """Each implementation as fn(mu, s) -> z."""
    sigma = SIGMA[scale]
    return {
        "fused": lambda m, s: fused_reparam.sample_diag(m, s, scale=scale, backend="cpu"),
        "logvar": lambda m, s: fused_reparam.sample_diag(m, s, backend="cpu"),
        "eager": lambda m, s: m + sigma(s) * torch.randn_like(m),
        "dist": lambda m, s: torch.distributions.Normal(m, sigma(s), validate_args=False).rsample(),
    }


def timers(fn: Callable, mu: torch.Tensor, s: torch.Tensor, grad: torch.Tensor) -> tuple:
    def fwd() -> None:
        with torch.no_grad():
            fn(mu, s)

    def fwd_bwd() -> None:
        mu.grad = s.grad = None
        fn(mu, s).backward(grad)

    return fwd, fwd_bwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-log2", type=int, default=22)
    parser.add_argument(
        "--rounds", type=int, default=21, help="timed rounds per size (each calls every one)"
    )
    add_threads_argument(parser)
    parser.add_argument("--out", default=None, help="results file stem (default: dated)")
    parser.add_argument("--out-dir", default=None, help="results folder")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    shapes = [(64, 8)] + [(1 << k,) for k in (16, 20, 22) if k <= args.max_log2]
    rows = []
    for threads in args.threads:
        use_threads(threads)
        for scale in SIGMA:
            for shape in shapes:
                gen = torch.Generator().manual_seed(len(shape) + shape[0])
                mu = torch.randn(shape, generator=gen, requires_grad=True)
                raw = torch.randn(shape, generator=gen)
                s = (raw.abs() + 0.1 if scale == "std" else raw).requires_grad_()
                grad = torch.randn(shape, generator=gen)
                fns = {}
                for name, fn in implementations(scale).items():
                    fns[f"{name}_fwd_ms"], fns[f"{name}_fwdbwd_ms"] = timers(fn, mu, s, grad)
                times = size_timed_ms(fns, mu.numel(), args.rounds, args.rounds)
                row = {"threads": threads, "scale": scale, "shape": list(shape), **times}
                rows.append(finish_row(row, IMPLS))

    meta = cpu_meta("diag scales: forward / forward+backward, float32, CPU", args.threads)
    meta["peers"] = (
        "fused: sample_diag(mu, s, scale=<scale>); logvar: sample_diag(mu, s) (the default "
        "scale, the 10% target's reference); eager: mu + sigma(s) * torch.randn_like(mu); "
        "dist: torch.distributions.Normal(mu, sigma(s)).rsample(); sigma(s) as torch code "
        "writes it: exp(0.5 s), exp(s), s, F.softplus(s)"
    )
    meta["timing"] = size_timed_text(args.rounds, args.rounds)

    write_table(meta, rows, IMPLS, ["scale", "N"], args.out_dir,
                args.out or f"cpu_scales_{meta['date']}", key_cells={"N": shape_cell})  # fmt: skip


if __name__ == "__main__":
    main()
