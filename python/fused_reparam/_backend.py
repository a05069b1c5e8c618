"""Backend choice (docs/design.md, "Backends").

`backend="auto"` picks the compiled CUDA kernels for CUDA tensors (else Triton, else the
reference) and the compiled C++ kernels for CPU tensors (else the reference), warning once
when it falls back. An explicit `backend=`, or else the environment variable
FUSED_REPARAM_BACKEND, forces one and raises if it cannot run on the inputs' device.
"""

from __future__ import annotations

import os
import warnings

import torch

from . import _extension, _families, _triton

BACKENDS = ("auto", "cuda", "triton", "cpu", "reference")
ENV_VAR = "FUSED_REPARAM_BACKEND"

# os.environ's own mapping and the variable's key in it: read on every sampling call, where
# os.environ.get's key encoding costs more than the rest of the backend choice.
_ENVIRON_OBJECT = os.environ
_ENVIRON = getattr(os.environ, "_data", None)
_ENV_KEY = os.environ.encodekey(ENV_VAR) if hasattr(os.environ, "encodekey") else None
_FAST_ENV = isinstance(_ENVIRON, dict) and _ENV_KEY is not None

_warned: set[tuple[str, str]] = set()
# (backend argument, FUSED_REPARAM_BACKEND, device type, op) -> the backend that runs it.
_resolved: dict[tuple, str] = {}


def _unavailable_reason(backend: str, device: torch.device, op: str) -> str | None:
    """Why `backend` cannot run `op` on `device`, or None when it can."""
    if backend == "reference":
        return None
    if backend == "triton":
        if op not in _families.forward_ops():
            return f"the Triton backend has no {op} kernels yet"
        return _triton.unavailable_reason(device)
    want = "CUDA" if backend == "cuda" else "CPU"
    if device.type != backend:
        return f"it runs on {backend} tensors and the inputs are on {device}"
    if not _extension.has_extension():
        return f"the compiled extension is not available ({_extension.load_error()})"
    if not _extension.has_kernel(op, want):
        return f"fused_reparam._C has no {want} kernel for {op}"
    return None


def env_value() -> object:
    """FUSED_REPARAM_BACKEND's raw value, as a cache key (None when unset)."""
    if _FAST_ENV and os.environ is _ENVIRON_OBJECT:  # not replaced (by a mock, say)
        return _ENVIRON.get(_ENV_KEY)
    return os.environ.get(ENV_VAR)


def requested_backend(backend: str | None) -> str:
    """The backend asked for: the argument, else FUSED_REPARAM_BACKEND, else "auto"."""
    if backend is not None and not isinstance(backend, str):
        raise TypeError(
            f"fused_reparam: backend must be one of {BACKENDS} or None, got {backend!r}"
        )
    name = backend if backend not in (None, "auto") else os.environ.get(ENV_VAR) or "auto"
    name = name.strip().lower()
    if name not in BACKENDS:
        where = "backend" if backend not in (None, "auto") else ENV_VAR
        raise ValueError(f"fused_reparam: {where} must be one of {BACKENDS}, got {name!r}")
    return name


def resolve_backend(backend: str | None, device: torch.device, op: str) -> str:
    """The backend that will run `op` for inputs on `device`."""
    if backend is not None and not isinstance(backend, str):
        requested_backend(backend)  # raises the error naming the argument
    # Keyed by the raw argument and environment value: a repeated call does no string work.
    key = (backend, env_value(), device.type, op)
    which = _resolved.get(key)
    if which is None:
        which = _resolve(requested_backend(backend), device, op)
        # Availability is fixed once the package is imported; a fallback chosen while
        # compiling is not kept, so the first eager call still warns.
        if not (which == "reference" and torch.compiler.is_compiling()):
            _resolved[key] = which
    return which


def _resolve(name: str, device: torch.device, op: str) -> str:
    if name != "auto":
        reason = _unavailable_reason(name, device, op)
        if reason is not None:
            raise RuntimeError(f"fused_reparam: backend {name!r} is not available: {reason}")
        return name
    preferred = ("cuda", "triton") if device.type == "cuda" else ("cpu",)
    for candidate in preferred:
        if _unavailable_reason(candidate, device, op) is None:
            return candidate
    key = (device.type, op)
    # A missing extension was already reported once, at import.
    missing_ext = not _extension.has_extension() and device.type == "cpu"
    if key not in _warned and not missing_ext and not torch.compiler.is_compiling():
        _warned.add(key)
        reasons = "; ".join(f"{c}: {_unavailable_reason(c, device, op)}" for c in preferred)
        warnings.warn(
            f"fused_reparam: no fused backend for {op} on {device.type} tensors ({reasons}); "
            "falling back to the pure-PyTorch reference.",
            RuntimeWarning,
            stacklevel=5,  # the caller of sample_diag / sample_chol
        )
    return "reference"


def available_backends(device: str | torch.device = "cpu", op: str = "diag_rsample") -> list[str]:
    """The backends that can run `op` on `device` now, best first."""
    device = torch.device(device)
    order = ("cuda", "triton", "cpu", "reference")
    return [b for b in order if _unavailable_reason(b, device, op) is None]
