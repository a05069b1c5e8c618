"""The family registry against what is registered: every op of every family exists for
every backend prefix, with autograd and a fake kernel; the CPU copies have compiled kernels;
the shapes the registry derives match the references'; the docs' table lists the registry."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

import fused_reparam
from fused_reparam import _families

ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_extension = pytest.mark.skipif(
    not fused_reparam.has_extension(), reason="needs the compiled extension"
)
PREFIXES = sorted(set(_families.BACKEND_PREFIX.values()))
OPS = [(p, op) for p in PREFIXES for op in _families.all_ops()]


@needs_extension
@pytest.mark.parametrize(("prefix", "op"), OPS)
def test_every_op_has_a_schema_autograd_and_a_fake_kernel(prefix, op):
    name = f"fused_reparam::{prefix}{op}"
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    assert torch._C._dispatch_has_kernel(name), name
    assert has(name, "Autograd"), f"{name}: no autograd kernel"
    assert has(name, "Meta"), f"{name}: no fake kernel"
    if prefix == "":
        assert has(name, "CPU"), f"{name}: no compiled CPU kernel"


@needs_extension
@pytest.mark.parametrize(("prefix", "family", "stats"), [
    (p, f, s) for p in PREFIXES for f in _families.FAMILIES for s in (False, True)
])  # fmt: skip
def test_op_args_follow_the_forward_schema(prefix, family, stats):
    """Family.op_args places each argument where the registered forward op takes it: the
    family's leading arguments (with their schema defaults), eps, seed_offset, generator,
    then the rest in schema order."""
    f = _families.FAMILIES[family]
    schema = getattr(torch.ops.fused_reparam, prefix + f.op(stats)).default._schema
    names = [a.name for a in schema.arguments]
    n = len(f.leading)
    assert names[2 + n : 5 + n] == ["eps", "seed_offset", "generator"], names
    assert [a.default_value for a in schema.arguments[2 : 2 + n]] == list(f.leading)
    rest = tuple(range(100, 100 + len(names) - 5 - n))
    extra = (*range(200, 200 + n), *rest)
    args = f.op_args(extra, "e", "so", "g")
    assert len(args) == len(names) - 2
    assert dict(zip(names[2:], args, strict=True)) == {
        **dict(zip(names[2 : 2 + n], extra[:n], strict=True)),
        "eps": "e", "seed_offset": "so", "generator": "g",
        **dict(zip(names[5 + n :], rest, strict=True)),
    }  # fmt: skip
    # Missing leading arguments take their defaults.
    assert f.op_args((), None, None, None) == (*f.leading, None, None, None)


@needs_extension
@pytest.mark.parametrize("op", _families.all_ops())
def test_triton_copies_have_kernels_where_triton_runs(op):
    if "triton" not in fused_reparam.available_backends("cpu"):
        pytest.skip("the Triton backend cannot run on CPU tensors here")
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fused_reparam::triton_{op}", "CPU")


@pytest.mark.parametrize("family", list(_families.FAMILIES.values()), ids=lambda f: f.name)
@pytest.mark.parametrize("stats", [False, True])
def test_derived_shapes_match_the_reference(family, stats):
    mu = torch.randn(3, 1, 5, dtype=torch.float64)
    if family.second_row_dims == 0:
        second = torch.randn(4, 5, dtype=torch.float64)
    else:
        second = torch.eye(5, dtype=torch.float64).expand(4, 5, 5)
    shape = family.sample_shape(mu.shape, second.shape)
    eps = torch.randn(shape, dtype=torch.float64)
    out = (family.reference_stats if stats else family.reference)(mu, second, eps)
    z = out[0] if stats else out
    assert z.shape == shape == (3, 4, 5)
    if stats:
        assert out[1].shape == out[2].shape == shape[:-1]
    grad_second = family.second_grad_shape(shape)
    assert grad_second == (*shape, *([5] * family.second_row_dims))


def test_docs_table_lists_the_registry():
    text = (ROOT / "docs" / "implementation.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` .*? \| (`.*`) \|$", text, flags=re.M)
    listed = {name: (second, tuple(re.findall(r"`(\w+)`", ops))) for name, second, ops in rows}
    want = {f.name: (f.second, f.ops()) for f in _families.FAMILIES.values()}
    assert listed == want
