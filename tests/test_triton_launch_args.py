"""What the Triton ops pass to their kernels, checked at the launch without running a kernel
(no GPU needed, interpreted or not): each input and output of an op is passed in one argument
only (an absent operand gets a dummy tensor, so no kernel sees an output aliased to another
argument); torch's own mutation analysis of each compiled kernel finds exactly the op's
outputs written; and every grid fits CUDA's limits (dims 1 and 2 at most 65535), for any D."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

triton = pytest.importorskip("triton")
# The op modules register the Triton kernels of the ops when imported (for CPU tensors too
# under TRITON_INTERPRET=1); with their launches intercepted, no kernel runs.
from fused_reparam import _families  # noqa: E402
from fused_reparam._triton import chol_ops, diag_ops, stats_ops  # noqa: E402


def _kernel_of(name: str):
    """The Python kernel registered for fused_reparam::<name>, called directly: without a
    GPU and without the interpreter no kernel is registered for CPU tensors."""
    for module in (diag_ops, chol_ops, stats_ops):
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"no Triton kernel function {name}")


KINDS = ["diag", "chol", "diag_stats", "chol_stats"]
# Where eps comes from, and whether the backward op returns grad_eps.
MODES = ["stream", "eps", "eps_and_grad_eps"]
CUDA_GRID_LIMITS = (2**31 - 1, 65535, 65535)


class Launch(NamedTuple):
    kernel: object
    grid: tuple[int, ...]
    args: dict  # argument name -> value


@pytest.fixture
def launches(monkeypatch) -> list[Launch]:
    """Every kernel launch of the Triton ops from here on, recorded instead of run."""
    recorded: list[Launch] = []

    class Recorder:
        def __init__(self, kernel) -> None:
            self.kernel = kernel

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                named = dict(zip(self.kernel.arg_names, args, strict=False))
                recorded.append(Launch(self.kernel, tuple(grid), {**named, **kwargs}))

            return launch

    # The ops launch the kernels through their modules' globals.
    for module in (diag_ops, chol_ops, stats_ops):
        for name, value in list(vars(module).items()):
            if name.endswith("_kernel") and hasattr(value, "arg_names"):
                monkeypatch.setattr(module, name, Recorder(value))
    return recorded


def _op_calls(kind: str, mode: str) -> list:
    """(op, args) of the forward and the backward op of `kind`, inputs all distinct tensors."""
    gen = torch.Generator().manual_seed(0)
    shape = (3, 8)
    mu, gz, gk, gq = (torch.randn(s, generator=gen) for s in (shape, shape, 3, 3))
    if kind.startswith("diag"):
        second = torch.randn(shape, generator=gen)
    else:
        second = torch.eye(8) + 0.1 * torch.randn(3, 8, 8, generator=gen).tril()
    eps = None if mode == "stream" else torch.randn(shape, generator=gen)
    so = torch.tensor([5, 7])
    need_grad_eps = mode == "eps_and_grad_eps"
    base, stats = kind.split("_")[0], kind.endswith("_stats")
    name = f"triton_{base}_rsample" + ("_stats" if stats else "")
    uppers = (gz, gk, gq) if stats else (gz,)
    second_args = (mu, second) if stats else (second,)
    lead = _families.FAMILIES[base].lead_args(())  # the diagonal ops' scale
    return [
        (_kernel_of(name), (mu, second, *lead, eps, so if eps is None else None)),
        (_kernel_of(f"{name}_backward"), (*uppers, *second_args, eps, so, need_grad_eps)),
    ]


def _launch_of(op, args, launches: list[Launch]) -> tuple[tuple[torch.Tensor, ...], Launch]:
    """The op's outputs and its one kernel launch."""
    launches.clear()
    outputs = op(*args)
    assert len(launches) == 1, f"{op}: {len(launches)} launches"
    return outputs, launches[0]


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _check_grid(launch: Launch) -> None:
    name = launch.kernel.fn.__name__
    for dim, (size, limit) in enumerate(zip(launch.grid, CUDA_GRID_LIMITS, strict=False)):
        assert 1 <= size <= limit, f"{name}: grid dim {dim} is {size}, CUDA allows {limit}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_no_input_or_output_is_passed_twice(kind, mode, launches):
    """Every input and output of the op (z, used, kl, log_q, the gradients) is passed once, in
    its own argument: absent operands (eps, seed_offset, grad_eps, the extras' pointers of the
    plain Cholesky kernels) get a dummy, which they may share."""
    for op, args in _op_calls(kind, mode):
        outputs, launch = _launch_of(op, args, launches)
        own = {_storage(t) for t in (*args, *outputs) if isinstance(t, torch.Tensor)}
        by_storage: dict[int, list[str]] = {}
        for n, t in launch.args.items():
            if isinstance(t, torch.Tensor):
                by_storage.setdefault(_storage(t), []).append(n)
        shared = [names for s, names in by_storage.items() if len(names) > 1 and s in own]
        assert not shared, f"{op}: these arguments are one input or output: {shared}"
        for out in outputs:
            if out.numel():
                assert _storage(out) in by_storage, f"{op}: an output is not an argument"
        _check_grid(launch)


