"""Bad input to the Cholesky op gets a clear error, from sample_chol and from the ops
themselves, and a backend that cannot run it says why."""

from __future__ import annotations

import pytest
import torch

import fused_reparam
from _chol_cases import DEVICE_BACKENDS, FUSED, OP
from conftest import chol_op_pair
from fused_reparam import sample_chol


def _bad(device):
    mu, L = torch.zeros(3, 4, device=device), torch.eye(4, device=device)
    return [
        (lambda b: sample_chol(mu, torch.zeros(4, device=device), backend=b), ValueError,
         r"scale_tril must have shape \[\.\.\., D, D\]"),
        (lambda b: sample_chol(mu, torch.zeros(4, 3, device=device), backend=b), ValueError,
         "scale_tril must be square"),
        (lambda b: sample_chol(mu, torch.eye(5, device=device), backend=b), ValueError,
         "mu has D = 4"),
        (lambda b: sample_chol(torch.zeros((), device=device), L, backend=b), ValueError,
         r"mu must have shape \[\.\.\., D\]"),
        (lambda b: sample_chol(mu, torch.zeros(2, 4, 4, device=device), backend=b), ValueError,
         "not broadcastable"),
        (lambda b: sample_chol(mu, L.double(), backend=b), TypeError, "scale_tril has dtype"),
        (lambda b: sample_chol(mu.long(), L, backend=b), TypeError, "mu must be float32"),
        (lambda b: sample_chol(mu, L, eps=torch.zeros(4, device=device), backend=b),
         ValueError, r"eps must have shape \[3, 4\]"),
        (lambda b: sample_chol(mu, L, seed=-1, backend=b), ValueError, "seed must be in"),
    ]  # fmt: skip


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
@pytest.mark.parametrize("case", range(9))
def test_bad_input_raises_clear_error(device, backend, case):
    call, exc, msg = _bad(device)[case]
    with pytest.raises(exc, match=msg):
        call(backend)


@pytest.mark.parametrize(("device", "backend"), FUSED)
def test_op_checks(device, backend):
    """The ops' own checks (the C++ ops raise RuntimeError, the Triton ops ValueError)."""
    fwd, bwd = chol_op_pair(backend)
    errors = (RuntimeError, ValueError)
    z = torch.zeros(3, device=device)
    with pytest.raises(errors, match="scale_tril must be square"):
        fwd(z, torch.zeros(3, 2, device=device))
    with pytest.raises(errors, match="mu has D = 3"):
        fwd(z, torch.zeros(4, 4, device=device))
    with pytest.raises(errors, match="seed_offset must be an int64 tensor of 2 elements"):
        fwd(z, torch.eye(3, device=device), None, torch.zeros(3, dtype=torch.int64, device=device))
    with pytest.raises(errors, match="eps must have shape"):
        fwd(z, torch.eye(3, device=device), torch.zeros(2, device=device))
    so = torch.zeros(2, dtype=torch.int64, device=device)
    with pytest.raises(errors, match="need_grad_eps requires an explicit eps"):
        bwd(z, torch.eye(3, device=device), None, so, True)
    with pytest.raises(errors, match="must broadcast to grad_z's batch shape"):
        bwd(z, torch.zeros(2, 3, 3, device=device), None, so, False)


def test_backends_say_why_they_cannot_run_the_op():
    mu, L = torch.zeros(2), torch.eye(2)
    with pytest.raises(RuntimeError, match="backend 'cuda' is not available: it runs on cuda"):
        sample_chol(mu, L, backend="cuda")
    if torch.cuda.is_available() and "cuda" not in fused_reparam.available_backends("cuda", OP):
        with pytest.raises(RuntimeError, match="backend 'cuda' is not available"):
            sample_chol(mu.cuda(), L.cuda(), backend="cuda")
    if "triton" in fused_reparam.available_backends("cpu", OP):
        expected = sample_chol(mu, L, seed=1, backend="reference")
        torch.testing.assert_close(sample_chol(mu, L, seed=1, backend="triton"), expected)
    else:
        with pytest.raises(RuntimeError, match=r"backend 'triton' is not available: (no CUDA|Tri)"):
            sample_chol(mu, L, backend="triton")
