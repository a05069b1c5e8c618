"""Fake-tensor and autograd registration of the Cholesky op, shared by every backend that
provides the op pair (forward `chol_rsample`, backward `chol_rsample_backward`).

Forward saves scale_tril, eps (only when given) and the 16-byte [seed, offset]; backward
regenerates eps. The backward op is differentiable through the same two ops: with upstream
grads (A for grad_L, b for grad_eps) of G = tril(g eps^T) and E = L^T g,
    d/dg   = tril(A) eps + tril(L) b   (the forward op with mu = 0, on A and on L)
    d/dL   = tril(g b^T)               (the backward op with eps = b)
    d/deps = tril(A)^T g               (the backward op's grad_eps with L = A).
"""

from __future__ import annotations

import torch

from ._chol_reduce import is_shared, summed_grad_l
from ._diag_autograd import check_one_device, needs_grad, sum_to
from ._eager_ops import call, op_by_name, register_autograd
from ._eps import regenerate_eps


def register_chol_op_pair(
    fwd_name: str, bwd_name: str, noise_name: str, *, register_fakes: bool = True
) -> None:
    """Registers autograd (and fake kernels) for one backend's (forward, backward) op pair.

    The forward's inputs start (mu, scale_tril, eps, seed_offset); more may follow.
    noise_name: the backend's diagonal forward op, which regenerates eps as a tensor when one
    scale_tril is shared by several sample rows (its gradient is then one matmul).
    """
    fwd_op, bwd_op = op_by_name(fwd_name), op_by_name(bwd_name)

    def grad_l_and_eps(g, scale_tril, eps, seed_offset, need_l, need_eps):  # noqa: ANN001
        """(grad_L summed to scale_tril's shape, grad_eps) of the forward op, as requested."""
        if need_l and is_shared(scale_tril.shape, g.shape):
            e = regenerate_eps(op_by_name(noise_name), eps, seed_offset, g.shape, g)
            grad_l = summed_grad_l(g, e, scale_tril.shape)
            grad_eps = None
            if need_eps:
                lower_t = torch.tril(scale_tril).transpose(-1, -2)
                grad_eps = (lower_t @ g.unsqueeze(-1)).squeeze(-1)
            return grad_l, grad_eps
        g_l, g_eps = call(bwd_op, g, scale_tril, eps, seed_offset, bool(need_eps))
        return (sum_to(g_l, scale_tril.shape) if need_l else None), (g_eps if need_eps else None)

    if register_fakes:

        @torch.library.register_fake(fwd_name)
        def _fwd_fake(mu, scale_tril, eps=None, seed_offset=None, generator=None):  # noqa: ANN001
            check_one_device(fwd_name, mu, scale_tril, eps, seed_offset)
            batch = torch.broadcast_shapes(mu.shape[:-1], scale_tril.shape[:-2])
            return mu.new_empty((*batch, mu.shape[-1])), mu.new_empty((2,), dtype=torch.int64)

        @torch.library.register_fake(bwd_name)
        def _bwd_fake(grad_z, scale_tril, eps, seed_offset, need_grad_eps):  # noqa: ANN001
            check_one_device(bwd_name, grad_z, scale_tril, eps, seed_offset)
            d = grad_z.shape[-1]
            grad_eps_shape = grad_z.shape if need_grad_eps else (0,)
            return grad_z.new_empty((*grad_z.shape, d)), grad_z.new_empty(grad_eps_shape)

    def fwd_setup(ctx, inputs, output) -> None:  # noqa: ANN001
        mu, scale_tril, eps = inputs[:3]
        ctx.mu_shape = mu.shape
        ctx.num_inputs = len(inputs)
        ctx.save_for_backward(scale_tril, eps, output[1])

    def fwd_backward(ctx, grad_z, _grad_used):  # noqa: ANN001
        scale_tril, eps, used = ctx.saved_tensors
        need_mu, need_l, need_eps = needs_grad(ctx, 3)
        grad_mu = sum_to(grad_z, ctx.mu_shape) if need_mu else None
        grad_l = grad_eps = None
        if need_l or need_eps:
            grad_l, grad_eps = grad_l_and_eps(grad_z, scale_tril, eps, used, need_l, need_eps)
        return (grad_mu, grad_l, grad_eps) + (None,) * (ctx.num_inputs - 3)

    def bwd_setup(ctx, inputs, output) -> None:  # noqa: ANN001
        grad_z, scale_tril, eps, seed_offset, _need = inputs
        ctx.save_for_backward(grad_z, scale_tril, eps, seed_offset)

    def bwd_backward(ctx, grad_gl, grad_ge):  # noqa: ANN001
        g, scale_tril, eps, seed_offset = ctx.saved_tensors
        need_g, need_l, need_eps = needs_grad(ctx, 3)
        has_b = grad_ge.numel() != 0
        # mu = 0 over g's batch shape, as a stride-0 view (no memory).
        zero_mu = g.new_zeros(g.shape[-1]).expand(g.shape)
        d_g = d_l = d_eps = None
        if need_g:
            d_g, _ = call(fwd_op, zero_mu, grad_gl, eps, seed_offset)
            if has_b:
                d_g = d_g + call(fwd_op, zero_mu, scale_tril, grad_ge, None)[0]
        if need_l and has_b:
            d_l = grad_l_and_eps(g, scale_tril, grad_ge, seed_offset, True, False)[0]
        if need_eps and eps is not None:
            d_eps = call(bwd_op, g, grad_gl, eps, seed_offset, True)[1]
        return d_g, d_l, d_eps, None, None

    register_autograd(fwd_name, fwd_backward, fwd_setup)
    register_autograd(bwd_name, bwd_backward, bwd_setup)
