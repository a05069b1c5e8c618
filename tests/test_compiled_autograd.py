"""Compiled autograd (torch.compile of the backward pass) runs the fused ops' C++ autograd
nodes: the same gradients as the eager engine, for both families, plain and with the VAE
extras, including the extras' outputs that need no gradient."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo import compiled_autograd

from conftest import FUSED_DEVICE_BACKENDS, randn
from fused_reparam import sample_chol, sample_diag

CPU_BACKENDS = [b for d, b in FUSED_DEVICE_BACKENDS if d == "cpu"]


def _inputs(family: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    mu = randn((5, 3), torch.float64, "cpu", gen)
    if family == "diag":
        second = randn((5, 3), torch.float64, "cpu", gen, scale=0.5)
    else:
        second = torch.eye(3, dtype=torch.float64) + 0.3 * randn((3, 3), torch.float64, "cpu", gen)
        second = second.tril()
    return mu.requires_grad_(), second.requires_grad_()


def _loss(family: str, stats: bool, backend: str, mu, second, weight) -> torch.Tensor:
    fn = sample_diag if family == "diag" else sample_chol
    out = fn(mu, second, seed=11, offset=2, backend=backend, return_stats=stats)
    if not stats:
        return (out * weight).sum()
    return (out.z * weight).sum() + out.kl.sum() + 0.5 * out.log_q.sum()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("stats", [False, True])
@pytest.mark.parametrize("family", ["diag", "chol"])
def test_compiled_autograd_gives_the_eager_gradients(family, stats, backend, gen):
    mu, second = _inputs(family, gen)
    weight = randn((5, 3), torch.float64, "cpu", gen)
    want = torch.autograd.grad(_loss(family, stats, backend, mu, second, weight), (mu, second))
    torch._dynamo.reset()
    loss = _loss(family, stats, backend, mu, second, weight)
    with compiled_autograd._enable(torch.compile(backend="eager")):
        loss.backward()
    torch.testing.assert_close(mu.grad, want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second.grad, want[1], rtol=1e-12, atol=1e-12)


@pytest.mark.skipif("cpu" not in CPU_BACKENDS, reason="needs the compiled CPU kernels")
@pytest.mark.parametrize("family", ["diag", "chol"])
def test_extras_without_a_gradient_stay_constant_under_compiled_autograd(family, gen):
    mu, second = _inputs(family, gen)
    second = second.detach()  # kl then depends on mu only, log_q on nothing that needs grad
    out = (sample_diag if family == "diag" else sample_chol)(
        mu, second, seed=3, backend="cpu", return_stats=True
    )
    assert out.kl.requires_grad and not out.log_q.requires_grad
    want = torch.autograd.grad(out.kl.sum() + out.z.sum(), mu, retain_graph=True)[0]
    torch._dynamo.reset()
    with compiled_autograd._enable(torch.compile(backend="eager")):
        (out.kl.sum() + out.z.sum()).backward()
    torch.testing.assert_close(mu.grad, want, rtol=1e-12, atol=1e-12)
