"""GPU-only behaviour of the diagonal op, for each GPU backend (the CUDA kernels and Triton; the
rest of the suite runs on the GPU too, through the device parametrization): graph capture and
replay, int64 indexing, misaligned views, streams, one launch each way. Skipped without a
GPU (each backend's cases where that backend is unavailable)."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from _gpu import DEV, each_gpu_backend, kernel_launches
from conftest import assert_mostly_different, diag_op_pair, randn
from fused_reparam import sample_diag
from fused_reparam.reference.philox import box_muller, philox4x32_10, uniforms_from_words

each_backend = each_gpu_backend("diag_rsample")
# Kernel names in profiles: the CUDA op's, and the Triton op's forward and backward.
KERNEL_NAMES = {"cuda": ("diag_kernel", "diag_kernel")}
KERNEL_NAMES["triton"] = ("diag_forward_kernel", "diag_backward_kernel")


def eps_at(indices: torch.Tensor, seed: int, offset: int) -> torch.Tensor:
    """The contract's float32 eps at the given element indices (reference Philox, per index)."""
    q = indices // 4
    counter = torch.stack(
        [
            q & 0xFFFFFFFF,
            q >> 32,
            torch.full_like(q, offset & 0xFFFFFFFF),
            torch.full_like(q, offset >> 32),
        ],
        dim=-1,
    )
    key = torch.tensor([seed & 0xFFFFFFFF, seed >> 32], dtype=torch.int64)
    n = box_muller(uniforms_from_words(philox4x32_10(counter, key), torch.float32))
    return n.gather(-1, (indices % 4)[:, None])[:, 0]


@each_backend
def test_graph_replay_draws_fresh_noise_with_right_gradients(backend, gen):
    mu = randn((4096,), torch.float32, DEV, gen).requires_grad_()
    logvar = randn((4096,), torch.float32, DEV, gen, scale=0.3).requires_grad_()
    weight = randn((4096,), torch.float32, DEV, gen)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up outside the capture
            (sample_diag(mu, logvar, backend=backend) * weight).sum().backward()
    torch.cuda.current_stream().wait_stream(side)
    mu.grad = logvar.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        z = sample_diag(mu, logvar, backend=backend)
        (z * weight).sum().backward()
    samples = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        sigma = torch.exp(0.5 * logvar.detach())
        eps = (z - mu.detach()) / sigma
        torch.testing.assert_close(mu.grad, weight)
        torch.testing.assert_close(logvar.grad, 0.5 * weight * sigma * eps, rtol=1e-4, atol=1e-5)
        samples.append(z.clone())
    assert_mostly_different(samples[0], samples[1])
    assert_mostly_different(samples[1], samples[2])


@each_backend
def test_graph_replay_with_explicit_seed_repeats_the_sample(backend, gen):
    mu = randn((1000,), torch.float32, DEV, gen)
    logvar = randn((1000,), torch.float32, DEV, gen)
    seed_offset = torch.tensor([5, 6], dtype=torch.int64, device=DEV)
    op, _ = diag_op_pair(backend)
    op(mu, logvar, 0, None, seed_offset)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        z, used = op(mu, logvar, 0, None, seed_offset)
    graph.replay()
    first = z.clone()
    seed_offset.copy_(torch.tensor([5, 7]))
    graph.replay()
    assert used.tolist() == [5, 7]
    assert_mostly_different(first, z)
    expected = sample_diag(mu, logvar, seed=5, offset=7, backend=backend)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)


@each_gpu_backend("diag_rsample", "diag_rsample_stats", "chol_rsample")
@pytest.mark.parametrize("kind", ["diag", "diag_stats", "chol"])
def test_explicit_seed_under_graph_capture_repeats_the_eager_sample(backend, kind, gen):
    mu = randn((3, 37), torch.float32, DEV, gen)
    scale = randn((3, 37), torch.float32, DEV, gen, scale=0.3)
    if kind == "chol":
        scale = torch.eye(37, device=DEV) + 0.1 * randn((37, 37), torch.float32, DEV, gen).tril()

    def sample() -> torch.Tensor:
        kw = {"seed": 2**63 + 11, "offset": 5, "backend": backend}
        if kind == "chol":
            return fused_reparam.sample_chol(mu, scale, **kw)
        return sample_diag(mu, scale, return_stats=kind == "diag_stats", **kw)

    eager = sample()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        sample()  # warm up outside the capture (Triton compiles its kernels here)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = sample()
    for _ in range(2):
        graph.replay()
        torch.cuda.synchronize()
        for a, b in zip(torch.utils._pytree.tree_leaves(captured),
                        torch.utils._pytree.tree_leaves(eager), strict=True):  # fmt: skip
            assert torch.equal(a, b)


