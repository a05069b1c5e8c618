"""The registered ops of every fused backend: schema tags, torch.library.opcheck,
torch.compile(fullgraph=True)."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import DTYPES, FUSED_DEVICE_BACKENDS, assert_mostly_different, diag_op_pair, randn
from fused_reparam import sample_diag

CPP = pytest.mark.skipif(not fused_reparam.has_extension(), reason="no compiled extension")


@CPP
def test_random_op_carries_the_nondeterministic_seeded_tag():
    assert torch.Tag.nondeterministic_seeded in torch.ops.fused_reparam.diag_rsample.default.tags


def _seed_offset(device, seed=5, offset=9):
    return torch.tensor([seed, offset], dtype=torch.int64, device=device)


def _fwd_args(backend, mu, lv, eps, seed_offset):
    """Forward op arguments (the C++ op's call also passes the Generator, as None)."""
    return (mu, lv, 0, eps, seed_offset) + (() if backend == "triton" else (None,))


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck_forward(device, backend, dtype, gen):
    op, _ = diag_op_pair(backend)
    mu = randn((3, 5), dtype, device, gen).requires_grad_()
    lv = randn((5,), dtype, device, gen).requires_grad_()
    eps = randn((3, 5), dtype, device, gen).requires_grad_()
    torch.library.opcheck(op, _fwd_args(backend, mu, lv, None, _seed_offset(device)))
    torch.library.opcheck(op, _fwd_args(backend, mu, lv, eps, None))
    torch.library.opcheck(op, (mu, lv), {"seed_offset": _seed_offset(device, 2**40, 2**33)})


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck_backward(device, backend, dtype, gen):
    _, op = diag_op_pair(backend)
    g = randn((3, 5), dtype, device, gen).requires_grad_()
    lv = randn((5,), dtype, device, gen).requires_grad_()
    eps = randn((3, 5), dtype, device, gen).requires_grad_()
    torch.library.opcheck(op, (g, lv, None, _seed_offset(device), False))
    torch.library.opcheck(op, (g, lv, eps, _seed_offset(device), True))
    torch.library.opcheck(op, (g, lv, eps, _seed_offset(device), False))


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_compile_fullgraph_forward_and_backward_equal_eager(device, backend, gen):
    torch._dynamo.reset()

    def loss_fn(mu, logvar):
        z = sample_diag(mu, logvar, seed=31, offset=4, backend=backend)
        return (z * z).sum()

    compiled = torch.compile(loss_fn, fullgraph=True)
    mu = randn((6, 19), torch.float32, device, gen).requires_grad_()
    logvar = randn((19,), torch.float32, device, gen, scale=0.5).requires_grad_()
    loss_c = compiled(mu, logvar)
    gc = torch.autograd.grad(loss_c, (mu, logvar))
    loss_e = loss_fn(mu, logvar)
    ge = torch.autograd.grad(loss_e, (mu, logvar))
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(gc, ge)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_compile_draws_fresh_noise_each_call(device, backend, gen):
    torch._dynamo.reset()
    f = torch.compile(lambda m, lv: sample_diag(m, lv, backend=backend), fullgraph=True)
    mu = randn((64,), torch.float32, device, gen)
    logvar = randn((64,), torch.float32, device, gen)
    # The Triton path draws its [seed, offset] with a torch random op outside its kernel, which
    # Inductor replaces by its own RNG unless told to keep torch's (fallback_random).
    with torch._inductor.config.patch(fallback_random=True):
        torch.manual_seed(3)
        a, b = f(mu, logvar), f(mu, logvar)
    torch.manual_seed(3)
    a_eager = sample_diag(mu, logvar, backend=backend)
    assert_mostly_different(a, b)
    assert torch.equal(a, a_eager)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_op_returns_the_seed_offset_it_used(device, backend, gen):
    op, _ = diag_op_pair(backend)
    mu = randn((10,), torch.float32, device, gen)
    so = None if backend != "triton" else _seed_offset(device, -3, 2**62)  # C++ ops draw it
    z, used = op(*_fwd_args(backend, mu, mu, None, so))
    seed, offset = (v % 2**64 for v in used.tolist())
    assert torch.equal(z, sample_diag(mu, mu, seed=seed, offset=offset, backend=backend))
    if so is not None:
        assert torch.equal(used, so) and used.data_ptr() != so.data_ptr()


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_strided_seed_offset_is_read_correctly(device, backend, gen):
    """A non-contiguous [seed, offset] view gives the same noise forward and backward."""
    op, back = diag_op_pair(backend)
    mu = randn((41,), torch.float32, device, gen).requires_grad_()
    lv = randn((41,), torch.float32, device, gen).requires_grad_()
    strided = torch.tensor([7, -1, 2**40, -1], dtype=torch.int64, device=device)[::2]
    dense = strided.contiguous()
    z_s, _ = op(*_fwd_args(backend, mu, lv, None, strided))
    z_d, _ = op(*_fwd_args(backend, mu, lv, None, dense))
    assert torch.equal(z_s, z_d)
    g = randn((41,), torch.float32, device, gen)
    assert torch.equal(back(g, lv, None, strided, False)[0], back(g, lv, None, dense, False)[0])


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_op_with_explicit_eps_returns_zero_seed_offset(device, backend, gen):
    op, _ = diag_op_pair(backend)
    mu = randn((3, 7), torch.float32, device, gen)
    eps = randn((3, 7), torch.float32, device, gen)
    z, used = op(*_fwd_args(backend, mu, mu, eps, _seed_offset(device)))
    torch.testing.assert_close(z, mu + torch.exp(0.5 * mu) * eps, rtol=1e-6, atol=1e-6)
    assert used.tolist() == [0, 0]


@pytest.mark.parametrize("op", ["diag_rsample", "chol_rsample", "diag_rsample_stats",
                                "chol_rsample_stats"])  # fmt: skip
def test_triton_forward_draws_its_stream_as_the_cpu_op(op):
    """Without seed_offset or eps every backend's forward draws [seed, offset] from the
    generator the same way, so the same manual_seed (or generator state) gives the same z."""
    if "triton" not in fused_reparam.available_backends("cpu"):
        pytest.skip("the Triton backend cannot run on CPU tensors here")
    mu = torch.randn(5, 3)
    second = torch.randn(5, 3) if op.startswith("diag") else torch.eye(3) * 2
    outs = {}
    for prefix in ("", "triton_"):
        fn = getattr(torch.ops.fused_reparam, prefix + op)
        torch.manual_seed(11)
        from_default = fn(mu, second)
        from_gen = fn(mu, second, generator=torch.Generator().manual_seed(12))
        outs[prefix] = (from_default, from_gen)
    for got, want in zip(outs["triton_"], outs[""], strict=True):
        assert got[-1].tolist() == want[-1].tolist()  # the [seed, offset] used
        torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert outs[""][0][-1].tolist() != outs[""][1][-1].tolist()


@pytest.mark.parametrize("kind", ["diag", "diag_stats", "chol"])
def test_reference_backend_compiles_fullgraph(kind, gen):
    """The reference backend (the fallback of an install without the extension) compiles with
    fullgraph: an explicit seed past 2**63, and a stream drawn from the generator."""
    mu = randn((3, 6), torch.float32, "cpu", gen).requires_grad_()
    second = torch.eye(6) if kind == "chol" else randn((3, 6), torch.float32, "cpu", gen)

    def sample(m, s, **kw):
        if kind == "chol":
            return fused_reparam.sample_chol(m, s, backend="reference", num_samples=2, **kw)
        out = sample_diag(m, s, backend="reference", return_stats=kind == "diag_stats", **kw)
        return out.z + out.kl[..., None] if kind == "diag_stats" else out

    torch._dynamo.reset()
    compiled = torch.compile(sample, fullgraph=True)
    seeded = {"seed": 2**63 + 7, "offset": 2**40}
    z = compiled(mu, second, **seeded)
    torch.testing.assert_close(z, sample(mu, second, **seeded))
    (g,) = torch.autograd.grad(z.sum(), mu)
    torch.testing.assert_close(g, torch.autograd.grad(sample(mu, second, **seeded).sum(), mu)[0])
    with torch._inductor.config.patch(fallback_random=True):
        torch.manual_seed(9)
        drawn = compiled(mu, second)
    torch.manual_seed(9)
    torch.testing.assert_close(drawn, sample(mu, second))
