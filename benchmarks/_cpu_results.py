"""Writing a CPU benchmark's results: a JSON file and a Markdown table (machine, versions,
date, then one row per size with each implementation's fwd and fwd+bwd times and the fused
kernel's speed-up over the others) under benchmarks/results/."""

from __future__ import annotations

import json
import os


def write_table(
    meta: dict, rows: list[dict], impls: list[str], keys: list[str], out_dir: str | None, stem: str
) -> None:
    """Rows hold `keys` (the size columns), `{impl}_{fwd,fwdbwd}_ms` and
    `{fwd,fwdbwd}_x_vs_{impl}` for every impl but "fused"."""
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = [f"# {meta['benchmark']}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "benchmark"]
    kinds = ("fwd", "fwdbwd")
    header = keys + [f"{i} {k} ms" for k in kinds for i in impls]
    ratios = [f"{k} x vs {i}" for k in kinds for i in impls if i != "fused"]
    lines += ["", "| " + " | ".join(header + ratios) + " |", "|" + "---|" * len(header + ratios)]
    for r in rows:
        cells = [str(r[k]) for k in keys]
        cells += [f"{r[f'{i}_{k}_ms']:.2f}" for k in kinds for i in impls]
        cells += [f"{r[f'{k}_x_vs_{i}']:.1f}x" for k in kinds for i in impls if i != "fused"]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json in {out_dir}")
