#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs and builds, then runs every stage and
# fails on the first failure. Stages, in order:
#   install   scripts/install.sh --test (editable build, incremental)
#   ruff      lint and format check
#   nvcc      compile check of the CUDA code for sm_80 and sm_90 (scripts/check_cuda.sh)
#   triton    Triton compile check for sm_80 and sm_90 (tests/test_triton_compile*.py)
#   gpu-dry   the GPU check's dry run (benchmarks/gpu_check.sh --dry-run)
#   ctest     the C++ tests (scripts/run_ctest.sh)
#   package   wheel and sdist installed into fresh venvs (scripts/check_package.sh)
#   pytest    the Python tests; without a GPU the Triton kernels run in the Triton interpreter
# Usage: bash scripts/test.sh [STAGE...] [-- PYTEST_ARGS...]   (default: every stage)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ALL=(install ruff nvcc triton gpu-dry ctest package pytest)

stages=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    install | ruff | nvcc | triton | gpu-dry | ctest | package | pytest) stages+=("$1"); shift ;;
    *) echo "test.sh: unknown stage '$1' (stages: ${ALL[*]}; pytest arguments after --)" >&2
       exit 2 ;;
  esac
done
[ ${#stages[@]} -eq 0 ] && stages=("${ALL[@]}")
wanted() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

start=$SECONDS
step() { printf '\n== %s == (%d s so far)\n' "$*" "$((SECONDS - start))"; }

if wanted install; then
  step "install"
  bash scripts/install.sh --test
fi

if wanted ruff; then
  step "ruff"
  "$PY" -m ruff check python tests benchmarks scripts setup.py
  "$PY" -m ruff format --check python tests benchmarks scripts setup.py
fi

if wanted nvcc; then
  step "nvcc compile check (sm_80, sm_90)"
  if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
    bash scripts/check_cuda.sh
  elif [ -n "${CI:-}" ]; then
    echo "nvcc not found: CI must compile-check the CUDA code" >&2
    exit 1
  else
    echo "nvcc not found: skipped (CI runs it)"
  fi
fi

if wanted triton; then
  step "Triton compile check (sm_80, sm_90)"
  env -u TRITON_INTERPRET "$PY" -m pytest -q -p no:cacheprovider tests/test_triton_compile*.py
fi

if wanted gpu-dry; then
  step "GPU check dry run (test selection collected, benchmarks and kernel driver on the CPU)"
  OUT=$(mktemp -d) bash benchmarks/gpu_check.sh --dry-run
fi

if wanted ctest; then
  step "C++ tests (CMake + ctest)"
  bash scripts/run_ctest.sh
fi

if wanted package; then
  step "wheel and sdist, each installed into a fresh venv outside the source tree"
  bash scripts/check_package.sh
fi

if wanted pytest; then
  step "pytest"
  if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PY" -m pytest -q "$@"
  else
    # No GPU: the Triton backend runs on CPU tensors in the Triton interpreter, the tests
    # spread over the CPUs (pytest-xdist; FUSED_REPARAM_TEST_WORKERS=0 runs them in-process).
    workers=()
    if "$PY" -c "import xdist" 2>/dev/null; then
      workers=(-n "${FUSED_REPARAM_TEST_WORKERS:-auto}")
    fi
    TRITON_INTERPRET=1 "$PY" -m pytest -q "${workers[@]}" "$@"
  fi
fi
step "done"
