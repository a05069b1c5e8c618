"""Launches every compiled kernel of the fused ops, in every dtype, directly through the
registered ops (no autograd, no Python front), at small sizes: the program that
compute-sanitizer runs in the GPU check (memcheck on all of it; synccheck and racecheck on the
ops whose kernels share memory and shuffle within warps).

The cases walk each op's kernel paths: explicit eps or the in-kernel stream (from a given
[seed, offset] or the device generator), backward with and without grad_eps, broadcast and
stride-0 (K samples) inputs, misaligned views, and the sizes at which the CUDA launchers switch
kernels (Cholesky: D <= 64 tiles, larger D units; stats: rows of <= 1024 elements in tiles,
longer rows one block each). Every output is checked to be finite.

    python benchmarks/gpu_kernel_driver.py [--device cuda] [--ops diag,diag_stats,chol]
                                           [--dtypes float32,float64,float16,bfloat16]
    (--ops chol covers the Cholesky ops with and without the stats)
    python benchmarks/gpu_kernel_driver.py --device cpu   (the same calls on the CPU kernels)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator

import torch

import fused_reparam

OPS = torch.ops.fused_reparam
DTYPES = ("float32", "float64", "float16", "bfloat16")
# (mu shape, scale shape) of the diagonal ops: odd sizes, broadcasts both ways.
DIAG_SHAPES = [((1031,), (1031,)), ((7, 13), (13,)), ((1, 5, 9), (4, 1, 9))]
# Row lengths D of the stats ops (tile kernel up to 1024, one block a row beyond) and of the
# Cholesky ops (tile kernels up to 64, unit kernels beyond).
STATS_D = (1, 5, 33, 300, 1024, 1500)
CHOL_D = (1, 5, 32, 64, 65, 130)


def rand(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> torch.Tensor:
    """Standard normal data drawn on the CPU (the same values on every device)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)


def misaligned(t: torch.Tensor) -> torch.Tensor:
    """The same values in a view at storage offset 1 (no 16-byte aligned start)."""
    base = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    view = base[1:].view(t.shape)
    view.copy_(t)
    return view


def scale_tril(
    d: int, dtype: torch.dtype, device: str, seed: int, batch: tuple = ()
) -> torch.Tensor:
    """A lower-triangular factor with a positive diagonal (upper triangle left as noise)."""
    a = rand((*batch, d, d), torch.float64, "cpu", seed)
    a.diagonal(dim1=-2, dim2=-1).copy_(a.diagonal(dim1=-2, dim2=-1).abs() + 0.5)
    return a.to(dtype).to(device)


def streams(device: str) -> Iterator[dict]:
    """The noise sources of a forward call: a given stream, and the device's generator."""
    yield {"seed_offset": torch.tensor([2**40 + 7, 2**62 + 3], device=device)}
    yield {"seed_offset": None}


def check(outputs: tuple, what: str) -> None:
    if outputs[0].is_cuda:
        torch.cuda.synchronize()  # a faulting kernel reports here, next to its case
    for t in outputs:
        if t.is_floating_point() and t.numel() and not torch.isfinite(t).all():
            raise SystemExit(f"gpu_kernel_driver: non-finite output in {what}")


def diag_cases(dtype: torch.dtype, device: str) -> Iterator[tuple[str, Callable[[], tuple]]]:
    for i, (ms, ls) in enumerate(DIAG_SHAPES):
        mu, lv = rand(ms, dtype, device, i), 0.3 * rand(ls, dtype, device, 10 + i)
        shape = torch.broadcast_shapes(ms, ls)
        eps, g = rand(shape, dtype, device, 20 + i), rand(shape, dtype, device, 30 + i)
        for kw in streams(device):
            yield (
                f"diag_rsample {ms}x{ls}",
                lambda mu=mu, lv=lv, kw=kw: OPS.diag_rsample(mu, lv, **kw),
            )
        yield (
            f"diag_rsample eps {ms}",
            lambda mu=mu, lv=lv, eps=eps: OPS.diag_rsample(mu, lv, eps=eps),
        )
        so = torch.tensor([5, 9], device=device)
        yield (
            f"diag_rsample_backward {ms}",
            lambda g=g, lv=lv, so=so: OPS.diag_rsample_backward(g, lv, None, so, False),
        )
        yield (
            f"diag_rsample_backward eps {ms}",
            lambda g=g, lv=lv, eps=eps, so=so: OPS.diag_rsample_backward(g, lv, eps, so, True),
        )
    # Misaligned starts and a K-samples view (stride 0 over K).
    mu, lv = (
        misaligned(rand((1029,), dtype, device, 40)),
        misaligned(rand((1029,), dtype, device, 41)),
    )
    yield "diag_rsample misaligned", lambda: OPS.diag_rsample(mu, lv, eps=misaligned(mu.clone()))
    yield (
        "diag_rsample K samples",
        lambda: OPS.diag_rsample(
            mu.expand(3, 1029), lv.expand(3, 1029), seed_offset=torch.tensor([1, 2], device=device)
        ),
    )