@pytest.mark.slow
@each_backend
def test_half_tensor_over_2_31_elements(backend):
    n = 2**31 + 4101
    try:
        zeros = torch.zeros(1, dtype=torch.float16, device=DEV)
        mu = zeros.expand(n)
        logvar = zeros.clone().requires_grad_()
        z = sample_diag(mu, logvar.expand(n), seed=3, offset=2**33, backend=backend)
    except torch.OutOfMemoryError:
        pytest.skip("not enough GPU memory")
    idx = torch.tensor([0, 5, 2**31 - 1, 2**31, 2**31 + 3, n - 1], dtype=torch.int64)
    expected = eps_at(idx, 3, 2**33)
    got = z[idx.to(DEV)].float().cpu()
    torch.testing.assert_close(got, expected.half().float(), rtol=0, atol=2e-3)
    grad = torch.ones(1, dtype=torch.float16, device=DEV).expand(n)
    z.backward(grad)  # grad_logvar = sum_i 0.5 * eps_i over 2^31 elements
    assert torch.isfinite(logvar.grad).all()
    del z


@each_backend
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_misaligned_views_match_aligned_copies(backend, dtype, gen):
    base = randn((4 * 1031 + 3,), dtype, DEV, gen)
    mu, logvar, eps = base[1:1032], base[1033:2064], base[2065:3096]  # storage offsets 1, 1033, ...
    for kw in ({"seed": 9}, {"eps": eps}):
        a = sample_diag(mu, logvar, backend=backend, **kw)
        kw2 = {"eps": eps.clone()} if "eps" in kw else kw
        b = sample_diag(mu.clone(), logvar.clone(), backend=backend, **kw2)
        assert torch.equal(a, b)
    # Backward reads a misaligned logvar and a misaligned grad_z.
    leaf = base.clone().requires_grad_()
    g = randn((1032,), dtype, DEV, gen)[1:]
    sample_diag(leaf[1:1032], leaf[1033:2064], seed=9, backend=backend).backward(g)
    m2, l2 = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    sample_diag(m2, l2, seed=9, backend=backend).backward(g.clone())
    assert torch.equal(leaf.grad[1:1032], m2.grad)
    assert torch.equal(leaf.grad[1033:2064], l2.grad)


@each_backend
def test_non_default_stream_gives_the_same_result(backend, gen):
    mu = randn((3, 4099), torch.float32, DEV, gen)
    logvar = randn((3, 4099), torch.float32, DEV, gen)
    expected = sample_diag(mu, logvar, seed=12, backend=backend)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        z = sample_diag(mu, logvar, seed=12, backend=backend)
        torch.manual_seed(4)
        a = sample_diag(mu, logvar, backend=backend)
    torch.cuda.current_stream().wait_stream(stream)
    torch.manual_seed(4)
    b = sample_diag(mu, logvar, backend=backend)
    assert torch.equal(z, expected)
    assert torch.equal(a, b)


@each_backend
def test_one_launch_forward_and_one_backward_at_4096(backend, gen):
    # Only logvar needs a gradient here: autograd's AccumulateGrad would copy a grad_z that the
    # caller still holds into mu.grad (its launch, not ours); dmu is checked below.
    # The Triton path draws [seed, offset] from the generator with a torch.randint launch of
    # its own, so it is counted with an explicit seed (an H2D copy, not a launch).
    mu = randn((4096,), torch.float32, DEV, gen)
    logvar = randn((4096,), torch.float32, DEV, gen).requires_grad_()
    grad = randn((4096,), torch.float32, DEV, gen)
    holder = {}
    kw = {"seed": 77} if backend == "triton" else {}

    def forward():
        holder["z"] = sample_diag(mu, logvar, backend=backend, **kw)

    def backward():
        holder["z"].backward(grad)

    # Warm up (lazy init and kernel compilation outside the count).
    sample_diag(mu, logvar, backend=backend, **kw).backward(grad)
    logvar.grad = None
    fwd = kernel_launches(forward)
    bwd = kernel_launches(backward)
    fwd_name, bwd_name = KERNEL_NAMES[backend]
    assert len(fwd) == 1 and fwd_name in fwd[0], fwd
    assert len(bwd) == 1 and bwd_name in bwd[0], bwd


@each_backend
def test_grad_mu_costs_no_kernel_without_broadcast(backend, gen):
    mu = randn((4096,), torch.float32, DEV, gen).requires_grad_()
    logvar = randn((4096,), torch.float32, DEV, gen)
    grad = randn((4096,), torch.float32, DEV, gen)
    (g_mu,) = torch.autograd.grad(sample_diag(mu, logvar, backend=backend), mu, grad)
    assert g_mu.data_ptr() == grad.data_ptr()


@each_backend
def test_gpu_and_cpu_draw_the_same_eps_for_one_seed(backend, gen):
    for n in (1, 7, 4097):
        zeros_c = torch.zeros(n)
        a = sample_diag(
            zeros_c.cuda(), zeros_c.cuda(), seed=2**40 + 1, offset=2**63 + 5, backend=backend
        )
        b = sample_diag(zeros_c, zeros_c, seed=2**40 + 1, offset=2**63 + 5)
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-5)
