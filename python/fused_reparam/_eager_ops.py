"""Eager calls of the fused ops without torch.library's per-call Python wrapper.

`torch.library.register_autograd` runs Python code on every call of an op, even with no grad
(argument normalization and a redispatch): about 60 us per forward and more per backward on a
2-core CPU, which at VAE sizes (a few thousand elements) costs more than the kernel itself.
`register_autograd` here registers the same (setup_context, backward) pair with torch.library
(used by torch.compile, opcheck, tensor subclasses, functorch and direct op calls) and also
wraps it in a torch.autograd.Function whose forward calls the op below autograd. `call`
takes that path for plain eager tensors, so both paths run the same backward formulas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

_OPS: dict[str, Callable] = {}
_FUNCTIONS: dict[Callable, type[torch.autograd.Function]] = {}


def op_by_name(name: str) -> Callable:
    """The OpOverload `namespace::name`.default (cached: the lookup costs microseconds)."""
    op = _OPS.get(name)
    if op is None:
        namespace, short = name.split("::")
        op = _OPS[name] = getattr(getattr(torch.ops, namespace), short).default
    return op


def _make_function(op: Callable, setup_context: Callable, backward: Callable) -> type:
    # Old-style forward(ctx, ...): Function.apply binds arguments through inspect.signature
    # on every call when setup_context is a separate staticmethod.
    def forward(ctx, *args):  # noqa: ANN001
        with torch._C._AutoDispatchBelowAutograd():
            output = op(*args)
        setup_context(ctx, args, output)
        return output

    name = str(op).replace(".", "_").replace(":", "_")
    return type(
        f"{name}_Function",
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward)},
    )


def register_autograd(name: str, backward: Callable, setup_context: Callable) -> None:
    """torch.library.register_autograd(name, ...), plus the same pair as an
    autograd.Function that `call` uses for the op."""
    torch.library.register_autograd(name, backward, setup_context=setup_context)
    op = op_by_name(name)
    _FUNCTIONS[op] = _make_function(op, setup_context, backward)


def _plain_eager(args: Sequence[object]) -> bool:
    """No tracing, mode, transform or tensor subclass that the registered path must see."""
    # is_compiling first: Dynamo traces this code and cannot trace the other checks.
    return not (
        torch.compiler.is_compiling()
        or torch._C._len_torch_dispatch_stack()
        or torch._C._is_torch_function_mode_enabled()
        or torch.overrides.has_torch_function(args)
        or torch._C._functorch.peek_interpreter_stack() is not None
    )


def call(op: Callable, *args: object) -> object:
    """`op(*args)`, with the op's registered autograd, through the lighter path when it can."""
    function = _FUNCTIONS.get(op)
    if function is None or not _plain_eager(args):
        return op(*args)
    if torch.is_grad_enabled() and any(
        isinstance(a, torch.Tensor) and a.requires_grad for a in args
    ):
        return function.apply(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)