def stats_cases(dtype: torch.dtype, device: str) -> Iterator[tuple[str, Callable[[], tuple]]]:
    for d in STATS_D:
        rows = 7
        mu, lv = rand((rows, d), dtype, device, d), 0.3 * rand((d,), dtype, device, d + 1)
        eps, g = rand((rows, d), dtype, device, d + 2), rand((rows, d), dtype, device, d + 3)
        gk, gq = rand((rows,), dtype, device, d + 4), rand((rows,), dtype, device, d + 5)
        so = torch.tensor([3, 4], device=device)
        for kw in streams(device):
            yield (
                f"diag_rsample_stats D={d}",
                lambda mu=mu, lv=lv, kw=kw: OPS.diag_rsample_stats(mu, lv, **kw),
            )
        yield (
            f"diag_rsample_stats eps D={d}",
            lambda mu=mu, lv=lv, eps=eps: OPS.diag_rsample_stats(misaligned(mu), lv, eps=eps),
        )
        for e, need in ((None, False), (eps, True)):
            yield (
                f"diag_rsample_stats_backward D={d} eps={e is not None}",
                (
                    lambda g=g, gk=gk, gq=gq, mu=mu, lv=lv, e=e, so=so, need=need: (
                        OPS.diag_rsample_stats_backward(g, gk, gq, mu, lv, e, so, need)
                    )
                ),
            )


def chol_cases(dtype: torch.dtype, device: str) -> Iterator[tuple[str, Callable[[], tuple]]]:
    for d in CHOL_D:
        rows = 5
        mu = rand((rows, d), dtype, device, d)
        own, shared = scale_tril(d, dtype, device, d + 1, (rows,)), scale_tril(d, dtype, device, d)
        eps, g = rand((rows, d), dtype, device, d + 2), rand((rows, d), dtype, device, d + 3)
        gk, gq = rand((rows,), dtype, device, d + 4), rand((rows,), dtype, device, d + 5)
        so = torch.tensor([6, 7], device=device)
        for name, lt in (("own L", own), ("shared L", shared)):
            for kw in streams(device):
                yield (
                    f"chol_rsample D={d} {name}",
                    lambda mu=mu, lt=lt, kw=kw: OPS.chol_rsample(mu, lt, None, **kw),
                )
                yield (
                    f"chol_rsample_stats D={d} {name}",
                    lambda mu=mu, lt=lt, kw=kw: OPS.chol_rsample_stats(mu, lt, None, **kw),
                )
            yield (
                f"chol_rsample eps D={d} {name}",
                lambda mu=mu, lt=lt, eps=eps: OPS.chol_rsample(misaligned(mu), lt, eps),
            )
            for e, need in ((None, False), (eps, True)):
                yield (
                    f"chol_rsample_backward D={d} {name} eps={e is not None}",
                    (
                        lambda g=g, lt=lt, e=e, so=so, need=need: OPS.chol_rsample_backward(
                            g, lt, e, so, need
                        )
                    ),
                )
                yield (
                    f"chol_rsample_stats_backward D={d} {name} eps={e is not None}",
                    (
                        lambda g=g, gk=gk, gq=gq, mu=mu, lt=lt, e=e, so=so, need=need: (
                            OPS.chol_rsample_stats_backward(g, gk, gq, mu, lt, e, so, need)
                        )
                    ),
                )


CASES = {"diag": diag_cases, "diag_stats": stats_cases, "chol": chol_cases}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--ops", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    args = parser.parse_args()
    backend = "cuda" if args.device == "cuda" else "cpu"
    for op in ("diag_rsample", "chol_rsample", "diag_rsample_stats", "chol_rsample_stats"):
        if backend not in fused_reparam.available_backends(args.device, op):
            raise SystemExit(f"gpu_kernel_driver: no compiled {backend} kernels for {op}")
    calls = 0
    for op in args.ops.split(","):
        if op not in CASES:
            raise SystemExit(f"gpu_kernel_driver: --ops takes {', '.join(CASES)}, got {op!r}")
        for dtype_name in args.dtypes.split(","):
            dtype = getattr(torch, dtype_name)
            n = 0
            for what, call in CASES[op](dtype, args.device):
                check(call(), f"{what} ({dtype_name})")
                n += 1
            print(f"{op:>10} {dtype_name:>8}: {n} calls", flush=True)
            calls += n
    print(f"gpu_kernel_driver: {calls} calls on {args.device}, every output finite")


if __name__ == "__main__":
    sys.exit(main())
