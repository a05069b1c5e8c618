"""The contract every row (family, backend, device, dtype, atol, rtol) meets, derived from
the family registry (fused_reparam._families): the sample and its extras, and every input's
gradient, equal the reference's for the same stream, explicit or drawn from the generator,
with broadcast inputs of odd and prime sizes; non-contiguous inputs give the contiguous
result; empty inputs give empty outputs and gradients; float64 rows pass gradcheck and
gradgradcheck; float32 rows pass opcheck on all four ops of the family and
torch.compile(fullgraph=True) equals eager. Shapes are small; the two checks that take tens
of seconds under the Triton interpreter run there only with FUSED_REPARAM_SLOW_TESTS=1."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import FUSED_DEVICE_BACKENDS, randn, skip_if_interpreted_and_slow
from fused_reparam import _families
from fused_reparam.reference import diag as ref_diag

# (atol, rtol) against the reference, which computes in the same compute type and rounds once.
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (6e-2, 6e-2),
}
ROWS = [
    pytest.param(family, device, backend, dtype, *tol, id=f"{family}-{backend}-{device}-{dtype}")
    for family in _families.FAMILIES
    for device, backend in FUSED_DEVICE_BACKENDS
    for dtype, tol in TOLERANCES.items()
]
FLOAT64_ROWS = [r for r in ROWS if r.values[3] == torch.float64]
FLOAT32_ROWS = [r for r in ROWS if r.values[3] == torch.float32]
D = 7
SEED, OFFSET = 1234, 5


def _sample(family: str):
    return fused_reparam.sample_diag if family == "diag" else fused_reparam.sample_chol


def _inputs(family: str, dtype: torch.dtype, device: str, gen: torch.Generator, batch=(5,)):
    """mu [3, 1, D] broadcast against the second input's batch `batch`."""
    mu = randn((3, 1, D), dtype, device, gen)
    if _families.FAMILIES[family].second_row_dims == 0:
        second = randn((*batch, D), dtype, device, gen, scale=0.5)
    else:
        noise = randn((*batch, D, D), torch.float64, "cpu", gen, scale=0.3).tril(-1)
        diag = torch.diag_embed(0.5 + torch.rand((*batch, D), generator=gen, dtype=torch.float64))
        second = (noise + diag).to(dtype).to(device)
    return mu, second


def _reference(family: str, mu, second, stats: bool):
    f = _families.FAMILIES[family]
    shape = f.sample_shape(mu.shape, second.shape)
    eps = ref_diag.diag_noise(shape, SEED, OFFSET, mu.dtype, mu.device)
    out = (f.reference_stats if stats else f.reference)(mu, second, eps)
    return out if stats else (out,)


def _every_other(t: torch.Tensor) -> torch.Tensor:
    """A view of a copy of `t` whose last dim has stride 2 (the same values)."""
    wide = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    return wide[..., ::2]


def _outputs(out, stats: bool) -> tuple:
    return tuple(out) if stats else (out,)


@pytest.mark.parametrize("stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), ROWS)
def test_values_and_gradients_match_the_reference(
    family, device, backend, dtype, atol, rtol, stats, gen
):
    mu, second = _inputs(family, dtype, device, gen)
    inputs = [t.clone().requires_grad_() for t in (mu, second)]
    ref_inputs = [t.clone().requires_grad_() for t in (mu, second)]
    out = _outputs(
        _sample(family)(*inputs, seed=SEED, offset=OFFSET, backend=backend, return_stats=stats),
        stats,
    )
    ref = _reference(family, *ref_inputs, stats)
    ups = [randn(t.shape, dtype, device, gen) for t in ref]
    for got, want in zip(out, ref, strict=True):
        assert got.dtype == dtype and got.shape == want.shape
        torch.testing.assert_close(got, want.detach(), atol=atol, rtol=rtol)
    got_grads = torch.autograd.grad(out, inputs, ups)
    want_grads = torch.autograd.grad(ref, ref_inputs, ups)
    for got, want in zip(got_grads, want_grads, strict=True):
        scale = float(want.abs().max()) or 1.0  # half-type sums: relative to the largest
        torch.testing.assert_close(got, want, atol=atol * scale, rtol=rtol)


@pytest.mark.parametrize("stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), ROWS)
def test_generator_stream_matches_the_reference_backend(
    family, device, backend, dtype, atol, rtol, stats, gen
):
    """Without seed= the stream is drawn from the default generator; the backends that draw
    it as the reference does give the reference's sample and gradients after the same
    manual_seed (eps regenerated in backward from the drawn stream)."""
    if backend == "cuda":
        pytest.skip("the CUDA op reserves a Philox offset instead of drawing [seed, offset]")
    mu, second = _inputs(family, dtype, device, gen)
    ups = None
    results = []
    for which in (backend, "reference"):
        inputs = [t.clone().requires_grad_() for t in (mu, second)]
        torch.manual_seed(21)
        out = _outputs(_sample(family)(*inputs, backend=which, return_stats=stats), stats)
        ups = ups or [randn(t.shape, dtype, device, gen) for t in out]
        results.append((out, torch.autograd.grad(out, inputs, ups)))
    (out, grads), (ref_out, ref_grads) = results
    for got, want in zip((*out, *grads), (*ref_out, *ref_grads), strict=True):
        scale = float(want.abs().max()) or 1.0
        torch.testing.assert_close(got, want, atol=atol * scale, rtol=rtol)


@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), ROWS)
def test_non_contiguous_inputs_give_the_contiguous_result(
    family, device, backend, dtype, atol, rtol, gen
):
    mu, second = _inputs(family, dtype, device, gen, batch=(3, 5))
    mu_t = _every_other(mu)
    second_t = _every_other(second.transpose(0, 1).contiguous().transpose(0, 1))
    assert not mu_t.is_contiguous() and not second_t.is_contiguous()
    sample = _sample(family)
    want = sample(mu, second, seed=SEED, backend=backend)
    got = sample(mu_t, second_t, seed=SEED, backend=backend)
    torch.testing.assert_close(got, want, atol=atol, rtol=rtol)


