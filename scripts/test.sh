#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs and builds, then runs ruff, the
# nvcc compile check of the CUDA code, the Triton compile check, the GPU check's dry run, the
# C++ tests (ctest) and the Python tests (pytest; without a GPU the Triton kernels run in the
# Triton interpreter).
# Fails on the first failure. Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

step() { printf '\n== %s ==\n' "$*"; }

step "install"
bash scripts/install.sh --test

step "ruff"
"$PY" -m ruff check python tests benchmarks setup.py
"$PY" -m ruff format --check python tests benchmarks setup.py

step "nvcc compile check (sm_80, sm_90)"
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  bash scripts/check_cuda.sh
elif [ -n "${CI:-}" ]; then
  echo "nvcc not found: CI must compile-check the CUDA code" >&2
  exit 1
else
  echo "nvcc not found: skipped (CI runs it)"
fi

step "Triton compile check (sm_80, sm_90)"
env -u TRITON_INTERPRET "$PY" -m pytest -q -p no:cacheprovider tests/test_triton_compile.py

step "GPU check dry run (test selection collected, benchmarks and kernel driver on the CPU)"
OUT=$(mktemp -d) bash benchmarks/gpu_check.sh --dry-run

step "C++ tests (CMake + ctest)"
bash scripts/run_ctest.sh

step "pytest"
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  "$PY" -m pytest -q "$@"
else
  # No GPU: the Triton backend runs on CPU tensors in the Triton interpreter.
  TRITON_INTERPRET=1 "$PY" -m pytest -q "$@"
fi
