"""The Triton kernels compile for real GPUs (sm_80, sm_90) on a machine without one.

The interpreter runs the kernels' Python; this runs Triton's compiler (to PTX and a cubin,
through ptxas) on the same kernels, so CI catches what only compiled Triton rejects, and
checks that contiguous aligned float32 data moves in 16-byte vector loads and stores.
"""

from __future__ import annotations

import re

import pytest

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from fused_reparam._triton import chol_kernels, diag_kernels, stats_kernels  # noqa: E402

pytestmark = pytest.mark.skipif(
    not isinstance(diag_kernels.diag_forward_kernel, triton.runtime.JITFunction),
    reason="needs compiled Triton, not the interpreter (scripts/test.sh runs it without)",
)

_PTR = {"f32": "*fp32", "f64": "*fp64", "f16": "*fp16", "bf16": "*bf16"}
_INT_PTRS = ("so_ptr", "used_ptr")


def _compile(kernel, dtype: str, arch: int, idx64: bool, constexprs: dict, divisible=()):
    """PTX of `kernel` for sm_`arch`, with 16-byte aligned float pointers and numel (and the
    int arguments named in `divisible`) % 16 == 0 (what Triton assumes at launch for such
    arguments; it also makes int arguments equal to 1 constexprs)."""
    names = kernel.arg_names
    fp64 = {p.name for p in kernel.params if p.annotation_type == "fp64"}
    sig = {}
    for n in names:
        if n in constexprs:
            sig[n] = "constexpr"
        elif n in fp64:
            sig[n] = "fp64"  # the kernels' annotation (min_scale, the squash's bounds)
        elif n in _INT_PTRS:
            sig[n] = "*i64"
        elif n.endswith("_ptr"):
            sig[n] = _PTR[dtype]
        else:
            sig[n] = "i64" if idx64 else "i32"
    aligned = [n for n in names if n.endswith("_ptr") or n == "numel" or n in divisible]
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in aligned}
    consts = {(names.index(n),): v for n, v in constexprs.items()}
    src = ASTSource(kernel, sig, consts, attrs)
    target = GPUTarget("cuda", arch, 32)
    return triton.compile(src, target=target, options={"num_warps": 4, "enable_fp_fusion": True})


def _fwd(dtype, has_eps, contig, ndim, idx64, scale=0, noise=0):
    return dict(
        NDIM=ndim, MU_CONTIG=contig, S_CONTIG=contig, EPS_CONTIG=contig and has_eps,
        HAS_EPS=has_eps, IDX64=idx64, GROUPS=512, F64=dtype == "f64", SCALE=scale, NOISE=noise,
    )  # fmt: skip


def _bwd(dtype, has_eps, contig, ndim, idx64, scale=0, noise=0):
    return dict(
        NDIM=ndim, G_CONTIG=contig, S_CONTIG=contig, EPS_CONTIG=contig and has_eps,
        HAS_EPS=has_eps, NEED_GRAD_EPS=has_eps, IDX64=idx64, GROUPS=512, F64=dtype == "f64",
        SCALE=scale, NOISE=noise,
    )  # fmt: skip


# (kernel, dtype, has_eps, contiguous, ndim, idx64): every dtype, eps read and regenerated,
# contiguous and strided (1 to 4 dims), int32 and int64 indexing, forward and backward.
VARIANTS = [
    ("forward", "f32", False, True, 1, False),
    ("forward", "bf16", False, True, 1, False),
    ("forward", "f16", True, False, 4, True),
    ("forward", "f64", False, False, 2, True),
    ("backward", "f32", False, True, 1, False),
    ("backward", "bf16", True, False, 3, False),
    ("backward", "f64", False, True, 1, True),
    ("backward", "f16", True, False, 4, False),
]


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize(("which", "dtype", "has_eps", "contig", "ndim", "idx64"), VARIANTS)
def test_triton_kernels_compile_for_the_gpu(arch, which, dtype, has_eps, contig, ndim, idx64):
    kernel = getattr(diag_kernels, f"diag_{which}_kernel")
    make = _fwd if which == "forward" else _bwd
    compiled = _compile(kernel, dtype, arch, idx64, make(dtype, has_eps, contig, ndim, idx64))
    ptx = compiled.asm["ptx"]
    assert compiled.asm["cubin"], "ptxas produced no cubin"
    if dtype == "f32" and contig:
        # Two inputs and one output (forward) or two inputs and one output (backward), all
        # in 16-byte accesses.
        assert len(re.findall(r"ld\.global(?:\.nc)?\.v4\.b32", ptx)) >= 2, "no 16-byte loads"
        assert len(re.findall(r"st\.global\.v4\.b32", ptx)) >= 1, "no 16-byte stores"