@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), ROWS)
def test_empty_inputs_give_empty_outputs_and_gradients(
    family, device, backend, dtype, atol, rtol, gen
):
    mu, second = _inputs(family, dtype, device, gen, batch=(0,))
    mu, second = mu.requires_grad_(), second.requires_grad_()
    out = _sample(family)(mu, second, seed=SEED, backend=backend, return_stats=True)
    assert out.z.shape == (3, 0, D) and out.kl.shape == out.log_q.shape == (3, 0)
    g_mu, g_second = torch.autograd.grad(out.z.sum() + out.kl.sum(), (mu, second))
    assert g_mu.shape == mu.shape and g_second.shape == second.shape


@pytest.mark.parametrize("wants", ["mu", "second", "eps", "none"])
@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), FLOAT32_ROWS)
def test_outputs_require_grad_as_the_references(
    family, device, backend, dtype, atol, rtol, wants, gen
):
    """z, kl and log_q require grad exactly when the reference's do (kl not for eps alone)."""
    mu, second = _inputs(family, dtype, device, gen)
    eps = randn(_families.FAMILIES[family].sample_shape(mu.shape, second.shape), dtype, device,
                gen)  # fmt: skip
    flags = {}
    for which in (backend, "reference"):
        args = {"mu": mu.clone(), "second": second.clone(), "eps": eps.clone()}
        if wants in args:
            args[wants].requires_grad_()
        out = _sample(family)(args["mu"], args["second"], eps=args["eps"], backend=which,
                              return_stats=True)  # fmt: skip
        flags[which] = tuple(t.requires_grad for t in out)
    assert flags[backend] == flags["reference"]


class _DropGrad(torch.autograd.Function):
    """Identity whose backward returns no gradient (as a custom op may)."""

    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, grad):
        return None


KEPT = [(False, "none"), (False, "z"), (True, "none"), (True, "z"), (True, "kl"), (True, "log_q")]


@pytest.mark.parametrize(
    ("stats", "kept"), KEPT, ids=[f"{'stats' if s else 'plain'}-{k}" for s, k in KEPT]
)
@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), ROWS)
def test_outputs_whose_gradient_is_dropped_add_nothing(
    family, device, backend, dtype, atol, rtol, stats, kept, gen
):
    """Outputs whose gradient comes back undefined count as zero; with none left, the second
    input gets no gradient at all (None), as from the reference and torch's own ops."""
    mu, second = _inputs(family, dtype, device, gen)
    grads = {}
    for which in (backend, "reference"):
        m, s = mu.clone().requires_grad_(), second.clone().requires_grad_()
        out = _outputs(_sample(family)(m, s, seed=SEED, offset=OFFSET, backend=which,
                                       return_stats=stats), stats)  # fmt: skip
        loss = m.sum()
        for name, t in zip(("z", "kl", "log_q"), out, strict=False):
            loss = loss + (t if name == kept else _DropGrad.apply(t)).sum()
        loss.backward()
        grads[which] = (m.grad, s.grad)
    assert (grads[backend][1] is None) == (kept == "none") == (grads["reference"][1] is None)
    for got, want in zip(grads[backend], grads["reference"], strict=True):
        if want is not None:
            torch.testing.assert_close(got, want, atol=atol, rtol=rtol)


