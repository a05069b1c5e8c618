"""The Triton backend: kernels for CUDA tensors, and for CPU tensors under the Triton
interpreter (TRITON_INTERPRET=1, which is how CI tests them).

Importing this package imports Triton; `fused_reparam` does so only when Triton can be of
use (a CUDA device, or TRITON_INTERPRET set), and records why not otherwise.
"""

from __future__ import annotations

import importlib
import os

import torch

from .. import _extension

_LOAD_ERROR: str | None = None
_INTERPRETED = False


def _wanted() -> str | None:
    """None when Triton can be of use here, else why not."""
    if not _extension.has_extension():
        # The Triton kernels implement ops that the compiled extension defines.
        return f"the compiled extension is not available ({_extension.load_error()})"
    if torch.cuda.is_available():
        return None
    if os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes"):
        return None
    return "no CUDA device, and TRITON_INTERPRET is not set"


def _load() -> None:
    global _LOAD_ERROR, _INTERPRETED
    _LOAD_ERROR = _wanted()
    if _LOAD_ERROR is not None:
        return
    try:
        ops = importlib.import_module("fused_reparam._triton.diag_ops")
        importlib.import_module("fused_reparam._triton.chol_ops")
        importlib.import_module("fused_reparam._triton.stats_ops")
    except ImportError as exc:
        _LOAD_ERROR = f"Triton is not importable ({exc})"
        return
    _INTERPRETED = ops.interpreted()


_load()


def unavailable_reason(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on `device` tensors, or None when they can."""
    if _LOAD_ERROR is not None:
        return _LOAD_ERROR
    if device.type == "cuda":
        return None if torch.cuda.is_available() else "no CUDA device"
    if device.type == "cpu" and _INTERPRETED:
        return None
    return (
        f"it runs on CUDA tensors (or on CPU tensors under TRITON_INTERPRET=1), and the "
        f"inputs are on {device.type}"
    )
