"""Shared fixtures: devices and backends to parametrize over, and a fresh-data generator."""

from __future__ import annotations

import os
import random
import zlib

import pytest
import torch

import fused_reparam

# FUSED_REPARAM_COLLECT_GPU=1 with --collect-only: collect as on a machine with a GPU and every
# GPU backend, so a GPU test selection (benchmarks/gpu_core_tests.txt) is checked for names that
# no longer exist on a machine without one. Nothing runs in this mode (pytest_configure).
COLLECT_GPU = os.environ.get("FUSED_REPARAM_COLLECT_GPU", "") == "1"
GPU_BACKENDS_ALL = ["cuda", "triton", "reference"]


def _pretend_gpu_for_collection() -> None:
    available = fused_reparam.available_backends

    def with_gpu(device: str | torch.device = "cpu", op: str = "diag_rsample") -> list[str]:
        if torch.device(device).type == "cuda":
            return list(GPU_BACKENDS_ALL)
        return available(device, op)

    torch.cuda.is_available = lambda: True
    fused_reparam.available_backends = with_gpu


if COLLECT_GPU:
    _pretend_gpu_for_collection()

# Fresh data each run; FUSED_REPARAM_TEST_SEED (printed in the report header) replays a run.
RUN_SEED = int(os.environ.get("FUSED_REPARAM_TEST_SEED", random.randrange(2**31)))
# pytest-xdist workers inherit the environment: all of them use the seed printed here.
os.environ["FUSED_REPARAM_TEST_SEED"] = str(RUN_SEED)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def backends_for(device: str) -> list[str]:
    """Every backend that can run the diagonal op on `device` here."""
    return fused_reparam.available_backends(device)


DEVICE_BACKENDS = [(d, b) for d in DEVICES for b in backends_for(d)]
FUSED_DEVICE_BACKENDS = [(d, b) for d, b in DEVICE_BACKENDS if b != "reference"]


def diag_op_pair(backend: str) -> tuple:
    """The registered (forward, backward) ops of a fused backend.

    The C++ forward takes a trailing Generator argument, the Triton forward does not.
    """
    ops = torch.ops.fused_reparam
    if backend == "triton":
        return ops.triton_diag_rsample.default, ops.triton_diag_rsample_backward.default
    return ops.diag_rsample.default, ops.diag_rsample_backward.default


def chol_op_pair(backend: str) -> tuple:
    """The registered (forward, backward) Cholesky ops of a fused backend.

    The C++ forward takes a trailing Generator argument, the Triton forward does not.
    """
    ops = torch.ops.fused_reparam
    if backend == "triton":
        return ops.triton_chol_rsample.default, ops.triton_chol_rsample_backward.default
    return ops.chol_rsample.default, ops.chol_rsample_backward.default


def cpu_isas() -> list[str]:
    """The CPU kernel builds this machine can run (empty without the extension)."""
    if not fused_reparam.has_extension():
        return []
    order = ["default", "avx2", "avx512"]
    best = torch.ops.fused_reparam._cpu_kernel_isa("best")
    return order[: order.index(best) + 1]


def pytest_configure(config: pytest.Config) -> None:
    """Refuses to run tests while pretending to have a GPU (collection only)."""
    if COLLECT_GPU and not config.option.collectonly:
        raise pytest.UsageError("FUSED_REPARAM_COLLECT_GPU=1 is for --collect-only runs")


def pytest_report_header() -> str:
    """The run seed, so a failure on fresh data can be replayed."""
    return f"FUSED_REPARAM_TEST_SEED={RUN_SEED}"


def pytest_terminal_summary(terminalreporter) -> None:
    """The run seed again at the end (the header is hidden under -q)."""
    terminalreporter.write_line(f"test data: FUSED_REPARAM_TEST_SEED={RUN_SEED}")


@pytest.fixture
def gen(request) -> torch.Generator:
    """A generator seeded from the run seed and the test's name (a stable hash, not `hash`,
    which Python salts per process): fresh data per test, replayed by the run seed."""
    seed = (RUN_SEED + zlib.crc32(request.node.nodeid.encode())) % 2**63
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _restore_cpu_isa():
    yield
    if fused_reparam.has_extension():
        torch.ops.fused_reparam._cpu_kernel_isa("best")


def randn(shape, dtype, device, gen, scale: float = 1.0) -> torch.Tensor:
    """Random data drawn in float64 on the CPU, then cast: the same values on every device."""
    return (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype).to(device)


def assert_mostly_different(a: torch.Tensor, b: torch.Tensor) -> None:
    """Asserts that two samples drawn with different noise differ almost everywhere.

    Two independent float32 normals are torch.isclose with probability about 5e-6, so over
    thousands of elements a few may coincide by chance: at most 3 + 0.01% of them may.
    """
    close = int(torch.isclose(a, b).sum())
    assert close <= 3 + a.numel() // 10_000, f"{close} of {a.numel()} elements are equal"