@pytest.mark.parametrize(
    ("mu_shape", "s_shape", "kept"), [((), (3, 4), "kl"), ((3, 1), (), "log_q")]
)
@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_an_extra_alone_in_the_loss_with_0_dim_inputs(device, backend, mu_shape, s_shape, kept):
    """z outside the loss: its zero gradient takes the inputs' broadcast shape, which a 0-dim
    mu or s does not show by its last dim."""
    grads = {}
    for which in (backend, "reference"):
        gen = torch.Generator().manual_seed(0)
        mu = randn(mu_shape, torch.float64, device, gen).requires_grad_()
        s = randn(s_shape, torch.float64, device, gen, scale=0.5).requires_grad_()
        out = fused_reparam.sample_diag(mu, s, seed=SEED, return_stats=True, backend=which)
        getattr(out, kept).sum().backward()
        grads[which] = (mu.grad, s.grad)
    torch.testing.assert_close(grads[backend][1], grads["reference"][1], rtol=1e-10, atol=1e-10)
    if grads["reference"][0] is not None:
        torch.testing.assert_close(grads[backend][0], grads["reference"][0])


@pytest.mark.parametrize("stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), FLOAT64_ROWS)
def test_gradcheck_and_gradgradcheck(family, device, backend, dtype, atol, rtol, stats, gen):
    skip_if_interpreted_and_slow(device, backend, "test_diag_grad.py / test_chol_ops.py")
    mu, second = _inputs(family, dtype, device, gen, batch=(2,))
    eps = randn(_families.FAMILIES[family].sample_shape(mu.shape, second.shape), dtype, device,
                gen)  # fmt: skip
    sample = _sample(family)

    def seeded(m, s):
        return _outputs(sample(m, s, seed=SEED, backend=backend, return_stats=stats), stats)

    def explicit(m, s, e):
        return _outputs(sample(m, s, eps=e, backend=backend, return_stats=stats), stats)

    args = [t.requires_grad_() for t in (mu, second)]
    assert torch.autograd.gradcheck(seeded, args)
    assert torch.autograd.gradgradcheck(seeded, args)
    explicit_args = [*args, eps.requires_grad_()]
    assert torch.autograd.gradcheck(explicit, explicit_args)
    assert torch.autograd.gradgradcheck(explicit, explicit_args)


@pytest.mark.parametrize("stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), FLOAT32_ROWS)
def test_opcheck_every_op_of_the_family(family, device, backend, dtype, atol, rtol, stats, gen):
    f = _families.FAMILIES[family]
    prefix = _families.BACKEND_PREFIX[backend]
    fwd = getattr(torch.ops.fused_reparam, prefix + f.op(stats)).default
    bwd = getattr(torch.ops.fused_reparam, prefix + f.op(stats) + "_backward").default
    mu, second = _inputs(family, dtype, device, gen)
    mu, second = mu.expand(3, 5, D).contiguous(), second
    so = torch.tensor([SEED, OFFSET], device=device)
    torch.library.opcheck(fwd, (mu, second.requires_grad_(), *f.op_args((), None, so, None)))
    shape = f.sample_shape(mu.shape, second.shape)
    g = randn(shape, dtype, device, gen)
    second_full = second.detach().expand(*shape[:-1], *second.shape[-1 - f.second_row_dims :])
    if stats:
        gk, gq = randn(shape[:-1], dtype, device, gen), randn(shape[:-1], dtype, device, gen)
        torch.library.opcheck(bwd, (g, gk, gq, mu, second_full.contiguous(), None, so, False))
    else:
        torch.library.opcheck(bwd, (g, second_full.contiguous(), None, so, False))


@pytest.mark.parametrize(("family", "device", "backend", "dtype", "atol", "rtol"), FLOAT32_ROWS)
def test_compile_fullgraph_equals_eager(family, device, backend, dtype, atol, rtol, gen):
    skip_if_interpreted_and_slow(device, backend, "test_diag_ops.py / test_chol_ops.py")
    torch._dynamo.reset()
    sample = _sample(family)

    def step(m, s):
        out = sample(m, s, seed=SEED, offset=OFFSET, backend=backend, return_stats=True)
        return out.z.square().sum() + out.kl.sum() + out.log_q.sum()

    mu, second = _inputs(family, dtype, device, gen)
    args = [t.requires_grad_() for t in (mu, second)]
    eager = torch.autograd.grad(step(*args), args)
    compiled = torch.autograd.grad(torch.compile(step, fullgraph=True)(*args), args)
    for got, want in zip(compiled, eager, strict=True):
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol)
