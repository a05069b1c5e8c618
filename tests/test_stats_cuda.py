"""GPU-only tests of the CUDA kernels of the ops with the VAE extras (`diag_rsample_stats`,
`chol_rsample_stats` and their backward ops), through the public API (`return_stats=True`):
values and gradients against a float64 evaluation of the reference
(python/fused_reparam/reference/stats.py) with explicit eps and with the stream's eps (the
reference noise), every dtype, odd D on both kernel paths of each op, broadcast and strided
inputs, num_samples, the CPU path for one seed, CUDA-graph replay, one launch each way, empty
inputs. Skipped without a GPU."""

from __future__ import annotations

import warnings

import pytest
import torch

import fused_reparam
from conftest import DTYPES, randn
from fused_reparam import sample_chol, sample_diag
from fused_reparam.reference import stats as ref
from fused_reparam.reference.philox import compute_dtype, standard_normal

HAS_CUDA_KERNELS = torch.cuda.is_available() and all(
    "cuda" in fused_reparam.available_backends("cuda", op)
    for op in ("diag_rsample_stats", "chol_rsample_stats")
)
pytestmark = pytest.mark.skipif(not HAS_CUDA_KERNELS, reason="needs a GPU and the CUDA kernels")
DEV = "cuda"
# Diagonal: tiles of rows up to D = 1024 (a row per warp or less up to 128, several warps
# above), a block per row beyond. Cholesky: tiles up to 64, a block per row above.
DIAG_D = [1, 3, 7, 33, 128, 130, 600, 1031]
CHOL_D = [1, 3, 7, 33, 64, 65, 130]
SEED, OFFSET = 2**63 + 17, 2**34 + 3


def _tol(dtype, d) -> dict:
    """Sums over D (and the Cholesky dot products) grow their rounding with sqrt(D)."""
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-10 * max(1, d)}
    if dtype == torch.float32:
        return {"rtol": 2e-5, "atol": 2e-5 * max(1.0, d**0.5)}
    eps = torch.finfo(dtype).eps  # one rounding of the float32 result
    return {"rtol": 2 * eps, "atol": 2 * eps * max(1.0, d**0.5)}


def _close(got, want, dtype, d) -> None:
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double().cpu(), w.double().cpu(), **_tol(dtype, d))


def _stream_eps(shape, dtype, seed=SEED, offset=OFFSET) -> torch.Tensor:
    """The contract's eps for a sample of `shape` in the kernels' compute dtype (reference)."""
    return standard_normal(torch.Size(shape), seed, offset, compute_dtype(dtype), DEV)


def _grads(fn, leaves, uppers):
    """(outputs, gradients of the leaves) of fn(*leaves) against upstream gradients."""
    out = tuple(fn(*leaves))
    grads = torch.autograd.grad(out, [x for x in leaves if x.requires_grad], uppers)
    return out, grads


def _leaves(*tensors, grad=True):
    return [t.detach().clone().requires_grad_(grad) for t in tensors]


def _uppers(shape, dtype, gen):
    """Upstream gradients of (z, kl, log_q)."""
    return (
        randn(shape, dtype, DEV, gen),
        randn(shape[:-1], dtype, DEV, gen),
        randn(shape[:-1], dtype, DEV, gen),
    )


def _factor(shape, d, dtype, gen) -> torch.Tensor:
    """A well-conditioned lower factor with diagonal entries of either sign, |L_ii| in
    [0.75, 1.25], and NaN above the diagonal (which the kernels must never read)."""
    noise = torch.randn((*shape, d, d), generator=gen, dtype=torch.float64) * (0.5 / d**0.5)
    sign = torch.randint(0, 2, (*shape, d), generator=gen).double() * 2 - 1
    diag = sign * (0.75 + 0.5 * torch.rand((*shape, d), generator=gen, dtype=torch.float64))
    lower = noise.tril(-1) + torch.diag_embed(diag)
    poisoned = lower + torch.triu(torch.full_like(lower, float("nan")), diagonal=1)
    return poisoned.to(dtype).to(DEV)


def _clean(L) -> torch.Tensor:
    return torch.nan_to_num(L, nan=0.0)