# The Cholesky kernels: (kernel, dtype, has_eps, block_r, block_d, aligned4, ndim, idx64,
# stats). block_d 64 with one row is the large-D tile loop's shape; smaller tiles with several
# rows a program are the small-D path. Every output dtype path (float32, bfloat16 rounding,
# float64), eps read and regenerated (with and without four elements per Philox call), without
# and with the VAE extras (STATS: the forward's loop over a row's tiles and its row sums, the
# backward's extra gradient terms).
CHOL_VARIANTS = [
    ("forward", "f32", False, 32, 8, True, 1, False, False),
    ("forward", "f32", True, 1, 64, False, 2, False, False),
    ("forward", "bf16", False, 1, 64, False, 1, False, False),
    ("forward", "bf16", True, 16, 16, True, 4, True, False),
    ("forward", "f64", False, 4, 32, True, 3, True, False),
    ("forward", "f16", False, 256, 4, False, 1, False, False),
    ("backward", "f32", False, 32, 8, False, 1, False, False),
    ("backward", "f32", True, 1, 64, True, 2, False, False),
    ("backward", "bf16", False, 1, 64, True, 1, True, False),
    ("backward", "bf16", True, 16, 16, False, 4, False, False),
    ("backward", "f64", True, 1, 64, False, 3, True, False),
    ("backward", "f64", False, 64, 8, True, 1, False, False),
    ("forward", "f32", False, 32, 8, True, 1, False, True),
    ("forward", "bf16", True, 1, 64, False, 3, False, True),
    ("forward", "f64", False, 1, 64, False, 2, True, True),
    ("forward", "f16", True, 256, 4, True, 4, False, True),
    ("backward", "f32", True, 32, 8, True, 1, False, True),
    ("backward", "f32", False, 1, 64, False, 2, False, True),
    ("backward", "bf16", True, 1, 64, False, 4, True, True),
    ("backward", "f64", True, 4, 32, True, 3, True, True),
    ("backward", "f16", False, 256, 4, False, 1, False, True),
]


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize(
    ("which", "dtype", "has_eps", "block_r", "block_d", "aligned4", "ndim", "idx64", "stats"),
    CHOL_VARIANTS,
)
def test_chol_kernels_compile_for_the_gpu(
    arch, which, dtype, has_eps, block_r, block_d, aligned4, ndim, idx64, stats
):
    kernel = getattr(chol_kernels, f"chol_{which}_kernel")
    constexprs = dict(
        NDIM=ndim, HAS_EPS=has_eps, IDX64=idx64, BLOCK_R=block_r, BLOCK_D=block_d,
        ALIGNED4=aligned4, F64=dtype == "f64", STATS=stats,
    )  # fmt: skip
    if which == "backward":
        constexprs["NEED_GRAD_EPS"] = has_eps
    compiled = _compile(kernel, dtype, arch, idx64, constexprs)
    assert compiled.asm["cubin"], "ptxas produced no cubin"
    if not has_eps:
        # The stream's Philox rounds are in the kernel (mul.hi of the Philox multipliers).
        assert "mul.hi.u32" in compiled.asm["ptx"]


