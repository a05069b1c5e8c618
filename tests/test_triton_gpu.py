"""GPU-only checks of the Triton backend's ops (torch.ops.fused_reparam.triton_*): each op,
forward and backward, under torch.compile(fullgraph=True) (each op one opaque call in the
graph, its fake kernel traced) against eager; float32 sigma = exp(0.5 * logvar) within
1e-6 relative of float64 for |logvar| up to 80; a row of more than 65535 tiles (the stats
backward's launch). Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import randn

OPS = ("diag_rsample", "chol_rsample", "diag_rsample_stats", "chol_rsample_stats")
HAS_TRITON = torch.cuda.is_available() and all(
    "triton" in fused_reparam.available_backends("cuda", op) for op in OPS
)
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="needs a GPU and the Triton backend")
DEV = "cuda"
SEED, OFFSET = 2**63 + 12345, 2**33 + 7
KINDS = ["diag", "chol", "diag_stats", "chol_stats"]
# Where eps comes from, and whether the backward op returns grad_eps.
MODES = ["stream", "eps", "eps_and_grad_eps"]
RTOL = 1e-6


def _op_pair(kind: str) -> tuple:
    name = "triton_" + kind.split("_")[0] + "_rsample" + ("_stats" if "stats" in kind else "")
    ns = torch.ops.fused_reparam
    return getattr(ns, name).default, getattr(ns, f"{name}_backward").default


def _forward_backward(kind: str, need_grad_eps: bool):
    """fn(mu, second, eps, seed_offset, grad_z, grad_kl, grad_log_q): the forward op's outputs
    and the backward op's, fed the stream the forward used."""
    fwd, bwd = _op_pair(kind)
    stats = kind.endswith("_stats")

    def fn(mu, second, eps, seed_offset, gz, gk, gq):
        out = fwd(mu, second, eps=eps, seed_offset=seed_offset if eps is None else None)
        used = out[-1]
        if stats:
            grads = bwd(gz, gk, gq, mu, second, eps, used, need_grad_eps)
        else:
            grads = bwd(gz, second, eps, used, need_grad_eps)
        return (*out, *grads)

    return fn


def _factor(shape, gen) -> torch.Tensor:
    """A well-conditioned float32 lower factor, NaN above the diagonal (never read)."""
    d = shape[-1]
    L = 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64).tril(-1) / d**0.5
    L = L + torch.diag_embed(0.75 + 0.5 * torch.rand(shape[:-1], generator=gen, dtype=L.dtype))
    L = L + torch.triu(torch.full_like(L, float("nan")), diagonal=1)
    return L.float().to(DEV)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_ops_under_compile_fullgraph_equal_eager(kind, mode, gen):
    """Compiled, every output of both ops is eager's: no output is lost to an argument that
    aliases it when torch.compile functionalizes the kernel launches."""
    shape = (5, 37)  # rows starting inside a Philox group, a partial last tile
    mu = randn(shape, torch.float32, DEV, gen)
    second = randn(shape, torch.float32, DEV, gen, 0.5) if kind.startswith("diag") else None
    if second is None:
        second = _factor((*shape, shape[-1]), gen)
    eps = None if mode == "stream" else randn(shape, torch.float32, DEV, gen)
    so = torch.tensor([SEED - 2**64, OFFSET], dtype=torch.int64, device=DEV)
    gz = randn(shape, torch.float32, DEV, gen)
    gk, gq = randn(shape[:-1], torch.float32, DEV, gen), randn(shape[:-1], torch.float32, DEV, gen)
    fn = _forward_backward(kind, mode == "eps_and_grad_eps")
    args = (mu, second, eps, so, gz, gk, gq)
    expected = fn(*args)
    torch._dynamo.reset()  # a fresh compile for each case (the cache limit would run eager)
    got = torch.compile(fn, fullgraph=True)(*args)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        torch.testing.assert_close(g, e, equal_nan=True)


def _assert_within(got: torch.Tensor, want: torch.Tensor, terms: torch.Tensor, what: str) -> None:
    """|got - want| <= RTOL * terms, terms the sum of the formula's magnitudes (a relative
    bound that holds where terms cancel)."""
    err = (got.double() - want).abs()
    ratio = (err / terms).max().item()
    assert bool((err <= RTOL * terms).all()), f"{what}: error up to {ratio:.3g} of its terms"


