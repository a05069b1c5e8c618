"""Build fused_reparam._C: the C++ CPU kernels always, the CUDA kernels when torch has CUDA and
nvcc is found (no GPU is needed to build).

Environment overrides:
  FUSED_REPARAM_BUILD=auto   (default) CUDA+CPU if possible, else CPU only
  FUSED_REPARAM_BUILD=cpu    CPU only, even where CUDA could be built
  FUSED_REPARAM_BUILD=cuda   CUDA+CPU, and fail if that is not possible
  FUSED_REPARAM_BUILD=none   no compiled extension: the package runs on its Triton and
                             pure-PyTorch backends
  TORCH_CUDA_ARCH_LIST       GPU architectures (default "8.0;9.0")
  FUSED_REPARAM_CPU_ISAS     the wider CPU kernel builds to compile with their own flags,
                             comma-separated (default "avx2,avx512"); those left out are
                             compiled in the main parallel build as empty tables (the portable
                             CPU kernels run), e.g. "" for a quick build that only GPUs use
Install with `pip install --no-build-isolation -e .` after installing torch.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
MODE = os.environ.get("FUSED_REPARAM_BUILD", "auto").strip().lower()
if MODE not in {"auto", "cpu", "cuda", "none"}:
    raise SystemExit(f"FUSED_REPARAM_BUILD must be auto, cpu, cuda or none, got {MODE!r}")


def _rel(paths: list[str]) -> list[str]:
    return [os.path.relpath(p, ROOT) for p in paths]


# CPU kernel builds for wider instruction sets: compiled with their own flags and linked after
# the portable build, whose copies of shared inline functions the linker then keeps (as
# PyTorch does for its own kernels). Chosen at run time by the CPU's capability.
ISA_FLAGS = {
    "avx2": ["-mavx2", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"],
    "avx512": [
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512dq",
        "-mavx2",
        "-mfma",
        "-mf16c",
        "-Wno-maybe-uninitialized",
    ],
}
X86_64 = platform.machine().lower() in {"x86_64", "amd64"}
_isas = os.environ.get("FUSED_REPARAM_CPU_ISAS", ",".join(ISA_FLAGS))
WIDE_ISAS = [name.strip() for name in _isas.split(",") if name.strip()]
if not set(WIDE_ISAS) <= set(ISA_FLAGS):
    raise SystemExit(f"FUSED_REPARAM_CPU_ISAS takes names of {sorted(ISA_FLAGS)}, got {_isas!r}")


def isa_source(name: str) -> str:
    return os.path.join("csrc", "cpu", "isa", f"kernels_{name}.cpp")


def cpu_sources() -> list[str]:
    csrc = os.path.join(ROOT, "csrc")
    first = [os.path.join(ROOT, isa_source("default"))]
    rest = [
        os.path.join(csrc, "ops.cpp"),
        *sorted(glob.glob(os.path.join(csrc, "autograd", "*.cpp"))),
        *sorted(glob.glob(os.path.join(csrc, "cpu", "*.cpp"))),
    ]
    # Wider builds not asked for compile without their flags, to tables that are empty.
    empty = [os.path.join(ROOT, isa_source(name)) for name in ISA_FLAGS if name not in WIDE_ISAS]
    return _rel(first + rest + empty)


def cuda_sources() -> list[str]:
    return _rel(sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu"))))


def want_cuda() -> bool:
    if MODE in {"cpu", "none"}:
        return False
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    nvcc = CUDA_HOME is not None and shutil.which(os.path.join(CUDA_HOME, "bin", "nvcc"))
    ok = torch.version.cuda is not None and bool(nvcc) and bool(cuda_sources())
    if MODE == "cuda" and not ok:
        raise SystemExit(
            "FUSED_REPARAM_BUILD=cuda but CUDA cannot be built: torch.version.cuda="
            f"{torch.version.cuda}, CUDA_HOME={CUDA_HOME}, .cu sources={len(cuda_sources())}"
        )
    return ok


def extensions() -> tuple[list, dict]:
    if MODE == "none":
        return [], {}
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    # Objects live in a kept folder, not pip's temporary one, so ninja recompiles only what
    # changed (it also tracks flags and headers); one folder per Python ABI and torch.
    kept_temp = os.path.join(
        ROOT, "build", f"ext-{sys.implementation.cache_tag}-{torch.__version__}"
    )

    class BuildExtensionWithISA(BuildExtension):
        """Compiles the ISA-specific CPU kernel files with their flags, then links as usual."""

        def build_extension(self, ext) -> None:  # noqa: ANN001
            self.build_temp = kept_temp
            objects = []
            for name in WIDE_ISAS:
                flags = ISA_FLAGS[name]
                post = dict(ext.extra_compile_args)
                post["cxx"] = list(post["cxx"]) + (flags if X86_64 else [])
                objects += self.compiler.compile(
                    [isa_source(name)],
                    output_dir=self.build_temp,
                    macros=ext.define_macros,
                    include_dirs=ext.include_dirs,
                    extra_postargs=post,
                    depends=ext.depends,
                )
            ext.extra_objects = list(ext.extra_objects or []) + objects
            super().build_extension(ext)

    include_dirs = [os.path.join(ROOT, "csrc", "include"), os.path.join(ROOT, "csrc")]
    cxx = ["-O3", "-fno-math-errno", "-Wall", "-Wno-unknown-pragmas"]
    link = []
    if torch._C.has_openmp:
        # at::parallel_for is an inline `omp parallel` in an OpenMP torch: without -fopenmp it
        # runs serially. libgomp resolves to the copy torch already loaded (same soname).
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    macros = [("FUSED_REPARAM_PYTHON_MODULE", None), ("Py_LIMITED_API", "0x030A0000")]
    if want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        ext = CUDAExtension(
            "fused_reparam._C",
            cpu_sources() + cuda_sources(),
            include_dirs=include_dirs,
            define_macros=[*macros, ("FUSED_REPARAM_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
            extra_link_args=link,
            py_limited_api=True,
        )
    else:
        ext = CppExtension(
            "fused_reparam._C",
            cpu_sources(),
            include_dirs=include_dirs,
            define_macros=macros,
            extra_compile_args={"cxx": cxx},
            extra_link_args=link,
            py_limited_api=True,
        )
    return [ext], {"build_ext": BuildExtensionWithISA}


ext_modules, cmdclass = extensions()
setup(
    packages=find_packages("python"),
    package_dir={"": "python"},
    package_data={"fused_reparam": ["py.typed"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if ext_modules else {},
)
