"""The Cholesky GPU benchmark's bytes model and targets (bench_chol_gpu.py's docstring): the
elements each mode moves, and the GB/s, fractions of copy, speedups and target flags derived
from a row's timings."""

from __future__ import annotations

KINDS = ("fwd", "bwd", "fwdbwd")
KIND_NAMES = {"fwd": "fwd", "bwd": "bwd", "fwdbwd": "fwd+bwd"}
# The targets, for the fused backends at D <= 64 and large B.
TARGET_MAX_D = 64
TARGET_MIN_B = 16384
TARGET_FWD_OF_COPY = 0.85
TARGET_FWDBWD_X_VS_COMPILE = 2.0


def model_elements(b: int, d: int) -> dict[str, int]:
    """Elements moved by the bytes model (bench_chol_gpu.py's docstring) for each mode."""
    tri = b * d * (d + 1) // 2
    fwd = 2 * b * d + tri
    bwd = 2 * b * d + 2 * tri
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}


def derive(row: dict, impls: list[str]) -> None:
    """GB/s, fraction of copy, speedups and target flags from the timings in `row`."""
    for name in impls:
        for kind in KINDS:
            ms = row.get(f"{name}_{kind}_ms")
            gbs = row[f"{kind}_bytes"] / ms / 1e6 if ms else None
            row[f"{name}_{kind}_gbs"] = gbs
            row[f"{name}_{kind}_of_copy"] = gbs / row["copy_gbs"] if gbs else None
            for peer in ("compile", "eager"):
                peer_ms = row.get(f"{peer}_{kind}_ms")
                row[f"{name}_{kind}_x_vs_{peer}"] = peer_ms / ms if ms and peer_ms else None
        if not name.startswith("fused"):
            continue
        applies = row["D"] <= TARGET_MAX_D and row["B"] >= TARGET_MIN_B
        row[f"{name}_target_applies"] = applies
        of_copy = row[f"{name}_fwd_of_copy"]
        x_compile = row[f"{name}_fwdbwd_x_vs_compile"]
        row[f"{name}_meets_fwd_85pct_copy"] = (
            of_copy >= TARGET_FWD_OF_COPY if applies and of_copy is not None else None
        )
        row[f"{name}_meets_fwdbwd_2x_compile"] = (
            x_compile >= TARGET_FWDBWD_X_VS_COMPILE if applies and x_compile is not None else None
        )
