"""The ops with VAE extras (sample_diag / sample_chol with return_stats=True) and num_samples,
on every backend that has them: KL and log q against a float64 reference and against
torch.distributions, z equal to the plain op's, gradients (gradcheck, gradgradcheck) through
every output, opcheck, torch.compile, K samples without copies, a shared scale_tril's
gradient, and clear errors."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import fused_reparam
from conftest import DEVICES, DTYPES, randn
from fused_reparam import sample_chol, sample_diag
from fused_reparam.reference import stats as ref

DIAG = [(d, b) for d in DEVICES for b in fused_reparam.available_backends(d, "diag_rsample_stats")]
CHOL = [(d, b) for d in DEVICES for b in fused_reparam.available_backends(d, "chol_rsample_stats")]
FUSED_DIAG = [(d, b) for d, b in DIAG if b != "reference"]
FUSED_CHOL = [(d, b) for d, b in CHOL if b != "reference"]
# (mu shape, logvar shape): D = 1, odd and prime D, broadcast logvar, a long row.
DIAG_SHAPES = [((7,), (7,)), ((5, 3), (3,)), ((4, 1, 13), (3, 13)), ((2, 1), (2, 1)),
               ((3, 130), (3, 130))]  # fmt: skip
CHOL_SHAPES = [((7,), (7, 7)), ((5, 3), (3, 3)), ((4, 1, 13), (3, 13, 13)), ((9, 1), (1, 1)),
               ((2, 65), (2, 65, 65))]  # fmt: skip


def _chol_factor(shape, dtype, device, gen):
    """A lower-triangular factor with a diagonal away from zero (log|L_ii| well conditioned)."""
    L = randn(shape, torch.float64, "cpu", gen, scale=0.3).tril()
    L = L + torch.diag_embed(1.0 + torch.rand(shape[:-1], generator=gen, dtype=torch.float64))
    return L.to(dtype).to(device)


def _assert_bounded(actual, expected, magnitude, dtype, terms):
    """|actual - expected| <= one rounding to dtype of the result plus the compute type's
    error of a sum of `terms` terms of total size `magnitude` (float32 for half types)."""
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    bound = (
        torch.finfo(dtype).eps * expected.abs()
        + 4 * terms * torch.finfo(compute).eps * magnitude
        + torch.finfo(dtype).tiny
    )
    err = (actual.double() - expected).abs()
    assert bool((err <= bound).all()), f"max excess {(err - bound).max().item()}"


@pytest.mark.parametrize(("device", "backend"), DIAG)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("mu_shape", "lv_shape"), DIAG_SHAPES)
def test_diag_stats_match_float64_reference(device, backend, dtype, mu_shape, lv_shape, gen):
    mu = randn(mu_shape, dtype, device, gen)
    logvar = randn(lv_shape, dtype, device, gen, scale=0.5)
    shape = torch.broadcast_shapes(mu_shape, lv_shape)
    eps = randn(shape, dtype, device, gen)
    z, kl, log_q = sample_diag(mu, logvar, eps=eps, backend=backend, return_stats=True)
    z64, kl64, lq64 = ref.diag_stats(mu.double(), logvar.double(), eps.double())
    assert z.shape == shape and kl.shape == shape[:-1] and log_q.shape == shape[:-1]
    assert kl.dtype == log_q.dtype == dtype
    d = shape[-1]
    m, lv, e = mu.double(), logvar.double(), eps.double()
    _assert_bounded(z, z64, m.abs() + (torch.exp(0.5 * lv) * e).abs(), dtype, 2)
    # sigma^2 - 1 - logvar cancels for small logvar: the bound is on the parts' sizes.
    kl_terms = 0.5 * (m * m + torch.exp(lv) + 1 + lv.abs()).expand(shape).sum(-1)
    _assert_bounded(kl, kl64, kl_terms, dtype, d)
    lq_terms = 0.5 * (e * e + lv.abs().expand(shape) + ref.LOG_2PI).sum(-1)
    _assert_bounded(log_q, lq64, lq_terms, dtype, d)


@pytest.mark.parametrize(("device", "backend"), DIAG)
def test_diag_stats_equal_torch_distributions(device, backend, gen):
    mu = randn((6, 9), torch.float64, device, gen)
    logvar = randn((6, 9), torch.float64, device, gen, scale=0.5)
    z, kl, log_q = sample_diag(mu, logvar, seed=3, backend=backend, return_stats=True)
    q = Normal(mu, torch.exp(0.5 * logvar))
    torch.testing.assert_close(log_q, q.log_prob(z).sum(-1), rtol=1e-10, atol=1e-10)
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(kl, kl_divergence(q, p).sum(-1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("device", "backend"), CHOL)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("mu_shape", "l_shape"), CHOL_SHAPES)
def test_chol_stats_match_float64_reference(device, backend, dtype, mu_shape, l_shape, gen):
    mu = randn(mu_shape, dtype, device, gen)
    L = _chol_factor(l_shape, dtype, device, gen)
    shape = torch.Size((*torch.broadcast_shapes(mu_shape[:-1], l_shape[:-2]), mu_shape[-1]))
    eps = randn(shape, dtype, device, gen)
    poisoned = L + torch.triu(torch.full_like(L, float("nan")), diagonal=1)
    z, kl, log_q = sample_chol(mu, poisoned, eps=eps, backend=backend, return_stats=True)
    z64, kl64, lq64 = ref.chol_stats(mu.double(), L.double(), eps.double())
    assert kl.shape == log_q.shape == shape[:-1]
    d = shape[-1]
    m, lower, e = mu.double(), L.double(), eps.double()
    z_terms = m.abs() + (lower.abs() @ e.abs()[..., None])[..., 0]
    _assert_bounded(z, z64, z_terms, dtype, d + 1)
    log_det = torch.diagonal(lower, dim1=-2, dim2=-1).abs().log().abs().sum(-1)
    kl_terms = 0.5 * (lower.square().sum((-2, -1)) + m.square().sum(-1) + d) + log_det
    _assert_bounded(kl, kl64, kl_terms.expand(shape[:-1]), dtype, d * d)
    lq_terms = 0.5 * e.square().sum(-1) + log_det + 0.5 * d * ref.LOG_2PI
    _assert_bounded(log_q, lq64, lq_terms.expand(shape[:-1]), dtype, d)


@pytest.mark.parametrize(("device", "backend"), CHOL)
def test_chol_stats_equal_torch_distributions(device, backend, gen):
    mu = randn((5, 6), torch.float64, device, gen)
    L = _chol_factor((5, 6, 6), torch.float64, device, gen)
    z, kl, log_q = sample_chol(mu, L, seed=11, backend=backend, return_stats=True)
    q = MultivariateNormal(mu, scale_tril=L)
    torch.testing.assert_close(log_q, q.log_prob(z), rtol=1e-10, atol=1e-10)
    p = MultivariateNormal(torch.zeros_like(mu), scale_tril=torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(kl, kl_divergence(q, p), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("device", "backend"), FUSED_DIAG)
@pytest.mark.parametrize("dtype", DTYPES)
def test_diag_stats_z_is_the_plain_ops_z(device, backend, dtype, gen):
    mu = randn((5, 7), dtype, device, gen)
    logvar = randn((7,), dtype, device, gen)
    r = sample_diag(mu, logvar, seed=2**63 + 9, offset=4, backend=backend, return_stats=True)
    z = sample_diag(mu, logvar, seed=2**63 + 9, offset=4, backend=backend)
    assert torch.equal(r.z, z)


@pytest.mark.parametrize(("device", "backend"), FUSED_CHOL)
@pytest.mark.parametrize("dtype", DTYPES)
def test_chol_stats_z_is_the_plain_ops_z(device, backend, dtype, gen):
    mu = randn((5, 7), dtype, device, gen)
    L = _chol_factor((7, 7), dtype, device, gen)
    r = sample_chol(mu, L, seed=12, offset=2**40, backend=backend, return_stats=True)
    z = sample_chol(mu, L, seed=12, offset=2**40, backend=backend)
    assert torch.equal(r.z, z)


@pytest.mark.parametrize(("device", "backend"), FUSED_DIAG)
def test_diag_seeded_stats_match_reference_backend(device, backend, gen):
    mu = randn((4, 3, 11), torch.float32, device, gen)
    logvar = randn((3, 11), torch.float32, device, gen)
    got = sample_diag(mu, logvar, seed=5, offset=6, backend=backend, return_stats=True)
    want = sample_diag(mu, logvar, seed=5, offset=6, backend="reference", return_stats=True)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5)


def _skip_slow_interpreted(device, backend, *variants) -> None:
    """The Triton interpreter runs a kernel call in tens of ms, and gradgradcheck makes
    hundreds: on CPU tensors Triton is gradchecked in the plain variant only (the other
    variants differ in Python code shared with the compiled backends)."""
    if device == "cpu" and backend == "triton" and any(variants):
        pytest.skip("slow under the Triton interpreter: the plain variant covers Triton")


def _weighted_sum(result, gen_w):
    """A scalar using every output with random weights (so each gradient path is checked)."""
    z, kl, log_q = result
    return (
        (z * gen_w[0][: z.numel()].view_as(z)).sum()
        + (kl * gen_w[1][: kl.numel()].view_as(kl)).sum()
        + (log_q * gen_w[2][: log_q.numel()].view_as(log_q)).sum()
    )


@pytest.mark.parametrize(("device", "backend"), DIAG)
@pytest.mark.parametrize("with_eps", [False, True])
@pytest.mark.parametrize("num_samples", [None, 3])
def test_diag_stats_gradcheck(device, backend, with_eps, num_samples, gen):
    _skip_slow_interpreted(device, backend, with_eps, num_samples)
    mu = randn((3, 5), torch.float64, device, gen).requires_grad_()
    logvar = randn((5,), torch.float64, device, gen, scale=0.5).requires_grad_()
    shape = (3, 5) if num_samples is None else (num_samples, 3, 5)
    eps = randn(shape, torch.float64, device, gen).requires_grad_() if with_eps else None
    w = [randn((64,), torch.float64, device, gen) for _ in range(3)]

    def f(m, lv, *e):
        kw = {"eps": e[0]} if e else {"seed": 17, "offset": 2}
        r = sample_diag(m, lv, num_samples=num_samples, backend=backend, return_stats=True, **kw)
        return _weighted_sum(r, w)

    inputs = (mu, logvar, eps) if with_eps else (mu, logvar)
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


@pytest.mark.parametrize(("device", "backend"), CHOL)
@pytest.mark.parametrize("with_eps", [False, True])
@pytest.mark.parametrize(("mu_shape", "l_shape", "num_samples"),
                         [((3, 4), (3, 4, 4), None), ((3, 4), (4, 4), None),
                          ((3, 4), (3, 4, 4), 2)])  # fmt: skip
def test_chol_stats_gradcheck(device, backend, with_eps, mu_shape, l_shape, num_samples, gen):
    _skip_slow_interpreted(device, backend, with_eps, num_samples, len(l_shape) == 2)
    mu = randn(mu_shape, torch.float64, device, gen).requires_grad_()
    L = _chol_factor(l_shape, torch.float64, device, gen).requires_grad_()
    shape = mu_shape if num_samples is None else (num_samples, *mu_shape)
    eps = randn(shape, torch.float64, device, gen).requires_grad_() if with_eps else None
    w = [randn((64,), torch.float64, device, gen) for _ in range(3)]

    def f(m, scale_tril, *e):
        kw = {"eps": e[0]} if e else {"seed": 23, "offset": 1}
        r = sample_chol(m, scale_tril, num_samples=num_samples, backend=backend,
                        return_stats=True, **kw)  # fmt: skip
        return _weighted_sum(r, w)

    inputs = (mu, L, eps) if with_eps else (mu, L)
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


@pytest.mark.parametrize(("device", "backend"), DIAG)
@pytest.mark.parametrize("return_stats", [False, True])
def test_diag_num_samples_reads_inputs_in_place(device, backend, return_stats, gen):
    """K samples are the op on mu expanded to [K, ...] (stride 0): the same numbers as an
    explicit expand, and gradients summed over K."""
    mu = randn((4, 6), torch.float32, device, gen).requires_grad_()
    logvar = randn((4, 6), torch.float32, device, gen).requires_grad_()
    out = sample_diag(mu, logvar, num_samples=5, seed=8, backend=backend,
                      return_stats=return_stats)  # fmt: skip
    z = out.z if return_stats else out
    assert z.shape == (5, 4, 6)
    z_expanded = sample_diag(mu.expand(5, 4, 6), logvar, seed=8, backend=backend)
    assert torch.equal(z, z_expanded)
    assert not torch.equal(z[0], z[1])  # each sample its own noise
    if return_stats:
        assert out.kl.shape == (4,) and out.log_q.shape == (5, 4)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.full_like(mu, 5.0))


@pytest.mark.parametrize(("device", "backend"), CHOL)
def test_chol_shared_scale_tril_gradient(device, backend, gen):
    """One L shared by every row and by K samples: grad_L is one reduction, and equals the
    reference's."""
    mu = randn((6, 5), torch.float64, device, gen).requires_grad_()
    L = _chol_factor((5, 5), torch.float64, device, gen).requires_grad_()
    w = randn((3, 6, 5), torch.float64, device, gen)
    grads = []
    for b in (backend, "reference"):
        z = sample_chol(mu, L, num_samples=3, seed=4, backend=b)
        grads.append(torch.autograd.grad((z * w).sum(), (mu, L)))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert torch.equal(
        torch.triu(grads[0][1], diagonal=1), torch.zeros(5, 5, dtype=L.dtype, device=device)
    )


