"""CPU benchmark of the Cholesky op: fused C++ kernel vs eager torch, torch.distributions and
torch.compile, forward and forward+backward, for the (B, D) sizes in SIZES, in one run, with
the memory floor (reading L) beside them.

Peers: eager `mu + (L @ torch.randn_like(mu)[..., None])[..., 0]`,
`torch.distributions.MultivariateNormal(mu, scale_tril=L).rsample()` (validate_args off) and
torch.compile of the eager line, and `jax.jit` of the same where JAX is installed and the run
is `--threads 1` (the process is then bound to one CPU; _jax_peer.py says why only then), at
each thread count of --threads (default 1,2), implementations interleaved round by round in
random order. Writes a table per thread count (machine, versions, date) to
benchmarks/results/.
Run: python benchmarks/bench_chol_cpu.py [--threads 1,2] [--no-compile] [--dtype float32]
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _cpu_results import cpu_meta, finish_row, parse_args, use_threads, write_table
from _jax_peer import chol_peer, prepare
from _timing import interleaved_median_ms

SIZES = [(65536, 8), (65536, 32), (16384, 64), (256, 512), (64, 1024)]


def eager(mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return mu + (L @ torch.randn_like(mu)[..., None])[..., 0]


def distributions(mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return torch.distributions.MultivariateNormal(mu, scale_tril=L, validate_args=False).rsample()


def fused(mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return fused_reparam.sample_chol(mu, L, backend="cpu")


def floor_timers(L: torch.Tensor) -> tuple:
    """The memory floor any implementation pays: reading L once (forward), and reading it
    twice and writing a tensor of its size (forward+backward, which reads L again and writes
    grad_L)."""
    Ld = L.detach()

    def fwd() -> None:
        Ld.sum()

    def step() -> None:
        Ld.sum()
        Ld.sum()
        torch.empty_like(Ld).zero_()

    return fwd, step


def timed(fn, mu, L, grad) -> tuple:
    """fn(mu, L) without grad, and forward + backward with grad."""

    def fwd() -> None:
        with torch.no_grad():
            fn(mu, L)

    def step() -> None:
        mu.grad = L.grad = None
        fn(mu, L).backward(grad)

    return fwd, step


def main() -> None:
    args = parse_args(__doc__, "e.g. 1024x8,256x32 (default: 65536x8 .. 64x1024, SIZES)")
    dtype = getattr(torch, args.dtype)
    sizes = SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    impl_names = ["fused", "eager", "distributions"] + ([] if args.no_compile else ["compile"])
    no_jax = prepare(args.threads) if args.dtype == "float32" else "JAX peer: float32 only"
    if no_jax is None:
        impl_names.append("jax")
    else:
        print(f"no JAX column: {no_jax}")
    columns = [*impl_names, "floor"]  # the table's, with the floor last
    rows = []
    for threads in args.threads:
        use_threads(threads)
        impls = {"fused": fused, "eager": eager, "distributions": distributions}
        if not args.no_compile:
            impls["compile"] = torch.compile(eager, dynamic=True)
        for b, d in sizes:
            gen = torch.Generator().manual_seed(b * 1000 + d)
            mu = torch.randn(b, d, generator=gen).to(dtype).requires_grad_()
            base = torch.randn(b, d, d, generator=gen) / d**0.5
            L = base.tril(-1) + torch.diag_embed(1 + base.diagonal(dim1=-2, dim2=-1).abs())
            L = L.to(dtype).requires_grad_()
            grad = torch.randn(b, d, generator=gen).to(dtype)
            row: dict[str, float | int] = {"threads": threads, "B": b, "D": d}
            fns = {}
            for name, fn in impls.items():
                fns[f"{name}_fwd_ms"], fns[f"{name}_fwdbwd_ms"] = timed(fn, mu, L, grad)
            if no_jax is None:
                arrays = (t.detach().numpy() for t in (mu, L, grad))
                fns["jax_fwd_ms"], fns["jax_fwdbwd_ms"] = chol_peer(*arrays)
            fns["floor_fwd_ms"], fns["floor_fwdbwd_ms"] = floor_timers(L)
            rounds: dict[str, list[float]] = {}
            row.update(interleaved_median_ms(fns, rounds=rounds), rounds=rounds)
            rows.append(finish_row(row, columns))
    meta = cpu_meta(f"chol forward / forward+backward, {args.dtype}, CPU", args.threads)
    stem = args.out or f"cpu_chol_{meta['date']}"
    meta["floor"] = (
        "floor: reading L once (L.sum()) forward; reading it twice and writing a tensor of its "
        "size forward+backward (the memory traffic every implementation has)"
    )
    meta["speed-up"] += "; the median over the rounds of that round's ratio"
    meta["timing"] = (
        "the median of 7 rounds after 2 warm-up calls; every round runs each implementation "
        "in turn, in a new random order"
    )
    write_table(meta, rows, columns, ["B", "D"], args.out_dir, stem)


if __name__ == "__main__":
    main()
