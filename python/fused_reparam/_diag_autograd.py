"""Fake-tensor and autograd registration of the diagonal op, shared by every backend that
provides the op pair (forward `diag_rsample`, backward `diag_rsample_backward`).

Forward saves only its inputs and the 16-byte [seed, offset] it used; backward regenerates
eps from them. The backward op is itself differentiable (double backward), through the
same two ops and elementwise torch math.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._eager_ops import call, op_by_name, register_autograd

_HALF_TYPES = (torch.float16, torch.bfloat16)


def float32_if_summed(summed: bool, *tensors: torch.Tensor | None) -> tuple:
    """The inputs of a backward computation as float32 when they are half types and its
    per-element gradients are then summed (over broadcast dims or K samples): every term is
    summed unrounded and the sum rounded once, where rounding each term to half first loses
    the sum or overflows it. Otherwise the tensors as they are."""
    if not summed or tensors[0].dtype not in _HALF_TYPES:
        return tensors
    return tuple(None if t is None else t.float() for t in tensors)


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


def sum_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`grad` summed over the dims along which an input of `shape` was broadcast."""
    return grad if grad.shape == shape else grad.sum_to_size(shape)


def needs_grad(ctx, count: int) -> tuple[bool, ...]:  # noqa: ANN001
    """The first `count` flags of ctx.needs_input_grad, padded with False (it omits trailing
    arguments left at their schema default)."""
    flags = tuple(ctx.needs_input_grad)
    return (flags + (False,) * count)[:count]


def register_diag_op_pair(fwd_name: str, bwd_name: str, *, register_fakes: bool = True) -> None:
    """Registers autograd (and fake kernels) for one backend's (forward, backward) op pair.

    The forward's inputs start (mu, logvar, eps, seed_offset); more may follow (the C++ ops
    take a Generator). Ops that bring their own fake kernel (torch.library.triton_op) pass
    register_fakes=False.
    """
    bwd_op = op_by_name(bwd_name)

    if register_fakes:

        @torch.library.register_fake(fwd_name)
        def _fwd_fake(mu, logvar, eps=None, seed_offset=None, generator=None):  # noqa: ANN001
            check_one_device(fwd_name, mu, logvar, eps, seed_offset)
            shape = torch.broadcast_shapes(mu.shape, logvar.shape)
            return mu.new_empty(shape), mu.new_empty((2,), dtype=torch.int64)

        @torch.library.register_fake(bwd_name)
        def _bwd_fake(grad_z, logvar, eps, seed_offset, need_grad_eps):  # noqa: ANN001
            check_one_device(bwd_name, grad_z, logvar, eps, seed_offset)
            grad_eps_shape = grad_z.shape if need_grad_eps else (0,)
            return grad_z.new_empty(grad_z.shape), grad_z.new_empty(grad_eps_shape)

    register_autograd(fwd_name, _make_fwd_backward(bwd_op), _fwd_setup_context)
    register_autograd(bwd_name, _make_bwd_backward(bwd_op), _bwd_setup_context)


def _fwd_setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
    mu, logvar, eps = inputs[:3]
    _z, used = output
    ctx.mu_shape = mu.shape
    ctx.num_inputs = len(inputs)
    ctx.save_for_backward(logvar, eps, used)


def _make_fwd_backward(bwd_op: Callable) -> Callable:
    def backward(ctx, grad_z, _grad_used):  # noqa: ANN001
        logvar, eps, used = ctx.saved_tensors
        need_mu, need_logvar, need_eps = needs_grad(ctx, 3)
        grad_mu = sum_to(grad_z, ctx.mu_shape) if need_mu else None
        grad_logvar = grad_eps = None
        if need_logvar or need_eps:
            summed = need_logvar and logvar.shape != grad_z.shape
            g, lv, e = float32_if_summed(summed, grad_z, logvar, eps)
            g_logvar, g_eps = call(bwd_op, g, lv, e, used, bool(need_eps))
            grad_logvar = sum_to(g_logvar, logvar.shape).to(logvar.dtype) if need_logvar else None
            grad_eps = g_eps.to(grad_z.dtype) if need_eps else None
        return (grad_mu, grad_logvar, grad_eps) + (None,) * (ctx.num_inputs - 3)

    return backward


def _bwd_setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
    grad_z, logvar, eps, seed_offset, _need_grad_eps = inputs
    ctx.save_for_backward(grad_z, logvar, eps, seed_offset)


def _make_bwd_backward(bwd_op: Callable) -> Callable:
    # Outputs: G = 0.5 * g * sigma * eps and E = g * sigma (sigma = exp(0.5 * logvar)).
    # With upstream grads (a, b):  d/dg = 0.5 * a * sigma * eps + b * sigma,
    # d/dlogvar = 0.5 * g * (d/dg),  d/deps = 0.5 * a * g * sigma.
    def backward(ctx, grad_g, grad_e):  # noqa: ANN001
        grad_z, logvar, eps, seed_offset = ctx.saved_tensors
        need_gz, need_logvar, need_eps = needs_grad(ctx, 3)
        d_gz = None
        if need_gz or need_logvar:
            d_gz, _ = call(bwd_op, grad_g, logvar, eps, seed_offset, False)
            if eps is not None and grad_e.numel() != 0:
                d_gz = d_gz + grad_e * torch.exp(0.5 * logvar)
        d_logvar = sum_to(0.5 * grad_z * d_gz, logvar.shape) if need_logvar else None
        d_eps = None
        if need_eps and eps is not None:
            d_eps = 0.5 * grad_g * grad_z * torch.exp(0.5 * logvar)
        return (d_gz if need_gz else None), d_logvar, d_eps, None, None

    return backward
