"""The two autograd paths of the fused ops give the same numbers: the light eager path
(`_eager_ops.call`, an autograd.Function over the op called below autograd) and the
torch.library path that torch.compile, opcheck, modes and tensor subclasses use."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

import fused_reparam
from conftest import FUSED_DEVICE_BACKENDS, randn
from fused_reparam import _eager_ops

pytestmark = pytest.mark.skipif(not FUSED_DEVICE_BACKENDS, reason="no fused backend")


class _PassThrough(TorchFunctionMode):
    """Changes nothing, but an active mode sends every call down the torch.library path."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _inputs(kind: str, dtype: torch.dtype, device: str, gen: torch.Generator) -> list:
    rows, d = 7, 5
    mu = randn((rows, d), dtype, device, gen)
    if kind == "diag":
        second = randn((rows, d), dtype, device, gen, 0.5)
    else:  # a well-conditioned lower triangle (positive diagonal) for log|L_ii|
        second = randn((rows, d, d), dtype, device, gen, 0.3).tril()
        second = second + torch.diag_embed(1.0 + randn((rows, d), dtype, device, gen).abs())
    return [t.requires_grad_() for t in (mu, second)]


def _run(kind: str, stats: bool, backend: str, inputs: list, create_graph: bool) -> list:
    """Outputs and first (and with create_graph, second) derivatives of one call."""
    fn = fused_reparam.sample_diag if kind == "diag" else fused_reparam.sample_chol
    out = fn(*inputs, seed=1234, offset=5, backend=backend, return_stats=stats)
    outs = list(out) if stats else [out]
    # Weights that depend on the outputs' positions make every gradient term non-trivial.
    loss = sum((o * torch.linspace(0.5, 1.5, o.numel(), dtype=o.dtype, device=o.device)
                .reshape(o.shape)).sum() for o in outs)  # fmt: skip
    grads = torch.autograd.grad(loss, inputs, create_graph=create_graph)
    result = [o.detach() for o in outs] + [g.detach() for g in grads]
    if create_graph:
        second = torch.autograd.grad(sum(g.sum() for g in grads), inputs, materialize_grads=True)
        result += [g.detach() for g in second]
    return result


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
@pytest.mark.parametrize("kind", ["diag", "chol"])
@pytest.mark.parametrize("stats", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eager_and_library_paths_agree(device, backend, kind, stats, dtype, gen):
    create_graph = dtype == torch.float64
    inputs = _inputs(kind, dtype, device, gen)
    eager = _run(kind, stats, backend, inputs, create_graph)
    with _PassThrough():
        library = _run(kind, stats, backend, inputs, create_graph)
    assert len(eager) == len(library)
    for a, b in zip(eager, library, strict=True):
        # Same kernels on the same data: the same bits.
        assert torch.equal(a, b)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_which_path_runs(device, backend, gen):
    mu, logvar = _inputs("diag", torch.float32, device, gen)
    eager = fused_reparam.sample_diag(mu, logvar, backend=backend)
    assert type(eager.grad_fn).__name__.endswith("_FunctionBackward")
    with _PassThrough():
        library = fused_reparam.sample_diag(mu, logvar, backend=backend)
    assert not type(library.grad_fn).__name__.endswith("_FunctionBackward")
    with torch.no_grad():
        assert fused_reparam.sample_diag(mu, logvar, backend=backend).grad_fn is None


def test_unregistered_op_is_called_as_is():
    out = _eager_ops.call(torch.ops.aten.add.Tensor, torch.ones(3), torch.ones(3))
    assert torch.equal(out, torch.full((3,), 2.0))


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
@pytest.mark.parametrize("kind", ["diag", "chol"])
def test_activation_checkpointing_recomputes_the_same_sample(device, backend, kind, gen):
    """torch.utils.checkpoint reruns the forward during backward with the generator's state
    restored, so the rerun draws the same stream: the gradients (which depend on z) equal
    those without checkpointing."""
    inputs = _inputs(kind, torch.float64, device, gen)
    fn = fused_reparam.sample_diag if kind == "diag" else fused_reparam.sample_chol

    def loss(*xs: torch.Tensor) -> torch.Tensor:
        return (fn(*xs, backend=backend) ** 2).sum()

    torch.manual_seed(11)
    plain = torch.autograd.grad(loss(*inputs), inputs)
    torch.manual_seed(11)
    checkpointed = torch.utils.checkpoint.checkpoint(loss, *inputs, use_reentrant=False)
    for a, b in zip(plain, torch.autograd.grad(checkpointed, inputs), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("device", "backend"), FUSED_DEVICE_BACKENDS)
def test_checkpointing_with_a_generator_needs_a_seed_drawn_outside(device, backend, gen):
    """checkpoint restores only the default generators, as for torch's own random ops: an
    explicit generator= has moved on when the forward reruns, so the rerun draws another
    sample. The safe pattern draws a seed from the generator outside the checkpointed code."""
    inputs = _inputs("diag", torch.float64, device, gen)

    def grads(seed_from: torch.Generator, seed_outside: bool) -> tuple[torch.Tensor, ...]:
        seed = int(torch.randint(2**62, (), generator=seed_from)) if seed_outside else None

        def loss(*xs: torch.Tensor) -> torch.Tensor:
            kw = {"seed": seed} if seed_outside else {"generator": seed_from}
            return (fused_reparam.sample_diag(*xs, backend=backend, **kw) ** 2).sum()

        out = torch.utils.checkpoint.checkpoint(loss, *inputs, use_reentrant=False)
        return torch.autograd.grad(out, inputs)

    def plain(seed_from: torch.Generator, seed_outside: bool) -> tuple[torch.Tensor, ...]:
        if seed_outside:
            kw = {"seed": int(torch.randint(2**62, (), generator=seed_from))}
        else:
            kw = {"generator": seed_from}
        loss = (fused_reparam.sample_diag(*inputs, backend=backend, **kw) ** 2).sum()
        return torch.autograd.grad(loss, inputs)

    g = torch.Generator(device=device)
    for outside in (True, False):
        expected = plain(g.manual_seed(5), outside)
        got = grads(g.manual_seed(5), outside)
        # d loss / d logvar depends on the sample: equal only when the rerun drew the same.
        assert torch.equal(got[1], expected[1]) == outside
