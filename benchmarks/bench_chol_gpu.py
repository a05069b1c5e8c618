"""GPU benchmark of the Cholesky op z = mu + L eps (docs/design.md, "Performance").

For (B, D) in (65536, 8), (65536, 32), (16384, 64), (256, 512), (64, 1024), float32 and
bfloat16, with a per-sample factor L [B, D, D] (random, lower-triangular, diagonal >= 1) and
mu [B, D], all in one run:
  - fused: fused_reparam.sample_chol with backend "cuda" and "triton", each when
    available_backends("cuda", "chol_rsample") lists it (rows of a missing one are skipped);
  - eager: mu + (L @ torch.randn_like(mu)[..., None])[..., 0];
  - compile: torch.compile of that same line (dynamic=True, default mode: one graph per dtype
    and grad mode for all sizes; compiled during a warm-up outside the timing);
  - distributions: MultivariateNormal(mu, scale_tril=L, validate_args=False).rsample();
  - copy: dst.copy_(src) of half the forward's bytes model (read + write = the forward's bytes),
    the bandwidth yardstick, measured per size and dtype in the same run.
Modes: forward (under no_grad), backward (torch.autograd.grad of one forward graph, replayed
with retain_graph, for mu and L with a fixed upstream grad) and forward+backward (both in every
timed call).

Bytes model (elements times the element size; eps is never in memory, L counted by its lower
triangle T = B * D * (D + 1) / 2 elements, whatever an implementation really reads):
  forward          = mu (B*D) read + L's lower triangle (T) read + z (B*D) written
                   = 2*B*D + T
  backward         = dz (B*D) read + L's lower triangle (T) read + dL's lower triangle (T)
                     written + dmu (B*D) written
                   = 2*B*D + 2*T
  forward+backward = forward + backward = 4*B*D + 3*T
The same numbers divide every implementation's time, so GB/s compares like with like. The fused
op returns dz itself as dmu (no copy) and allocates dL as a full [B, D, D] tensor; the model
counts dmu as written and dL by its lower triangle all the same. The eager, compiled and
distributions peers read and write the whole D x D matrices, and their GB/s by this model is
the useful work they do per second, not their real traffic.

Reported per implementation: ms (median of do_bench CUDA-event timings, the L2 cache flushed
before every timed call), GB/s by the model, the fraction of the copy's GB/s, the speedups
against compile and eager, the memory autograd keeps for backward (growth of
memory_allocated over one forward with grad, less z) and the peak memory one forward+backward
adds above the inputs (grads included). The targets, for D <= 64 at B >= 16384, are
flags of each fused backend: forward >= 85% of the copy's GB/s, forward+backward >= 2x faster
than compile. Writes gpu_chol_<date>.json and .md (device, driver, torch, CUDA, Triton, date,
copy bandwidth) and a .png of GB/s per size and implementation (with matplotlib) under --out,
rewriting the .json and .md after every size so a run cut short keeps what it finished. Exits
with status 1 when an implementation raised (after writing; its cells read "-").

    python benchmarks/bench_chol_gpu.py [--out DIR] [--dtypes float32,bfloat16] [--sizes 64x1024]
    python benchmarks/bench_chol_gpu.py --smoke --out /tmp/chol_smoke   (CPU, tiny, seconds)
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _chol_gpu_model import (
    TARGET_FWD_OF_COPY,
    TARGET_FWDBWD_X_VS_COMPILE,
    TARGET_MAX_D,
    TARGET_MIN_B,
    derive,
    model_elements,
)
from _chol_gpu_report import plot, summary_line, write_tables
from _gpu_common import driver_version, kept_for_backward, make_timer, versions
from bench_chol_cpu import SIZES, distributions, eager

SMOKE_SIZES = [(16384, 4), (64, 3), (8, 17)]


def make_inputs(
    b: int, d: int, dtype: torch.dtype, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mu [B, D], a well-conditioned lower-triangular L [B, D, D] (as bench_chol_cpu.py makes
    it: off-diagonal N(0, 1/D), diagonal 1 + |N(0, 1/D)|), both leaves that need grad, and a
    fixed upstream grad [B, D]."""
    gen = torch.Generator(device=device).manual_seed(b * 1000 + d)
    mu = torch.randn(b, d, generator=gen, device=device).to(dtype).requires_grad_()
    base = torch.randn(b, d, d, generator=gen, device=device) / d**0.5
    L = base.tril(-1) + torch.diag_embed(1 + base.diagonal(dim1=-2, dim2=-1).abs())
    del base
    L = L.to(dtype).requires_grad_()
    grad = torch.randn(b, d, generator=gen, device=device).to(dtype)
    return mu, L, grad


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_impl(fn: Callable, timer: Callable, mu, L, grad, device: str) -> dict[str, float]:
    """Times fn forward, backward (one forward graph replayed) and forward+backward, and
    measures the memory it keeps for backward."""

    def fwd() -> None:
        with torch.no_grad():
            fn(mu, L)

    def fwdbwd() -> None:
        torch.autograd.grad(fn(mu, L), (mu, L), grad)

    # Warm-up outside the timing: compiles torch.compile's inference and training graphs.
    start = time.perf_counter()
    fwd()
    gmu, gL = torch.autograd.grad(fn(mu, L), (mu, L), grad)
    sync(device)
    warmup_s = time.perf_counter() - start
    if gmu.shape != mu.shape or gL.shape != L.shape:
        raise RuntimeError(f"grad shapes {tuple(gmu.shape)}, {tuple(gL.shape)}")
    del gmu, gL
    graph = {"z": fn(mu, L)}

    def bwd() -> None:
        torch.autograd.grad(graph["z"], (mu, L), grad, retain_graph=True)

    result = {"fwd_ms": timer(fwd), "bwd_ms": timer(bwd), "fwdbwd_ms": timer(fwdbwd)}
    result["warmup_s"] = warmup_s
    graph.clear()  # frees the replayed graph before the memory measurements
    result["kept_bytes"] = float(kept_for_backward(fn, mu, L))
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fwdbwd()
        torch.cuda.synchronize()
        result["peak_fwdbwd_bytes"] = float(torch.cuda.max_memory_allocated() - base)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, backend cpu")
    parser.add_argument("--sizes", default=None, help="BxD list, e.g. 65536x8,64x1024")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    compile_group = parser.add_mutually_exclusive_group()
    compile_group.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    compile_group.add_argument("--compile", action="store_true", help="compile in --smoke too")
    parser.add_argument("--warmup-ms", type=int, default=25, help="do_bench warm-up time")
    parser.add_argument("--rep-ms", type=int, default=100, help="do_bench timed repetitions")
    parser.add_argument(
        "--out",
        "--out-dir",
        dest="out",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
        help="results folder (default: benchmarks/results/)",
    )
    parser.add_argument("--stem", default=None, help="results file name (default: dated)")
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --smoke for a CPU smoke test of the script")
    sizes = SMOKE_SIZES if args.smoke else SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    use_compile = args.compile or not (args.no_compile or args.smoke)

    timer = make_timer(device, warmup=args.warmup_ms, rep=args.rep_ms)
    available = fused_reparam.available_backends(device, "chol_rsample")
    wanted = ("cpu",) if args.smoke else ("cuda", "triton")
    impls: dict[str, Callable] = {}
    for backend in wanted:
        if backend in available:
            impls[f"fused_{backend}"] = functools.partial(
                fused_reparam.sample_chol, backend=backend
            )
        else:
            print(f"backend {backend!r} has no chol_rsample on {device}: its rows are skipped")
    impls["eager"] = eager
    if use_compile:
        # Timing the backward alone replays one graph (retain_graph), which donated buffers
        # forbid; they only let the compiled backward reuse memory in place.
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False
        impls["compile"] = torch.compile(eager, dynamic=True)
    impls["distributions"] = distributions

    meta = versions(device, "chol_rsample")
    meta["chol_backends"] = ", ".join(available)
    if device == "cuda":
        meta["driver"] = driver_version()
    meta["method"] = (
        f"median of do_bench CUDA-event timings (warmup {args.warmup_ms} ms, rep {args.rep_ms} "
        "ms, L2 flushed before every timed call)"
        if device == "cuda"
        else "CPU smoke run: wall-clock median of 5 calls after one warm-up call"
    )
    meta["bytes_model"] = (
        "T = B*D*(D+1)/2 (lower triangle); fwd = mu + L tri + z = 2BD + T; bwd = dz + L tri "
        "+ dL tri + dmu = 2BD + 2T; fwd+bwd = 4BD + 3T elements"
    )
    meta["copy"] = "dst.copy_(src) of (2BD + T)/2 elements (read + write = the fwd bytes model)"
    meta["compile"] = "torch.compile(eager, dynamic=True)" if use_compile else "not run"
    meta["targets"] = (
        f"fused, D <= {TARGET_MAX_D} and B >= {TARGET_MIN_B}: fwd >= "
        f"{100 * TARGET_FWD_OF_COPY:.0f}% of copy GB/s; fwd+bwd >= "
        f"{TARGET_FWDBWD_X_VS_COMPILE:.0f}x faster than compile"
    )
    stem = args.stem or f"gpu_chol_{meta['date']}"
    rows: list[dict] = []
    failed = False
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        elt = torch.empty((), dtype=dtype).element_size()
        for b, d in sizes:
            mu, L, grad = make_inputs(b, d, dtype, device)
            elements = model_elements(b, d)
            n_copy = elements["fwd"] // 2
            src = torch.empty(n_copy, dtype=dtype, device=device).normal_()
            dst = torch.empty_like(src)
            copy_ms = timer(lambda dst=dst, src=src: dst.copy_(src))
            row: dict[str, object] = {
                "dtype": dtype_name,
                "B": b,
                "D": d,
                "fwd_bytes": elements["fwd"] * elt,
                "bwd_bytes": elements["bwd"] * elt,
                "fwdbwd_bytes": elements["fwdbwd"] * elt,
                "copy_ms": copy_ms,
                "copy_gbs": 2 * n_copy * elt / copy_ms / 1e6,
            }
            del src, dst
            for name, fn in impls.items():
                try:
                    r = bench_impl(fn, timer, mu, L, grad, device)
                except Exception as exc:  # one failing implementation must not stop the run
                    failed = True
                    row[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:500]
                    print(f"{dtype_name} B={b} D={d} {name}: {row[f'{name}_error']}", flush=True)
                    continue
                for key, value in r.items():
                    row[f"{name}_{key}"] = value
            derive(row, list(impls))
            rows.append(row)
            print(summary_line(row, impls), flush=True)
            meta["copy_gbs_median"] = statistics.median(r["copy_gbs"] for r in rows)
            write_tables(args.out, stem, meta, rows, list(impls))
            del mu, L, grad
            if device == "cuda":
                torch.cuda.empty_cache()
    plot(os.path.join(args.out, stem + ".png"), meta, rows, list(impls))
    print(f"wrote {stem}.json, .md (and .png with matplotlib) in {args.out}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
