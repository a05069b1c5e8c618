"""GPU benchmark of the diagonal op (docs/design.md, "Performance").

For N = 2^12 .. 2^28 elements, float32 and bfloat16: forward, backward and forward+backward of
the fused op (its best backend, and the Triton backend beside it when both run; the softplus
scale and the SAC tanh squash beside the default) against eager torch, torch.compile of the same,
torch.distributions.Normal and a device-to-device copy of the same bytes, all in one run.
Reports ms (median of CUDA-event timings with the L2 cache flushed, triton.testing.do_bench),
GB/s by the bytes model (forward: mu, logvar in, z out; backward: grad_z, logvar in,
grad_logvar out; eps never in memory), the fraction of the copy's GB/s, and the memory autograd
keeps for backward. Writes JSON, a Markdown table and a PNG plot of GB/s against N.

    python benchmarks/bench_diag_gpu.py [--out-dir DIR] [--max-log2 28] [--dtypes float32,bfloat16]
    python benchmarks/bench_diag_gpu.py --device cpu --max-log2 14   (smoke test of the script)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _gpu_common import kept_for_backward, make_timer, versions

KINDS = ("fwd", "bwd", "fwdbwd")


def eager(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def distributions(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    # validate_args=False: validation would add a device sync to every call.
    scale = torch.exp(0.5 * logvar)
    return torch.distributions.Normal(mu, scale, validate_args=False).rsample()


def fused(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return fused_reparam.sample_diag(mu, logvar)


def fused_triton(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return fused_reparam.sample_diag(mu, logvar, backend="triton")


def fused_tanh(mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    # The SAC step's squashed action, rows of 8 (its log-density's gradient not asked for).
    out = fused_reparam.sample_tanh_normal(mu.view(-1, 8), log_std.view(-1, 8))
    return out.action.view(mu.shape)


def fused_softplus(mu: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    # The costliest scale (an exp, a log1p and a sigmoid): within 10% of logvar is the target.
    return fused_reparam.sample_diag(mu, rho, scale="softplus")


def bench_one(fn, timer, mu, logvar, grad) -> dict[str, float]:
    def fwd() -> None:
        with torch.no_grad():
            fn(mu, logvar)

    graph = {"z": fn(mu, logvar)}  # one forward graph, replayed by the backward timing

    def bwd() -> None:
        torch.autograd.grad(graph["z"], (mu, logvar), grad, retain_graph=True)

    def fwdbwd() -> None:
        torch.autograd.grad(fn(mu, logvar), (mu, logvar), grad)

    result = {"fwd_ms": timer(fwd), "bwd_ms": timer(bwd), "fwdbwd_ms": timer(fwdbwd)}
    graph.clear()
    result["kept_bytes"] = float(kept_for_backward(fn, mu, logvar))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--min-log2", type=int, default=12)
    parser.add_argument("--max-log2", type=int, default=28)
    parser.add_argument("--step", type=int, default=2, help="log2 step between sizes")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--stem", default=None, help="results file name (default: dated)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --device cpu for a smoke test")

    timer = make_timer(args.device)
    impls: dict[str, Callable] = {
        "fused": fused,
        "softplus": fused_softplus,
        "tanh": fused_tanh,
        "eager": eager,
        "distributions": distributions,
    }
    backends = fused_reparam.available_backends(args.device)
    if "triton" in backends and backends[0] != "triton":
        # Triton rows beside the compiled kernels ("fused" is the best backend, auto).
        impls["triton"] = fused_triton
    if not args.no_compile:
        # Timing the backward alone replays one graph (retain_graph), which donated buffers
        # forbid; they only let the compiled backward reuse memory in place.
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False
        impls["compile"] = torch.compile(eager, dynamic=True)
    meta = versions(args.device)
    meta["method"] = (
        "median of do_bench CUDA-event timings (L2 flushed per call); GB/s from the bytes "
        "model (fwd 3N, bwd 3N, fwd+bwd 6N elements); copy = dst.copy_(src) of 1.5N elements; "
        "compile = torch.compile(eager, dynamic=True) with donated buffers off"
    )
    stem = args.stem or f"gpu_diag_{meta['date']}"
    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        elt = torch.empty((), dtype=dtype).element_size()
        for k in range(args.min_log2, args.max_log2 + 1, args.step):
            n = 1 << k
            gen = torch.Generator(device=args.device).manual_seed(k)
            mu = torch.randn(n, generator=gen, device=args.device).to(dtype).requires_grad_()
            logvar = (0.5 * torch.randn(n, generator=gen, device=args.device)).to(dtype)
            logvar.requires_grad_()
            grad = torch.randn(n, generator=gen, device=args.device).to(dtype)
            # The copy moves what one direction moves: 1.5 N elements read + 1.5 N written.
            src = torch.empty(3 * n // 2, dtype=dtype, device=args.device).normal_()
            dst = torch.empty_like(src)
            copy_ms = timer(lambda dst=dst, src=src: dst.copy_(src))
            copy_gbs = 3 * n * elt / copy_ms / 1e6
            row: dict[str, object] = {
                "dtype": dtype_name,
                "log2_n": k,
                "copy_ms": copy_ms,
                "copy_gbs": copy_gbs,
            }
            for name, fn in impls.items():
                r = bench_one(fn, timer, mu, logvar, grad)
                for kind in KINDS:
                    nbytes = (6 if kind == "fwdbwd" else 3) * n * elt
                    gbs = nbytes / r[f"{kind}_ms"] / 1e6
                    row[f"{name}_{kind}_ms"] = r[f"{kind}_ms"]
                    row[f"{name}_{kind}_gbs"] = gbs
                    row[f"{name}_{kind}_of_copy"] = gbs / copy_gbs
                row[f"{name}_kept_bytes"] = r["kept_bytes"]
            rows.append(row)
            print(summary_line(row, impls), flush=True)
            # Written after every size, so a run cut short keeps the sizes it finished.
            write(args.out_dir, stem, meta, rows, list(impls))
            del mu, logvar, grad, src, dst
            if args.device == "cuda":
                torch.cuda.empty_cache()


def summary_line(row: dict, impls: dict) -> str:
    parts = [f"{row['dtype']} 2^{row['log2_n']}: copy {row['copy_gbs']:.0f} GB/s"]
    for name in impls:
        parts.append(
            f"{name} fwd {row[f'{name}_fwd_ms']:.3f} ms ({100 * row[f'{name}_fwd_of_copy']:.0f}%)"
            f" bwd {row[f'{name}_bwd_ms']:.3f} fwd+bwd {row[f'{name}_fwdbwd_ms']:.3f}"
        )
    return " | ".join(parts)


def write(out_dir: str, stem: str, meta: dict, rows: list[dict], impls: list[str]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = ["# Diagonal op on the GPU: fused vs peers", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    for dtype in sorted({r["dtype"] for r in rows}):
        lines += ["", f"## {dtype}", ""]
        head = ["N", "copy GB/s"]
        for name in impls:
            head += [
                f"{name} fwd ms",
                f"{name} bwd ms",
                f"{name} fwd+bwd ms",
                f"{name} fwd % copy",
                f"{name} bwd % copy",
                f"{name} kept MB",
            ]
        head += ["fwd+bwd x vs compile", "fwd+bwd x vs eager"] if "compile" in impls else []
        head += ["triton fwd / fused fwd", "triton bwd / fused bwd"] if "triton" in impls else []
        head += ["softplus fwd / fused fwd", "softplus bwd / fused bwd"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in (r for r in rows if r["dtype"] == dtype):
            cells = [f"2^{r['log2_n']}", f"{r['copy_gbs']:.0f}"]
            for name in impls:
                cells += [
                    f"{r[f'{name}_fwd_ms']:.4f}",
                    f"{r[f'{name}_bwd_ms']:.4f}",
                    f"{r[f'{name}_fwdbwd_ms']:.4f}",
                    f"{100 * r[f'{name}_fwd_of_copy']:.0f}%",
                    f"{100 * r[f'{name}_bwd_of_copy']:.0f}%",
                    f"{r[f'{name}_kept_bytes'] / 2**20:.2f}",
                ]
            if "compile" in impls:
                cells += [
                    f"{r['compile_fwdbwd_ms'] / r['fused_fwdbwd_ms']:.2f}x",
                    f"{r['eager_fwdbwd_ms'] / r['fused_fwdbwd_ms']:.2f}x",
                ]
            if "triton" in impls:
                cells += [
                    f"{r['triton_fwd_ms'] / r['fused_fwd_ms']:.2f}",
                    f"{r['triton_bwd_ms'] / r['fused_bwd_ms']:.2f}",
                ]
            cells += [
                f"{r['softplus_fwd_ms'] / r['fused_fwd_ms']:.2f}",
                f"{r['softplus_bwd_ms'] / r['fused_bwd_ms']:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(os.path.join(out_dir, stem + ".png"), meta, rows, impls)
    print(f"wrote {stem}.json and .md (and .png with matplotlib) in {out_dir}")


def plot(path: str, meta: dict, rows: list[dict], impls: list[str]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    dtypes = sorted({r["dtype"] for r in rows})
    fig, axes = plt.subplots(len(dtypes), 3, figsize=(15, 4.2 * len(dtypes)), squeeze=False)
    for i, dtype in enumerate(dtypes):
        rs = [r for r in rows if r["dtype"] == dtype]
        ns = [2 ** r["log2_n"] for r in rs]
        for j, kind in enumerate(KINDS):
            ax = axes[i][j]
            ax.plot(ns, [r["copy_gbs"] for r in rs], "k--", label="copy")
            for name in impls:
                ax.plot(ns, [r[f"{name}_{kind}_gbs"] for r in rs], marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("N (elements)")
            ax.set_ylabel("GB/s (bytes model)")
            ax.set_title(f"{dtype} {kind}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"fused_reparam diag on {meta.get('device')} (torch {meta.get('torch')})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