# The diagonal kernels with the VAE extras (stats_kernels.py): (kernel, dtype, has_eps,
# block_r, block_d, aligned4, ndim, idx64). Several rows a program with one tile (small D),
# and one wide tile looped over (large D; forward).
DIAG_STATS_VARIANTS = [
    ("forward", "f32", False, 128, 16, True, 1, False),
    ("forward", "f32", True, 2, 1024, True, 1, False),
    ("forward", "bf16", False, 512, 4, False, 2, False),
    ("forward", "f16", True, 64, 32, True, 4, True),
    ("forward", "f64", False, 8, 256, False, 3, True),
    ("backward", "f32", False, 128, 16, True, 1, False),
    ("backward", "f32", True, 2, 1024, True, 2, False),
    ("backward", "bf16", True, 512, 4, False, 4, True),
    ("backward", "f16", False, 64, 32, False, 1, False),
    ("backward", "f64", True, 8, 256, True, 3, True),
]


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize(
    ("which", "dtype", "has_eps", "block_r", "block_d", "aligned4", "ndim", "idx64"),
    DIAG_STATS_VARIANTS,
)
def test_diag_stats_kernels_compile_for_the_gpu(
    arch, which, dtype, has_eps, block_r, block_d, aligned4, ndim, idx64
):
    kernel = getattr(stats_kernels, f"diag_stats_{which}_kernel")
    constexprs = dict(
        NDIM=ndim, HAS_EPS=has_eps, IDX64=idx64, BLOCK_R=block_r, BLOCK_D=block_d,
        ALIGNED4=aligned4, F64=dtype == "f64", SCALE=0, SQUASH=False,
    )  # fmt: skip
    if which == "backward":
        constexprs["NEED_GRAD_EPS"] = has_eps
    contiguous = dtype == "f32" and aligned4 and ndim == 1 and block_d >= 16
    divisible = ()
    if contiguous:
        # Contiguous rows of D % 16 == 0 elements, as a launch specializes them: strides
        # within a row of 1 are constexprs, D and the row strides (D) divisible by 16.
        # grad_kl and grad_log_q (backward) are contiguous [rows]: row strides of 1.
        ones = [n for n in kernel.arg_names if n.endswith("_sj") or n in ("gk_t3", "gq_t3")]
        constexprs.update(dict.fromkeys(ones, 1))
        divisible = ("d", *(n for n in kernel.arg_names if n.endswith("_t3") and n not in ones))
    compiled = _compile(kernel, dtype, arch, idx64, constexprs, divisible)
    ptx = compiled.asm["ptx"]
    assert compiled.asm["cubin"], "ptxas produced no cubin"
    if not has_eps:
        assert "mul.hi.u32" in ptx  # the stream's Philox rounds are in the kernel
    if contiguous:
        # z (forward) or the gradients (backward) leave in 16-byte stores, the inputs come in
        # 16-byte loads.
        assert len(re.findall(r"st\.global\.v4\.b32", ptx)) >= 1, "no 16-byte stores"
        assert len(re.findall(r"ld\.global(?:\.nc)?\.v4\.b32", ptx)) >= 2, "no 16-byte loads"


def _rounded_product_exps(ptx: str) -> int:
    """How many ex2.approx take x * log2(e) rounded to float32 (a `mul` by 0f3FB8AA3B): tl.exp's
    float32 lowering, whose error grows with |x|. A precise exp reduces the argument exactly
    (fma with log2(e) in two parts) before its ex2.approx."""
    products = set(re.findall(r"mul(?:\.rn)?(?:\.ftz)?\.f32\s+(%r\d+), %r\d+, 0f3FB8AA3B;", ptx))
    operands = re.findall(r"ex2\.approx(?:\.ftz)?\.f32\s+%r\d+, (%r\d+);", ptx)
    return sum(op in products for op in operands)


def _stats(which: str, has_eps: bool, scale: int = 0, dtype: str = "f32") -> dict:
    extra = {"NEED_GRAD_EPS": has_eps} if which == "backward" else {}
    return dict(NDIM=1, HAS_EPS=has_eps, IDX64=False, BLOCK_R=8, BLOCK_D=256, ALIGNED4=True,
                F64=dtype == "f64", SCALE=scale, SQUASH=False, **extra)  # fmt: skip


# The float32 kernels that compute sigma = exp(0.5 * logvar), stream and explicit eps.
SIGMA_KERNELS = {
    "diag_forward-stream": (diag_kernels.diag_forward_kernel, _fwd("f32", False, True, 1, False)),
    "diag_forward-eps": (diag_kernels.diag_forward_kernel, _fwd("f32", True, False, 2, False)),
    "diag_backward-stream": (diag_kernels.diag_backward_kernel, _bwd("f32", False, True, 1, False)),
    "diag_backward-eps": (diag_kernels.diag_backward_kernel, _bwd("f32", True, False, 3, False)),
    "diag_stats_forward-stream": (
        stats_kernels.diag_stats_forward_kernel,
        _stats("forward", False),
    ),
    "diag_stats_forward-eps": (stats_kernels.diag_stats_forward_kernel, _stats("forward", True)),
    "diag_stats_backward-stream": (
        stats_kernels.diag_stats_backward_kernel,
        _stats("backward", False),
    ),
    "diag_stats_backward-eps": (stats_kernels.diag_stats_backward_kernel, _stats("backward", True)),
}


