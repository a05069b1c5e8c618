"""The noise kinds of the diagonal op, as ground truth (docs/design.md, "The noise contract"):
each a transform of the same Philox words as the normal (reference/philox.py).

The normal takes Box-Muller on pairs of words. The others take one word per element: element
``4q + j`` is a function of word ``x_j`` of Philox call ``q``, through the uniform
``u = (x + 0.5) * 2**-32`` and its mirror ``u' = (~x + 0.5) * 2**-32`` (``~x = 2**32 - 1 - x``;
``1 - u`` in exact arithmetic), both computed as ``uniforms_from_words`` computes ``u``:

- laplace: ``log(2 u)`` where ``u <= 1/2``, else ``-log(2 u')``
- logistic: ``log(u) - log(u')``
- gumbel: ``-log(E)`` with ``E = -log(u)`` where ``u <= 1/2``, else ``-log1p(-u')``

Every formula is finite for every word (u and u' lie in (0, 1]).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from .philox import box_muller, compute_dtype, philox_words, uniforms_from_words

__all__ = ["NOISES", "noise_from_words", "stream_noise"]

# The public names, by kind (the ops' `noise` argument).
NOISES = ("normal", "laplace", "logistic", "gumbel")
NORMAL, LAPLACE, LOGISTIC, GUMBEL = range(4)
_MASK32 = 0xFFFFFFFF


def noise_from_words(words: torch.Tensor, kind: int, dtype: torch.dtype) -> torch.Tensor:
    """Noise of `kind` for Philox words ``[..., 4]`` (int64), computed in ``dtype`` (float32
    or float64): ``[..., 4]``, element j from word j (Box-Muller pairs for the normal)."""
    u = uniforms_from_words(words, dtype)
    if kind == NORMAL:
        return box_muller(u)
    um = uniforms_from_words(_MASK32 - words, dtype)
    low = u <= 0.5
    if kind == LAPLACE:
        return torch.where(low, torch.log(2.0 * u), -torch.log(2.0 * um))
    if kind == LOGISTIC:
        return torch.log(u) - torch.log(um)
    if kind == GUMBEL:
        return -torch.log(torch.where(low, -torch.log(u), -torch.log1p(-um)))
    raise ValueError(f"noise kind must be one of 0..{len(NOISES) - 1}, got {kind}")


def stream_noise(
    shape: int | Sequence[int] | torch.Size,
    seed: int | torch.Tensor,
    offset: int | torch.Tensor,
    kind: int = NORMAL,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The contract's noise of `kind` for the stream ``(seed, offset)``: a tensor of `shape`
    (or of `shape` elements, 1-D), element i in row-major order, computed in the compute
    dtype of `dtype` and rounded to `dtype` once."""
    if isinstance(shape, torch.Size | Sequence):
        shape = torch.Size(operator.index(s) for s in shape)
    else:
        shape = torch.Size((operator.index(shape),))
    numel = shape.numel()
    words = philox_words(numel, seed, offset, device=device)
    eps = noise_from_words(words, kind, compute_dtype(dtype)).reshape(-1)[:numel]
    return eps.to(dtype).reshape(shape)
