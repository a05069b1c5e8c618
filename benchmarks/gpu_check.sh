#!/usr/bin/env bash
# Everything a session with a lent GPU runs, in one device call (see README, "GPU check"):
#   build with CUDA -> whole test suite on the GPU -> compute-sanitizer memcheck on the CUDA
#   tests -> GPU benchmark. Logs and results go to $OUT (at most 8 files come back).
# Usage: bash benchmarks/gpu_check.sh [all|build|test|sanitize|bench]...   (default: all)
# Stages after `build` reuse the in-place build while the device machine stays warm.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(all)
has() { for s in "${stages[@]}"; do [ "$s" = all ] || [ "$s" = "$1" ] && return 0; done; return 1; }
fail=0

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| cuda', torch.version.cuda, '|', torch.cuda.get_device_name())"
  "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
  nvcc --version | tail -1
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if has build; then
  echo "== build (FUSED_REPARAM_BUILD=cuda)"
  start=$SECONDS
  if FUSED_REPARAM_BUILD=cuda MAX_JOBS=${MAX_JOBS:-16} "$PY" setup.py build_ext --inplace \
      >"$OUT/build.log" 2>&1; then
    echo "built in $((SECONDS - start)) s"
  else
    tail -40 "$OUT/build.log"
    exit 1
  fi
  "$PY" -c "import fused_reparam as f; print('backends on cuda:', f.available_backends('cuda'))"
fi

if has test; then
  echo "== pytest on the GPU"
  timeout 420 "$PY" -m pytest -q -ra -p no:cacheprovider tests/ >"$OUT/pytest.log" 2>&1
  rc=$?
  tail -25 "$OUT/pytest.log"
  [ $rc -eq 0 ] || fail=1
fi

if has sanitize; then
  echo "== compute-sanitizer memcheck (CUDA tests)"
  timeout 400 compute-sanitizer --tool memcheck --error-exitcode 97 --print-limit 20 \
    "$PY" -m pytest -q -p no:cacheprovider -x tests/test_diag_cuda.py tests/test_diag_values.py \
    tests/test_diag_grad.py tests/test_chol_cuda.py tests/test_chol.py tests/test_stats_cuda.py \
    -k "cuda and not over_2_31 and not graph and not huge" >"$OUT/sanitizer.log" 2>&1
  rc=$?
  tail -8 "$OUT/sanitizer.log"
  [ $rc -eq 0 ] || { echo "compute-sanitizer: exit $rc"; fail=1; }
fi

if has bench; then
  # Six result files (json, md, png of each benchmark) and env.txt: run this stage in a device
  # call of its own (at most 8 files come back). The stage aims at 8 minutes in all: the
  # Cholesky benchmark gets what the diagonal one left of them, at least 100 s (it rewrites
  # its json and md after every size, so a run cut short keeps the sizes it finished).
  echo "== GPU benchmark (diagonal op)"
  start=$SECONDS
  timeout 480 "$PY" benchmarks/bench_diag_gpu.py --out-dir "$OUT" 2>&1 | tail -20
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1
  left=$((480 - (SECONDS - start)))
  [ $left -lt 100 ] && left=100
  echo "== GPU benchmark (Cholesky op, at most $left s)"
  timeout $left "$PY" benchmarks/bench_chol_gpu.py --out "$OUT" 2>&1 | tail -30
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1
fi
exit $fail
