"""Fake (meta) kernels of the fused ops, the same for every backend's copy of an op: output
shapes and dtypes for torch.compile, meta tensors and torch.library.opcheck. The schemas are
in csrc/ops.cpp; each op is registered under its plain name and its "triton_" name.
"""

from __future__ import annotations

import torch

BACKEND_PREFIXES = ("", "triton_")


def check_one_device(op: str, *tensors: torch.Tensor | None) -> None:
    """The fake kernels' device check. They also serve as the Meta kernels, which the
    dispatcher picks when any argument is a meta tensor: a meta [seed, offset] with CPU inputs
    would otherwise return uninitialized CPU outputs instead of the C++ op's error."""
    first = tensors[0]
    for t in tensors[1:]:
        if t is not None and t.device != first.device:
            raise RuntimeError(
                f"{op}: every tensor argument must be on {first.device} (the first one's "
                f"device), got one on {t.device}"
            )


def sample_shape(family: str, mu: torch.Tensor, second: torch.Tensor) -> torch.Size:
    """The sample's shape: mu and logvar broadcast (diag), or [*batch, D] (chol)."""
    if family == "diag":
        return torch.broadcast_shapes(mu.shape, second.shape)
    batch = torch.broadcast_shapes(mu.shape[:-1], second.shape[:-2])
    return torch.Size((*batch, mu.shape[-1]))


def _second_grad_shape(family: str, shape: torch.Size) -> tuple[int, ...]:
    return tuple(shape) if family == "diag" else (*shape, shape[-1])


def _register(family: str, prefix: str) -> None:
    ns = f"fused_reparam::{prefix}{family}_rsample"

    def sample(mu, second, eps=None, seed_offset=None, generator=None):  # noqa: ANN001
        check_one_device(ns, mu, second, eps, seed_offset)
        shape = sample_shape(family, mu, second)
        return mu.new_empty(shape), mu.new_empty((2,), dtype=torch.int64)

    def sample_backward(grad_z, second, eps, seed_offset, need_grad_eps):  # noqa: ANN001
        check_one_device(f"{ns}_backward", grad_z, second, eps, seed_offset)
        grad_eps_shape = grad_z.shape if need_grad_eps else (0,)
        return (
            grad_z.new_empty(_second_grad_shape(family, grad_z.shape)),
            grad_z.new_empty(grad_eps_shape),
        )

    def stats(mu, second, eps=None, seed_offset=None, generator=None):  # noqa: ANN001
        check_one_device(f"{ns}_stats", mu, second, eps, seed_offset)
        shape = sample_shape(family, mu, second)
        rows = shape[:-1]
        return (
            mu.new_empty(shape),
            mu.new_empty(rows),
            mu.new_empty(rows),
            mu.new_empty((2,), dtype=torch.int64),
        )

    def stats_backward(grad_z, grad_kl, grad_log_q, mu, second, eps, seed_offset, need):  # noqa: ANN001
        check_one_device(
            f"{ns}_stats_backward", grad_z, grad_kl, grad_log_q, mu, second, eps, seed_offset
        )
        shape = grad_z.shape
        return (
            grad_z.new_empty(shape),
            grad_z.new_empty(_second_grad_shape(family, shape)),
            grad_z.new_empty(shape if need else (0,)),
        )

    torch.library.register_fake(ns)(sample)
    torch.library.register_fake(f"{ns}_backward")(sample_backward)
    torch.library.register_fake(f"{ns}_stats")(stats)
    torch.library.register_fake(f"{ns}_stats_backward")(stats_backward)


def register_fakes() -> None:
    """Registers the fake kernels of every op (once the compiled extension defined them)."""
    for prefix in BACKEND_PREFIXES:
        for family in ("diag", "chol"):
            _register(family, prefix)
