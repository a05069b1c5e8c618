"""Bad input gets a clear error naming the argument, on every backend and on the C++ ops."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from conftest import DEVICE_BACKENDS, FUSED_DEVICE_BACKENDS, diag_op_pair
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
            "bool s",
            lambda b: sample_diag(mu, lv.bool(), backend=b),
            TypeError,
            ": s must be float32",
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
            ": s has dtype torch.float64 but mu has dtype torch.float32",
        ),
        (
            "shapes",
            lambda b: sample_diag(mu, torch.zeros(5, device=device), backend=b),
            ValueError,
            r"mu \(shape \[3, 4\]\) and s \(shape \[5\]\) are not broadcastable",
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
        (
            "backend not a string",
            lambda b: sample_diag(mu, lv, backend=3),
            TypeError,
            "backend must be one of",
        ),
        (
            "return_stats not a bool",
            lambda b: sample_diag(mu, lv, return_stats="no", backend=b),
            TypeError,
            "return_stats must be True or False, got 'no'",
        ),
        (
            "tensor offset",
            lambda b: sample_diag(mu, lv, offset=torch.tensor([1, 2]), backend=b),
            TypeError,
            "offset must be an int",
        ),
        (
            "meta inputs",
            lambda b: sample_diag(mu.to("meta"), lv.to("meta"), backend=b),
            ValueError,
            "mu is a meta tensor",
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
    with pytest.raises(ValueError, match=": s is on"):
        sample_diag(torch.zeros(3, device=device), torch.zeros(3, device=other), backend=backend)


@pytest.mark.parametrize(
    "backend",
    ["cuda"] + ([] if "triton" in fused_reparam.available_backends("cpu") else ["triton"]),
)
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


# The registered ops check their arguments too (libtorch callers, direct torch.ops calls).
CPP = pytest.mark.skipif(not fused_reparam.has_extension(), reason="no compiled extension")
OP_BACKENDS = sorted({b for d, b in FUSED_DEVICE_BACKENDS if d == "cpu"})
ERRORS = (RuntimeError, TypeError, ValueError)  # C++ TORCH_CHECK raises RuntimeError


@pytest.mark.parametrize("backend", OP_BACKENDS)
@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ((torch.zeros(3, dtype=torch.int64), torch.zeros(3)), "mu must be float32"),
        ((torch.zeros(3), torch.zeros(3, dtype=torch.float64)), ": s has dtype"),
        ((torch.zeros(3, 4), torch.zeros(5)), r"mu \(shape \[3, 4\]\) and s \(shape \[5\]\)"),
        ((torch.zeros(3), torch.zeros(3), 0, torch.zeros(4)), r"eps must have shape \[3\]"),
        (
            (torch.zeros(3), torch.zeros(3), 0, None, torch.zeros(3, dtype=torch.int64)),
            "seed_offset must be an int64 tensor of 2 elements",
        ),
        ((torch.zeros(3), torch.zeros(3), 0, None, torch.zeros(2)), "seed_offset must be an int64"),
    ],
)
def test_forward_op_checks(backend, args, msg):
    op, _ = diag_op_pair(backend)
    with pytest.raises(ERRORS, match=msg):
        op(*args)


@pytest.mark.parametrize("backend", OP_BACKENDS)
def test_backward_op_checks(backend):
    _, op = diag_op_pair(backend)
    so = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ERRORS, match="must broadcast to grad_z's shape"):
        op(torch.zeros(3), torch.zeros(2, 3), None, so, False)
    with pytest.raises(ERRORS, match="need_grad_eps requires an explicit eps"):
        op(torch.zeros(3), torch.zeros(3), None, so, True)
    with pytest.raises(ERRORS, match="grad_z must be float32"):
        op(torch.zeros(3, dtype=torch.int32), torch.zeros(3), None, so, False)
    with pytest.raises(ERRORS, match="seed_offset must be an int64 tensor of 2 elements"):
        op(torch.zeros(3), torch.zeros(3), None, torch.zeros(3, dtype=torch.int64), False)


@CPP
def test_cpu_kernel_isa_rejects_unknown_builds():
    with pytest.raises(RuntimeError, match="unknown build 'sse9'"):
        torch.ops.fused_reparam._cpu_kernel_isa("sse9")


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_numpy_numbers_are_arguments_like_python_numbers(device, backend):
    np = pytest.importorskip("numpy")
    mu = torch.zeros(3, 4, device=device)
    a = sample_diag(mu, mu, seed=np.uint64(2**63 + 5), offset=np.int32(7), backend=backend)
    assert torch.equal(a, sample_diag(mu, mu, seed=2**63 + 5, offset=7, backend=backend))
    a = sample_diag(mu, mu, num_samples=np.int64(2), seed=3, scale="softplus",
                    min_scale=np.float32(0.25), backend=backend)  # fmt: skip
    b = sample_diag(mu, mu, num_samples=2, seed=3, scale="softplus",
                    min_scale=float(np.float32(0.25)), backend=backend)  # fmt: skip
    assert a.shape == (2, 3, 4) and torch.equal(a, b)


def _meta_seed_offset_calls(prefix: str) -> list:
    ops = torch.ops.fused_reparam
    x, so = torch.zeros(4, 3), torch.tensor([1, 2], device="meta")
    lower, rows = torch.eye(3), torch.zeros(4)
    op = lambda name: getattr(ops, prefix + name).default  # noqa: E731
    return [
        lambda: op("diag_rsample")(x, x, 0, None, so),
        lambda: op("diag_rsample_backward")(x, x, None, so, False),
        lambda: op("chol_rsample")(x, lower, None, so),
        lambda: op("chol_rsample_backward")(x, lower, None, so, False),
        lambda: op("diag_rsample_stats")(x, x, 0, None, so),
        lambda: op("diag_rsample_stats_backward")(x, rows, rows, x, x, None, so, False),
        lambda: op("chol_rsample_stats")(x, lower, None, so),
        lambda: op("chol_rsample_stats_backward")(x, rows, rows, x, lower, None, so, False),
    ]


@pytest.mark.parametrize("backend", OP_BACKENDS)
@pytest.mark.parametrize("case", range(8))
def test_op_with_a_meta_seed_offset_and_cpu_inputs_raises(backend, case):
    """The dispatcher sends any call with a meta argument to the Meta (fake) kernel, which
    must refuse mixed devices rather than return uninitialized CPU tensors."""
    call = _meta_seed_offset_calls("triton_" if backend == "triton" else "")[case]
    with pytest.raises(ERRORS, match=r"must be on cpu|is on meta|seed_offset"):
        call()
