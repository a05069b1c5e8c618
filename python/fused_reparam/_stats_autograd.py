"""Fake-tensor and autograd registration of the ops with the VAE extras (`diag_rsample_stats`,
`chol_rsample_stats` and their backward ops), shared by every backend that provides them.

Forward saves its inputs and the 16-byte [seed, offset]; the fused backward op regenerates eps
and returns every input's gradient over the sample's shape, summed here over broadcast dims.
The backward op's own backward (double backward) is written out below in torch ops on eps
regenerated as a tensor, so it is differentiable again.
"""

from __future__ import annotations

import torch

from ._chol_reduce import is_shared, summed_grad_l
from ._diag_autograd import check_one_device, float32_if_summed, needs_grad, sum_to
from ._eager_ops import call, op_by_name, register_autograd
from ._eps import regenerate_eps


def _sample_shape(kind: str, mu: torch.Tensor, second: torch.Tensor) -> torch.Size:
    if kind == "diag":
        return torch.broadcast_shapes(mu.shape, second.shape)
    batch = torch.broadcast_shapes(mu.shape[:-1], second.shape[:-2])
    return torch.Size((*batch, mu.shape[-1]))


def _diag_vjp(up, saved, eps):  # noqa: ANN001
    """Upstream (a, b, c) of (grad_mu, grad_logvar, grad_eps) of the stats backward, pulled
    back to its inputs (grad_z, grad_kl, grad_log_q, mu, logvar, eps)."""
    a, b, c = up
    gz, gk, gq, mu, logvar = saved
    gk1, gq1 = gk.unsqueeze(-1), gq.unsqueeze(-1)
    sigma = torch.exp(0.5 * logvar)
    s2 = sigma * sigma
    d_gz = a + 0.5 * b * sigma * eps + c * sigma
    d_gk = (a * mu + 0.5 * b * (s2 - 1.0)).sum(-1)
    d_gq = (-0.5 * b - c * eps).sum(-1)
    d_mu = gk1 * a
    d_logvar = 0.25 * b * gz * sigma * eps + 0.5 * b * gk1 * s2 + 0.5 * c * gz * sigma
    d_eps = 0.5 * b * gz * sigma - c * gq1
    return d_gz, d_gk, d_gq, d_mu, d_logvar, d_eps


def _chol_vjp(up, saved, eps):  # noqa: ANN001
    """As _diag_vjp for the Cholesky stats backward; upstream (a, A, c) of
    (grad_mu, grad_L, grad_eps)."""
    a, big_a, c = up
    gz, gk, gq, mu, scale_tril = saved
    gk1, gq1 = gk.unsqueeze(-1), gq.unsqueeze(-1)
    lower = torch.tril(scale_tril)
    tril_a = torch.tril(big_a)
    diag_l = torch.diagonal(lower, dim1=-2, dim2=-1)
    diag_a = torch.diagonal(big_a, dim1=-2, dim2=-1)
    d_gz = a + (tril_a @ eps.unsqueeze(-1)).squeeze(-1) + (lower @ c.unsqueeze(-1)).squeeze(-1)
    d_gk = (a * mu).sum(-1) + (tril_a * lower).sum((-2, -1)) - (diag_a / diag_l).sum(-1)
    d_gq = -(diag_a / diag_l).sum(-1) - (c * eps).sum(-1)
    d_mu = gk1 * a
    d_l = (
        torch.tril(gz.unsqueeze(-1) * c.unsqueeze(-2))
        + gk1.unsqueeze(-1) * tril_a
        + torch.diag_embed((gk1 + gq1) * diag_a / (diag_l * diag_l))
    )
    d_eps = (tril_a.transpose(-1, -2) @ gz.unsqueeze(-1)).squeeze(-1) - gq1 * c
    return d_gz, d_gk, d_gq, d_mu, d_l, d_eps


