"""How the Cholesky op launches on the GPU, for each GPU backend (the CUDA kernels and Triton):
CUDA-graph capture and replay (fresh noise each replay, or the stream read from device
memory), the stream a generator call records, misaligned views, a non-default stream, empty
inputs, one kernel launch forward and one backward. Skipped without a GPU (each backend's
cases where that backend is unavailable)."""

from __future__ import annotations

import pytest
import torch

from _gpu import DEV, chol_factor, drawn_stream, dtype_id, each_gpu_backend, kernel_launches
from conftest import assert_mostly_different, op_pair, randn
from fused_reparam import sample_chol

each_backend = each_gpu_backend("chol_rsample")
# The kernels each backend launches (forward, backward) for D <= 64 and D > 64: the CUDA
# kernels' small and large paths; Triton's one pair (a single tile of L, or a loop over tiles).
KERNELS = {
    "cuda": (
        ("chol_fwd_small_kernel", "chol_bwd_small_kernel"),
        ("chol_fwd_large_kernel", "chol_bwd_large_kernel"),
    ),
    "triton": (("chol_forward_kernel", "chol_backward_kernel"),) * 2,
}


@each_backend
@pytest.mark.parametrize("d", [8, 80])
def test_graph_replay_draws_fresh_noise_with_right_gradients(d, backend, gen):
    rows = 512
    mu = randn((rows, d), torch.float32, DEV, gen).requires_grad_()
    L = chol_factor((rows,), d, torch.float32, gen).nan_to_num(0.0).requires_grad_()
    weight = randn((rows, d), torch.float32, DEV, gen)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up outside the capture (Triton compiles its kernels here)
            (sample_chol(mu, L, backend=backend) * weight).sum().backward()
    torch.cuda.current_stream().wait_stream(side)
    mu.grad = L.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        z = sample_chol(mu, L, backend=backend)
        (z * weight).sum().backward()
    samples = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        # eps recovered from the sample: L eps = z - mu (L is well conditioned).
        lower = torch.tril(L.detach()).double()
        eps = torch.linalg.solve_triangular(
            lower, (z - mu.detach()).double()[..., None], upper=False
        )[..., 0]
        torch.testing.assert_close(mu.grad, weight)
        expected = torch.tril(weight.double()[..., :, None] * eps[..., None, :])
        torch.testing.assert_close(L.grad.double(), expected, rtol=1e-4, atol=1e-4)
        samples.append(z.clone())
    # Independent draws: only chance coincidences of single elements are close.
    assert torch.isclose(samples[0], samples[1]).float().mean() < 0.01
    assert torch.isclose(samples[1], samples[2]).float().mean() < 0.01


@each_backend
@pytest.mark.parametrize("d", [8, 80])
def test_graph_replay_with_explicit_seed_repeats_the_sample(d, backend, gen):
    mu = randn((100, d), torch.float32, DEV, gen)
    L = chol_factor((100,), d, torch.float32, gen)
    seed_offset = torch.tensor([5, 6], dtype=torch.int64, device=DEV)
    fwd, _ = op_pair("chol", backend)
    fwd(mu, L, None, seed_offset, None)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        z, used = fwd(mu, L, None, seed_offset, None)
    graph.replay()
    first = z.clone()
    seed_offset.copy_(torch.tensor([5, 7]))
    graph.replay()
    assert used.tolist() == [5, 7]
    assert not torch.isclose(first, z).all()
    expected = sample_chol(mu, L, seed=5, offset=7, backend=backend)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)


@each_backend
def test_generator_stream_is_recorded_and_replays(backend, gen):
    """The [seed, offset] a generator call records gives the same sample again. The CUDA op
    takes the generator's Philox state and tags it with offset bit 63; the Triton op draws it
    with torch.randint, as the reference does, so the reference gives its sample too."""
    fwd, _ = op_pair("chol", backend)
    mu = randn((4, 6), torch.float32, DEV, gen)
    L = chol_factor((), 6, torch.float32, gen)
    g = torch.Generator(device=DEV).manual_seed(3)
    z, used = fwd(mu, L, None, None, g)
    seed, offset = (v % 2**64 for v in used.tolist())
    again = sample_chol(mu, L, seed=seed, offset=offset, backend=backend)
    torch.testing.assert_close(z, again, rtol=0, atol=0)
    assert_mostly_different(z, sample_chol(mu, L, generator=g, backend=backend))  # advanced
    if backend == "cuda":
        assert offset >> 63 == 1
    else:
        assert offset >> 63 == 0
        g_ref = torch.Generator(device=DEV).manual_seed(3)
        want = sample_chol(mu, L, generator=g_ref, backend="reference")
        torch.testing.assert_close(z, want, rtol=1e-5, atol=1e-5)


