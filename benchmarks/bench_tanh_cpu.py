"""CPU benchmark of the tanh-squashed Gaussian (a SAC policy's action and log-density):
`sample_tanh_normal(mu, log_std)` against the eager SAC code users write
(`Normal(mu, log_std.exp())`, `rsample`, `tanh`, `log_prob(u) - log(1 - tanh(u)^2 + 1e-6)`),
the same under `torch.compile`, and the fused Gaussian alone (`sample_diag` with the extras,
log_std scale: what the squash adds to it).

Forward, and forward+backward of `action.sum() + log_prob.sum()` (mu and log_std), float32,
at B x 6 for B = 256, 4096 and 2^20 / 6 elements, at each thread count of --threads
(default 1,2), implementations interleaved. Writes the table (machine, versions, date) to
benchmarks/results/.
Run: python benchmarks/bench_tanh_cpu.py [--threads 1,2] [--max-rows 174763] [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _cpu_results import add_threads_argument, cpu_meta, finish_row, use_threads, write_table
from _timing import SIZE_TIMED, size_timed_ms

ACTION_DIM = 6


def eager(mu: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist = torch.distributions.Normal(mu, log_std.exp(), validate_args=False)
    u = dist.rsample()
    action = torch.tanh(u)
    log_prob = (dist.log_prob(u) - torch.log(1 - action.pow(2) + 1e-6)).sum(-1)
    return action, log_prob


def fused(mu: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(fused_reparam.sample_tanh_normal(mu, log_std, backend="cpu"))


def gaussian(mu: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = fused_reparam.sample_diag(mu, log_std, scale="log_std", backend="cpu",
                                    return_stats=True)  # fmt: skip
    return out.z, out.log_q


def timers(fn: Callable, mu: torch.Tensor, log_std: torch.Tensor) -> tuple:
    def fwd() -> None:
        with torch.no_grad():
            fn(mu, log_std)

    def fwd_bwd() -> None:
        action, log_prob = fn(mu, log_std)
        torch.autograd.grad(action.sum() + log_prob.sum(), (mu, log_std))

    return fwd, fwd_bwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-rows", type=int, default=(1 << 20) // ACTION_DIM)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile rows")
    add_threads_argument(parser)
    parser.add_argument("--out", default=None, help="results file stem (default: dated)")
    parser.add_argument("--out-dir", default=None, help="results folder")
    args = parser.parse_args()

    rows_list = [b for b in (256, 4096, (1 << 20) // ACTION_DIM) if b <= args.max_rows]
    impl_names = ["fused", "gaussian", "eager"] + ([] if args.no_compile else ["compile"])
    rows = []
    for threads in args.threads:
        use_threads(threads)
        impls = {"fused": fused, "gaussian": gaussian, "eager": eager}
        if not args.no_compile:
            impls["compile"] = torch.compile(eager, dynamic=False)
        for b in rows_list:
            gen = torch.Generator().manual_seed(b)
            mu = torch.randn(b, ACTION_DIM, generator=gen, requires_grad=True)
            log_std = (torch.randn(b, ACTION_DIM, generator=gen) * 0.3 - 1).requires_grad_()
            fns = {}
            for name, fn in impls.items():
                fns[f"{name}_fwd_ms"], fns[f"{name}_fwdbwd_ms"] = timers(fn, mu, log_std)
            times = size_timed_ms(fns, b * ACTION_DIM)
            rows.append(finish_row({"threads": threads, "B": b, "D": ACTION_DIM, **times},
                                   impl_names))  # fmt: skip

    meta = cpu_meta("tanh-squashed Gaussian (SAC): forward / forward+backward, float32, CPU",
                    args.threads)  # fmt: skip
    meta["peers"] = (
        "fused: sample_tanh_normal(mu, log_std); gaussian: sample_diag(mu, log_std, "
        "scale='log_std', return_stats=True) (the fused Gaussian without the squash); eager: "
        "Normal(mu, log_std.exp()).rsample(), tanh, log_prob(u) - log(1 - tanh(u)^2 + 1e-6) "
        "summed; compile: torch.compile(eager)"
    )
    meta["timing"] = SIZE_TIMED
    write_table(meta, rows, impl_names, ["B", "D"], args.out_dir,
                args.out or f"cpu_tanh_{meta['date']}")  # fmt: skip


if __name__ == "__main__":
    main()
