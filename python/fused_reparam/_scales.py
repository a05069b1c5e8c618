"""The `scale` and `min_scale` arguments of the diagonal sampling functions: how the second
input s gives sigma (docs/design.md, "Scales")."""

from __future__ import annotations

import math

from .reference.scale import SCALES

_KIND = {name: kind for kind, name in enumerate(SCALES)}


def check_scale(scale: object, min_scale: object, where: str) -> tuple[int, float]:
    """(the op's scale kind, min_scale as a float) for a scale name and lower bound, or a clear
    error naming the argument."""
    kind = _KIND.get(scale) if isinstance(scale, str) else None
    if kind is None:
        raise ValueError(
            f"{where}: scale must be one of {', '.join(map(repr, SCALES))}, got {scale!r}"
        )
    if isinstance(min_scale, bool) or not isinstance(min_scale, (int, float)):
        raise TypeError(f"{where}: min_scale must be a float >= 0, got {type(min_scale).__name__}")
    if not (math.isfinite(min_scale) and min_scale >= 0):
        raise ValueError(f"{where}: min_scale must be finite and >= 0, got {min_scale}")
    return kind, float(min_scale)