def _stats_ops(kind: str, backend: str):
    ops = torch.ops.fused_reparam
    prefix = "triton_" if backend == "triton" else ""
    return (getattr(ops, f"{prefix}{kind}_rsample_stats").default,
            getattr(ops, f"{prefix}{kind}_rsample_stats_backward").default)  # fmt: skip


@pytest.mark.parametrize(("device", "backend"), FUSED_DIAG)
def test_diag_stats_opcheck(device, backend, gen):
    fwd, bwd = _stats_ops("diag", backend)
    mu = randn((3, 5), torch.float32, device, gen).requires_grad_()
    logvar = randn((5,), torch.float32, device, gen).requires_grad_()
    so = torch.tensor([7, 9], dtype=torch.int64, device=device)
    torch.library.opcheck(fwd, (mu, logvar, 0, None, so))
    gz = randn((3, 5), torch.float32, device, gen)
    gk, gq = randn((3,), torch.float32, device, gen), randn((3,), torch.float32, device, gen)
    torch.library.opcheck(bwd, (gz, gk, gq, mu.detach(), logvar.detach(), None, so, False))


@pytest.mark.parametrize(("device", "backend"), FUSED_CHOL)
def test_chol_stats_opcheck(device, backend, gen):
    fwd, bwd = _stats_ops("chol", backend)
    mu = randn((3, 4), torch.float32, device, gen).requires_grad_()
    L = _chol_factor((3, 4, 4), torch.float32, device, gen).requires_grad_()
    so = torch.tensor([7, 9], dtype=torch.int64, device=device)
    torch.library.opcheck(fwd, (mu, L, None, so))
    gz = randn((3, 4), torch.float32, device, gen)
    gk, gq = randn((3,), torch.float32, device, gen), randn((3,), torch.float32, device, gen)
    torch.library.opcheck(bwd, (gz, gk, gq, mu.detach(), L.detach(), None, so, False))


