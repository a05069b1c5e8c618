"""Activation checkpointing: torch.utils.checkpoint reruns the forward during backward with
the default generators' state restored, so a rerun call without seed= draws the same stream;
an explicit generator= has moved on by then (as for torch's own random ops), and the safe
pattern draws a seed from it outside the checkpointed code."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import FUSED_DEVICE_BACKENDS, randn

pytestmark = pytest.mark.skipif(not FUSED_DEVICE_BACKENDS, reason="no fused backend")


def _inputs(kind: str, device: str, gen: torch.Generator) -> list[torch.Tensor]:
    rows, d = 7, 5
    mu = randn((rows, d), torch.float64, device, gen)
    if kind == "diag":
        second = randn((rows, d), torch.float64, device, gen, 0.5)
    else:  # a well-conditioned lower triangle
        second = randn((rows, d, d), torch.float64, device, gen, 0.3).tril()
        second = second + torch.diag_embed(1.0 + randn((rows, d), torch.float64, device, gen).abs())
    return [t.requires_grad_() for t in (mu, second)]


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
@pytest.mark.parametrize("kind", ["diag", "chol"])
@pytest.mark.parametrize("stats", [False, True])
def test_checkpointing_recomputes_the_same_sample(device, backend, kind, stats, gen):
    """The gradients (which depend on the sample) equal those without checkpointing."""
    inputs = _inputs(kind, device, gen)
    fn = fused_reparam.sample_diag if kind == "diag" else fused_reparam.sample_chol

    def loss(*xs: torch.Tensor) -> torch.Tensor:
        out = fn(*xs, backend=backend, return_stats=stats)
        return (out.z**2).sum() + out.log_q.sum() if stats else (out**2).sum()

    torch.manual_seed(11)
    plain = torch.autograd.grad(loss(*inputs), inputs)
    torch.manual_seed(11)
    checkpointed = torch.utils.checkpoint.checkpoint(loss, *inputs, use_reentrant=False)
    for a, b in zip(plain, torch.autograd.grad(checkpointed, inputs), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_checkpointing_with_a_generator_needs_a_seed_drawn_outside(device, backend, gen):
    inputs = _inputs("diag", device, gen)

    def stream(seed_from: torch.Generator, seed_outside: bool) -> dict:
        if seed_outside:
            return {"seed": int(torch.randint(2**62, (), generator=seed_from))}
        return {"generator": seed_from}

    def checkpointed(seed_from: torch.Generator, seed_outside: bool) -> tuple[torch.Tensor, ...]:
        kw = stream(seed_from, seed_outside)

        def loss(*xs: torch.Tensor) -> torch.Tensor:
            return (fused_reparam.sample_diag(*xs, backend=backend, **kw) ** 2).sum()

        out = torch.utils.checkpoint.checkpoint(loss, *inputs, use_reentrant=False)
        return torch.autograd.grad(out, inputs)

    def plain(seed_from: torch.Generator, seed_outside: bool) -> tuple[torch.Tensor, ...]:
        kw = stream(seed_from, seed_outside)
        loss = (fused_reparam.sample_diag(*inputs, backend=backend, **kw) ** 2).sum()
        return torch.autograd.grad(loss, inputs)

    g = torch.Generator(device=device)
    for outside in (True, False):
        expected = plain(g.manual_seed(5), outside)
        got = checkpointed(g.manual_seed(5), outside)
        # d loss / d logvar depends on the sample: equal only when the rerun drew the same.
        assert torch.equal(got[1], expected[1]) == outside