# ---- diagonal ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIAG_D)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("explicit", [False, True])
def test_diag_values_and_grads_match_reference(d, dtype, explicit, gen):
    rows = max(3, 2048 // d)
    mu, logvar = randn((rows, d), dtype, DEV, gen), randn((rows, d), dtype, DEV, gen, scale=0.5)
    eps = randn((rows, d), dtype, DEV, gen) if explicit else None
    ups = _uppers((rows, d), dtype, gen)

    def fused(m, lv, *e):
        kw = {"eps": e[0]} if e else {"seed": SEED, "offset": OFFSET}
        return sample_diag(m, lv, return_stats=True, backend="cuda", **kw)

    leaves = _leaves(mu, logvar, *([eps] if explicit else []))
    got, got_g = _grads(fused, leaves, ups)
    e64 = (eps if explicit else _stream_eps((rows, d), dtype)).double()
    want, want_g = _grads(
        ref.diag_stats,
        _leaves(mu.double(), logvar.double(), e64, grad=True),
        tuple(u.double() for u in ups),
    )
    _close(got, want, dtype, d)
    _close(got_g, want_g[: len(got_g)], dtype, d)


@pytest.mark.parametrize("d", [5, 130])
def test_diag_broadcast_logvar_and_num_samples(d, gen):
    """logvar [D] and [B, 1] shared by rows, mu expanded over K samples (stride 0): read in
    place; gradients summed over the broadcast dims."""
    k, b, dtype = 3, 37, torch.float32
    mu = randn((b, d), dtype, DEV, gen)
    for lv_shape in ((d,), (b, 1)):
        logvar = randn(lv_shape, dtype, DEV, gen, scale=0.5)
        ups = _uppers((k, b, d), dtype, gen)

        def fused(m, lv):
            r = sample_diag(m, lv, num_samples=k, return_stats=True, backend="cuda", seed=SEED)
            return r.z, r.kl.expand(k, b), r.log_q  # kl is the same for each sample

        got, got_g = _grads(fused, _leaves(mu, logvar), ups)
        e64 = _stream_eps((k, b, d), dtype, offset=0).double()
        want, want_g = _grads(
            lambda m, lv, e: ref.diag_stats(m.expand(k, b, d), lv, e),
            [*_leaves(mu.double(), logvar.double()), e64],
            [u.double() for u in ups],
        )
        assert got[0].shape == (k, b, d) and got[2].shape == (k, b)
        _close(got, want, dtype, d)
        _close(got_g, want_g, dtype, d * k * b)


def test_diag_strided_inputs_match_contiguous_copies(gen):
    d = 33
    base = randn((64, 2 * d), torch.float32, DEV, gen, scale=0.5)
    mu, logvar = base[:, ::2], base[:, 1::2]  # stride 2 along D
    eps = randn((d, 64), torch.float32, DEV, gen).t()  # transposed
    for kw in ({"seed": 5}, {"eps": eps}):
        a = sample_diag(mu, logvar, return_stats=True, backend="cuda", **kw)
        kw2 = {"eps": eps.contiguous()} if "eps" in kw else kw
        b = sample_diag(
            mu.contiguous(), logvar.contiguous(), return_stats=True, backend="cuda", **kw2
        )
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)


