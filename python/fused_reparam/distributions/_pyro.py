"""Pyro support, with no dependency on Pyro and no import of it until Pyro is in use.

Where Pyro is installed (found by ``importlib.util.find_spec``, which imports nothing), the
distribution classes take :class:`PyroCompat` as their last base (``PYRO_BASES``): the methods
of Pyro's ``TorchDistributionMixin`` that torch's ``Distribution`` lacks (``__call__``,
``to_event``, ``expand_by``, ``mask``, ``shape``, ``event_dim``, ``score_parts``...), each
calling Pyro's own implementation, imported on first use. ``isinstance(d,
TorchDistributionMixin)``, which ``pyro.sample``'s plates and ``poutine.reparam`` check, holds
through :func:`register_with_pyro`: ``PyroCompat`` is registered as a virtual subclass of the
mixin when Pyro's module defining it runs (an import hook watching that one module name), or
at once where Pyro is already imported. Torch's methods come first in the method order, so
``expand`` stays the classes' own (the same class, sampled by the fused op). Where Pyro is
not installed, ``PYRO_BASES`` is empty, no hook is installed, and nothing changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

import torch
from torch.distributions import constraints

# The module defining Pyro's TorchDistributionMixin.
PYRO_MIXIN_MODULE = "pyro.distributions.torch_distribution"


def pyro_is_installed() -> bool:
    """Whether a ``pyro`` package can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec("pyro") is not None
    except (ImportError, ValueError):  # a broken or odd entry in sys.modules / sys.path
        return False


def _mixin() -> Any:
    """Pyro's ``TorchDistributionMixin``: imports Pyro on first use (which registers
    :class:`PyroCompat`)."""
    from pyro.distributions.torch_distribution import TorchDistributionMixin

    return TorchDistributionMixin


class PyroCompat:
    """What Pyro's ``TorchDistributionMixin`` adds to a torch distribution, for the fused
    classes: each method calls Pyro's implementation (Pyro imported on first use), so that
    ``pyro.sample("z", d)``, ``d.to_event(n)``, ``d.expand_by(shape)`` and ``d.mask(m)`` behave
    as for Pyro's own distributions. Pyro's wrappers (``Independent``, ``MaskedDistribution``,
    ``ExpandedDistribution``) draw with the base's ``rsample``: the fused op."""

    __slots__ = ()

    def __call__(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        """A sample, as ``pyro.sample`` draws it: ``rsample`` (fused) when ``has_rsample``."""
        return _mixin().__call__(self, sample_shape)

    @property
    def event_dim(self) -> int:
        """``len(event_shape)``."""
        return _mixin().event_dim.fget(self)

    def shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:  # noqa: B008
        """``sample_shape + batch_shape + event_shape``."""
        return _mixin().shape(self, sample_shape)

    def expand_by(self, sample_shape: torch.Size | tuple[int, ...]) -> Any:
        """This distribution with ``sample_shape`` added on the left of ``batch_shape``: the
        class's own ``expand`` (the same class, views of the parameters)."""
        return _mixin().expand_by(self, sample_shape)

    def to_event(self, reinterpreted_batch_ndims: int | None = None) -> Any:
        """Pyro's ``Independent`` over this distribution (all batch dims by default)."""
        return _mixin().to_event(self, reinterpreted_batch_ndims)

    def independent(self, reinterpreted_batch_ndims: int | None = None) -> Any:
        """Deprecated in Pyro for :meth:`to_event`."""
        return _mixin().independent(self, reinterpreted_batch_ndims)

    def reshape(self, sample_shape: Any = None, extra_event_dims: Any = None) -> Any:
        """Removed in Pyro (raises, naming ``expand_by`` and ``to_event``)."""
        return _mixin().reshape(self, sample_shape, extra_event_dims)

    def mask(self, mask: bool | torch.Tensor) -> Any:
        """Pyro's ``MaskedDistribution`` over this distribution."""
        return _mixin().mask(self, mask)

    def score_parts(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Pyro's ``ScoreParts`` of ``x`` (the pathwise form when ``has_rsample``)."""
        return _mixin().score_parts(self, x, *args, **kwargs)

    def has_rsample_(self, value: bool) -> Any:
        """Sets ``has_rsample`` on this instance (Pyro's switch to score-function
        gradients); returns it."""
        return _mixin().has_rsample_(self, value)

    def conjugate_update(self, other: Any) -> Any:
        """Pyro's: not supported (raises ``NotImplementedError``)."""
        return _mixin().conjugate_update(self, other)

    @property
    def rv(self) -> Any:
        """Pyro's ``RandomVariable`` over this distribution."""
        return _mixin().rv.fget(self)

    @classmethod
    def infer_shapes(cls, **arg_shapes: Any) -> tuple[torch.Size, torch.Size]:
        """``(batch_shape, event_shape)`` of an instance made from arguments of these shapes,
        from ``arg_constraints`` and ``support``: an argument's trailing
        ``constraint.event_dim`` dims are event dims (a ``[D, D]`` factor gives the event
        ``[D]``), the rest broadcast to the batch shape. Pyro's generic rule, extended to
        the vector families."""
        event_dim = cls.support.event_dim  # type: ignore[attr-defined]
        batches, events = [], []
        for name, shape in arg_shapes.items():
            shape = torch.Size(shape)
            arg_event_dim = cls.arg_constraints.get(name, constraints.real).event_dim  # type: ignore[attr-defined]
            cut = max(len(shape) - arg_event_dim, 0)
            batches.append(shape[:cut])
            events.append(shape[cut:][:event_dim])
        return torch.broadcast_shapes(*batches), torch.broadcast_shapes(*events)


def _register(module: ModuleType) -> None:
    module.TorchDistributionMixin.register(PyroCompat)


class _RegisteringLoader(importlib.abc.Loader):
    """A module's loader that registers :class:`PyroCompat` once the module has run."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _register(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... of the file
        if name == "_loader":  # not set yet (a copy): no recursion
            raise AttributeError(name)
        return getattr(self._loader, name)


class _RegisterWhenPyroLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for :data:`PYRO_MIXIN_MODULE` alone, it wraps the loader the
    other finders give, so that the mixin defined there registers :class:`PyroCompat` (each
    time the module runs: a reload or a fresh import after a failed one defines a new
    mixin)."""

    def __init__(self) -> None:
        self._searching = threading.local()

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        # Not re-entered: another finder may itself ask the import system for the module.
        if fullname != PYRO_MIXIN_MODULE or getattr(self._searching, "on", False):
            return None
        self._searching.on = True
        try:
            spec = self._find_with_the_other_finders(fullname, path, target)
        finally:
            self._searching.on = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec

    def _find_with_the_other_finders(
        self, fullname: str, path: Any, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is not self and find_spec is not None:
                spec = find_spec(fullname, path, target)
                if spec is not None:
                    return spec
        return None


def register_with_pyro() -> None:
    """Makes :class:`PyroCompat` a virtual subclass of Pyro's ``TorchDistributionMixin``: now
    if Pyro is imported, and whenever the module defining the mixin runs (a hook in
    ``sys.meta_path`` that finds only that module's name)."""
    if not any(isinstance(f, _RegisterWhenPyroLoads) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterWhenPyroLoads())
    module = sys.modules.get(PYRO_MIXIN_MODULE)
    if module is not None and hasattr(module, "TorchDistributionMixin"):
        _register(module)


# The bases the distribution classes add: PyroCompat where Pyro is installed, else none.
PYRO_BASES: tuple[type, ...] = (PyroCompat,) if pyro_is_installed() else ()
