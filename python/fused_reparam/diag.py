"""The diagonal op: z = mu + sigma(s) * eps, eps ~ N(0, I) made in-kernel, with sigma from s
by the chosen scale parametrization (exp(s / 2) by default: s is the log-variance)."""

from __future__ import annotations

import torch

from . import _checks, _sample, _scales, _seed, _stl
from ._dispatch import sample

_WHERE = "fused_reparam.sample_diag"


def sample_diag(
    mu: torch.Tensor,
    s: torch.Tensor,
    *,
    scale: str = "logvar",
    min_scale: float = 0.0,
    noise: str = "normal",
    num_samples: int | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    offset: int = 0,
    backend: str = "auto",
    return_stats: bool = False,
    stl: bool = False,
) -> torch.Tensor | _sample.ReparamSample:
    """Reparameterized sample of a diagonal Gaussian, in one fused kernel.

    Returns ``z = mu + sigma * eps`` with ``eps ~ N(0, I)`` and ``sigma`` computed from ``s``
    in the kernel, differentiable in ``mu``, ``s`` (and ``eps`` when given). The noise is
    generated inside the kernel and regenerated in the backward pass, so nothing but the
    inputs is kept for backward.

    Args:
        mu: mean, any shape (the last dim is the event dim D for the extras); float32,
            float64, float16 or bfloat16.
        s: the scale input, broadcastable with ``mu`` and of the same dtype and device; what
            it holds is set by ``scale``.
        scale: how ``s`` gives sigma: ``"logvar"`` (``exp(s / 2)``, s the log-variance),
            ``"log_std"`` (``exp(s)``), ``"std"`` (``s`` itself, > 0) or ``"softplus"``
            (``log1p(exp(s))``, stable for large and very negative s).
        min_scale: a lower bound added to sigma (``sigma = min_scale + f(s)``), >= 0.
        noise: the distribution of eps: ``"normal"`` (N(0, 1)), or the location-scale
            families' standard forms ``"laplace"``, ``"logistic"``, ``"gumbel"``, each a
            transform of the same Philox stream (docs/design.md, "The noise contract"); then
            sigma is the family's scale parameter and return_stats must be False.
        num_samples: K samples per distribution: z is ``[K, *broadcast shape]``; mu and
            s are read in place (never copied K times) and their gradients are summed
            over the K samples.
        eps: optional explicit noise of the sample's shape (then no noise is drawn,
            ``noise`` has no effect, and ``eps`` receives a gradient if it requires one).
        generator: torch.Generator to draw the stream from (default: the device's default
            generator, so ``torch.manual_seed`` is respected).
        seed: explicit stream seed in [0, 2**64): the same (seed, offset) gives the same noise
            on every backend (docs/design.md, "The noise contract").
        offset: stream offset in [0, 2**64), used with ``seed``.
        backend: "auto", "cpu", "cuda", "triton" or "reference" (see README, "Backends").
        return_stats: also return, from the same pass, ``kl = 0.5 * sum(mu^2 + sigma^2 - 1
            - 2 log sigma)`` (KL to N(0, I)) and ``log_q = -0.5 * sum(eps^2 + 2 log sigma +
            log 2pi)`` (log q(z)), both over the last dim, with their gradients fused into the
            backward.
        stl: with return_stats, log_q's gradient flows only through z ("sticking the
            landing"): the same value, without the parameters' direct (zero-mean) term.

    Returns:
        z with the broadcast shape of ``mu`` and ``s`` (``[K, ...]`` with num_samples),
        contiguous, of their dtype; with return_stats a ``ReparamSample(z, kl, log_q)``: kl
        ``[*batch]``, log_q ``[K, *batch]`` or ``[*batch]`` (batch = all dims but the last).

    Example:
        >>> mu, logvar = torch.zeros(4, 8), torch.zeros(4, 8)
        >>> z = sample_diag(mu, logvar, seed=1234)
        >>> z = sample_diag(mu, torch.ones(4, 8), scale="std")
    """
    extra = None
    plain_number = type(min_scale) in (float, int)  # a tensor or array: the checks name it
    if plain_number and min_scale == 0 and type(noise) is str and noise == "normal":
        extra = _scales.SCALE_ONLY_ARGS.get(scale) if type(scale) is str else None
    if extra is None:
        extra = _scales.diag_op_args(scale, min_scale, noise, return_stats, _WHERE)
    stl = stl is not False and _stl.check_stl(stl, return_stats, _WHERE) and _stl.landing_needed()
    out = sample("diag", _checked, mu, s, num_samples=num_samples, eps=eps,
                 generator=generator, seed=seed, offset=offset, backend=backend,
                 return_stats=return_stats, extra=extra, with_eps=stl)  # fmt: skip
    if not stl:
        return out
    # extra: (), (kind,), (kind, min_scale) or (kind, min_scale, noise).
    kind, min_s = extra[0] if extra else 0, extra[1] if len(extra) > 1 else 0.0
    return _stl.diag_log_q(*out, s, kind, min_s)


def _checked(
    mu: object,
    s: object,
    num_samples: object,
    eps: torch.Tensor | None,
    generator: object,
    seed: object,
    offset: object,
    return_stats: object,
    where: str = _WHERE,
) -> tuple:
    """The diagonal op's arguments checked, with clear errors naming `where` (the public
    function): (mu, expanded over num_samples, the sample's shape, num_samples, seed,
    offset)."""
    mu = _checks.check_float_tensor(mu, "mu", where)
    _checks.check_not_meta(mu, "mu", where)
    return_stats = _checks.check_flag(return_stats, "return_stats", where)
    s = _checks.check_float_tensor(s, "s", where)
    _checks.check_same_dtype_device(mu, "mu", s, "s", where)
    shape = _checks.broadcast_shape(mu, "mu", s, "s", where)
    num_samples = _sample.check_num_samples(num_samples, where)
    if return_stats:
        _sample.check_stats_shape(shape, where)
    if num_samples is not None:
        # A stride-0 view: the kernels broadcast it, so mu is never copied K times.
        shape = torch.Size((num_samples, *shape))
        mu = mu.expand(shape)
    desc = "[num_samples, *broadcast shape]" if num_samples else "the broadcast shape"
    seed, offset = _seed.check_stream_args(
        mu, eps, shape, f"{desc} of mu and s", seed, offset, generator, where
    )
    return mu, shape, num_samples, seed, offset
