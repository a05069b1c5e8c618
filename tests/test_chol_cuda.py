"""GPU-only behaviour of the Cholesky op's CUDA kernels (the rest of tests/test_chol.py runs on
the GPU too, through the device parametrization): both kernel paths (D <= 64 tiles of rows,
D > 64 a block per slice of a row) against a float64 reference, CPU/CUDA agreement for one
seed, graph capture and replay, misaligned views, streams, a shared L over a large batch, the
grid-stride loops, int64 indexing, one launch each way. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import randn
from fused_reparam import sample_chol
from fused_reparam.reference import chol as ref

OP = "chol_rsample"
HAS_CUDA_KERNELS = torch.cuda.is_available() and "cuda" in fused_reparam.available_backends(
    "cuda", OP
)
pytestmark = pytest.mark.skipif(not HAS_CUDA_KERNELS, reason="needs a GPU and the CUDA kernels")
DEV = "cuda"
BACKEND = "cuda"
# Small-D path up to 64, large-D path above; odd, prime and power-of-two sizes around both.
D_VALUES = [2, 3, 8, 17, 32, 63, 64, 65, 128, 1024]
FWD_KERNELS = ("chol_fwd_small_kernel", "chol_fwd_large_kernel")
BWD_KERNELS = ("chol_bwd_small_kernel", "chol_bwd_large_kernel")


def _ops():
    ops = torch.ops.fused_reparam
    return ops.chol_rsample.default, ops.chol_rsample_backward.default


def _factor(shape, d, dtype, gen, device=DEV) -> torch.Tensor:
    """A well-conditioned lower factor I + 0.5/sqrt(D) * noise (NaN above the diagonal, which
    the kernels must never read)."""
    noise = torch.randn((*shape, d, d), generator=gen, dtype=torch.float64) * (0.5 / d**0.5)
    lower = torch.eye(d, dtype=torch.float64) + noise.tril()
    poisoned = lower + torch.triu(torch.full_like(lower, float("nan")), diagonal=1)
    return poisoned.to(dtype).to(device)


def _exact(mu, L, eps) -> torch.Tensor:
    """z in float64 from the same inputs (upper triangle ignored)."""
    lower = torch.tril(torch.nan_to_num(L.double(), nan=0.0))
    return mu.double() + (lower @ eps.double()[..., None])[..., 0]


def _stream_eps(shape, seed, offset, dtype) -> torch.Tensor:
    """The contract's eps for a sample of `shape`, computed by the reference on the GPU."""
    return ref.chol_noise(torch.Size(shape), seed, offset, dtype, torch.device(DEV))


def _tol(dtype, d) -> float:
    return {torch.float64: 1e-10, torch.float32: 2e-5 * max(1.0, d**0.5)}[dtype]


