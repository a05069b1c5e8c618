"""TanhNormal, the SAC policy distribution: its fused rsample_and_log_prob is
sample_tanh_normal's for the same generator state; log_prob of a given action (through atanh)
agrees with it away from the bounds and stays finite at them; shapes, expand, validation,
pickling, the deterministic action and Pyro."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from conftest import DEVICE_BACKENDS, randn
from fused_reparam import sample_tanh_normal
from fused_reparam.distributions import TanhNormal


@pytest.mark.parametrize(("device", "backend"), DEVICE_BACKENDS)
def test_rsample_and_log_prob_is_the_fused_op(device, backend, gen):
    loc = randn((4, 3), torch.float64, device, gen)
    s = randn((3,), torch.float64, device, gen, scale=0.3) - 1.0
    pi = TanhNormal(loc, s, low=-2.0, high=3.0, backend=backend)
    torch.manual_seed(7)
    action, log_prob = pi.rsample_and_log_prob((5,))
    torch.manual_seed(7)
    want = sample_tanh_normal(loc, s, low=-2.0, high=3.0, num_samples=5, backend=backend)
    assert action.shape == (5, 4, 3) and log_prob.shape == (5, 4)
    assert torch.equal(action, want.action) and torch.equal(log_prob, want.log_prob)
    # log_prob of the drawn action, through atanh, is the fused log-density.
    torch.testing.assert_close(pi.log_prob(action), log_prob, rtol=1e-9, atol=1e-9)
    assert pi.sample((2,)).shape == (2, 4, 3) and not pi.sample().requires_grad


def test_log_prob_at_and_near_the_bounds_is_finite():
    pi = TanhNormal(torch.zeros(2), torch.zeros(2), low=-1.0, high=1.0)
    lp = pi.log_prob(torch.tensor([[1.0, -1.0], [0.9999999, 0.0]]))
    assert torch.isfinite(lp).all()
    # Away from the bounds: the change of variables, by hand.
    a = torch.tensor([0.3, -0.6], dtype=torch.float64)
    pi64 = TanhNormal(torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    u = torch.atanh(a)
    want = (-0.5 * u**2 - 0.5 * math.log(2 * math.pi) - torch.log(1 - a**2)).sum()
    torch.testing.assert_close(pi64.log_prob(a), want)


def test_expand_pickle_deterministic_action_and_errors(gen):
    loc = randn((3,), torch.float64, "cpu", gen)
    pi = TanhNormal(loc, torch.zeros(3, dtype=torch.float64), scale="softplus", low=0.0, high=2.0)
    big = pi.expand((4,))
    assert type(big) is TanhNormal and big.batch_shape == (4,) and big.event_shape == (3,)
    assert big.rsample().shape == (4, 3) and big.scale == "softplus"
    back = pickle.loads(pickle.dumps(pi))
    assert type(back) is TanhNormal and torch.equal(back.loc, loc)
    torch.testing.assert_close(pi.deterministic_action, torch.tanh(loc) + 1.0)
    assert pi.rsample_and_log_prob((0,)).action.shape == (0, 3)
    with pytest.raises(ValueError, match="TanhNormal: low and high must be finite"):
        TanhNormal(loc, loc, low=1.0, high=1.0)
    with pytest.raises(ValueError, match="TanhNormal: scale must be one of"):
        TanhNormal(loc, loc, scale="var")
    with pytest.raises(ValueError, match="at least one dim"):
        TanhNormal(torch.tensor(0.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="support"):
        TanhNormal(loc, loc, validate_args=True).log_prob(torch.full((3,), 2.0, dtype=loc.dtype))


def test_in_pyro():
    pyro = pytest.importorskip("pyro")
    pi = TanhNormal(torch.zeros(2, 3), torch.zeros(2, 3))
    with pyro.plate("batch", 2):
        a = pyro.sample("a", pi)
    assert a.shape == (2, 3) and a.abs().max() < 1
