"""Pyro integration (fused_reparam.distributions._pyro): the fused distributions in
``pyro.sample`` with no wrapper, Pyro's wrappers sampling through the fused op, LocScaleReparam,
model inspection, SVI (a VAE on the digits against Pyro's own Normal), and Pyro imported only
when used, nothing changed without it. Skipped where Pyro is not installed."""

# ruff: noqa: E402 (the imports of Pyro follow the skip where it is missing)
from __future__ import annotations

import math
import pickle
import subprocess
import sys

import pytest
import torch

pyro = pytest.importorskip("pyro")

import pyro.distributions as dist
from pyro import poutine
from pyro.distributions.torch_distribution import ExpandedDistribution, TorchDistributionMixin
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.inspect import get_model_relations
from pyro.infer.reparam import LocScaleReparam

from fused_reparam import sample_chol, sample_diag
from fused_reparam.distributions import DiagNormal, LogNormal, MultivariateNormal, Normal

_g = torch.Generator().manual_seed(0)
LOC, LOGVAR = torch.randn(2, 2, 3, generator=_g)
SCALE = 0.5 + torch.rand(2, 3, generator=_g)
TRIL = torch.linalg.cholesky(torch.eye(3) + 0.5)


def fused_normal(g, k):
    return sample_diag(LOC, SCALE, scale="std", num_samples=k, generator=g)


# name: (the distribution with a generator, the fused op's draw with that generator and k).
CASES = {
    "Normal": (lambda g: Normal(LOC, SCALE, generator=g), fused_normal),
    "LogNormal": (lambda g: LogNormal(LOC, SCALE, generator=g), lambda *a: fused_normal(*a).exp()),
    "DiagNormal": (
        lambda g: DiagNormal(LOC, LOGVAR, generator=g),
        lambda g, k: sample_diag(LOC, LOGVAR, num_samples=k, generator=g),
    ),
    "MultivariateNormal": (
        lambda g: MultivariateNormal(LOC, scale_tril=TRIL, generator=g),
        lambda g, k: sample_chol(LOC, TRIL, num_samples=k, generator=g),
    ),
}


def gen(seed=7):
    return torch.Generator().manual_seed(seed)


def alternate_mask(shape):
    return torch.arange(math.prod(shape)).reshape(shape) % 2 == 0


@pytest.fixture(autouse=True)
def _fresh_param_store_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and spares a busy machine
    pyro.clear_param_store()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("wrapper", ["none", "to_event", "mask", "expanded"])
@pytest.mark.parametrize("name", list(CASES))
def test_pyro_sample_draws_with_the_fused_op(name, wrapper):
    make, fused = CASES[name]
    d = make(gen())
    assert isinstance(d, TorchDistributionMixin) and isinstance(d, dist.Distribution)
    fn = {  # as is, or in Pyro's Independent, MaskedDistribution, ExpandedDistribution
        "none": d,
        "to_event": d.to_event(),
        "mask": d.mask(alternate_mask(d.batch_shape)),
        "expanded": ExpandedDistribution(d, (4, *d.batch_shape)),
    }[wrapper]
    site = poutine.trace(lambda: pyro.sample("z", fn)).get_trace().nodes["z"]
    assert site["fn"] is fn and fn.has_rsample
    ref = fused(gen(), 4 if wrapper == "expanded" else None)
    torch.testing.assert_close(site["value"], ref.reshape(site["value"].shape), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_mixin_methods_shapes_and_log_prob(name):
    d = CASES[name][0](None)
    batch, event = d.batch_shape, d.event_shape
    z = d.rsample((4,))
    assert d.event_dim == len(event) and d.shape((5,)) == (5, *batch, *event)
    assert d().shape == d.shape() and d((2,)).shape == (2, *batch, *event)
    ind = d.to_event()
    assert (ind.batch_shape, ind.event_shape) == ((), batch + event)
    torch.testing.assert_close(ind.log_prob(z), d.log_prob(z).flatten(1).sum(-1))
    assert d.to_event(0) is d and ind.to_event(-len(batch)) is d
    e = d.expand_by([4])
    assert type(e) is type(d) and e.batch_shape == (4, *batch) and e.rsample().shape == z.shape
    torch.testing.assert_close(e.log_prob(z), d.log_prob(z))
    mask = alternate_mask(batch)
    torch.testing.assert_close(d.mask(mask).log_prob(z), torch.where(mask, d.log_prob(z), 0.0))
    parts = d.score_parts(z)
    assert parts.score_function == 0 and parts.entropy_term is parts.log_prob
    assert d.has_rsample_(False) is d and not d.has_rsample
    assert torch.equal(d.score_parts(z).score_function, d.log_prob(z))
    assert type(d).__module__ == "fused_reparam.distributions"
    assert isinstance(pickle.loads(pickle.dumps(d)), type(d))


@pytest.mark.parametrize(
    ("cls", "shapes"),
    [
        (Normal, {"loc": (2, 1), "scale": (3,)}),
        (DiagNormal, {"loc": (5, 1, 3), "logvar": ()}),
        (DiagNormal, {"loc": (2, 1), "logvar": (4, 1, 3)}),
        (MultivariateNormal, {"loc": (2, 3), "scale_tril": (4, 1, 3, 3)}),
        (MultivariateNormal, {"loc": (3,), "covariance_matrix": (2, 3, 3)}),
    ],
)
def test_infer_shapes_matches_the_instance(cls, shapes):
    m = ("scale_tril", "covariance_matrix")
    d = cls(**{k: torch.eye(3).expand(s) if k in m else torch.ones(s) for k, s in shapes.items()})
    assert cls.infer_shapes(**shapes) == (d.batch_shape, d.event_shape)


@pytest.mark.parametrize("centered", [0.0, 0.3, 1.0, None])
def test_loc_scale_reparam_keeps_the_fused_normal(centered):
    loc, scale = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 1.0, 2.0])

    def model(generator):
        with pyro.plate("p", 4):
            return pyro.sample("x", Normal(loc, scale, generator=generator).to_event(1))

    keep = LocScaleReparam(centered, shape_params=("generator", "backend"))
    trace = poutine.trace(poutine.reparam(model, {"x": keep})).get_trace(gen(3))
    # Every centering draws the same x: loc + scale * eps, eps from the fused op.
    ref = sample_diag(loc.expand(4, 3), scale.expand(4, 3), scale="std", generator=gen(3))
    torch.testing.assert_close(trace.nodes["x"]["value"], ref)
    assert ("x_centered" in pyro.get_param_store()) == (centered is None)
    if centered != 1.0:
        fn = trace.nodes["x_decentered"]["fn"]
        assert type(fn.base_dist) is Normal and fn.base_dist.generator is not None
        plain = poutine.trace(poutine.reparam(model, {"x": LocScaleReparam(centered)}))
        assert type(plain.get_trace(None).nodes["x_decentered"]["fn"].base_dist) is Normal
        # DiagNormal's form is (loc, logvar): LocScaleReparam takes Normal(loc, scale).to_event(1)
        diag = DiagNormal(torch.zeros(3), torch.zeros(3))
        with pytest.raises(TypeError, match="scale"):
            poutine.reparam(lambda: pyro.sample("x", diag), {"x": LocScaleReparam(centered)})()