def _written_arguments(kernel, args: dict) -> set[str]:
    """The pointer arguments torch.compile's analysis of the compiled kernel finds stored to
    (all of them when the analysis fails)."""
    wrap = pytest.importorskip("torch._higher_order_ops.triton_kernel_wrap")
    if hasattr(wrap, "identify_accessed_tensors"):
        accesses = wrap.identify_accessed_tensors(kernel, args, {})
        return {dep.name for dep in accesses.read_writes.writes}
    return set(wrap.identify_mutated_tensors(kernel, args, {}))


class _CudaTarget:
    """A driver that only names a GPU target: enough for Triton to make a kernel's TTIR."""

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget

        return GPUTarget("cuda", 90, 32)


@pytest.mark.skipif(diag_ops.interpreted(), reason="analyses compiled kernels (no interpreter)")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_compile_mutation_analysis_finds_only_the_outputs_written(
    kind, mode, launches, monkeypatch
):
    """The kernel arguments its TTIR stores to, by torch's own mutation analysis: exactly the
    op's outputs (a kernel writing an input or a dummy, or one output in two places, would be
    a bug in the launch)."""
    monkeypatch.setattr(triton.runtime.driver, "_active", _CudaTarget())
    for op, args in _op_calls(kind, mode):
        outputs, launch = _launch_of(op, args, launches)
        written = _written_arguments(launch.kernel, dict(launch.args))
        stored = sorted(_storage(launch.args[n]) for n in written)
        expected = sorted(_storage(out) for out in outputs if out.numel())
        assert stored == expected, f"{op}: writes {sorted(written)}"


def test_grids_fit_cuda_limits_past_65535_tiles(launches, monkeypatch):
    """A row of 65537 tiles (D = 65537 * 4 with 4-wide tiles, as a row of more than
    65535 * 1024 elements is on the GPU): the diagonal stats backward and the Cholesky forward
    launch grids CUDA accepts (kernels not run)."""
    monkeypatch.setattr(stats_ops, "DIAG_MAX_BLOCK_D", 4)
    monkeypatch.setattr(stats_ops, "DIAG_TILE", 4)
    monkeypatch.setattr(chol_ops, "MAX_BLOCK_D", 4)
    d = 4 * (65535 + 2)
    gz, mu, logvar, gk, gq = (torch.zeros(s) for s in ((1, d), (1, d), (1, d), 1, 1))
    so = torch.tensor([1, 2])
    _kernel_of("triton_diag_rsample_stats_backward")(gz, gk, gq, mu, logvar, None, so, False)
    _kernel_of("triton_chol_rsample")(mu, torch.ones(1, 1).expand(d, d), None, so)
    assert len(launches) == 2
    for launch in launches:
        _check_grid(launch)
