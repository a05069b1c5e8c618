#!/usr/bin/env bash
# nvcc compile check (no GPU needed) of csrc/cuda/*.cu and tests/cpp/header_check.cu for sm_80
# and sm_90, against torch's headers, as setup.py's CUDAExtension compiles them. Works with a
# CPU-only torch: the one generated header such a torch lacks is stood in for below.
# Usage: bash scripts/check_cuda.sh [FILE...]   (default: every file; NVCC, PYTHON override the
# tools; MAX_JOBS files at a time)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || { echo "check_cuda: nvcc not found" >&2; exit 1; }

torch_inc=$("$PY" -c "from torch.utils.cpp_extension import include_paths; print(' '.join(include_paths()))")
py_inc=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A CPU-only torch ships c10/cuda/CUDAMacros.h but not the header CMake generates for it; a
# CUDA torch's copy (shared-library build) holds just this define.
found=0
for d in $torch_inc; do [ -f "$d/c10/cuda/impl/cuda_cmake_macros.h" ] && found=1; done
if [ "$found" = 0 ]; then
  mkdir -p "$tmp/inc/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$tmp/inc/c10/cuda/impl/cuda_cmake_macros.h"
fi

# Torch 2.13's headers need C++20; the defines are those torch.utils.cpp_extension adds.
# Files compile in parallel (MAX_JOBS at a time, each device pass on one thread): a .cu that
# includes ATen spends most of a minute in the host compiler, which one file cannot share.
flags=(-std=c++20 -O3 --expt-relaxed-constexpr -Xcompiler -fPIC
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
  -DFUSED_REPARAM_WITH_CUDA -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
  -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
  -Icsrc/include -Icsrc -I"$tmp/inc" -I"$py_inc")
for d in $torch_inc; do flags+=(-isystem "$d"); done

shopt -s nullglob
files=(csrc/cuda/*.cu tests/cpp/header_check.cu)
[ $# -gt 0 ] && files=("$@")
jobs=${MAX_JOBS:-2}
echo "check_cuda: $("$NVCC" --version | tail -1), sm_80 + sm_90, ${#files[@]} file(s), $jobs at a time"
compile() {
  local f=$1 start=$SECONDS
  if "$NVCC" "${flags[@]}" -c "$f" -o "$tmp/$(basename "$f").o" 2>"$tmp/$(basename "$f").err"; then
    echo "  ok    $f ($((SECONDS - start)) s)"
  else
    echo "  FAIL  $f" >&2
    cat "$tmp/$(basename "$f").err" >&2
    return 1
  fi
}
fail=0
running=0
for f in "${files[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || fail=1
    running=$((running - 1))
  fi
  compile "$f" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || fail=1
  running=$((running - 1))
done
exit "$fail"
