"""Shared fixtures: devices and backends to parametrize over, and a seeded data generator."""

from __future__ import annotations

import os
import random
import zlib

import pytest
import torch

import fused_reparam
from fused_reparam import _families

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

# Fixed test data by default. FUSED_REPARAM_TEST_SEED=<int> picks other data, =random fresh
# data each run; the seed used is printed (report header and end) to replay a run.
_SEED_SETTING = os.environ.get("FUSED_REPARAM_TEST_SEED", "0").strip()
RUN_SEED = random.randrange(2**31) if _SEED_SETTING == "random" else int(_SEED_SETTING)
# pytest-xdist workers inherit the environment: all of them use the seed printed here.
os.environ["FUSED_REPARAM_TEST_SEED"] = str(RUN_SEED)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def backends_for(device: str) -> list[str]:
    """Every backend that can run the diagonal op on `device` here."""
    return fused_reparam.available_backends(device)


DEVICE_BACKENDS = [(d, b) for d in DEVICES for b in backends_for(d)]
FUSED_DEVICE_BACKENDS = [(d, b) for d, b in DEVICE_BACKENDS if b != "reference"]


def op_pair(family: str, backend: str, stats: bool = False) -> tuple:
    """The registered (forward, backward) ops of a family on a fused backend."""
    name = _families.BACKEND_PREFIX[backend] + _families.FAMILIES[family].op(stats)
    ops = torch.ops.fused_reparam
    return getattr(ops, name).default, getattr(ops, f"{name}_backward").default


def diag_op_pair(backend: str) -> tuple:
    """The registered (forward, backward) diagonal ops of a fused backend."""
    return op_pair("diag", backend)


def chol_op_pair(backend: str) -> tuple:
    """The registered (forward, backward) Cholesky ops of a fused backend."""
    return op_pair("chol", backend)


RUN_SLOW = os.environ.get("FUSED_REPARAM_SLOW_TESTS", "") == "1"


def skip_if_interpreted_and_slow(device: str, backend: str, covered_by: str) -> None:
    """Skips a case that takes tens of seconds under the Triton interpreter (the default run
    stays quick), unless FUSED_REPARAM_SLOW_TESTS=1."""
    if backend == "triton" and device == "cpu" and not RUN_SLOW:
        pytest.skip(
            f"slow under the Triton interpreter (FUSED_REPARAM_SLOW_TESTS=1 runs it); "
            f"{covered_by} covers Triton on smaller cases"
        )


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
