"""What `sample_diag` and `sample_chol` share once they have their arguments: the common call
straight into the fused op (its C++ checks standing in for Python's), or else the checks, the
backend choice, and the reference (noise made here) or the backend's fused op, plain or with
the VAE extras. The two differ only in their second input, checks and formulas."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import _backend, _sample, _seed
from ._families import BACKEND_PREFIX, FAMILIES
from .reference import diag as _ref_diag
from .reference.philox import compute_dtype

# (backend, op) -> the op's OpOverload: looking one up costs microseconds.
_OPS: dict[tuple[str, str], torch._ops.OpOverload] = {}
# (kind, return_stats, backend argument, FUSED_REPARAM_BACKEND, device type) -> the callable
# of the fused op that runs the common call (the OpOverload's own `_op`, which its __call__
# forwards to); never a reference choice, which may still warn.
_FAST: dict[tuple, Callable] = {}
# Read on every call: bound once (each attribute lookup costs on a path of a few microseconds).
_is_compiling = torch.compiler.is_compiling
_forward_ad = torch.autograd.forward_ad
_peek_interpreter_stack = torch._C._functorch.peek_interpreter_stack


def _needs_reference() -> bool:
    """True under forward-mode AD or a torch.func transform (grad, jvp, vmap, ...), which the
    fused ops' autograd cannot serve (no forward formula; a C++/Function node functorch cannot
    see through). The reference backend draws the same numbers for a given stream with plain
    torch ops, so routing there gives every derivative right, and the same sample for a seed
    (or a stream drawn as the cpu and triton backends draw it)."""
    if _is_compiling():  # Dynamo traces this code and cannot trace the rest
        return False
    return _forward_ad._current_level >= 0 or _peek_interpreter_stack() is not None


def _fused_op(which: str, op: str) -> torch._ops.OpOverload:
    fused = _OPS.get((which, op))
    if fused is None:
        fused = getattr(torch.ops.fused_reparam, BACKEND_PREFIX[which] + op).default
        _OPS[(which, op)] = fused
    return fused


class FusedCallRefused(Exception):
    """The fused op raised on the common call's arguments; `error` is what it raised."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def try_fused_call(
    kind: str,
    mu: object,
    second: object,
    eps: torch.Tensor | None,
    generator: torch.Generator | None,
    backend: object,
    return_stats: object,
    extra: tuple = (),
) -> torch.Tensor | _sample.ReparamSample | None:
    """The common call (no seed, no num_samples) straight into the fused op, whose C++ checks
    stand in for the Python ones; `extra` are the family's arguments when not the defaults
    (Family.op_args places them): the diagonal op's scale kind, then its min_scale (left out
    when 0 and nothing follows) and then, for the plain op, its noise kind, or, for the op
    with the extras, its squash (True, low, high). Returns the result, or None when the call
    needs the full path (the reference backend, a transform, tracing, an argument the op does
    not check). Raises FusedCallRefused when the op raised: the caller's checks then name the
    problem in the public function's words, or else re-raise the op's error (the op is not
    run twice)."""
    if (
        type(mu) is not torch.Tensor
        or type(return_stats) is not bool
        or not (backend is None or type(backend) is str)
        or _is_compiling()
    ):
        return None
    # Attribute checks, not mu.device: this path runs on every call.
    device_type = "cuda" if mu.is_cuda else ("cpu" if mu.is_cpu else None)
    if device_type is None or (
        generator is not None
        and (
            type(generator) is not torch.Generator
            or eps is not None
            or generator.device != mu.device
        )
    ):
        return None
    key = (kind, return_stats, backend, _backend.env_value(), device_type)
    fused = _FAST.get(key)
    family = FAMILIES[kind]
    if fused is None:
        op = family.op(return_stats)
        try:
            which = _backend.resolve_backend(backend, mu.device, op)
        except (RuntimeError, TypeError, ValueError):
            return None  # the full path raises it, after the checks that come first
        if which == "reference":
            return None
        overload = _fused_op(which, op)
        fused = _FAST[key] = getattr(overload, "_op", overload)
    if _forward_ad._current_level >= 0 or _peek_interpreter_stack() is not None:
        return None  # routed to the reference by the full path (see _needs_reference)
    try:
        # No trailing defaults passed: each argument costs the boxed call.
        if generator is not None or len(extra) > len(family.leading):
            out = fused(mu, second, *family.op_args(extra, eps, None, generator))
        elif eps is None:
            out = fused(mu, second, *extra)
        else:
            out = fused(mu, second, *family.lead_args(extra), eps)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise FusedCallRefused(exc) from exc
    return _sample.stats_result(*out[:3], None) if return_stats else out[0]