@pytest.mark.parametrize("d", D_VALUES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_and_backward_match_float64_reference(d, dtype, gen):
    rows = max(3, 4096 // d) if d <= 128 else 3
    mu = randn((rows, d), dtype, DEV, gen)
    L = _factor((rows,), d, dtype, gen)
    seed, offset = 2**63 + 11, 2**35 + 7
    z = sample_chol(mu, L, seed=seed, offset=offset, backend=BACKEND)
    eps = _stream_eps((rows, d), seed, offset, dtype)
    tol = _tol(dtype, d)
    torch.testing.assert_close(z.double(), _exact(mu, L, eps), rtol=tol, atol=tol)

    # Backward of the seeded op (eps regenerated) and of the explicit-eps op (grad_eps).
    fwd, bwd = _ops()
    g = randn((rows, d), dtype, DEV, gen)
    so = torch.tensor([seed - 2**64, offset], dtype=torch.int64, device=DEV)
    grad_l, empty = bwd(g, L, None, so, False)
    assert empty.numel() == 0 and grad_l.shape == (rows, d, d)
    exact_gl = torch.tril(g.double()[..., :, None] * eps.double()[..., None, :])
    torch.testing.assert_close(grad_l.double(), exact_gl, rtol=tol, atol=tol)
    e = randn((rows, d), dtype, DEV, gen)
    grad_l2, grad_e = bwd(g, L, e, so, True)
    exact_gl2 = torch.tril(g.double()[..., :, None] * e.double()[..., None, :])
    lower = torch.tril(torch.nan_to_num(L.double(), nan=0.0))
    exact_ge = (lower.transpose(-1, -2) @ g.double()[..., None])[..., 0]
    torch.testing.assert_close(grad_l2.double(), exact_gl2, rtol=tol, atol=tol)
    torch.testing.assert_close(grad_e.double(), exact_ge, rtol=tol, atol=tol)
    z2, used = fwd(mu, L, e, None, None)
    torch.testing.assert_close(z2.double(), _exact(mu, L, e), rtol=tol, atol=tol)
    assert used.tolist() == [0, 0]


@pytest.mark.parametrize("d", [2, 5, 64, 65, 200])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_and_cpu_give_the_same_sample_and_gradients(d, dtype, gen):
    rows = 37
    mu = randn((rows, d), dtype, "cpu", gen)
    L = _factor((rows,), d, dtype, gen, device="cpu")
    g = randn((rows, d), dtype, "cpu", gen)
    kw = {"seed": 2**40 + 1, "offset": 2**63 + 5}
    results = []
    for device in ("cpu", DEV):
        m = mu.to(device).requires_grad_()
        lt = L.to(device).requires_grad_()
        z = sample_chol(m, lt, backend="cuda" if device == DEV else "cpu", **kw)
        z.backward(g.to(device))
        results.append((z.detach().cpu(), lt.grad.cpu(), m.grad.cpu()))
    (zc, glc, gmc), (zg, glg, gmg) = results
    if dtype == torch.float64:
        tol = {"rtol": 1e-12, "atol": 1e-12}
    elif dtype == torch.float32:
        tol = {"rtol": 1e-5, "atol": 1e-5 * d**0.5}
    else:  # one rounding of the float32 result; the sums may differ in order
        tol = {"rtol": 2 * torch.finfo(dtype).eps, "atol": 4 * torch.finfo(dtype).eps * d**0.5}
    torch.testing.assert_close(zg, zc, **tol)
    torch.testing.assert_close(glg, glc, **tol)
    torch.testing.assert_close(gmg, gmc, rtol=0, atol=0)


@pytest.mark.parametrize("d", [8, 80])
def test_graph_replay_draws_fresh_noise_with_right_gradients(d, gen):
    rows = 512
    mu = randn((rows, d), torch.float32, DEV, gen).requires_grad_()
    L = _factor((rows,), d, torch.float32, gen).nan_to_num(0.0).requires_grad_()
    weight = randn((rows, d), torch.float32, DEV, gen)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up outside the capture
            (sample_chol(mu, L, backend=BACKEND) * weight).sum().backward()
    torch.cuda.current_stream().wait_stream(side)
    mu.grad = L.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        z = sample_chol(mu, L, backend=BACKEND)
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


@pytest.mark.parametrize("d", [8, 80])
def test_graph_replay_with_explicit_seed_repeats_the_sample(d, gen):
    mu = randn((100, d), torch.float32, DEV, gen)
    L = _factor((100,), d, torch.float32, gen)
    seed_offset = torch.tensor([5, 6], dtype=torch.int64, device=DEV)
    fwd, _ = _ops()
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
    expected = sample_chol(mu, L, seed=5, offset=7, backend=BACKEND)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)


def test_generator_stream_is_recorded_with_the_tag_bit(gen):
    fwd, _ = _ops()
    mu = randn((4, 6), torch.float32, DEV, gen)
    L = _factor((), 6, torch.float32, gen)
    g = torch.Generator(device=DEV).manual_seed(3)
    z, used = fwd(mu, L, None, None, g)
    seed, offset = (v % 2**64 for v in used.tolist())
    assert offset >> 63 == 1
    again = sample_chol(mu, L, seed=seed, offset=offset, backend=BACKEND)
    torch.testing.assert_close(z, again, rtol=0, atol=0)


@pytest.mark.parametrize("d", [7, 64, 70])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_misaligned_views_match_aligned_copies(d, dtype, gen):
    rows = 33
    flat_l = _factor((rows,), d, dtype, gen).reshape(-1)
    base_l = torch.cat([flat_l[:1], flat_l])
    L = base_l[1:].view(rows, d, d)  # storage offset 1
    base = randn((3 * rows * d + 3,), dtype, DEV, gen)
    mu = base[1 : 1 + rows * d].view(rows, d)
    eps = base[2 + rows * d : 2 + 2 * rows * d].view(rows, d)
    assert L.storage_offset() == 1 and mu.storage_offset() == 1
    for kw in ({"seed": 9}, {"eps": eps}):
        a = sample_chol(mu, L, backend=BACKEND, **kw)
        kw2 = {"eps": eps.clone()} if "eps" in kw else kw
        b = sample_chol(mu.clone(), L.clone(), backend=BACKEND, **kw2)
        assert torch.equal(a, b)
    _, bwd = _ops()
    g = base[3 + 2 * rows * d : 3 + 3 * rows * d].view(rows, d)  # misaligned grad_z
    so = torch.tensor([9, 0], dtype=torch.int64, device=DEV)
    for e, need in ((None, False), (eps, True)):
        got = bwd(g, L, e, so, need)
        want = bwd(g.clone(), L.clone(), None if e is None else e.clone(), so, need)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("d", [5, 90])
def test_non_default_stream_gives_the_same_result(d, gen):
    mu = randn((300, d), torch.float32, DEV, gen)
    L = _factor((300,), d, torch.float32, gen)
    expected = sample_chol(mu, L, seed=12, backend=BACKEND)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        z = sample_chol(mu, L, seed=12, backend=BACKEND)
        torch.manual_seed(4)
        a = sample_chol(mu, L, backend=BACKEND)
    torch.cuda.current_stream().wait_stream(stream)
    torch.manual_seed(4)
    b = sample_chol(mu, L, backend=BACKEND)
    assert torch.equal(z, expected)
    assert torch.equal(a, b)


@pytest.mark.parametrize(("rows", "d"), [(200_003, 16), (3001, 96)])
def test_shared_l_over_a_huge_batch(rows, d, gen):
    """One L [D, D] (batch stride 0) for every row: values and the batch-summed grad_L."""
    mu = randn((rows, d), torch.float32, DEV, gen).requires_grad_()
    L = _factor((), d, torch.float32, gen).nan_to_num(0.0).requires_grad_()
    g = randn((rows, d), torch.float32, DEV, gen)
    z = sample_chol(mu, L, seed=21, offset=4, backend=BACKEND)
    eps = _stream_eps((rows, d), 21, 4, torch.float32).double()
    torch.testing.assert_close(
        z.double(), _exact(mu.detach(), L.detach(), eps), rtol=1e-5, atol=1e-4
    )
    z.backward(g)
    expected = torch.tril(g.double().T @ eps)
    torch.testing.assert_close(L.grad.double(), expected, rtol=1e-4, atol=1e-3 * rows**0.5)
    torch.testing.assert_close(mu.grad, g)


@pytest.mark.parametrize(("rows", "d"), [(300_007, 2), (300_001, 3), (1_001, 65)])
def test_grid_stride_loop_covers_every_row(rows, d, gen):
    """More tiles / units than the grid has blocks (8 per SM), with a partial last tile."""
    sms = torch.cuda.get_device_properties(DEV).multi_processor_count
    units = rows // max(1, min(256, 1024 // d)) if d <= 64 else rows * ((d + 31) // 32)
    assert units > 8 * sms
    mu = randn((rows, d), torch.float32, DEV, gen)
    L = _factor((rows,), d, torch.float32, gen)
    z = sample_chol(mu, L, seed=99, backend=BACKEND)
    eps = _stream_eps((rows, d), 99, 0, torch.float32)
    torch.testing.assert_close(z.double(), _exact(mu, L, eps), rtol=1e-5, atol=1e-4)
    _, bwd = _ops()
    g = randn((rows, d), torch.float32, DEV, gen)
    so = torch.tensor([99, 0], dtype=torch.int64, device=DEV)
    grad_l, _ = bwd(g, L, None, so, False)
    exact_gl = torch.tril(g[..., :, None] * eps[..., None, :])
    torch.testing.assert_close(grad_l, exact_gl, rtol=1e-6, atol=1e-6)
    _, grad_e = bwd(g, L, eps, so, True)
    lower = torch.tril(torch.nan_to_num(L.double(), nan=0.0))
    exact_ge = (lower.transpose(-1, -2) @ g.double()[..., None])[..., 0]
    torch.testing.assert_close(grad_e.double(), exact_ge, rtol=1e-5, atol=1e-4)


def test_empty_inputs_still_record_the_stream():
    fwd, bwd = _ops()
    mu = torch.zeros(0, 5, device=DEV)
    L = torch.eye(5, device=DEV)
    so = torch.tensor([3, 4], dtype=torch.int64, device=DEV)
    z, used = fwd(mu, L, None, so, None)
    assert z.shape == (0, 5) and used.tolist() == [3, 4]
    z, used = fwd(mu, L, None, None, None)
    assert z.shape == (0, 5) and used.tolist()[1] < 0  # the generator's stream (tag bit)
    grad_l, grad_e = bwd(mu, L, mu, so, True)
    assert grad_l.shape == (0, 5, 5) and grad_e.shape == (0, 5)


@pytest.mark.slow
def test_grad_l_over_2_31_elements():
    """grad_L [2049, 1024, 1024] (over 2^31 elements) from a shared L: int64 offsets."""
    rows, d = 2049, 1024
    _, bwd = _ops()
    try:
        L = torch.eye(d, dtype=torch.float16, device=DEV)
        g = torch.ones(rows, d, dtype=torch.float16, device=DEV)
        so = torch.tensor([3, 2**33], dtype=torch.int64, device=DEV)
        grad_l, _ = bwd(g, L, None, so, False)
    except torch.OutOfMemoryError:
        pytest.skip("not enough GPU memory")
    assert grad_l.numel() > 2**31
    eps_last = _stream_eps((rows, d), 3, 2**33, torch.float32)[-1]
    torch.testing.assert_close(grad_l[-1, -1].float(), eps_last.half().float(), rtol=0, atol=0)
    torch.testing.assert_close(grad_l[-1, :, 0].float(), eps_last[0].half().float().expand(d))
    assert torch.equal(grad_l[-1].triu(1), torch.zeros_like(grad_l[-1]))
    del grad_l


def _kernel_launches(fn) -> list[str]:
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


@pytest.mark.parametrize(("d", "path"), [(16, 0), (96, 1)])
def test_one_launch_forward_and_one_backward(d, path, gen):
    # Only L needs a gradient: autograd's AccumulateGrad would copy a grad_z that the caller
    # still holds into mu.grad (its launch, not ours). L is not broadcast, so no sum either.
    rows = 4096 // d
    mu = randn((rows, d), torch.float32, DEV, gen)
    L = _factor((rows,), d, torch.float32, gen).requires_grad_()
    grad = randn((rows, d), torch.float32, DEV, gen)
    holder = {}

    def forward():
        holder["z"] = sample_chol(mu, L, backend=BACKEND)

    def backward():
        holder["z"].backward(grad)

    sample_chol(mu, L, backend=BACKEND).backward(grad)  # warm up
    L.grad = None
    fwd = _kernel_launches(forward)
    bwd = _kernel_launches(backward)
    assert len(fwd) == 1 and FWD_KERNELS[path] in fwd[0], fwd
    assert len(bwd) == 1 and BWD_KERNELS[path] in bwd[0], bwd
