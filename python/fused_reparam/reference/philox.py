"""The noise contract, as ground truth: a deliberately simple, pure-PyTorch implementation.

Every fused kernel in this project must reproduce the numbers made here. Simplicity and
obvious correctness come first; speed only matters enough to handle ~2**24 elements in a few
seconds (all work is vectorized torch ops, no Python loop per element).

The contract. One noise stream is identified by ``(seed, offset)``, two unsigned 64-bit
integers. Element ``i`` (0-based, row-major) of a sample tensor gets:

1. Philox4x32-10 (Salmon et al., SC 2011; the Random123 / cuRAND definition) with key
   ``(lo32(seed), hi32(seed))`` and counter
   ``(lo32(i >> 2), hi32(i >> 2), lo32(offset), hi32(offset))``, giving words ``x0..x3``.
2. Uniforms ``u_j = (x_j + 0.5) * 2**-32`` in the compute dtype: in float32 exactly
   ``(float32(x_j) + 0.5f) * 2**-32f`` with ``float32(x_j)`` the round-to-nearest-even
   conversion of the uint32 word; in float64 the same in float64. ``u`` lies in (0, 1]
   (no clamp; the word 2**32 - 1 gives exactly 1.0 in float32).
3. Box-Muller on pairs: ``r = sqrt(-2 ln u0)``, ``t = 2*pi*u1``, ``n0 = r cos t``,
   ``n1 = r sin t``; likewise ``(u2, u3) -> (n2, n3)``. In float32, ``2*pi`` is the float32
   constant 6.2831855 and every operation is a float32 operation.
4. ``eps_i = n_(i mod 4)``.

The compute dtype is float64 for float64 outputs and float32 for float32, float16 and
bfloat16 outputs; half types are rounded from the float32 result once, at the end.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch

__all__ = [
    "PHILOX_M0",
    "PHILOX_M1",
    "PHILOX_ROUNDS",
    "PHILOX_W0",
    "PHILOX_W1",
    "box_muller",
    "compute_dtype",
    "philox4x32_10",
    "philox_words",
    "split_u64",
    "standard_normal",
    "uniforms_from_words",
]

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10

_MASK32 = 0xFFFFFFFF
_MASK16 = 0xFFFF
_TWO_POW_M32 = 2.0**-32  # exact in float32 and float64
_ROWS_PER_CHUNK = 1 << 16


def _mulhilo(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi32, lo32) of the 64-bit product of the constant ``m`` and int64 ``x``, both < 2**32.

    ``m`` is split into 16-bit halves so that every intermediate stays below 2**49: no int64
    overflow anywhere.
    """
    m_lo = m & _MASK16
    m_hi = m >> 16
    p_lo = x * m_lo  # < 2**48
    p_hi = x * m_hi  # < 2**48; the product is p_lo + p_hi * 2**16
    s = p_lo + ((p_hi & _MASK16) << 16)  # < 2**49
    lo = s & _MASK32
    hi = (s >> 32) + (p_hi >> 16)  # < 2**32 because the full product is < 2**64
    return hi, lo


