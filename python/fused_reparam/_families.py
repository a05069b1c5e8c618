"""The sampling families, declared once: each family's ops, its second input and the shapes
they imply, and its reference. Dispatch, the fake kernels, backend availability, the docs'
op listing and the registry tests all derive from this table.

A family `name` has two forward ops, `name_rsample` and `name_rsample_stats`, each with a
`_backward` op, defined for every backend in csrc/ops.cpp (the Triton kernels' copies carry
the `triton_` prefix). docs/implementation.md says which files a new family touches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .reference import chol as _ref_chol
from .reference import diag as _ref_diag
from .reference import stats as _ref_stats


@dataclass(frozen=True)
class Family:
    """One family of sampling ops: z = mu + (the second input applied to) eps."""

    name: str
    # The second input's argument name, and how many trailing dims of it belong to one sample
    # row beyond the event dim: 0 for an elementwise scale (broadcast with mu), 1 for a
    # [D, D] factor.
    second: str
    second_row_dims: int
    reference: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    reference_stats: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple]
    # The defaults of the family's own arguments that its forward ops take right after the
    # second input, before (eps, seed_offset, generator): the diagonal ops' scale kind. The
    # other family arguments come last.
    leading: tuple = ()

    def op(self, stats: bool = False) -> str:
        """The forward op's name (without namespace or backend prefix)."""
        return f"{self.name}_rsample_stats" if stats else f"{self.name}_rsample"

    def ops(self) -> tuple[str, ...]:
        """Every op of the family: both forward ops and their backward ops."""
        return tuple(f"{self.op(s)}{b}" for s in (False, True) for b in ("", "_backward"))

    def lead_args(self, extra: tuple) -> tuple:
        """The leading arguments of a forward op call whose family arguments are `extra`
        (missing ones take their defaults)."""
        n = len(self.leading)
        return (*extra[:n], *self.leading[len(extra) :])

    def op_args(
        self,
        extra: tuple,
        eps: torch.Tensor | None,
        seed_offset: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple:
        """A forward op's arguments after the two inputs, for the family arguments `extra` in
        schema order (the diagonal ops: scale, min_scale, then noise or the squash)."""
        return (*self.lead_args(extra), eps, seed_offset, generator, *extra[len(self.leading) :])

    def sample_shape(self, mu: torch.Size, second: torch.Size) -> torch.Size:
        """The sample's shape for inputs of these shapes (already checked)."""
        if self.second_row_dims == 0:
            return torch.broadcast_shapes(mu, second)
        batch = torch.broadcast_shapes(mu[:-1], second[: -1 - self.second_row_dims])
        return torch.Size((*batch, mu[-1]))

    def second_grad_shape(self, sample: torch.Size) -> tuple[int, ...]:
        """The shape in which a backward op returns the second input's gradient."""
        return (*sample, *(sample[-1:] * self.second_row_dims))


FAMILIES: dict[str, Family] = {
    "diag": Family("diag", "s", 0, _ref_diag.diag_rsample, _ref_stats.diag_stats, (0,)),
    "chol": Family("chol", "scale_tril", 1, _ref_chol.chol_rsample, _ref_stats.chol_stats),
}

# The op-name prefix of each backend's copy of the ops.
BACKEND_PREFIX = {"cpu": "", "cuda": "", "triton": "triton_"}


def forward_ops() -> tuple[str, ...]:
    """Every forward op name, of every family."""
    return tuple(f.op(s) for f in FAMILIES.values() for s in (False, True))


def all_ops() -> tuple[str, ...]:
    """Every op name (forward and backward), of every family."""
    return tuple(name for f in FAMILIES.values() for name in f.ops())