def test_model_inspection_sees_shapes_and_classes():
    def model():
        with pyro.plate("p", 4):
            a = pyro.sample("a", Normal(torch.zeros(3), 1.0).to_event(1))
            b = pyro.sample("b", DiagNormal(a, torch.zeros(3)))
            c = pyro.sample("c", MultivariateNormal(b, scale_tril=TRIL))
            s = pyro.sample("s", LogNormal(0.0, 1.0))
            pyro.sample("y", Normal(c.sum(-1), s), obs=torch.ones(4))

    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    sites = {n: s for n, s in trace.nodes.items() if s["type"] == "sample" and n != "p"}
    shapes = {n: (s["value"].shape, s["log_prob"].shape) for n, s in sites.items()}
    assert shapes == {**{n: ((4, 3), (4,)) for n in "abc"}, **{n: ((4,), (4,)) for n in "sy"}}
    assert "b dist 4 | 3" in trace.format_shapes()
    relations = get_model_relations(model)
    assert relations["sample_sample"] == {"a": [], "b": ["a"], "c": ["b"], "s": [], "y": ["c", "s"]}
    names = ["Normal", "DiagNormal", "MultivariateNormal", "LogNormal", "Normal"]
    assert relations["sample_dist"] == dict(zip("abcsy", names, strict=True))


# name: a guide over a 3-vector from parameters (loc, log of the standard deviation).
GUIDES = {
    "Normal": lambda m, s: Normal(m, s.exp()).to_event(1),
    "LogNormal": lambda m, s: LogNormal(m, s.exp()).to_event(1),
    "DiagNormal": lambda m, s: DiagNormal(m, 2 * s),
    "MultivariateNormal": lambda m, s: MultivariateNormal(m, scale_tril=s.exp().diag()),
}


