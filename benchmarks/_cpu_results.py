"""What the CPU benchmarks of the fused ops share: their command line, the speed-up columns
of a row, the machine/version header, and writing the results as a JSON file and a Markdown
table (one row per size with each implementation's fwd and fwd+bwd times and the fused
kernel's speed-up over the others) under benchmarks/results/."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform

import torch

from bench_diag_cpu import cpu_name


def parse_args(description: str, sizes_help: str) -> argparse.Namespace:
    """--no-compile, --dtype, --sizes, --out, --out-dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile rows")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--sizes", default=None, help=sizes_help)
    parser.add_argument("--out", default=None, help="results file stem (default: dated)")
    parser.add_argument("--out-dir", default=None, help="results folder")
    return parser.parse_args()


def finish_row(row: dict, impls: list[str], unit: str = "ms") -> dict:
    """Adds the fused kernel's speed-up over every other implementation, prints the row."""
    for name in impls:
        if name != "fused":
            for kind in ("fwd", "fwdbwd"):
                ratio = row[f"{name}_{kind}_{unit}"] / row[f"fused_{kind}_{unit}"]
                row[f"{kind}_x_vs_{name}"] = ratio
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    return row


def cpu_meta(benchmark: str) -> dict:
    """The header of a results table: what, when, where, with which versions."""
    return {
        "benchmark": benchmark,
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "cpu_kernel_build": torch.ops.fused_reparam._cpu_kernel_isa(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "timing": "median wall time of 5 calls after 2 warm-up calls",
    }


def write_table(
    meta: dict,
    rows: list[dict],
    impls: list[str],
    keys: list[str],
    out_dir: str | None,
    stem: str,
    unit: str = "ms",
) -> None:
    """Rows hold `keys` (the size columns), `{impl}_{fwd,fwdbwd}_{unit}` and
    `{fwd,fwdbwd}_x_vs_{impl}` for every impl but "fused"."""
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = [f"# {meta['benchmark']}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "benchmark"]
    kinds = ("fwd", "fwdbwd")
    header = keys + [f"{i} {k} {unit}" for k in kinds for i in impls]
    ratios = [f"{k} x vs {i}" for k in kinds for i in impls if i != "fused"]
    lines += ["", "| " + " | ".join(header + ratios) + " |", "|" + "---|" * len(header + ratios)]
    for r in rows:
        cells = [str(r[k]) for k in keys]
        cells += [f"{r[f'{i}_{k}_{unit}']:.2f}" for k in kinds for i in impls]
        cells += [f"{r[f'{k}_x_vs_{i}']:.1f}x" for k in kinds for i in impls if i != "fused"]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json in {out_dir}")