@pytest.mark.parametrize(
    ("device", "backend"), [(d, b) for d, b in FUSED_DIAG if not (d == "cpu" and b == "triton")]
)
def test_stats_compile_fullgraph(device, backend, gen):
    mu = randn((4, 8), torch.float32, device, gen).requires_grad_()
    logvar = randn((4, 8), torch.float32, device, gen).requires_grad_()

    def loss(m, lv):
        z, kl, log_q = sample_diag(m, lv, num_samples=2, seed=3, backend=backend,
                                   return_stats=True)  # fmt: skip
        return z.square().sum() + kl.sum() - log_q.sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    got = torch.autograd.grad(compiled(mu, logvar), (mu, logvar))
    want = torch.autograd.grad(loss(mu, logvar), (mu, logvar))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("num_samples", [0, -2, 2.0, True, "3"])
def test_bad_num_samples(num_samples):
    mu = torch.zeros(3)
    with pytest.raises((ValueError, TypeError), match="num_samples"):
        sample_diag(mu, mu, num_samples=num_samples)
    with pytest.raises((ValueError, TypeError), match="num_samples"):
        sample_chol(mu, torch.eye(3), num_samples=num_samples)


def test_stats_need_an_event_dim():
    with pytest.raises(ValueError, match="at least one dim"):
        sample_diag(torch.zeros(()), torch.zeros(()), return_stats=True)


def test_eps_shape_with_num_samples():
    with pytest.raises(ValueError, match="eps must have shape"):
        sample_diag(torch.zeros(3), torch.zeros(3), num_samples=2, eps=torch.zeros(3))


@pytest.mark.parametrize(("device", "backend"), FUSED_DIAG)
def test_stats_backward_op_checks_row_grads(device, backend):
    _fwd, bwd = _stats_ops("diag", backend)
    gz = torch.zeros(3, 5, device=device)
    so = torch.zeros(2, dtype=torch.int64, device=device)
    with pytest.raises((RuntimeError, ValueError), match="grad_kl"):
        bwd(gz, torch.zeros(5, device=device), torch.zeros(3, device=device), gz, gz, None, so,
            False)  # fmt: skip