@pytest.mark.parametrize("name", list(GUIDES))
def test_svi_fits_a_gaussian_with_each_class_as_guide(name):
    target = torch.tensor([1.0, -1.0, 0.5])
    prior = (dist.LogNormal if name == "LogNormal" else dist.Normal)(target, 0.5).to_event(1)

    def guide():
        loc, log_sd = (pyro.param(n, lambda: torch.zeros(3)) for n in ("loc", "log_sd"))
        pyro.sample("z", GUIDES[name](loc, log_sd))

    svi = SVI(lambda: pyro.sample("z", prior), guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        losses = [svi.step() for _ in range(300)]
    assert sum(losses[-50:]) < sum(losses[:50])
    store = pyro.get_param_store()
    torch.testing.assert_close(store["loc"], target, atol=0.15, rtol=0)
    torch.testing.assert_close(store["log_sd"].exp(), torch.full((3,), 0.5), atol=0.1, rtol=0)


# Each in a fresh interpreter: the import order decides how PyroCompat gets registered.
IMPORT_SCRIPTS = {
    "fused_reparam_first": """
import sys, torch, fused_reparam
from fused_reparam.distributions import Normal
assert not [m for m in sys.modules if m.split(".")[0] == "pyro"], "pyro imported eagerly"
from pyro.distributions.torch_distribution import TorchDistributionMixin
assert isinstance(Normal(0.0, 1.0), TorchDistributionMixin)
""",
    "pyro_first": """
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from fused_reparam.distributions import DiagNormal
assert isinstance(DiagNormal(torch.zeros(2), 0.0), TorchDistributionMixin)
""",
    "no_pyro": """
import sys
sys.modules["pyro"] = None  # as if not installed: find_spec gives None, import fails
from fused_reparam.distributions import _pyro, DiagNormal, LogNormal, MultivariateNormal, Normal
assert _pyro.PYRO_BASES == ()
assert not any(isinstance(f, _pyro._RegisterWhenPyroLoads) for f in sys.meta_path)
for cls in (DiagNormal, LogNormal, MultivariateNormal, Normal):
    assert _pyro.PyroCompat not in cls.__mro__ and not hasattr(cls, "to_event"), cls
assert not callable(Normal(0.0, 1.0))
""",
}


@pytest.mark.parametrize("script", list(IMPORT_SCRIPTS))
def test_pyro_is_imported_only_when_used_and_optional(script):
    cmd = [sys.executable, "-c", IMPORT_SCRIPTS[script]]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def _train_digits_vae(guide_normal, seed, x_train, x_test, steps=300):
    """SVI of a one-hidden-layer MLP VAE (latent 8), z ~ ``guide_normal(loc, scale).to_event(1)``
    in the guide. Same weights and batches in every run: `seed` and the guide class decide the
    noise. Returns the test ELBO per image before and after (10 particles, fixed noise)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        enc = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
        dec = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))

        def model(x):
            pyro.module("dec", dec)
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", dist.Normal(torch.zeros(8), 1.0).to_event(1))
                # Grey levels in [0, 1]: the cross-entropy likelihood of fused_reparam.vae.
                px = dist.Bernoulli(logits=dec(z), validate_args=False)
                pyro.sample("x", px.to_event(1), obs=x)

        def guide(x):
            pyro.module("enc", enc)
            loc, log_scale = enc(x).chunk(2, -1)
            with pyro.plate("data", x.shape[0]):
                pyro.sample("z", guide_normal(loc, log_scale.exp()).to_event(1))

        @torch.no_grad()
        def elbo_on_test():
            torch.manual_seed(1000)
            return -Trace_ELBO(num_particles=10).loss(model, guide, x_test) / len(x_test)

        pyro.clear_param_store()
        before = elbo_on_test()
        # The learning rate decays tenfold over the run: less SGD noise in the final weights.
        optim = pyro.optim.ClippedAdam({"lr": 1e-2, "lrd": 0.1 ** (1 / steps)})
        svi = SVI(model, guide, optim, Trace_ELBO())
        batches = torch.Generator().manual_seed(1)
        torch.manual_seed(seed)
        for _ in range(steps):
            svi.step(x_train[torch.randint(0, len(x_train), (100,), generator=batches)])
        return before, elbo_on_test()


def test_svi_vae_on_digits_matches_pyro_normal():
    """The fused Normal as a VAE's guide in SVI reaches the ELBO of Pyro's Normal. Tolerance: the
    guides differ only in the noise drawing z (Philox in the fused op, or torch's), so with a right
    fused sampler a fused run is one more draw of the final ELBO over training noise. Its spread s
    is measured on the reference runs alone (R = 3 seeds of Pyro's Normal, 2 degrees of freedom),
    so that a faulty sampler cannot widen its own tolerance: the means over R seeds may differ by
    t * s * sqrt(2 / R) with t = 9.92 (two-sided 1% at 2 dof), about 2 nats here, at least 0.25
    (1% of the ELBO). Each run must gain over 10 nats on the initial -45 per image (they gain 18);
    a guide whose scale gets no gradient ends 2 to 100 nats lower."""
    pytest.importorskip("sklearn")
    from fused_reparam.vae import load_digits_data

    x_train, x_test = load_digits_data()
    r = 3  # seeds per guide
    runs = {
        name: [_train_digits_vae(cls, seed, x_train, x_test) for seed in range(r)]
        for name, cls in (("fused", Normal), ("pyro", dist.Normal))
    }
    assert all(after - before > 10.0 for res in runs.values() for before, after in res), runs
    finals = {name: torch.tensor([after for _, after in results]) for name, results in runs.items()}
    tolerance = max(9.92 * finals["pyro"].std().item() * math.sqrt(2 / r), 0.25)
    diff = (finals["fused"].mean() - finals["pyro"].mean()).item()
    assert abs(diff) <= tolerance, (diff, tolerance, finals)
