"""Fake (meta) kernels of the fused ops, the same for every backend's copy of an op: output
shapes and dtypes for torch.compile, meta tensors and torch.library.opcheck, for every family
of the registry (_families.py). The schemas are in csrc/ops.cpp.
"""

from __future__ import annotations

import torch

from ._families import BACKEND_PREFIX, FAMILIES, Family

Tensor = torch.Tensor
Opt = torch.Tensor | None


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


def _tensors(args: tuple, kwargs: dict) -> list[Tensor]:
    """The tensors among an op's arguments after its inputs (eps, seed_offset)."""
    return [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]


def _register(family: Family, prefix: str) -> None:
    ns = f"fused_reparam::{prefix}{family.op()}"

    # The diagonal ops' other arguments (scale, min_scale, noise or the squash; the Cholesky
    # ops have none) do not change the shapes. The forward ops' fakes take every argument
    # after the inputs as they come: the families place the scale and eps differently.
    def sample(
        mu: Tensor, second: Tensor, *args: object, **kwargs: object
    ) -> tuple[Tensor, Tensor]:
        check_one_device(ns, mu, second, *_tensors(args, kwargs))
        shape = family.sample_shape(mu.shape, second.shape)
        return mu.new_empty(shape), mu.new_empty((2,), dtype=torch.int64)

    def sample_backward(
        grad_z: Tensor,
        second: Tensor,
        eps: Opt,
        seed_offset: Tensor,
        need_grad_eps: bool,
        scale: int = 0,
        min_scale: float = 0.0,
        noise: int = 0,
    ) -> tuple[Tensor, Tensor]:
        check_one_device(f"{ns}_backward", grad_z, second, eps, seed_offset)
        grad_eps_shape = grad_z.shape if need_grad_eps else (0,)
        return (
            grad_z.new_empty(family.second_grad_shape(grad_z.shape)),
            grad_z.new_empty(grad_eps_shape),
        )

    def stats(
        mu: Tensor, second: Tensor, *args: object, **kwargs: object
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        check_one_device(f"{ns}_stats", mu, second, *_tensors(args, kwargs))
        shape = family.sample_shape(mu.shape, second.shape)
        rows = shape[:-1]
        return (
            mu.new_empty(shape),
            mu.new_empty(rows),
            mu.new_empty(rows),
            mu.new_empty((2,), dtype=torch.int64),
        )

    def stats_backward(
        grad_z: Tensor,
        grad_kl: Tensor,
        grad_log_q: Tensor,
        mu: Tensor,
        second: Tensor,
        eps: Opt,
        seed_offset: Tensor,
        need: bool,
        scale: int = 0,
        min_scale: float = 0.0,
        squash: bool = False,
        low: float = -1.0,
        high: float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        check_one_device(
            f"{ns}_stats_backward", grad_z, grad_kl, grad_log_q, mu, second, eps, seed_offset
        )
        shape = grad_z.shape
        return (
            grad_z.new_empty(shape),
            grad_z.new_empty(family.second_grad_shape(shape)),
            grad_z.new_empty(shape if need else (0,)),
        )

    torch.library.register_fake(ns)(sample)
    torch.library.register_fake(f"{ns}_backward")(sample_backward)
    torch.library.register_fake(f"{ns}_stats")(stats)
    torch.library.register_fake(f"{ns}_stats_backward")(stats_backward)


def register_fakes() -> None:
    """Registers the fake kernels of every op (once the compiled extension defined them)."""
    for prefix in sorted(set(BACKEND_PREFIX.values())):
        for family in FAMILIES.values():
            _register(family, prefix)
