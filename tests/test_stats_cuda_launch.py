"""How the ops with the VAE extras (`diag_rsample_stats`, `chol_rsample_stats` and their
backward ops) launch on the GPU, for each GPU backend (the CUDA kernels and Triton):
CUDA-graph capture and replay with fresh noise and the right gradients, one kernel launch
forward and one backward, empty inputs and rows of zero elements, the backward ops' checks
of the row gradients, a generator of another GPU. Skipped without a GPU (each backend's
cases where that backend is unavailable)."""

from __future__ import annotations

import pytest
import torch

from _gpu import (
    DEV,
    each_gpu_backend,
    kernel_launches,
    new_leaves,
    outputs_and_grads,
    stats_inputs,
    stats_sample,
    upstream_grads,
)
from conftest import op_pair
from fused_reparam import sample_diag
from fused_reparam.reference import stats as ref

each_backend = each_gpu_backend("diag_rsample_stats", "chol_rsample_stats")
# What the backward ops raise for a row gradient of the wrong shape: the C++ checks raise
# RuntimeError, the Triton ops' Python checks ValueError (as for their other argument errors).
SHAPE_ERROR = {"cuda": RuntimeError, "triton": ValueError}


@each_backend
@pytest.mark.parametrize(("kind", "d"), [("diag", 16), ("diag", 200), ("chol", 8), ("chol", 80)])
def test_graph_replay_draws_fresh_noise_with_right_gradients(kind, d, backend, gen):
    rows = 256
    a, b = stats_inputs(kind, rows, d, torch.float32, gen)
    a, b = a.requires_grad_(), b.requires_grad_()
    wz, wk, wq = upstream_grads((rows, d), torch.float32, gen)

    def step():
        z, kl, log_q = stats_sample(kind, a, b, backend=backend)
        ((z * wz).sum() + (kl * wk).sum() + (log_q * wq).sum()).backward()
        return z, kl, log_q

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up outside the capture (Triton compiles its kernels here)
            step()
    torch.cuda.current_stream().wait_stream(side)
    a.grad = b.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    samples = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        z = out[0].detach().double()
        m, s = a.detach().double(), b.detach().double()
        if kind == "diag":  # eps recovered from the sample
            e = (z - m) / torch.exp(0.5 * s)
            want = ref.diag_stats(m, s, e)
        else:
            e = torch.linalg.solve_triangular(s, (z - m)[..., None], upper=False)[..., 0]
            want = ref.chol_stats(m, s, e)
        stats_ref = ref.diag_stats if kind == "diag" else ref.chol_stats
        _, want_g = outputs_and_grads(
            stats_ref, [*new_leaves(m, s), e], (wz.double(), wk.double(), wq.double())
        )
        torch.testing.assert_close(out[1].double(), want[1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out[2].double(), want[2], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(a.grad.double(), want_g[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b.grad.double(), want_g[1], rtol=1e-3, atol=1e-3)
        samples.append(out[0].clone())
    # Independent draws: only chance coincidences of single elements are close.
    assert torch.isclose(samples[0], samples[1]).float().mean() < 0.01
    assert torch.isclose(samples[1], samples[2]).float().mean() < 0.01


# The kernel each backend launches (forward, backward): the CUDA ops' by path (diagonal: tiles
# of rows up to D = 1024, a block per row above; Cholesky: small and large paths); Triton's
# one pair per op, whatever D (one program per row block, looping over tiles).
CUDA_KERNELS = {
    ("diag", 16): ("diag_stats_tile_kernel", "diag_stats_tile_kernel"),
    ("diag", 300): ("diag_stats_tile_kernel", "diag_stats_tile_kernel"),
    ("diag", 2048): ("diag_stats_row_kernel", "diag_stats_row_kernel"),
    ("chol", 16): ("chol_fwd_small_kernel", "chol_bwd_small_kernel"),
    ("chol", 96): ("chol_fwd_large_kernel", "chol_bwd_large_kernel"),
}
TRITON_KERNELS = {
    "diag": ("diag_stats_forward_kernel", "diag_stats_backward_kernel"),
    "chol": ("chol_forward_kernel", "chol_backward_kernel"),
}


@each_backend
@pytest.mark.parametrize(("kind", "d"), list(CUDA_KERNELS))
def test_one_launch_forward_and_one_backward(kind, d, backend, gen):
    # Both inputs per row (nothing to sum over broadcast dims); the upstream gradients go
    # straight to the backward op, whose outputs autograd takes without a copy. The Triton
    # ops draw [seed, offset] from the generator with a torch.randint launch of their own, so
    # they are counted with an explicit seed (an H2D copy, not a launch).
    rows = max(2, 4096 // d)
    a, b = stats_inputs(kind, rows, d, torch.float32, gen)
    a, b = a.requires_grad_(), b.requires_grad_()
    ups = upstream_grads((rows, d), torch.float32, gen)
    holder = {}
    kw = {"seed": 77} if backend == "triton" else {}

    def forward():
        holder["out"] = stats_sample(kind, a, b, backend=backend, **kw)

    def backward():
        torch.autograd.backward(tuple(holder.pop("out")), ups)

    forward()
    backward()  # warm up (and compile)
    a.grad = b.grad = None
    fwd = kernel_launches(forward)
    bwd = kernel_launches(backward)
    fwd_name, bwd_name = CUDA_KERNELS[kind, d] if backend == "cuda" else TRITON_KERNELS[kind]
    assert len(fwd) == 1 and fwd_name in fwd[0], fwd
    assert len(bwd) == 1 and bwd_name in bwd[0], bwd


@each_backend
@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_empty_inputs_still_record_the_stream(kind, backend):
    op, bwd = op_pair(kind, backend, stats=True)
    mu = torch.zeros(0, 5, device=DEV)
    second = mu if kind == "diag" else torch.eye(5, device=DEV)
    so = torch.tensor([3, 4], dtype=torch.int64, device=DEV)
    z, kl, log_q, used = op(mu, second, seed_offset=so)
    assert z.shape == (0, 5) and kl.shape == (0,) and log_q.shape == (0,)
    assert used.tolist() == [3, 4]
    g_mu, g_second, g_eps = bwd(mu, kl, log_q, mu, second, mu, so, True)
    assert g_mu.shape == (0, 5) and g_eps.shape == (0, 5)
    assert g_second.shape == ((0, 5) if kind == "diag" else (0, 5, 5))


@each_backend
def test_diag_rows_of_zero_elements_have_zero_sums(backend):
    op, _ = op_pair("diag", backend, stats=True)
    mu = torch.zeros(3, 0, device=DEV)
    so = torch.tensor([3, 4], dtype=torch.int64, device=DEV)
    z, kl, log_q, used = op(mu, mu, 0, None, so, None)
    assert z.shape == (3, 0) and used.tolist() == [3, 4]
    assert torch.equal(kl, torch.zeros(3, device=DEV))
    assert torch.equal(log_q, torch.zeros(3, device=DEV))


@each_backend
@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_backward_rejects_a_row_gradient_of_the_wrong_shape(kind, backend):
    _, op = op_pair(kind, backend, stats=True)
    gz = torch.zeros(4, 3, device=DEV)
    second = gz if kind == "diag" else torch.eye(3, device=DEV)
    so = torch.zeros(2, dtype=torch.int64, device=DEV)
    error = SHAPE_ERROR[backend]
    with pytest.raises(error, match="grad_kl must have shape"):
        op(
            gz,
            torch.zeros(4, 3, device=DEV),
            torch.zeros(4, device=DEV),
            gz,
            second,
            None,
            so,
            False,
        )
    with pytest.raises(error, match="grad_log_q must have shape"):
        op(gz, torch.zeros(4, device=DEV), torch.zeros(5, device=DEV), gz, second, None, so, False)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@each_backend
def test_generator_of_another_gpu_is_rejected(backend):
    mu = torch.zeros(4, 3, device="cuda:0")
    other = torch.Generator(device="cuda:1")
    with pytest.raises(ValueError, match="generator is for cuda:1"):
        sample_diag(mu, mu, generator=other, return_stats=True, backend=backend)
    op, _ = op_pair("diag", backend, stats=True)
    with pytest.raises(RuntimeError, match="generator is for cuda:1"):
        op(mu, mu, 0, None, None, other)
