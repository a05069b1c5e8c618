"""CPU benchmark of the diagonal op: fused C++ kernel vs eager torch vs torch.compile, with
the registered op called directly ("raw": the public function's own cost is the difference)
and one native op with autograd (`torch.addcmul`, the floor) beside them.

Forward, and forward+backward, for N = 2^16 .. 2^24 float32 elements, at each thread count of
--threads (default 1,2), in one run, implementations interleaved round by round; prints a
table of ms and ratios and writes it (with the machine, versions and date) to
benchmarks/results/.
Run: python benchmarks/bench_diag_cpu.py [--max-log2 24] [--threads 1,2] [--rounds 31]
     [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _cpu_results import add_threads_argument, cpu_meta, finish_row, use_threads, write_table
from _timing import interleaved_median_ms


def eager(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def fused(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return fused_reparam.sample_diag(mu, logvar, backend="cpu")


def raw(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return torch.ops.fused_reparam.diag_rsample.default(mu, logvar)[0]


def addcmul(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return torch.addcmul(mu, logvar, mu)


def no_grad(fn, mu: torch.Tensor, logvar: torch.Tensor):
    def run() -> None:
        with torch.no_grad():
            fn(mu, logvar)

    return run


def fwd_bwd(fn, mu: torch.Tensor, logvar: torch.Tensor, grad: torch.Tensor):
    def run() -> None:
        mu.grad = logvar.grad = None
        fn(mu, logvar).backward(grad)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min-log2", type=int, default=16)
    parser.add_argument("--max-log2", type=int, default=24)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile rows")
    parser.add_argument(
        "--rounds", type=int, default=31, help="timed rounds per size (each calls every one)"
    )
    add_threads_argument(parser)
    parser.add_argument("--out", default=None, help="results file stem (default: dated)")
    parser.add_argument(
        "--out-dir", default=None, help="results folder (default: benchmarks/results)"
    )
    args = parser.parse_args()

    impl_names = ["fused", "raw", "addcmul", "eager"] + ([] if args.no_compile else ["compile"])
    rows = []
    for threads in args.threads:
        use_threads(threads)
        impls = {"fused": fused, "raw": raw, "addcmul": addcmul, "eager": eager}
        if not args.no_compile:
            impls["compile"] = torch.compile(eager, dynamic=True)
        for k in range(args.min_log2, args.max_log2 + 1):
            n = 1 << k
            gen = torch.Generator().manual_seed(k)
            mu = torch.randn(n, generator=gen, requires_grad=True)
            logvar = torch.randn(n, generator=gen, requires_grad=True)
            grad = torch.randn(n, generator=gen)
            row: dict[str, float | int] = {"threads": threads, "log2_n": k}
            fns = {}
            for name, fn in impls.items():
                fns[f"{name}_fwd_ms"] = no_grad(fn, mu, logvar)
                fns[f"{name}_fwdbwd_ms"] = fwd_bwd(fn, mu, logvar, grad)
            rounds: dict[str, list[float]] = {}
            row.update(interleaved_median_ms(fns, reps=args.rounds, rounds=rounds))
            row["rounds"] = rounds  # finish_row's paired ratios
            rows.append(finish_row(row, impl_names))

    meta = cpu_meta("diag forward / forward+backward, float32, CPU", args.threads)
    meta["peers"] = (
        "raw: torch.ops.fused_reparam.diag_rsample; addcmul: torch.addcmul(mu, logvar, mu); "
        "eager: mu + torch.exp(0.5*logvar) * torch.randn_like(mu); "
        "compile: torch.compile(eager, dynamic=True)"
    )
    meta["timing"] = (
        f"median wall time of {args.rounds} rounds after 2 warm-up calls; each round calls every "
        "implementation once, in a new random order; a speed-up is the median over the rounds "
        "of that round's ratio (a slow phase of the shared machine hits both sides alike)"
    )
    write_table(
        meta,
        rows,
        impl_names,
        ["N"],
        args.out_dir,
        args.out or f"cpu_diag_{meta['date']}",
        key_cells={"N": lambda r: f"2^{r['log2_n']}"},
    )


if __name__ == "__main__":
    main()
