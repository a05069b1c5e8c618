"""Helpers shared by the GPU benchmarks (bench_diag_gpu.py, bench_chol_gpu.py): the timer,
the memory autograd keeps for backward, and the versions a results file names."""

from __future__ import annotations

import datetime
import platform
import subprocess
from collections.abc import Callable

import torch

import fused_reparam
from _timing import median_ms


def make_timer(
    device: str, *, warmup: int = 25, rep: int = 100
) -> Callable[[Callable[[], object]], float]:
    """Median ms of fn(). CUDA: triton.testing.do_bench (CUDA events, the L2 cache flushed
    before every timed call, `warmup` and `rep` in ms of device time). CPU: wall-clock median
    of 5 calls after one warm-up call."""
    if device == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="median")
    return lambda fn: median_ms(fn, warmup=1, reps=5)


def kept_for_backward(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> int:
    """Bytes autograd keeps alive after the forward fn(*inputs), beyond the inputs and the
    output. CUDA: the growth of torch.cuda.memory_allocated(); CPU: the distinct storages that
    saved-tensor hooks see (the CPU smoke runs)."""
    if inputs[0].device.type != "cuda":
        # Saved storages, each counted once, less the inputs' and the output's.
        saved: dict[int, int] = {}
        input_ptrs = {t.untyped_storage().data_ptr() for t in inputs}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in input_ptrs:
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            z = fn(*inputs)
        saved.pop(z.untyped_storage().data_ptr(), None)
        return sum(saved.values())
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    z = fn(*inputs)
    torch.cuda.synchronize()
    kept = torch.cuda.memory_allocated() - before - z.untyped_storage().nbytes()
    del z
    return max(0, kept)


def driver_version() -> str:
    """The NVIDIA driver version nvidia-smi reports, or "unknown"."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else "unknown"


def versions(device: str, op: str = "diag_rsample") -> dict[str, str]:
    """Date, versions, device name and the best backend for `op` on `device`."""
    info = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "fused_reparam": fused_reparam.__version__,
        "backend": fused_reparam.available_backends(device, op)[0],
    }
    if device == "cuda":
        info["device"] = torch.cuda.get_device_name()
        info["cuda"] = str(torch.version.cuda)
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            info["triton"] = "not installed"
    else:
        info["device"] = platform.processor() or "cpu"
    return info
