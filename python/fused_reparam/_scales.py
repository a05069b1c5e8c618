"""The `scale`, `min_scale` and `noise` arguments of the diagonal sampling functions: how the
second input s gives sigma (docs/design.md, "Scales"), and which noise is drawn."""

from __future__ import annotations

import math
import numbers

from .reference.noise import NOISES
from .reference.scale import SCALES

_KIND = {name: kind for kind, name in enumerate(SCALES)}
# scale name -> the diagonal op's family arguments (Family.op_args places them) when
# min_scale is 0 and the noise normal (logvar, the default: none); looked up on every call.
SCALE_ONLY_ARGS = {name: (kind,) if kind else () for name, kind in _KIND.items()}
_NOISE = {name: kind for kind, name in enumerate(NOISES)}
# (scale, type and value of min_scale, noise, return_stats) -> the diagonal op's family
# arguments, for calls that passed the checks; bounded, as min_scale may change every call.
_OP_ARGS: dict[tuple, tuple] = {}
_OP_ARGS_MAX = 256


def diag_op_args(
    scale: object, min_scale: object, noise: object, return_stats: object, where: str
) -> tuple:
    """The diagonal op's family arguments for the scale and noise arguments: (scale kind,
    min_scale) and then, for a noise other than the normal, its kind, with a zero min_scale
    left out when nothing follows it (each argument costs the op call); a clear error naming
    the argument otherwise. Remembered per value and type (True is never taken for an
    accepted 1), and only for a bool return_stats, which the caller checks."""
    key = None
    if type(return_stats) is bool:  # 1 == True: another type is checked (and refused) later
        key = (scale, type(min_scale), min_scale, noise, return_stats)
    try:
        args = _OP_ARGS.get(key) if key is not None else None
    except TypeError:  # an unhashable argument: the checks below name it
        key, args = None, None
    if args is None:
        args = check_scale(scale, min_scale, where)
        kind = check_noise(noise, return_stats, where)
        if kind:
            args = (*args, kind)
        elif not args[1]:
            args = args[:1]  # (kind,): min_scale is 0
        if key is not None and len(_OP_ARGS) < _OP_ARGS_MAX:
            _OP_ARGS[key] = args
    return args


def check_scale(scale: object, min_scale: object, where: str) -> tuple[int, float]:
    """(the op's scale kind, min_scale as a float) for a scale name and lower bound, or a clear
    error naming the argument."""
    kind = _KIND.get(scale) if isinstance(scale, str) else None
    if kind is None:
        raise ValueError(
            f"{where}: scale must be one of {', '.join(map(repr, SCALES))}, got {scale!r}"
        )
    if isinstance(min_scale, bool) or not isinstance(min_scale, numbers.Real):
        raise TypeError(f"{where}: min_scale must be a float >= 0, got {type(min_scale).__name__}")
    if not (math.isfinite(min_scale) and min_scale >= 0):
        raise ValueError(f"{where}: min_scale must be finite and >= 0, got {min_scale}")
    return kind, float(min_scale)


def check_noise(noise: object, return_stats: object, where: str) -> int:
    """The op's noise kind for a noise name, or a clear error naming the argument (the VAE
    extras are the Gaussian's: other noises take return_stats=False)."""
    kind = _NOISE.get(noise) if isinstance(noise, str) else None
    if kind is None:
        raise ValueError(
            f"{where}: noise must be one of {', '.join(map(repr, NOISES))}, got {noise!r}"
        )
    if kind != 0 and return_stats is True:
        raise ValueError(
            f"{where}: return_stats=True computes the Gaussian's KL and log q; noise={noise!r} "
            "takes return_stats=False"
        )
    return kind
