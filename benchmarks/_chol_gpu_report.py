"""The Cholesky GPU benchmark's output: the progress line of a size, the .json and .md tables
(written whole, so a run stopped at any time keeps what it finished) and the .png of GB/s."""

from __future__ import annotations

import json
import math
import os

from _chol_gpu_model import KIND_NAMES, KINDS, TARGET_MAX_D, TARGET_MIN_B


def fmt(value: float | None, spec: str, scale: float = 1.0, unit: str = "") -> str:
    """value * scale formatted, with its unit; "-" when missing."""
    return "-" if value is None else format(value * scale, spec) + unit


def summary_line(row: dict, impls: dict) -> str:
    parts = [f"{row['dtype']} B={row['B']} D={row['D']}: copy {row['copy_gbs']:.0f} GB/s"]
    for name in impls:
        parts.append(
            f"{name} fwd {fmt(row.get(f'{name}_fwd_ms'), '.3f')} ms"
            f" ({fmt(row[f'{name}_fwd_of_copy'], '.0f', 100)}%)"
            f" bwd {fmt(row.get(f'{name}_bwd_ms'), '.3f')} ms"
            f" fwd+bwd {fmt(row.get(f'{name}_fwdbwd_ms'), '.3f')} ms"
        )
    return " | ".join(parts)


def flag(value: bool | None) -> str:
    """A target's flag: yes, NO, or "-" when a timing it needs is missing."""
    return "-" if value is None else ("yes" if value else "NO")


def write_file(path: str, text: str) -> None:
    """Writes whole or not at all (the run may be stopped by a timeout at any time)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write_tables(out_dir: str, stem: str, meta: dict, rows: list[dict], impls: list[str]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    write_file(
        os.path.join(out_dir, stem + ".json"), json.dumps({"meta": meta, "rows": rows}, indent=1)
    )
    lines = ["# Cholesky op on the GPU: fused vs peers", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "copy_gbs_median"]
    lines.append(f"- copy bandwidth: median {meta['copy_gbs_median']:.0f} GB/s over the sizes")
    head = ["B", "D", "impl"]
    for kind in KINDS:
        k = KIND_NAMES[kind]
        head += [f"{k} ms", f"{k} GB/s", f"{k} % copy", f"{k} x vs compile", f"{k} x vs eager"]
    head += ["kept MB", "peak fwd+bwd MB"]
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        lines += ["", f"## {dtype}", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in (r for r in rows if r["dtype"] == dtype):
            cells = [str(r["B"]), str(r["D"]), "copy", f"{r['copy_ms']:.4f}"]
            cells += [f"{r['copy_gbs']:.0f}", "100%"] + [""] * (len(head) - 6)
            lines.append("| " + " | ".join(cells) + " |")
            for name in impls:
                cells = [str(r["B"]), str(r["D"]), name]
                for kind in KINDS:
                    cells += [
                        fmt(r.get(f"{name}_{kind}_ms"), ".4f"),
                        fmt(r[f"{name}_{kind}_gbs"], ".0f"),
                        fmt(r[f"{name}_{kind}_of_copy"], ".0f", 100, "%"),
                        fmt(r[f"{name}_{kind}_x_vs_compile"], ".2f", unit="x"),
                        fmt(r[f"{name}_{kind}_x_vs_eager"], ".2f", unit="x"),
                    ]
                cells += [
                    fmt(r.get(f"{name}_kept_bytes"), ".2f", 2**-20),
                    fmt(r.get(f"{name}_peak_fwdbwd_bytes"), ".1f", 2**-20),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Targets", "", f"- {meta['targets']}", ""]
    fused = [name for name in impls if name.startswith("fused")]
    target_rows = [(r, name) for r in rows for name in fused if r.get(f"{name}_target_applies")]
    if not fused:
        lines.append("No fused backend ran.")
    elif not target_rows:
        lines.append(f"No size of this run has D <= {TARGET_MAX_D} and B >= {TARGET_MIN_B}.")
    else:
        head = ["dtype", "B", "D", "impl", "fwd % copy", ">= 85% copy"]
        head += ["fwd+bwd x vs compile", ">= 2x compile"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r, name in target_rows:
            cells = [r["dtype"], str(r["B"]), str(r["D"]), name]
            cells += [
                fmt(r[f"{name}_fwd_of_copy"], ".0f", 100, "%"),
                flag(r[f"{name}_meets_fwd_85pct_copy"]),
                fmt(r[f"{name}_fwdbwd_x_vs_compile"], ".2f", unit="x"),
                flag(r[f"{name}_meets_fwdbwd_2x_compile"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    errors = [(r, k) for r in rows for k in r if k.endswith("_error")]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- {r['dtype']} B={r['B']} D={r['D']} {k[:-6]}: {r[k]}" for r, k in errors]
    write_file(os.path.join(out_dir, stem + ".md"), "\n".join(lines) + "\n")


def plot(path: str, meta: dict, rows: list[dict], impls: list[str]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    series = ["copy", *impls]
    fig, axes = plt.subplots(
        len(dtypes), len(KINDS), figsize=(22, 4.5 * len(dtypes)), squeeze=False
    )
    width = 0.8 / len(series)
    for i, dtype in enumerate(dtypes):
        rs = [r for r in rows if r["dtype"] == dtype]
        xs = range(len(rs))
        for j, kind in enumerate(KINDS):
            ax = axes[i][j]
            for s, name in enumerate(series):
                key = "copy_gbs" if name == "copy" else f"{name}_{kind}_gbs"
                ys = [math.nan if r.get(key) is None else r[key] for r in rs]
                xpos = [x + (s - (len(series) - 1) / 2) * width for x in xs]
                style = {"color": "0.6", "hatch": "//"} if name == "copy" else {}
                ax.bar(xpos, ys, width, label=name, **style)
            ax.set_xticks(list(xs), [f"{r['B']}x{r['D']}" for r in rs])
            ax.set_xlabel("B x D")
            ax.set_ylabel("GB/s (bytes model, lower triangle)")
            ax.set_title(f"{dtype} {KIND_NAMES[kind]}")
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize=8)
    fig.suptitle(f"fused_reparam chol on {meta.get('device')} (torch {meta.get('torch')})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