# ---- Cholesky ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", CHOL_D)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("explicit", [False, True])
def test_chol_values_and_grads_match_reference(d, dtype, explicit, gen):
    rows = max(3, 1024 // d) if d <= 64 else 5
    mu, L = randn((rows, d), dtype, DEV, gen), _factor((rows,), d, dtype, gen)
    eps = randn((rows, d), dtype, DEV, gen) if explicit else None
    ups = _uppers((rows, d), dtype, gen)

    def fused(m, lt, *e):
        kw = {"eps": e[0]} if e else {"seed": SEED, "offset": OFFSET}
        return sample_chol(m, lt, return_stats=True, backend="cuda", **kw)

    leaves = _leaves(mu, L, *([eps] if explicit else []))
    got, got_g = _grads(fused, leaves, ups)
    e64 = (eps if explicit else _stream_eps((rows, d), dtype)).double()
    want, want_g = _grads(
        ref.chol_stats,
        _leaves(mu.double(), _clean(L.double()), e64),
        tuple(u.double() for u in ups),
    )
    assert not got_g[1].triu(1).any()  # zeros above the diagonal, NaN never read
    # grad_L sums grad_z eps^T over nothing but L's diagonal term grows like 1 / L_ii.
    _close(got, want, dtype, d)
    _close(got_g, want_g[: len(got_g)], dtype, 2 * d)


@pytest.mark.parametrize("d", [6, 70])
def test_chol_shared_factor_and_num_samples(d, gen):
    """One L [D, D] for a batch, and K samples of each row (mu expanded with stride 0)."""
    k, b, dtype = 2, 19, torch.float32
    mu, L = randn((b, d), dtype, DEV, gen), _clean(_factor((), d, dtype, gen))
    ups = _uppers((k, b, d), dtype, gen)

    def fused(m, lt):
        r = sample_chol(m, lt, num_samples=k, return_stats=True, backend="cuda", seed=SEED)
        return r.z, r.kl.expand(k, b), r.log_q

    got, got_g = _grads(fused, _leaves(mu, L), ups)
    e64 = _stream_eps((k, b, d), dtype, offset=0).double()

    def exact(m, lt):
        return ref.chol_stats(m.expand(k, b, d), lt, e64)

    want, want_g = _grads(exact, _leaves(mu.double(), L.double()), [u.double() for u in ups])
    _close(got, want, dtype, d)
    _close(got_g, want_g, dtype, d * k * b)


@pytest.mark.parametrize("mu_shape", ["shared row", "broadcast along D"])
def test_chol_backward_op_reads_broadcast_operands_in_place(mu_shape, gen):
    """The backward op itself with mu [D] shared by every row (or mu [rows, 1], broadcast
    along D, as the CPU op accepts it) and grad_kl of stride 0."""
    rows, d = 50, 9
    mu = randn((d,) if mu_shape == "shared row" else (rows, 1), torch.float64, DEV, gen)
    L = _factor((rows,), d, torch.float64, gen)
    gz = randn((rows, d), torch.float64, DEV, gen)
    gk = torch.full((), 0.7, dtype=torch.float64, device=DEV).expand(rows)
    gq = randn((rows,), torch.float64, DEV, gen)
    e = randn((rows, d), torch.float64, DEV, gen)
    so = torch.zeros(2, dtype=torch.int64, device=DEV)
    got = torch.ops.fused_reparam.chol_rsample_stats_backward(gz, gk, gq, mu, L, e, so, True)
    want = ref.chol_stats_backward(gz, gk, gq, mu.expand(rows, d), _clean(L), e)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


# ---- both -------------------------------------------------------------------------------


def _sample(kind, *args, **kw):
    fn = sample_diag if kind == "diag" else sample_chol
    return fn(*args, return_stats=True, **kw)


def _inputs(kind, rows, d, dtype, gen):
    mu = randn((rows, d), dtype, DEV, gen)
    if kind == "diag":
        return mu, randn((rows, d), dtype, DEV, gen, scale=0.5)
    return mu, _clean(_factor((rows,), d, dtype, gen))


@pytest.mark.parametrize(
    ("kind", "d"), [("diag", 5), ("diag", 33), ("diag", 130), ("chol", 5), ("chol", 70)]
)
def test_same_seed_on_cpu_and_cuda_agrees(kind, d, gen):
    """The CPU path (its fused op, or the reference where it has none) and the CUDA op give
    the same numbers for one seed, within 1e-5 relative in float32."""
    a, b = _inputs(kind, 41, d, torch.float32, gen)
    cuda = _sample(kind, a, b, seed=SEED, offset=OFFSET, backend="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # auto may fall back to the reference on the CPU
        cpu = _sample(kind, a.cpu(), b.cpu(), seed=SEED, offset=OFFSET)
    for x, y in zip(cuda, cpu, strict=True):
        torch.testing.assert_close(x.cpu(), y, rtol=1e-5, atol=1e-5 * d**0.5)


@pytest.mark.parametrize(
    ("kind", "rows", "d"),
    [
        ("diag", 300_007, 3),
        ("diag", 6001, 130),
        ("diag", 1201, 1100),
        ("chol", 300_001, 3),
        ("chol", 1201, 65),
    ],
)
def test_grid_stride_loops_cover_every_row(kind, rows, d, gen):
    """More tiles / rows than the grid has blocks (8 per SM), with a partial last tile."""
    a, b = _inputs(kind, rows, d, torch.float32, gen)
    got = _sample(kind, a, b, seed=99, backend="cuda")
    e = _stream_eps((rows, d), torch.float32, seed=99, offset=0)
    want = (ref.diag_stats if kind == "diag" else ref.chol_stats)(a, b, e)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y, rtol=2e-5, atol=2e-5 * d**0.5)


@pytest.mark.parametrize(("kind", "d"), [("diag", 16), ("diag", 200), ("chol", 8), ("chol", 80)])
def test_graph_replay_draws_fresh_noise_with_right_gradients(kind, d, gen):
    rows = 256
    a, b = _inputs(kind, rows, d, torch.float32, gen)
    a, b = a.requires_grad_(), b.requires_grad_()
    wz, wk, wq = _uppers((rows, d), torch.float32, gen)

    def step():
        z, kl, log_q = _sample(kind, a, b, backend="cuda")
        ((z * wz).sum() + (kl * wk).sum() + (log_q * wq).sum()).backward()
        return z, kl, log_q

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up outside the capture
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
        _, want_g = _grads(stats_ref, [*_leaves(m, s), e], (wz.double(), wk.double(), wq.double()))
        torch.testing.assert_close(out[1].double(), want[1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out[2].double(), want[2], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(a.grad.double(), want_g[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b.grad.double(), want_g[1], rtol=1e-3, atol=1e-3)
        samples.append(out[0].clone())
    # Independent draws: only chance coincidences of single elements are close.
    assert torch.isclose(samples[0], samples[1]).float().mean() < 0.01
    assert torch.isclose(samples[1], samples[2]).float().mean() < 0.01


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


@pytest.mark.parametrize(
    ("kind", "d", "fwd_name", "bwd_name"),
    [
        ("diag", 16, "diag_stats_tile_kernel", "diag_stats_tile_kernel"),
        ("diag", 300, "diag_stats_tile_kernel", "diag_stats_tile_kernel"),
        ("diag", 2048, "diag_stats_row_kernel", "diag_stats_row_kernel"),
        ("chol", 16, "chol_fwd_small_kernel", "chol_bwd_small_kernel"),
        ("chol", 96, "chol_fwd_large_kernel", "chol_bwd_large_kernel"),
    ],
)
def test_one_launch_forward_and_one_backward(kind, d, fwd_name, bwd_name, gen):
    # Both inputs per row (nothing to sum over broadcast dims); the upstream gradients go
    # straight to the backward op, whose outputs autograd takes without a copy.
    rows = max(2, 4096 // d)
    a, b = _inputs(kind, rows, d, torch.float32, gen)
    a, b = a.requires_grad_(), b.requires_grad_()
    ups = _uppers((rows, d), torch.float32, gen)
    holder = {}

    def forward():
        holder["out"] = _sample(kind, a, b, backend="cuda")

    def backward():
        torch.autograd.backward(tuple(holder.pop("out")), ups)

    forward()
    backward()  # warm up
    a.grad = b.grad = None
    fwd = _kernel_launches(forward)
    bwd = _kernel_launches(backward)
    assert len(fwd) == 1 and fwd_name in fwd[0], fwd
    assert len(bwd) == 1 and bwd_name in bwd[0], bwd


@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_empty_inputs_still_record_the_stream(kind):
    op = getattr(torch.ops.fused_reparam, f"{kind}_rsample_stats")
    mu = torch.zeros(0, 5, device=DEV)
    second = mu if kind == "diag" else torch.eye(5, device=DEV)
    so = torch.tensor([3, 4], dtype=torch.int64, device=DEV)
    z, kl, log_q, used = op(mu, second, None, so, None)
    assert z.shape == (0, 5) and kl.shape == (0,) and log_q.shape == (0,)
    assert used.tolist() == [3, 4]
    bwd = getattr(torch.ops.fused_reparam, f"{kind}_rsample_stats_backward")
    g_mu, g_second, g_eps = bwd(mu, kl, log_q, mu, second, mu, so, True)
    assert g_mu.shape == (0, 5) and g_eps.shape == (0, 5)
    assert g_second.shape == ((0, 5) if kind == "diag" else (0, 5, 5))


def test_diag_rows_of_zero_elements_have_zero_sums():
    mu = torch.zeros(3, 0, device=DEV)
    so = torch.tensor([3, 4], dtype=torch.int64, device=DEV)
    z, kl, log_q, used = torch.ops.fused_reparam.diag_rsample_stats(mu, mu, None, so, None)
    assert z.shape == (3, 0) and used.tolist() == [3, 4]
    assert torch.equal(kl, torch.zeros(3, device=DEV))
    assert torch.equal(log_q, torch.zeros(3, device=DEV))


@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_backward_rejects_a_row_gradient_of_the_wrong_shape(kind):
    op = getattr(torch.ops.fused_reparam, f"{kind}_rsample_stats_backward")
    gz = torch.zeros(4, 3, device=DEV)
    second = gz if kind == "diag" else torch.eye(3, device=DEV)
    so = torch.zeros(2, dtype=torch.int64, device=DEV)
    with pytest.raises(RuntimeError, match="grad_kl must have shape"):
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
    with pytest.raises(RuntimeError, match="grad_log_q must have shape"):
        op(gz, torch.zeros(4, device=DEV), torch.zeros(5, device=DEV), gz, second, None, so, False)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_generator_of_another_gpu_is_rejected():
    mu = torch.zeros(4, 3, device="cuda:0")
    other = torch.Generator(device="cuda:1")
    with pytest.raises(ValueError, match="generator is for cuda:1"):
        sample_diag(mu, mu, generator=other, return_stats=True)
    with pytest.raises(RuntimeError, match="generator is for cuda:1"):
        torch.ops.fused_reparam.diag_rsample_stats(mu, mu, None, None, other)
