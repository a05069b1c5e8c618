"""Helpers of the GPU-only test files (test_*_cuda*.py): the GPU backends to parametrize over,
each case skipped with its reason where its backend cannot run; the kernel launches of a call;
the test data of the Cholesky and stats files and their float64 expectations."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import randn
from fused_reparam import _backend, sample_chol, sample_diag
from fused_reparam.reference import chol as ref_chol

DEV = "cuda"
# The backends that run on CUDA tensors: the compiled CUDA kernels and the Triton kernels.
GPU_BACKENDS = ("cuda", "triton")


def _unavailable(backend: str, ops: tuple[str, ...]) -> str | None:
    """Why `backend` cannot run every op of `ops` on the GPU here, or None when it can."""
    if not torch.cuda.is_available():
        return f"needs a CUDA GPU to test the {backend} backend on it"
    for op in ops:
        if backend not in fused_reparam.available_backends(DEV, op):
            why = _backend._unavailable_reason(backend, torch.device(DEV), op)
            return f"the {backend} backend cannot run {op} on the GPU here: {why}"
    return None


def each_gpu_backend(*ops: str) -> pytest.MarkDecorator:
    """Parametrizes a test's `backend` over both GPU backends (ids "cuda", "triton"); a case
    whose backend cannot run every op of `ops` on the GPU is skipped with the reason."""
    params = []
    for backend in GPU_BACKENDS:
        why = _unavailable(backend, ops)
        marks = [pytest.mark.skip(reason=why)] if why else []
        params.append(pytest.param(backend, marks=marks, id=backend))
    return pytest.mark.parametrize("backend", params)


def kernel_launches(fn) -> list[str]:
    """The names of the GPU kernels that fn() launches (copies and memsets left out)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return [
        e.name
        for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA
        and "memcpy" not in e.name.lower()
        and "memset" not in e.name.lower()
    ]


def dtype_id(dtype: torch.dtype) -> str:
    """A dtype's name in test ids: "float32", not "dtype0"."""
    return str(dtype).removeprefix("torch.")


def drawn_stream() -> list[int]:
    """The [seed, offset] that the Triton ops and the reference draw from the device's default
    generator in its current state (docs/design.md, the noise contract)."""
    return torch.randint(2**63 - 1, (2,), dtype=torch.int64, device=DEV).tolist()


# ---- the Cholesky op --------------------------------------------------------------------


def chol_factor(shape, d, dtype, gen, device=DEV) -> torch.Tensor:
    """A well-conditioned lower factor I + 0.5/sqrt(D) * noise (NaN above the diagonal, which
    the kernels must never read)."""
    noise = torch.randn((*shape, d, d), generator=gen, dtype=torch.float64) * (0.5 / d**0.5)
    lower = torch.eye(d, dtype=torch.float64) + noise.tril()
    poisoned = lower + torch.triu(torch.full_like(lower, float("nan")), diagonal=1)
    return poisoned.to(dtype).to(device)


def chol_exact(mu, L, eps) -> torch.Tensor:
    """z in float64 from the same inputs (upper triangle ignored)."""
    lower = torch.tril(torch.nan_to_num(L.double(), nan=0.0))
    return mu.double() + (lower @ eps.double()[..., None])[..., 0]


def chol_stream_eps(shape, seed, offset, dtype) -> torch.Tensor:
    """The contract's eps for a sample of `shape`, computed by the reference on the GPU."""
    return ref_chol.chol_noise(torch.Size(shape), seed, offset, dtype, torch.device(DEV))


# ---- the ops with the VAE extras (stats) -------------------------------------------------


def signed_factor(shape, d, dtype, gen) -> torch.Tensor:
    """A well-conditioned lower factor with diagonal entries of either sign, |L_ii| in
    [0.75, 1.25], and NaN above the diagonal (which the kernels must never read)."""
    noise = torch.randn((*shape, d, d), generator=gen, dtype=torch.float64) * (0.5 / d**0.5)
    sign = torch.randint(0, 2, (*shape, d), generator=gen).double() * 2 - 1
    diag = sign * (0.75 + 0.5 * torch.rand((*shape, d), generator=gen, dtype=torch.float64))
    lower = noise.tril(-1) + torch.diag_embed(diag)
    poisoned = lower + torch.triu(torch.full_like(lower, float("nan")), diagonal=1)
    return poisoned.to(dtype).to(DEV)


def clean(L) -> torch.Tensor:
    """L with the NaN above its diagonal replaced by zeros."""
    return torch.nan_to_num(L, nan=0.0)


def stats_sample(kind, *args, **kw):
    """sample_diag or sample_chol (`kind`) with return_stats=True."""
    fn = sample_diag if kind == "diag" else sample_chol
    return fn(*args, return_stats=True, **kw)


def stats_inputs(kind, rows, d, dtype, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) or (mu, L) of `rows` rows of D = `d` (L without NaN)."""
    mu = randn((rows, d), dtype, DEV, gen)
    if kind == "diag":
        return mu, randn((rows, d), dtype, DEV, gen, scale=0.5)
    return mu, clean(signed_factor((rows,), d, dtype, gen))


def upstream_grads(shape, dtype, gen) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upstream gradients of (z, kl, log_q) for a sample of `shape`."""
    return (
        randn(shape, dtype, DEV, gen),
        randn(shape[:-1], dtype, DEV, gen),
        randn(shape[:-1], dtype, DEV, gen),
    )


def outputs_and_grads(fn, leaves, uppers) -> tuple[tuple, tuple]:
    """(outputs, gradients of the leaves that require grad) of fn(*leaves) against upstream
    gradients."""
    out = tuple(fn(*leaves))
    grads = torch.autograd.grad(out, [x for x in leaves if x.requires_grad], uppers)
    return out, grads


def new_leaves(*tensors, grad=True) -> list[torch.Tensor]:
    """Detached copies of `tensors`, requiring grad (or not)."""
    return [t.detach().clone().requires_grad_(grad) for t in tensors]
