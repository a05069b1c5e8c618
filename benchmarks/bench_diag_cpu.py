"""CPU benchmark of the diagonal op: fused C++ kernel vs eager torch vs torch.compile.

Forward, and forward+backward, for N = 2^16 .. 2^24 float32 elements, in one run; prints a
table of ms and ratios and writes it (with the machine, versions and date) to
benchmarks/results/. Run: python benchmarks/bench_diag_cpu.py [--max-log2 24] [--no-compile]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused_reparam
from _timing import median_ms


def eager(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def fused(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return fused_reparam.sample_diag(mu, logvar, backend="cpu")


def fwd_bwd(fn, mu: torch.Tensor, logvar: torch.Tensor, grad: torch.Tensor):
    def run() -> None:
        mu.grad = logvar.grad = None
        fn(mu, logvar).backward(grad)

    return run


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min-log2", type=int, default=16)
    parser.add_argument("--max-log2", type=int, default=24)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile rows")
    parser.add_argument("--out", default=None, help="results file stem (default: dated)")
    parser.add_argument(
        "--out-dir", default=None, help="results folder (default: benchmarks/results)"
    )
    args = parser.parse_args()

    impls = {"fused": fused, "eager": eager}
    if not args.no_compile:
        impls["compile"] = torch.compile(eager, dynamic=True)
    isa = torch.ops.fused_reparam._cpu_kernel_isa()
    rows = []
    for k in range(args.min_log2, args.max_log2 + 1):
        n = 1 << k
        gen = torch.Generator().manual_seed(k)
        mu = torch.randn(n, generator=gen, requires_grad=True)
        logvar = torch.randn(n, generator=gen, requires_grad=True)
        grad = torch.randn(n, generator=gen)
        row: dict[str, float | int] = {"log2_n": k}
        for name, fn in impls.items():
            with torch.no_grad():
                row[f"{name}_fwd_ms"] = median_ms(
                    lambda fn=fn, mu=mu, logvar=logvar: fn(mu, logvar)
                )
            row[f"{name}_fwdbwd_ms"] = median_ms(fwd_bwd(fn, mu, logvar, grad))
        for name in impls:
            if name != "fused":
                for kind in ("fwd", "fwdbwd"):
                    row[f"{kind}_x_vs_{name}"] = row[f"{name}_{kind}_ms"] / row[f"fused_{kind}_ms"]
        rows.append(row)
        print(
            json.dumps({key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()}),
            flush=True,
        )

    meta = {
        "benchmark": "diag forward / forward+backward, float32, CPU",
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "cpu_kernel_build": isa,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "peers": "eager: mu + torch.exp(0.5*logvar) * torch.randn_like(mu); "
        "compile: torch.compile(eager, dynamic=True)",
        "timing": "median wall time of repeated calls after 2 warm-up calls",
    }
    write_results(meta, rows, list(impls), args.out, args.out_dir)


def write_results(
    meta: dict, rows: list[dict], impls: list[str], stem: str | None, out_dir: str | None
) -> None:
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    stem = stem or f"cpu_diag_{meta['date']}"
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = [f"# {meta['benchmark']}", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items() if key != "benchmark"]
    header = ["N"] + [f"{i} {k} ms" for k in ("fwd", "fwd+bwd") for i in impls]
    ratios = [f"{k} x vs {i}" for k in ("fwd", "fwdbwd") for i in impls if i != "fused"]
    lines += [
        "",
        "| " + " | ".join(header + ratios) + " |",
        "|" + "---|" * (len(header) + len(ratios)),
    ]
    for r in rows:
        cells = [f"2^{r['log2_n']}"]
        cells += [f"{r[f'{i}_{k}_ms']:.2f}" for k in ("fwd", "fwdbwd") for i in impls]
        cells += [
            f"{r[f'{k}_x_vs_{i}']:.1f}x" for k in ("fwd", "fwdbwd") for i in impls if i != "fused"
        ]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json in {out_dir}")


if __name__ == "__main__":
    main()
