"""Loading the compiled extension `fused_reparam._C`, which registers the C++/CUDA ops.

Without it (an install built with FUSED_REPARAM_BUILD=none, or a failed build) the package
still works through its other backends, and says so once, at import.
"""

from __future__ import annotations

import importlib
import warnings

import torch

from . import _fakes, _families

_LOAD_ERROR: str | None = None

try:
    importlib.import_module("fused_reparam._C")
except ImportError as exc:  # the package runs on the reference backend
    _LOAD_ERROR = str(exc)
    warnings.warn(
        "fused_reparam: the compiled extension fused_reparam._C is not available "
        f"({exc}); using the pure-PyTorch reference backend on the CPU (slower). "
        "Reinstall with `pip install --no-build-isolation -e .` to build it.",
        RuntimeWarning,
        stacklevel=2,
    )


def has_extension() -> bool:
    """True when fused_reparam._C loaded and registered the ops."""
    return _LOAD_ERROR is None


def load_error() -> str | None:
    """Why the extension did not load, or None."""
    return _LOAD_ERROR


def _kernel_table() -> dict[tuple[str, str], bool]:
    # Read once at import: torch.compile cannot trace the dispatcher query.
    ops = _families.all_ops()
    keys = ("CPU", "CUDA")
    if _LOAD_ERROR is not None:
        return {(op, key): False for op in ops for key in keys}
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return {(op, key): has(f"fused_reparam::{op}", key) for op in ops for key in keys}


_KERNELS = _kernel_table()
if _LOAD_ERROR is None:
    _fakes.register_fakes()


def has_kernel(op: str, dispatch_key: str) -> bool:
    """True when `fused_reparam::op` has a compiled kernel for `dispatch_key` ("CPU", "CUDA")."""
    return _KERNELS.get((op, dispatch_key), False)