def run_sampling_op(
    kind: str,
    mu: torch.Tensor,
    second: torch.Tensor,
    shape: torch.Size,
    *,
    num_samples: int | None,
    eps: torch.Tensor | None,
    generator: torch.Generator | None,
    seed: int | None,
    offset: int,
    backend: str,
    return_stats: bool,
    extra: tuple = (),
    with_eps: bool = False,
) -> torch.Tensor | _sample.ReparamSample | tuple:
    """z (or a ReparamSample) of op `kind` ("diag" or "chol") for checked arguments; `shape`
    is the sample's shape and `mu` is already expanded over num_samples; `extra` as for
    try_fused_call (the reference takes them after eps, in the same order). With `with_eps`,
    (that, the call's eps in the compute type)."""
    family = FAMILIES[kind]
    op = family.op(return_stats)
    which = _backend.resolve_backend(backend, mu.device, op)
    if which != "reference" and _needs_reference():
        which = "reference"
    if which == "reference":
        if eps is None:
            if seed is None:
                # Kept a tensor: no host sync, so torch.compile, CUDA-graph capture and
                # vmap(randomness="different") all see the draw.
                seed, offset = _seed.draw_seed_offset_tensor(generator, mu.device).unbind()
            # extra[2] (after the scale and min_scale) is the plain diagonal op's noise kind.
            noise = extra[2] if len(extra) > 2 and not return_stats else 0
            eps = _ref_diag.diag_noise(shape, seed, offset, mu.dtype, mu.device, noise)
        ref = family.reference_stats if return_stats else family.reference
        out = ref(mu, second, eps, *extra)
        # Contiguous, as the fused ops return it (elementwise ops follow permuted inputs).
        out = tuple(t.contiguous() for t in out) if return_stats else out.contiguous()
        used_eps = _stream_eps(which, eps, None, shape, mu) if with_eps else None
    else:
        seed_offset = None if seed is None else _seed.seed_offset_tensor(seed, offset, mu.device)
        # One call: autograd is the op's own (C++), for every backend.
        args = family.op_args(extra, eps, seed_offset, generator)
        out = _fused_op(which, op)(mu, second, *args)
        used_eps = _stream_eps(which, eps, out[-1], shape, mu) if with_eps else None
        if not return_stats:
            out = out[0]
    result = _sample.stats_result(*out[:3], num_samples) if return_stats else out
    return (result, used_eps) if with_eps else result


def _stream_eps(
    which: str,
    eps: torch.Tensor | None,
    used: torch.Tensor | None,
    shape: torch.Size,
    mu: torch.Tensor,
) -> torch.Tensor:
    """The eps a call used, in the compute type (float32 for half types, as the kernels
    compute): the given (or reference-drawn) one, or a fused call's stream `used` drawn again
    by the backend's plain diagonal op on mu = s = 0 at the logvar scale, whose
    z = 0 + exp(0) * eps is eps exactly."""
    ct = compute_dtype(mu.dtype)
    if eps is not None:
        return eps.detach().to(ct)
    zero = torch.zeros((), dtype=ct, device=mu.device).expand(shape)
    return _fused_op(which, "diag_rsample")(zero, zero, 0, None, used)[0]


def sample(
    kind: str,
    checked: Callable[..., tuple],
    mu: object,
    second: object,
    *,
    num_samples: object,
    eps: torch.Tensor | None,
    generator: object,
    seed: object,
    offset: object,
    backend: object,
    return_stats: object,
    extra: tuple = (),
    with_eps: bool = False,
) -> torch.Tensor | _sample.ReparamSample | tuple:
    """A public sampling call: the common call straight into the fused op, else `checked`
    (the public function's argument checks, which return (mu expanded over num_samples, the
    sample's shape, num_samples, seed, offset)) and then run_sampling_op; `extra` and
    `with_eps` as for run_sampling_op."""
    common = num_samples is None and seed is None and type(offset) is int and offset == 0
    if common and not with_eps:
        try:
            out = try_fused_call(kind, mu, second, eps, generator, backend, return_stats, extra)
        except FusedCallRefused as refused:
            # The checks name the problem in the public function's words; if they pass,
            # the op's own error stands.
            checked(mu, second, None, eps, generator, None, 0, return_stats)
            raise refused.error from None
        if out is not None:
            return out
    mu, shape, num_samples, seed, offset = checked(
        mu, second, num_samples, eps, generator, seed, offset, return_stats
    )
    return run_sampling_op(kind, mu, second, shape, num_samples=num_samples, eps=eps,
                           generator=generator, seed=seed, offset=offset, backend=backend,
                           return_stats=return_stats, extra=extra,
                           with_eps=with_eps)  # fmt: skip
