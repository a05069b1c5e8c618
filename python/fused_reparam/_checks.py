"""Argument checks shared by every backend, so each gives the same clear message."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_float_tensor(t: object, name: str, where: str) -> torch.Tensor:
    """`t` if it is a tensor of a supported floating dtype, else a clear error."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{where}: {name} must be float32, float64, float16 or bfloat16, got {t.dtype}"
        )
    return t


def check_not_meta(t: torch.Tensor, name: str, where: str) -> None:
    """Raise for a meta tensor: sampling needs data (shape inference goes through
    torch.compile's fake tensors, which the ops support)."""
    if t.device.type == "meta":
        raise ValueError(
            f"{where}: {name} is a meta tensor, which holds no data to sample from; use a real "
            "device (for shapes alone, trace with torch.compile or FakeTensorMode)"
        )


def check_flag(value: object, name: str, where: str) -> bool:
    """`value` if it is a bool, else a clear error (a string such as "no" would read true)."""
    if not isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}")
    return value


def check_same_dtype_device(
    ref: torch.Tensor, ref_name: str, t: torch.Tensor, name: str, where: str
) -> None:
    """Raise unless `t` has the dtype and device of `ref`."""
    if t.dtype != ref.dtype:
        raise TypeError(
            f"{where}: {name} has dtype {t.dtype} but {ref_name} has dtype {ref.dtype}; "
            "they must match"
        )
    if t.device != ref.device:
        raise ValueError(
            f"{where}: {name} is on {t.device} but {ref_name} is on {ref.device}; "
            "they must be on the same device"
        )


def broadcast_shape(
    a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str, where: str
) -> torch.Size:
    """The broadcast shape of two tensors, or a clear error naming both.

    Written out rather than torch.broadcast_shapes, which costs tens of microseconds a call.
    """
    return broadcast_sizes(a.shape, a_name, b.shape, b_name, where)


def broadcast_sizes(
    sa: torch.Size, a_name: str, sb: torch.Size, b_name: str, where: str
) -> torch.Size:
    """The broadcast of two shapes, or a clear error naming both (see broadcast_shape)."""
    if sa == sb:
        return sa
    n = max(len(sa), len(sb))
    pa = (1,) * (n - len(sa)) + tuple(sa)
    pb = (1,) * (n - len(sb)) + tuple(sb)
    out = []
    for da, db in zip(pa, pb, strict=True):
        if da != db and da != 1 and db != 1:
            raise ValueError(
                f"{where}: {a_name} (shape {list(sa)}) and {b_name} (shape {list(sb)}) "
                "are not broadcastable"
            )
        out.append(db if da == 1 else da)
    return torch.Size(out)


def check_generator(generator: object, device: torch.device, where: str) -> None:
    """Raise unless `generator` is None or a torch.Generator for `device`'s type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{where}: generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if generator.device.type != device.type or (
        device.type == "cuda" and _cuda_index(generator.device) != _cuda_index(device)
    ):
        raise ValueError(
            f"{where}: generator is for {generator.device} but the inputs are on {device}"
        )


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def chol_sample_shape(
    mu: torch.Tensor, scale_tril: torch.Tensor, where: str, mu_name: str = "mu"
) -> torch.Size:
    """The sample shape [*batch, D] of mu [..., D] and scale_tril [..., D, D], or a clear
    error naming the argument."""
    if scale_tril.dim() < 2:
        raise ValueError(
            f"{where}: scale_tril must have shape [..., D, D], got {list(scale_tril.shape)}"
        )
    d = scale_tril.shape[-1]
    if scale_tril.shape[-2] != d:
        raise ValueError(
            f"{where}: scale_tril must be square in its last two dims, got {list(scale_tril.shape)}"
        )
    if mu.dim() < 1:
        raise ValueError(f"{where}: {mu_name} must have shape [..., D], got a scalar")
    if mu.shape[-1] != d:
        raise ValueError(
            f"{where}: {mu_name} has D = {mu.shape[-1]} (shape {list(mu.shape)}) but scale_tril "
            f"has D = {d} (shape {list(scale_tril.shape)})"
        )
    # Batch shapes from sizes (not mu[..., 0], which fails for D = 0).
    batch = broadcast_sizes(mu.shape[:-1], f"{mu_name} batch", scale_tril.shape[:-2],
                            "scale_tril batch", where)  # fmt: skip
    return torch.Size((*batch, d))