def register_stats_op_pair(
    kind: str, fwd_name: str, bwd_name: str, noise_name: str, *, register_fakes: bool = True
) -> None:
    """Registers autograd (and fake kernels) for one backend's stats op pair.

    kind: "diag" (second input logvar) or "chol" (second input scale_tril). noise_name: the
    backend's diagonal forward op, which regenerates eps for the double backward. The
    forward's inputs start (mu, second, eps, seed_offset); more may follow.
    """
    bwd_op = op_by_name(bwd_name)
    vjp = _diag_vjp if kind == "diag" else _chol_vjp

    if register_fakes:

        @torch.library.register_fake(fwd_name)
        def _fwd_fake(mu, second, eps=None, seed_offset=None, generator=None):  # noqa: ANN001
            check_one_device(fwd_name, mu, second, eps, seed_offset)
            shape = _sample_shape(kind, mu, second)
            rows = shape[:-1]
            return (
                mu.new_empty(shape),
                mu.new_empty(rows),
                mu.new_empty(rows),
                mu.new_empty((2,), dtype=torch.int64),
            )

        @torch.library.register_fake(bwd_name)
        def _bwd_fake(grad_z, grad_kl, grad_log_q, mu, second, eps, seed_offset, need):  # noqa: ANN001
            check_one_device(bwd_name, grad_z, grad_kl, grad_log_q, mu, second, eps, seed_offset)
            shape = grad_z.shape
            second_shape = shape if kind == "diag" else (*shape, shape[-1])
            return (
                grad_z.new_empty(shape),
                grad_z.new_empty(second_shape),
                grad_z.new_empty(shape if need else (0,)),
            )

    def fwd_setup(ctx, inputs, output) -> None:  # noqa: ANN001
        mu, second, eps = inputs[:3]
        ctx.num_inputs = len(inputs)
        ctx.save_for_backward(mu, second, eps, output[3])

    def shared_l_backward(gz, gk, gq, mu, scale_tril, eps, used, need_eps):  # noqa: ANN001
        # One scale_tril shared by several sample rows: its gradient is a matmul over eps
        # regenerated as a tensor (see _chol_reduce), the rest elementwise.
        e = regenerate_eps(op_by_name(noise_name), eps, used, gz.shape, gz)
        lb = scale_tril.shape[:-2]
        gk_l = gk.sum_to_size(lb) if len(lb) else gk.sum()
        gkq_l = (gk + gq).sum_to_size(lb) if len(lb) else (gk + gq).sum()
        lower = torch.tril(scale_tril)
        diag = torch.diagonal(lower, dim1=-2, dim2=-1)
        g_l = (
            summed_grad_l(gz, e, scale_tril.shape)
            + gk_l[..., None, None] * lower
            - torch.diag_embed(gkq_l[..., None] / diag)
        )
        g_eps = None
        if need_eps:
            lower_t = lower.transpose(-1, -2)
            g_eps = (lower_t @ gz.unsqueeze(-1)).squeeze(-1) - gq.unsqueeze(-1) * eps
        return gz + gk.unsqueeze(-1) * mu, g_l, g_eps

    def fwd_backward(ctx, grad_z, grad_kl, grad_log_q, _grad_used):  # noqa: ANN001
        mu, second, eps, used = ctx.saved_tensors
        need_mu, need_second, need_eps = needs_grad(ctx, 3)
        shared = kind == "chol" and need_second and is_shared(second.shape, grad_z.shape)
        second_summed = shared or (kind == "diag" and second.shape != grad_z.shape)
        summed = (need_mu and mu.shape != grad_z.shape) or (need_second and second_summed)
        inputs = float32_if_summed(summed, grad_z, grad_kl, grad_log_q, mu, second, eps)
        if shared:
            g_mu, g_second, g_eps = shared_l_backward(*inputs, used, need_eps)
        else:
            g_mu, g_second, g_eps = call(bwd_op, *inputs, used, bool(need_eps))
            g_second = sum_to(g_second, second.shape) if need_second else None
        dtype = grad_z.dtype
        return (
            sum_to(g_mu, mu.shape).to(dtype) if need_mu else None,
            g_second.to(dtype) if need_second else None,
            g_eps.to(dtype) if need_eps else None,
        ) + (None,) * (ctx.num_inputs - 3)

    def bwd_setup(ctx, inputs, output) -> None:  # noqa: ANN001
        grad_z, grad_kl, grad_log_q, mu, second, eps, seed_offset, _need = inputs
        ctx.save_for_backward(grad_z, grad_kl, grad_log_q, mu, second, eps, seed_offset)

    def bwd_backward(ctx, up_mu, up_second, up_eps):  # noqa: ANN001
        gz, gk, gq, mu, second, eps, seed_offset = ctx.saved_tensors
        flags = needs_grad(ctx, 6)
        e = regenerate_eps(op_by_name(noise_name), eps, seed_offset, gz.shape, gz).to(gz.dtype)
        if up_eps is None or up_eps.numel() == 0:
            up_eps = torch.zeros_like(gz)
        up_mu = torch.zeros_like(gz) if up_mu is None else up_mu
        if up_second is None:
            up_second = gz.new_zeros(gz.shape if kind == "diag" else (*gz.shape, gz.shape[-1]))
        grads = vjp((up_mu, up_second, up_eps), (gz, gk, gq, mu, second), e)
        shapes = (gz.shape, gk.shape, gq.shape, mu.shape, second.shape, gz.shape)
        out = [sum_to(g, s) if f else None for g, s, f in zip(grads, shapes, flags, strict=True)]
        if eps is None:
            out[5] = None
        return (*out, None, None)

    register_autograd(fwd_name, fwd_backward, fwd_setup)
    register_autograd(bwd_name, bwd_backward, bwd_setup)
