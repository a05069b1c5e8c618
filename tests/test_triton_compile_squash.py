"""The diagonal stats kernels' tanh squash (SQUASH) compiles for real GPUs (sm_80, sm_90) on a
machine without one, as tests/test_triton_compile.py checks the other variants: Philox in the
kernel, precise float32 exp, log and tanh (libdevice's, never ex2.approx of a rounded product,
lg2.approx or tanh.approx), IEEE division, and the squash's bounds as float64 arguments."""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton")
from fused_reparam._triton import stats_kernels  # noqa: E402
from test_triton_compile import _compile, _rounded_product_exps  # noqa: E402

pytestmark = pytest.mark.skipif(
    not isinstance(stats_kernels.diag_stats_forward_kernel, triton.runtime.JITFunction),
    reason="needs compiled Triton, not the interpreter (scripts/test.sh runs it without)",
)

# (kernel, dtype, has_eps, block_r, block_d, aligned4, ndim, idx64, scale): every dtype, eps
# read and regenerated, several rows a program with one tile and one wide tile looped over
# (forward), each scale kind.
SQUASH_VARIANTS = [
    ("forward", "f32", False, 128, 16, True, 1, False, 1),
    ("forward", "f32", True, 2, 1024, True, 2, False, 3),
    ("forward", "bf16", False, 512, 4, False, 4, True, 0),
    ("forward", "f16", True, 64, 32, True, 3, False, 2),
    ("forward", "f64", False, 8, 256, False, 1, True, 1),
    ("backward", "f32", False, 128, 16, True, 1, False, 1),
    ("backward", "f32", True, 2, 1024, True, 2, False, 3),
    ("backward", "bf16", True, 512, 4, False, 4, True, 0),
    ("backward", "f16", False, 64, 32, False, 1, False, 2),
    ("backward", "f64", True, 8, 256, True, 3, True, 1),
]


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize(
    ("which", "dtype", "has_eps", "block_r", "block_d", "aligned4", "ndim", "idx64", "scale"),
    SQUASH_VARIANTS,
)
def test_squashed_diag_stats_kernels_compile_for_the_gpu(
    arch, which, dtype, has_eps, block_r, block_d, aligned4, ndim, idx64, scale
):
    kernel = getattr(stats_kernels, f"diag_stats_{which}_kernel")
    # The squash's bounds are float64 arguments (a launch passes a Python float as float32
    # unless the parameter says otherwise): low, half and log(half) forward, half backward.
    bounds = ("low", "half", "log_half") if which == "forward" else ("half",)
    fp64 = {p.name for p in kernel.params if p.annotation_type == "fp64"}
    assert fp64 == {"min_scale", *bounds}
    constexprs = dict(
        NDIM=ndim, HAS_EPS=has_eps, IDX64=idx64, BLOCK_R=block_r, BLOCK_D=block_d,
        ALIGNED4=aligned4, F64=dtype == "f64", SCALE=scale, SQUASH=True,
    )  # fmt: skip
    if which == "backward":
        constexprs["NEED_GRAD_EPS"] = has_eps
    compiled = _compile(kernel, dtype, arch, idx64, constexprs)
    ptx = compiled.asm["ptx"]
    assert compiled.asm["cubin"], "ptxas produced no cubin"
    if not has_eps:
        assert "mul.hi.u32" in ptx  # the stream's Philox rounds are in the kernel
    assert "tanh.approx" not in ptx, "an approximate tanh"
    if dtype != "f64":
        assert _rounded_product_exps(ptx) == 0, "exp compiled to ex2.approx(x * log2(e))"
        assert "lg2.approx" not in ptx, "an approximate float32 log"
        assert "div.full.f32" not in ptx and "div.approx.f32" not in ptx


@pytest.mark.parametrize("arch", [90])
@pytest.mark.parametrize("which", ["forward", "backward"])
def test_the_squash_adds_code_only_when_on(arch, which):
    """SQUASH is a constexpr: the unsquashed kernel has no tanh (libdevice's tanhf takes an
    exp), the squashed one does."""
    kernel = getattr(stats_kernels, f"diag_stats_{which}_kernel")
    extra = {"NEED_GRAD_EPS": False} if which == "backward" else {}
    base = dict(NDIM=1, HAS_EPS=True, IDX64=False, BLOCK_R=8, BLOCK_D=256, ALIGNED4=True,
                F64=False, SCALE=2, **extra)  # fmt: skip
    off = _compile(kernel, "f32", arch, False, {**base, "SQUASH": False}).asm["ptx"]
    on = _compile(kernel, "f32", arch, False, {**base, "SQUASH": True}).asm["ptx"]
    # SCALE=2 (std): no exp of s, so every ex2 is the squash's.
    assert "ex2.approx" not in off
    assert "ex2.approx" in on