@each_backend
@pytest.mark.parametrize("d", [7, 64, 70])
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=dtype_id
)
def test_misaligned_views_match_aligned_copies(dtype, d, backend, gen):
    rows = 33
    flat_l = chol_factor((rows,), d, dtype, gen).reshape(-1)
    base_l = torch.cat([flat_l[:1], flat_l])
    L = base_l[1:].view(rows, d, d)  # storage offset 1
    base = randn((3 * rows * d + 3,), dtype, DEV, gen)
    mu = base[1 : 1 + rows * d].view(rows, d)
    eps = base[2 + rows * d : 2 + 2 * rows * d].view(rows, d)
    assert L.storage_offset() == 1 and mu.storage_offset() == 1
    for kw in ({"seed": 9}, {"eps": eps}):
        a = sample_chol(mu, L, backend=backend, **kw)
        kw2 = {"eps": eps.clone()} if "eps" in kw else kw
        b = sample_chol(mu.clone(), L.clone(), backend=backend, **kw2)
        assert torch.equal(a, b)
    _, bwd = op_pair("chol", backend)
    g = base[3 + 2 * rows * d : 3 + 3 * rows * d].view(rows, d)  # misaligned grad_z
    so = torch.tensor([9, 0], dtype=torch.int64, device=DEV)
    for e, need in ((None, False), (eps, True)):
        got = bwd(g, L, e, so, need)
        want = bwd(g.clone(), L.clone(), None if e is None else e.clone(), so, need)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@each_backend
@pytest.mark.parametrize("d", [5, 90])
def test_non_default_stream_gives_the_same_result(d, backend, gen):
    mu = randn((300, d), torch.float32, DEV, gen)
    L = chol_factor((300,), d, torch.float32, gen)
    expected = sample_chol(mu, L, seed=12, backend=backend)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        z = sample_chol(mu, L, seed=12, backend=backend)
        torch.manual_seed(4)
        a = sample_chol(mu, L, backend=backend)
    torch.cuda.current_stream().wait_stream(stream)
    torch.manual_seed(4)
    b = sample_chol(mu, L, backend=backend)
    assert torch.equal(z, expected)
    assert torch.equal(a, b)


@each_backend
def test_empty_inputs_still_record_the_stream(backend):
    fwd, bwd = op_pair("chol", backend)
    mu = torch.zeros(0, 5, device=DEV)
    L = torch.eye(5, device=DEV)
    so = torch.tensor([3, 4], dtype=torch.int64, device=DEV)
    z, used = fwd(mu, L, None, so, None)
    assert z.shape == (0, 5) and used.tolist() == [3, 4]
    torch.manual_seed(8)
    z, used = fwd(mu, L, None, None, None)
    assert z.shape == (0, 5)
    if backend == "cuda":
        assert used.tolist()[1] < 0  # the generator's Philox state, tagged with bit 63
    else:
        torch.manual_seed(8)
        assert used.tolist() == drawn_stream()  # drawn as the reference draws it
    grad_l, grad_e = bwd(mu, L, mu, so, True)
    assert grad_l.shape == (0, 5, 5) and grad_e.shape == (0, 5)


@each_backend
@pytest.mark.parametrize(("d", "path"), [(16, 0), (96, 1)])
def test_one_launch_forward_and_one_backward(d, path, backend, gen):
    # Only L needs a gradient: autograd's AccumulateGrad would copy a grad_z that the caller
    # still holds into mu.grad (its launch, not ours). L is not broadcast, so no sum either.
    # The Triton op draws [seed, offset] from the generator with a torch.randint launch of its
    # own, so it is counted with an explicit seed (an H2D copy, not a launch).
    rows = 4096 // d
    mu = randn((rows, d), torch.float32, DEV, gen)
    L = chol_factor((rows,), d, torch.float32, gen).requires_grad_()
    grad = randn((rows, d), torch.float32, DEV, gen)
    holder = {}
    kw = {"seed": 77} if backend == "triton" else {}

    def forward():
        holder["z"] = sample_chol(mu, L, backend=backend, **kw)

    def backward():
        holder["z"].backward(grad)

    sample_chol(mu, L, backend=backend, **kw).backward(grad)  # warm up (and compile)
    L.grad = None
    fwd = kernel_launches(forward)
    bwd = kernel_launches(backward)
    fwd_name, bwd_name = KERNELS[backend][path]
    assert len(fwd) == 1 and fwd_name in fwd[0], fwd
    assert len(bwd) == 1 and bwd_name in bwd[0], bwd
