"""Bad input gets a clear error naming the argument, on every backend and on the C++ ops."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import DEVICE_BACKENDS
from fused_reparam import sample_diag

F = torch.float32


def _bad_calls(device):
    mu = torch.zeros(3, 4, device=device)
    lv = torch.zeros(3, 4, device=device)
    return [
        (
            "int mu",
            lambda b: sample_diag(mu.long(), lv, backend=b),
            TypeError,
            "mu must be float32",
        ),
        (
            "bool logvar",
            lambda b: sample_diag(mu, lv.bool(), backend=b),
            TypeError,
            "logvar must be float32",
        ),
        (
            "list mu",
            lambda b: sample_diag([1.0], lv, backend=b),
            TypeError,
            "mu must be a torch.Tensor",
        ),
        (
            "dtype mismatch",
            lambda b: sample_diag(mu, lv.double(), backend=b),
            TypeError,
            "logvar has dtype torch.float64 but mu has dtype torch.float32",
        ),
        (
            "shapes",
            lambda b: sample_diag(mu, torch.zeros(5, device=device), backend=b),
            ValueError,
            r"mu \(shape \[3, 4\]\) and logvar \(shape \[5\]\) are not broadcastable",
        ),
        (
            "eps shape",
            lambda b: sample_diag(mu, lv, eps=torch.zeros(4, device=device), backend=b),
            ValueError,
            r"eps must have shape \[3, 4\]",
        ),
        (
            "eps dtype",
            lambda b: sample_diag(
                mu, lv, eps=torch.zeros(3, 4, dtype=torch.float64, device=device), backend=b
            ),
            TypeError,
            "eps has dtype",
        ),
        (
            "int eps",
            lambda b: sample_diag(
                mu, lv, eps=torch.zeros(3, 4, dtype=torch.int32, device=device), backend=b
            ),
            TypeError,
            "eps must be float32",
        ),
        (
            "eps and seed",
            lambda b: sample_diag(mu, lv, eps=lv, seed=1, backend=b),
            ValueError,
            "either eps or seed",
        ),
        (
            "negative seed",
            lambda b: sample_diag(mu, lv, seed=-1, backend=b),
            ValueError,
            r"seed must be in \[0, 2\*\*64\)",
        ),
        (
            "huge seed",
            lambda b: sample_diag(mu, lv, seed=2**64, backend=b),
            ValueError,
            "seed must be",
        ),
        (
            "float seed",
            lambda b: sample_diag(mu, lv, seed=1.5, backend=b),
            TypeError,
            "seed must be an int",
        ),
        (
            "huge offset",
            lambda b: sample_diag(mu, lv, seed=1, offset=2**64, backend=b),
            ValueError,
            "offset must be",
        ),
        (
            "offset alone",
            lambda b: sample_diag(mu, lv, offset=3, backend=b),
            ValueError,
            "offset is only used together with seed",
        ),
        (
            "bad generator",
            lambda b: sample_diag(mu, lv, generator=3, backend=b),
            TypeError,
            "generator must be a torch.Generator",
        ),
        (
            "seed and generator",
            lambda b: sample_diag(mu, lv, seed=1, generator=torch.Generator(device), backend=b),
            ValueError,
            "either seed or generator",
        ),
        (
            "bad backend",
            lambda b: sample_diag(mu, lv, backend="fast"),
            ValueError,
            "backend must be one of",
        ),
    ]


CASES = [(d, b, c) for d, b in DEVICE_BACKENDS for c in range(len(_bad_calls("cpu")))]


@pytest.mark.parametrize(("device", "backend", "case"), CASES)
def test_bad_input_raises_clear_error(device, backend, case):
    _name, call, exc, msg = _bad_calls(device)[case]
    with pytest.raises(exc, match=msg):
        call(backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device type")
@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_device_mismatch(device, backend):
    other = "cpu" if device == "cuda" else "cuda"
    with pytest.raises(ValueError, match="logvar is on"):
        sample_diag(torch.zeros(3, device=device), torch.zeros(3, device=other), backend=backend)


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_backend_that_cannot_run_on_cpu_tensors_raises(backend):
    with pytest.raises(RuntimeError, match=f"backend '{backend}' is not available"):
        sample_diag(torch.zeros(3), torch.zeros(3), backend=backend)


def test_env_var_forces_a_backend(monkeypatch):
    monkeypatch.setenv("FUSED_REPARAM_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="backend 'cuda' is not available"):
        sample_diag(torch.zeros(3), torch.zeros(3))
    monkeypatch.setenv("FUSED_REPARAM_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="FUSED_REPARAM_BACKEND must be one of"):
        sample_diag(torch.zeros(3), torch.zeros(3))
    monkeypatch.setenv("FUSED_REPARAM_BACKEND", "reference")
    z = sample_diag(torch.zeros(5), torch.zeros(5), seed=1)
    assert torch.equal(z, sample_diag(torch.zeros(5), torch.zeros(5), seed=1, backend="reference"))


# The C++ ops check their arguments too (libtorch callers, direct torch.ops calls).
CPP = pytest.mark.skipif(not fused_reparam.has_extension(), reason="no compiled extension")


@CPP
@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ((torch.zeros(3, dtype=torch.int64), torch.zeros(3)), "mu must be float32"),
        ((torch.zeros(3), torch.zeros(3, dtype=torch.float64)), "logvar has dtype Double"),
        ((torch.zeros(3, 4), torch.zeros(5)), r"mu \(shape \[3, 4\]\) and logvar \(shape \[5\]\)"),
        ((torch.zeros(3), torch.zeros(3), torch.zeros(4)), r"eps must have shape \[3\]"),
        (
            (torch.zeros(3), torch.zeros(3), None, torch.zeros(3, dtype=torch.int64)),
            "seed_offset must be an int64 tensor of 2 elements",
        ),
        ((torch.zeros(3), torch.zeros(3), None, torch.zeros(2)), "seed_offset must be an int64"),
    ],
)
def test_cpp_forward_op_checks(args, msg):
    with pytest.raises(RuntimeError, match=msg):
        torch.ops.fused_reparam.diag_rsample(*args)


@CPP
def test_cpp_backward_op_checks():
    so = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="must broadcast to grad_z's shape"):
        torch.ops.fused_reparam.diag_rsample_backward(
            torch.zeros(3), torch.zeros(2, 3), None, so, False
        )
    with pytest.raises(RuntimeError, match="need_grad_eps requires an explicit eps"):
        torch.ops.fused_reparam.diag_rsample_backward(
            torch.zeros(3), torch.zeros(3), None, so, True
        )
    with pytest.raises(RuntimeError, match="grad_z must be float32"):
        torch.ops.fused_reparam.diag_rsample_backward(
            torch.zeros(3, dtype=torch.int32), torch.zeros(3), None, so, False
        )


@CPP
def test_cpu_kernel_isa_rejects_unknown_builds():
    with pytest.raises(RuntimeError, match="unknown build 'sse9'"):
        torch.ops.fused_reparam._cpu_kernel_isa("sse9")
