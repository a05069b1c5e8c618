"""What the CPU benchmarks of the fused ops share: their command line (the thread counts
among it), setting a thread count, the speed-up columns of a row, the machine/version header,
and writing the results as a JSON file and a Markdown file (one table per thread count, one row
per size with each implementation's fwd and fwd+bwd times and the fused kernel's speed-up over
the others) under benchmarks/results/."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
from collections.abc import Callable, Mapping

import torch


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def thread_counts(text: str) -> list[int]:
    """A comma-separated list of distinct positive thread counts, e.g. "1,2", in its order."""
    try:
        counts = [int(item) for item in text.split(",")]
    except ValueError:
        msg = f"not a comma-separated list of integers: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"thread counts must be distinct and >= 1: {text!r}")
    return counts


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """--threads: the thread counts to run the whole sweep at, one after another."""
    parser.add_argument(
        "--threads",
        type=thread_counts,
        default=thread_counts("1,2"),
        help="comma-separated thread counts; the whole sweep runs at each, in this process, "
        "after torch.set_num_threads (default: 1,2)",
    )


def use_threads(threads: int) -> None:
    """torch.set_num_threads(threads), and a fresh torch.compile state: Inductor's CPU kernels
    are built for the thread count of their compilation and Dynamo does not guard on it, so
    the compile peer is compiled again at every thread count."""
    torch.set_num_threads(threads)
    torch._dynamo.reset()


def parse_args(description: str, sizes_help: str) -> argparse.Namespace:
    """--no-compile, --dtype, --sizes, --threads, --out, --out-dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile rows")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--sizes", default=None, help=sizes_help)
    add_threads_argument(parser)
    parser.add_argument("--out", default=None, help="results file stem (default: dated)")
    parser.add_argument("--out-dir", default=None, help="results folder")
    return parser.parse_args()


def finish_row(row: dict, impls: list[str], unit: str = "ms") -> dict:
    """Adds the fused kernel's speed-up over every other implementation (the other's time over
    the fused one's: below 1, the fused kernel is slower), prints the row. With per-round
    times under "rounds" (taken out of the row), a speed-up is the median of the rounds'
    ratios; else the ratio of the times."""
    rounds = row.pop("rounds", None)
    for name in impls:
        if name != "fused":
            for kind in ("fwd", "fwdbwd"):
                peer, fused = f"{name}_{kind}_{unit}", f"fused_{kind}_{unit}"
                if rounds:
                    pairs = zip(rounds[peer], rounds[fused], strict=True)
                    ratio = statistics.median(p / f for p, f in pairs)
                else:
                    ratio = row[peer] / row[fused]
                row[f"{kind}_x_vs_{name}"] = ratio
    text = json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    print(text, flush=True)
    return row


def ratio_text(ratio: float) -> str:
    """A speed-up as the tables print it: "2.31x", or "0.74x (slower)" below 1."""
    return f"{ratio:.2f}x" if ratio >= 1.0 else f"{ratio:.2f}x (slower)"


def cpu_meta(benchmark: str, threads: list[int]) -> dict:
    """The header of a results table: what, when, where, at which thread counts, with which
    versions."""
    return {
        "benchmark": benchmark,
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "cpu_kernel_build": torch.ops.fused_reparam._cpu_kernel_isa(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "timing": "median wall time of 5 calls after 2 warm-up calls",
        "speed-up": "x vs a peer: the peer's time / the fused kernel's; below 1 the fused "
        "kernel is slower",
    }


def write_table(
    meta: dict,
    rows: list[dict],
    impls: list[str],
    keys: list[str],
    out_dir: str | None,
    stem: str,
    unit: str = "ms",
    key_cells: Mapping[str, Callable[[dict], str]] | None = None,
) -> None:
    """Rows hold "threads", `keys` (the size columns), `{impl}_{fwd,fwdbwd}_{unit}` and
    `{fwd,fwdbwd}_x_vs_{impl}` for every impl but "fused". The Markdown file has one table per
    thread count, in the order of the rows; `key_cells` formats a size column from its row
    (default: the row's value of that key)."""
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    key_cells = key_cells or {}
    lines = [f"# {meta['benchmark']}", ""]
    for k, v in meta.items():
        if k != "benchmark":
            lines.append(f"- {k}: {', '.join(map(str, v)) if isinstance(v, list) else v}")
    kinds = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}
    header = keys + [f"{i} {label} {unit}" for label in kinds.values() for i in impls]
    ratios = [f"{label} x vs {i}" for label in kinds.values() for i in impls if i != "fused"]
    for threads in dict.fromkeys(r["threads"] for r in rows):
        lines += ["", f"## {threads} thread{'s' if threads != 1 else ''}", ""]
        lines += ["| " + " | ".join(header + ratios) + " |", "|" + "---|" * len(header + ratios)]
        for r in (r for r in rows if r["threads"] == threads):
            cells = [key_cells[k](r) if k in key_cells else str(r[k]) for k in keys]
            cells += [f"{r[f'{i}_{k}_{unit}']:.2f}" for k in kinds for i in impls]
            cells += [ratio_text(r[f"{k}_x_vs_{i}"]) for k in kinds for i in impls if i != "fused"]
            lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json in {out_dir}")