def philox4x32_10(counter: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Philox4x32-10 block function.

    Args:
        counter: int64 tensor ``[..., 4]``, words ``(c0, c1, c2, c3)``, each in [0, 2**32).
        key: int64 tensor ``[..., 2]``, words ``(k0, k1)``, each in [0, 2**32). Leading dims
            broadcast against those of ``counter``.

    Returns:
        int64 tensor ``[..., 4]`` (broadcast leading dims) of output words in [0, 2**32).
    """
    if counter.dtype != torch.int64 or key.dtype != torch.int64:
        raise TypeError(
            f"counter and key must be int64 tensors, got {counter.dtype} and {key.dtype}"
        )
    if counter.shape[-1:] != (4,) or key.shape[-1:] != (2,):
        raise ValueError(
            "counter must have shape [..., 4] and key shape [..., 2], got "
            f"{tuple(counter.shape)} and {tuple(key.shape)}"
        )
    for name, t in (("counter", counter), ("key", key)):
        if t.numel() and bool(((t < 0) | (t > _MASK32)).any()):
            raise ValueError(f"{name} words must lie in [0, 2**32)")
    return _philox_rounds(counter, key)


def _philox_rounds(counter: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """philox4x32_10 without its argument checks, for words known to be in range (the check
    reads the data, which torch.compile cannot trace)."""
    c0, c1, c2, c3 = counter.unbind(-1)
    k0, k1 = key.unbind(-1)
    c0, c1, c2, c3, k0, k1 = torch.broadcast_tensors(c0, c1, c2, c3, k0, k1)
    for rnd in range(PHILOX_ROUNDS):
        if rnd > 0:
            k0 = (k0 + PHILOX_W0) & _MASK32
            k1 = (k1 + PHILOX_W1) & _MASK32
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return torch.stack((c0, c1, c2, c3), dim=-1)


def split_u64(value: int, name: str = "value") -> tuple[int, int]:
    """Split an unsigned 64-bit integer into ``(lo32, hi32)``.

    Raises:
        TypeError: if ``value`` is not an integer (bool is rejected too).
        ValueError: if ``value`` is not in [0, 2**64); the message names ``name``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not 0 <= v < 2**64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v & _MASK32, v >> 32


def _check_numel(numel: int) -> int:
    if isinstance(numel, bool):
        raise TypeError("numel must be an integer, got bool")
    n = operator.index(numel)
    if n < 0:
        raise ValueError(f"numel must be >= 0, got {n}")
    return n


def _words_of(value: int | torch.Tensor, name: str) -> tuple[int, int] | tuple[torch.Tensor, ...]:
    """(lo32, hi32) of a stream word: a Python int in [0, 2**64), or a 0-dim int64 tensor
    holding its bit pattern (a drawn stream: no host sync, traced by torch.compile, batched by
    vmap)."""
    if isinstance(value, torch.Tensor):
        return value & _MASK32, (value >> 32) & _MASK32  # the shift sign-extends: mask it
    return split_u64(value, name)


def philox_words(
    numel: int,
    seed: int | torch.Tensor,
    offset: int | torch.Tensor,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Philox words for the first ``numel`` elements of the stream ``(seed, offset)``: ints
    in [0, 2**64), or 0-dim int64 tensors of their bit patterns.

    Returns:
        int64 tensor ``[ceil(numel / 4), 4]``; row ``j`` is Philox4x32-10 of counter
        ``(lo32(j), hi32(j), lo32(offset), hi32(offset))`` under key
        ``(lo32(seed), hi32(seed))``.
    """
    n = _check_numel(numel)
    k0, k1 = _words_of(seed, "seed")
    o0, o1 = _words_of(offset, "offset")
    rows = (n + 3) // 4
    if isinstance(k0, torch.Tensor):
        key = torch.stack((k0, k1))
    else:
        key = torch.tensor([k0, k1], dtype=torch.int64, device=device)
    chunks = []
    # Chunked only so the int64 temporaries stay cache-sized; the result does not depend on it.
    for start in range(0, max(rows, 1), _ROWS_PER_CHUNK):
        j = torch.arange(start, min(start + _ROWS_PER_CHUNK, rows), dtype=torch.int64,
                         device=device)  # fmt: skip
        words = [o.expand_as(j) if isinstance(o, torch.Tensor) else torch.full_like(j, o)
                 for o in (o0, o1)]  # fmt: skip
        counter = torch.stack((j & _MASK32, j >> 32, *words), dim=-1)
        chunks.append(_philox_rounds(counter, key))
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


def uniforms_from_words(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Uniforms ``(x + 0.5) * 2**-32`` in (0, 1], computed in ``dtype`` (float32 or float64).

    The int64 words are converted to ``dtype`` with round-to-nearest-even, then the add and
    the multiply are each done in ``dtype``.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"uniforms are computed in float32 or float64, got {dtype}")
    if words.dtype != torch.int64:
        raise TypeError(f"words must be an int64 tensor, got {words.dtype}")
    return (words.to(dtype) + 0.5) * _TWO_POW_M32


def box_muller(u: torch.Tensor) -> torch.Tensor:
    """Box-Muller on ``u [..., 4] -> n [..., 4]``: pairs ``(u0, u1)`` and ``(u2, u3)``.

    ``r = sqrt(-2 ln ua)``, ``t = 2*pi*ub``, outputs ``(r cos t, r sin t)``, all in the dtype
    of ``u`` (float32 or float64; for float32, ``2*pi`` is the float32 constant 6.2831855).
    """
    if u.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"box_muller computes in float32 or float64, got {u.dtype}")
    if u.shape[-1:] != (4,):
        raise ValueError(f"u must have shape [..., 4], got {tuple(u.shape)}")
    two_pi = torch.tensor(2.0 * math.pi, dtype=u.dtype, device=u.device)
    u0, u1, u2, u3 = u.unbind(-1)
    r01 = torch.sqrt(-2.0 * torch.log(u0))
    t01 = two_pi * u1
    r23 = torch.sqrt(-2.0 * torch.log(u2))
    t23 = two_pi * u3
    return torch.stack(
        (r01 * torch.cos(t01), r01 * torch.sin(t01), r23 * torch.cos(t23), r23 * torch.sin(t23)),
        dim=-1,
    )


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 outputs; float32 for float32, float16 and bfloat16 outputs."""
    if dtype == torch.float64:
        return torch.float64
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    raise ValueError(f"unsupported output dtype {dtype}; use float64/32/16 or bfloat16")


def standard_normal(
    shape_or_numel: int | Sequence[int] | torch.Size,
    seed: int | torch.Tensor,
    offset: int | torch.Tensor,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The contract's standard-normal noise for the stream ``(seed, offset)``.

    Args:
        shape_or_numel: an int ``numel`` (returns a 1-D tensor of that many elements) or a
            shape (returns a tensor of that shape, element ``i`` in row-major order). ``numel``
            may be 0 and need not be a multiple of 4.
        seed: unsigned 64-bit integer, in [0, 2**64), or a 0-dim int64 tensor of its bits.
        offset: unsigned 64-bit integer, in [0, 2**64), or a 0-dim int64 tensor of its bits.
        dtype: output dtype, float64, float32, float16 or bfloat16. float64 computes in
            float64; the others compute in float32 and are rounded to ``dtype`` at the end.
        device: where to build the tensors.

    Returns:
        ``eps`` with ``eps_i = n_(i mod 4)`` of the Box-Muller output of counter ``i >> 2``.
    """
    if isinstance(shape_or_numel, torch.Size | Sequence):
        shape = torch.Size(operator.index(s) for s in shape_or_numel)
        if any(s < 0 for s in shape):
            raise ValueError(f"shape must have non-negative sizes, got {tuple(shape)}")
        numel = shape.numel()
    else:
        numel = _check_numel(shape_or_numel)
        shape = torch.Size((numel,))
    cdtype = compute_dtype(dtype)
    words = philox_words(numel, seed, offset, device=device)
    eps = box_muller(uniforms_from_words(words, cdtype)).reshape(-1)[:numel]
    return eps.to(dtype).reshape(shape)