@triton.jit
def _tl_exp_kernel(x_ptr, y_ptr, numel, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    mask = offsets < numel
    tl.store(y_ptr + offsets, tl.exp(tl.load(x_ptr + offsets, mask=mask)), mask=mask)


@pytest.mark.parametrize("arch", [80, 90])
def test_the_approximate_exp_pattern_is_recognised(arch):
    """The control of the test below: plain tl.exp matches the pattern it must not find."""
    ptx = _compile(_tl_exp_kernel, "f32", arch, False, {"BLOCK": 128}).asm["ptx"]
    assert _rounded_product_exps(ptx) >= 1


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("name", list(SIGMA_KERNELS))
def test_float32_sigma_is_a_precise_exp(arch, name):
    """sigma = exp(0.5 * logvar) in float32 is libdevice's exp (the C++ and CUDA ops' expf), not
    ex2.approx of a rounded product (2e-6 relative error at |logvar| = 80)."""
    kernel, constexprs = SIGMA_KERNELS[name]
    ptx = _compile(kernel, "f32", arch, False, constexprs).asm["ptx"]
    assert "ex2.approx" in ptx, "no exp in the kernel"
    assert _rounded_product_exps(ptx) == 0, "exp compiled to ex2.approx(x * log2(e))"


# The four diagonal kernels with the scale kinds other than logvar (every variant above):
# (kernel, scale, dtype, has_eps). log_std and softplus take exp of user data, softplus also
# log1p, sigmoid and the KL's log sigma; std and softplus divide by sigma.
SCALE_VARIANTS = [
    (kernel, scale, dtype, has_eps)
    for kernel in ("diag_forward", "diag_backward", "diag_stats_forward", "diag_stats_backward")
    for scale, dtype, has_eps in ((1, "f32", False), (2, "bf16", True), (3, "f32", False),
                                  (3, "f64", True))
]  # fmt: skip


def _scale_constexprs(kernel: str, scale: int, dtype: str, has_eps: bool) -> dict:
    if kernel == "diag_forward":
        return _fwd(dtype, has_eps, True, 1, False, scale)
    if kernel == "diag_backward":
        return _bwd(dtype, has_eps, False, 2, False, scale)
    return _stats(kernel.removeprefix("diag_stats_"), has_eps, scale, dtype)


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize(("kernel", "scale", "dtype", "has_eps"), SCALE_VARIANTS)
def test_scale_kinds_compile_for_the_gpu(arch, kernel, scale, dtype, has_eps):
    """Each scale kind is its own specialization (SCALE) with the lower bound a float64
    argument; float32 exp is precise and float32 division IEEE (div.rn, as the C++ kernels'),
    never Triton's approximate div.full."""
    module = diag_kernels if kernel in ("diag_forward", "diag_backward") else stats_kernels
    fn = getattr(module, f"{kernel}_kernel")
    # A launch passes a Python float as float32 unless the parameter says otherwise.
    (min_scale,) = (p for p in fn.params if p.name == "min_scale")
    assert min_scale.annotation_type == "fp64"
    compiled = _compile(fn, dtype, arch, False, _scale_constexprs(kernel, scale, dtype, has_eps))
    ptx = compiled.asm["ptx"]
    assert compiled.asm["cubin"], "ptxas produced no cubin"
    if dtype == "f32":
        assert _rounded_product_exps(ptx) == 0, "exp compiled to ex2.approx(x * log2(e))"
        assert "div.full.f32" not in ptx and "div.approx.f32" not in ptx


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("noise", [1, 2, 3], ids=["laplace", "logistic", "gumbel"])
@pytest.mark.parametrize("which", ["forward", "backward"])
def test_noise_kinds_compile_for_the_gpu(arch, which, noise, dtype):
    """Stream noise of each kind but the normal (NOISE; float32 contiguous, float64 strided
    with int64 indices): Philox in the kernel, and precise float32 logs (no lg2.approx)."""
    contig, ndim, idx64 = (True, 1, False) if dtype == "f32" else (False, 3, True)
    make = _fwd if which == "forward" else _bwd
    kernel = getattr(diag_kernels, f"diag_{which}_kernel")
    constexprs = make(dtype, False, contig, ndim, idx64, noise=noise)
    compiled = _compile(kernel, dtype, arch, idx64, constexprs)
    ptx = compiled.asm["ptx"]
    assert compiled.asm["cubin"], "ptxas produced no cubin"
    assert "mul.hi.u32" in ptx  # the stream's Philox rounds are in the kernel
    if dtype == "f32":
        assert "lg2.approx" not in ptx, "an approximate float32 log"
