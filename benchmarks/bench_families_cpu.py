"""CPU benchmark of the location-scale families: the fused distributions' rsample (Laplace,
Logistic, Gumbel of fused_reparam.distributions: one sample_diag call with that noise) against
torch.distributions' own (Laplace, Gumbel, and a logistic as torch writes it: a uniform
through the inverse sigmoid and an affine map).

Forward (rsample under no_grad) and forward+backward (loc and scale), float32, at 64 x 8,
2^16 and 2^20 elements, at each thread count of --threads (default 1,2), implementations
interleaved. Writes the table (machine, versions, date) to benchmarks/results/.
Run: python benchmarks/bench_families_cpu.py [--threads 1,2] [--max-log2 20]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

import torch
from torch import distributions as td

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam.distributions as fd
from _cpu_results import add_threads_argument, cpu_meta, finish_row, use_threads, write_table
from _timing import SIZE_TIMED, shape_cell, size_timed_ms


def torch_logistic(loc: torch.Tensor, scale: torch.Tensor) -> td.Distribution:
    base = td.Uniform(torch.zeros_like(loc), torch.ones_like(loc), validate_args=False)
    transforms = [td.SigmoidTransform().inv, td.AffineTransform(loc, scale)]
    return td.TransformedDistribution(base, transforms, validate_args=False)


# family -> (fused class, torch's distribution of (loc, scale))
FAMILIES: dict[str, tuple[Callable, Callable]] = {
    "laplace": (fd.Laplace, lambda m, s: td.Laplace(m, s, validate_args=False)),
    "logistic": (fd.Logistic, torch_logistic),
    "gumbel": (fd.Gumbel, lambda m, s: td.Gumbel(m, s, validate_args=False)),
}
IMPLS = ["fused", "torch"]


def timers(make: Callable, loc: torch.Tensor, scale: torch.Tensor) -> tuple:
    def fwd() -> None:
        with torch.no_grad():
            make(loc, scale).rsample()

    def fwd_bwd() -> None:
        z = make(loc, scale).rsample()
        torch.autograd.grad(z.sum(), (loc, scale))

    return fwd, fwd_bwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-log2", type=int, default=20)
    add_threads_argument(parser)
    parser.add_argument("--out", default=None, help="results file stem (default: dated)")
    parser.add_argument("--out-dir", default=None, help="results folder")
    args = parser.parse_args()

    shapes = [(64, 8)] + [(1 << k,) for k in (16, 20) if k <= args.max_log2]
    rows = []
    for threads in args.threads:
        use_threads(threads)
        for family, (fused_cls, torch_dist) in FAMILIES.items():
            for shape in shapes:
                gen = torch.Generator().manual_seed(shape[0])
                loc = torch.randn(shape, generator=gen, requires_grad=True)
                scale = (torch.rand(shape, generator=gen) + 0.1).requires_grad_()
                fns = {}
                fused = functools.partial(fused_cls, validate_args=False, backend="cpu")
                for name, make in (("fused", fused), ("torch", torch_dist)):
                    fns[f"{name}_fwd_ms"], fns[f"{name}_fwdbwd_ms"] = timers(make, loc, scale)
                times = size_timed_ms(fns, loc.numel())
                row = {"threads": threads, "family": family, "shape": list(shape), **times}
                rows.append(finish_row(row, IMPLS))

    meta = cpu_meta("location-scale families: rsample forward / forward+backward, float32, "
                    "CPU", args.threads)  # fmt: skip
    meta["peers"] = (
        "fused: fused_reparam.distributions.<Family>(loc, scale).rsample() (one sample_diag "
        "call); torch: torch.distributions.Laplace / Gumbel, and for the logistic a "
        "TransformedDistribution(Uniform(0, 1), [SigmoidTransform().inv, AffineTransform])"
    )
    meta["timing"] = SIZE_TIMED

    stem = args.out or f"cpu_families_{meta['date']}"
    write_table(meta, rows, IMPLS, ["family", "N"], args.out_dir, stem, key_cells={"N": shape_cell})


if __name__ == "__main__":
    main()