@pytest.mark.parametrize("kind", ["diag", "diag_stats"])
def test_float32_sigma_matches_float64_at_large_logvar(kind, gen):
    """logvar over [-80, 80]: z and every gradient within 1e-6 relative of a float64 evaluation
    on the same float32 inputs (tl.exp's float32 lowering, ex2.approx of x * log2(e), is off by
    up to 2e-6 here; libdevice's exp by 2 ulp)."""
    shape = (4, 1031)
    logvar = torch.linspace(-80, 80, shape[0] * shape[1], device=DEV).reshape(shape)
    mu, eps, gz = (randn(shape, torch.float32, DEV, gen) for _ in range(3))
    gk, gq = randn(shape[:-1], torch.float32, DEV, gen), randn(shape[:-1], torch.float32, DEV, gen)
    so = torch.zeros(2, dtype=torch.int64, device=DEV)  # not read: eps is given
    fwd, bwd = _op_pair(kind)
    m, lv, e, g = (t.double() for t in (mu, logvar, eps, gz))
    sigma = torch.exp(0.5 * lv)
    z = fwd(mu, logvar, eps=eps)[0]
    _assert_within(z, m + sigma * e, m.abs() + (sigma * e).abs(), "z")
    if kind == "diag":
        g_lv, g_eps = bwd(gz, logvar, eps, so, True)
        _assert_within(g_lv, 0.5 * g * sigma * e, (0.5 * g * sigma * e).abs(), "grad_logvar")
        _assert_within(g_eps, g * sigma, (g * sigma).abs(), "grad_eps")
        return
    k, q = gk.double()[:, None], gq.double()[:, None]
    g_mu, g_lv, g_eps = bwd(gz, gk, gq, mu, logvar, eps, so, True)
    _assert_within(g_mu, g + k * m, g.abs() + (k * m).abs(), "grad_mu")
    want = 0.5 * (g * sigma * e + k * (sigma * sigma - 1.0) - q)
    terms = 0.5 * ((g * sigma * e).abs() + k.abs() * (sigma * sigma + 1.0) + q.abs())
    _assert_within(g_lv, want, terms, "grad_logvar")
    _assert_within(g_eps, g * sigma - q * e, (g * sigma).abs() + (q * e).abs(), "grad_eps")


def test_stats_backward_of_a_row_of_more_than_65535_tiles(gen):
    """One row of D > 65535 * DIAG_MAX_BLOCK_D elements (a KL over one flattened weight
    vector): more tiles than CUDA's grid dims 1 and 2 hold. Every gradient against float64."""
    from fused_reparam._triton import stats_ops

    d = (65535 + 1) * stats_ops.DIAG_MAX_BLOCK_D + 3
    shape = (1, d)
    # Drawn on the device: 2**26 elements.
    dev_gen = torch.Generator(DEV).manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
    mu, eps, gz, gk, gq = (torch.randn(s, device=DEV, generator=dev_gen)
                           for s in (shape, shape, shape, 1, 1))  # fmt: skip
    logvar = 0.5 * torch.randn(shape, device=DEV, generator=dev_gen)
    so = torch.zeros(2, dtype=torch.int64, device=DEV)  # not read: eps is given
    _, bwd = _op_pair("diag_stats")
    g_mu, g_lv, g_eps = bwd(gz, gk, gq, mu, logvar, eps, so, True)
    k, q = gk.double(), gq.double()
    g, m = gz.double(), mu.double()
    _assert_within(g_mu, g + k * m, g.abs() + (k * m).abs(), "grad_mu")
    del g_mu, m
    sigma, e = torch.exp(0.5 * logvar.double()), eps.double()
    want = 0.5 * (g * sigma * e + k * (sigma * sigma - 1.0) - q)
    terms = 0.5 * ((g * sigma * e).abs() + k.abs() * (sigma * sigma + 1.0) + q.abs())
    _assert_within(g_lv, want, terms, "grad_logvar")
    del want, terms, g_lv
    _assert_within(g_eps, g * sigma - q * e, (g * sigma).abs() + (q * e).abs(), "grad_eps")
