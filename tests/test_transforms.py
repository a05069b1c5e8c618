"""Forward-mode AD and torch.func transforms on every backend: the fused ops' autograd cannot
serve them, so the call runs on the reference backend, which draws the same numbers. Every
derivative must equal the reference's, never a silent zero."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

from conftest import DEVICE_BACKENDS, randn
from fused_reparam import sample_chol, sample_diag

SEED = 2**40 + 3


def _inputs(kind: str, device: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    mu = randn((3, 5), torch.float64, device, gen)
    if kind == "chol":
        second = randn((5, 5), torch.float64, device, gen, scale=0.3).tril()
        second = second + 2 * torch.eye(5, dtype=torch.float64, device=device)
    else:
        second = randn((3, 5), torch.float64, device, gen, scale=0.5)
    return mu, second


def _op(kind: str, backend: str, stats: bool = False):
    """(mu, second) -> z, or the sum of kl and log_q with the stats, for a fixed stream."""

    def run(mu: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        sample = sample_chol if kind == "chol" else sample_diag
        out = sample(mu, second, seed=SEED, backend=backend, return_stats=stats)
        return out.z + out.kl[..., None] + out.log_q[..., None] if stats else out

    return run


CASES = [(d, b, k, s) for d, b in DEVICE_BACKENDS for k in ("diag", "chol") for s in (False, True)]


@pytest.mark.parametrize(("device", "backend", "kind", "stats"), CASES)
def test_jvp_and_dual_tensors_give_the_reference_tangent(device, backend, kind, stats, gen):
    mu, second = _inputs(kind, device, gen)
    t_mu, t_second = torch.randn_like(mu), torch.randn_like(second)
    f, ref = _op(kind, backend, stats), _op(kind, "reference", stats)
    z, tangent = jvp(f, (mu, second), (t_mu, t_second))
    z_ref, tangent_ref = jvp(ref, (mu, second), (t_mu, t_second))
    torch.testing.assert_close(z, f(mu, second))  # the backend's own eager sample
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(tangent, tangent_ref)
    assert tangent.abs().max() > 0
    with fwAD.dual_level():
        out = f(fwAD.make_dual(mu, t_mu), fwAD.make_dual(second, t_second))
        dual_tangent = fwAD.unpack_dual(out).tangent
    assert dual_tangent is not None
    torch.testing.assert_close(dual_tangent, tangent_ref)
    torch.testing.assert_close(jacfwd(f, argnums=1)(mu, second), jacrev(ref, argnums=1)(mu, second))


@pytest.mark.parametrize(("device", "backend", "kind", "stats"), CASES)
def test_func_grad_jacrev_and_hessian_equal_the_reference(device, backend, kind, stats, gen):
    mu, second = _inputs(kind, device, gen)
    f, ref = _op(kind, backend, stats), _op(kind, "reference", stats)

    def loss(fn):
        return lambda m, s: (fn(m, s) ** 2).sum()

    for a, b in zip(grad(loss(f), argnums=(0, 1))(mu, second),
                    grad(loss(ref), argnums=(0, 1))(mu, second), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(jacrev(f)(mu, second), jacrev(ref)(mu, second))
    h = hessian(lambda s: loss(f)(mu, s))(second)
    torch.testing.assert_close(h, hessian(lambda s: loss(ref)(mu, s))(second))
    # The eager backward of the fused op agrees with the transforms.
    m, s = mu.clone().requires_grad_(), second.clone().requires_grad_()
    loss(f)(m, s).backward()
    torch.testing.assert_close(s.grad, grad(loss(ref), argnums=1)(mu, second))


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_vmap_follows_randomness_like_randn_like(device, backend, gen):
    mu = randn((4, 6), torch.float32, device, gen)
    logvar = randn((4, 6), torch.float32, device, gen)

    def f(m, lv):
        return sample_diag(m, lv, backend=backend)

    with pytest.raises(RuntimeError, match="randomness"):
        vmap(f)(mu, logvar)  # randomness="error", as torch.randn_like under vmap
    zero = torch.zeros_like(mu)
    same = vmap(f, randomness="same")(zero, zero)
    assert all(torch.equal(same[0], row) for row in same[1:])
    # "different": every instance draws a stream of its own (the reference's Philox takes
    # the drawn [seed, offset] as a tensor, which vmap batches).
    different = vmap(f, randomness="different")(zero, zero)
    assert all(not torch.equal(different[0], row) for row in different[1:])
    # An explicit seed is deterministic: every instance draws that stream.
    seeded = vmap(lambda m, lv: sample_diag(m, lv, seed=5, backend=backend))(mu, logvar)
    rows = [sample_diag(mu[i], logvar[i], seed=5, backend="reference") for i in range(4)]
    torch.testing.assert_close(seeded, torch.stack(rows))
