"""The gradient of a scale_tril shared across sample rows (broadcast batch dims, or the K of
num_samples): tril(sum over the shared rows of grad_z eps^T), as one batched matmul over eps
regenerated as a tensor. The fused backward kernels write grad_L per sample row, which for one
L shared by B rows would be B times L's size before autograd sums it."""

from __future__ import annotations

import math

import torch


def _padded_batch(l_shape: torch.Size, batch: torch.Size) -> tuple[int, ...]:
    lb = tuple(l_shape[:-2])
    return (1,) * (len(batch) - len(lb)) + lb


def is_shared(l_shape: torch.Size, sample_shape: torch.Size) -> bool:
    """True when some L is used by more than one sample row."""
    batch = sample_shape[:-1]
    return any(n == 1 and b != 1 for n, b in zip(_padded_batch(l_shape, batch), batch, strict=True))


def summed_grad_l(grad_z: torch.Tensor, eps: torch.Tensor, l_shape: torch.Size) -> torch.Tensor:
    """tril(sum of grad_z eps^T over the rows sharing each L), of shape `l_shape`, computed in
    eps's dtype and returned in grad_z's. Differentiable in grad_z and eps."""
    batch, d = grad_z.shape[:-1], grad_z.shape[-1]
    lb = _padded_batch(l_shape, batch)
    kept = [i for i, n in enumerate(lb) if n != 1]
    shared = [i for i, n in enumerate(lb) if n == 1]
    perm = [*kept, *shared, len(batch)]
    rows_kept = math.prod(batch[i] for i in kept)
    rows_shared = math.prod(batch[i] for i in shared)
    g = grad_z.to(eps.dtype).permute(perm).reshape(rows_kept, rows_shared, d)
    e = eps.permute(perm).reshape(rows_kept, rows_shared, d)
    out = torch.tril(g.transpose(1, 2) @ e)
    return out.reshape(l_shape).to(grad_z.dtype)
