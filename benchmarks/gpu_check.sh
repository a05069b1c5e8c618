#!/usr/bin/env bash
# The GPU check: build for sm_90, the core GPU tests, the GPU benchmark subset and
# compute-sanitizer, in one run budgeted to 8 minutes (benchmarks/README.md).
#
# Usage: bash benchmarks/gpu_check.sh [--dry-run] [STAGE...]
#   STAGE: build test bench sanitize (default: all four, in that order). A stage that needs the
#   extension builds it first when it is missing, so a rerun can name only the stages left.
#   --dry-run: what runs without a GPU (CI): the test selection collected against the GPU
#   parametrization, the benchmarks and the kernel driver on the CPU at tiny sizes.
# Environment: OUT (results folder, default /tmp/gpu_check), GPU_CHECK_DEADLINE (seconds for
# the whole run, default 470), PYTHON (default python3), MAX_JOBS (build jobs, default nproc).
# $OUT gets at most 8 files: summary.txt, build.log, test.log, bench.log, sanitize.log,
# gpu_diag.json, gpu_chol.json, bench.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
DEADLINE=${GPU_CHECK_DEADLINE:-470}
SELECTION=benchmarks/gpu_core_tests.txt
SANITIZER=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
# One seed for the test data of every pytest worker (the tests' fixed default unless set),
# recorded in summary.txt for a replay.
export FUSED_REPARAM_TEST_SEED=${FUSED_REPARAM_TEST_SEED:-0}
mkdir -p "$OUT"

dry=0
stages=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    build | test | bench | sanitize) stages+=("$arg") ;;
    *) echo "gpu_check: unknown argument '$arg' (stages: build test bench sanitize)" >&2; exit 2 ;;
  esac
done
[ ${#stages[@]} -eq 0 ] && stages=(build test bench sanitize)

summary="$OUT/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
failed=0
build_failed=0

# run_stage NAME CAP_SECONDS FUNCTION: runs FUNCTION with the smaller of its cap and the time
# left before the deadline, logs to $OUT/NAME.log, records the outcome. The function reads
# its time left with `left`, so a build it needs first comes out of its own cap.
run_stage() {
  local name=$1 cap=$2 fn=$3 remaining=$((DEADLINE - SECONDS))
  if [ "$remaining" -lt 20 ]; then
    note "$name: SKIPPED (deadline: ${remaining} s left)"
    failed=1
    return
  fi
  budget=$((cap < remaining ? cap : remaining))
  stage_start=$SECONDS
  echo "== $name (at most $budget s)"
  local rc
  "$fn" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 15 "$OUT/$name.log"
  if [ $rc -eq 0 ]; then
    note "$name: ok in $((SECONDS - stage_start)) s"
  else
    [ $rc -eq 124 ] && rc="124 (time cap $budget s)"
    note "$name: FAILED (exit $rc) in $((SECONDS - stage_start)) s, log $name.log"
    failed=1
  fi
}

# Seconds left of the current stage's budget (at least 1), times a fraction PERCENT / 100.
left() { local t=$(((budget - (SECONDS - stage_start)) * ${1:-100} / 100)); echo $((t < 1 ? 1 : t)); }

selected_tests() { grep -v -e '^#' -e '^[[:space:]]*$' "$SELECTION"; }

ensure_built() {
  "$PY" -c "import sys, fused_reparam as f; sys.exit('cuda' not in f.available_backends('cuda'))" \
    2>/dev/null && return 0
  if [ $build_failed = 1 ]; then
    echo "gpu_check: the build failed earlier (build.log): not tried again"
    return 1
  fi
  echo "gpu_check: building first (the extension has no CUDA kernels here)"
  stage_build || { build_failed=1; return 1; }
  [ "$(left)" -gt 20 ] || { echo "gpu_check: the build left this stage no time"; return 1; }
}

stage_build() {
  # sm_90 only; the wider CPU builds left out, so every translation unit is in one ninja run.
  FUSED_REPARAM_BUILD=cuda TORCH_CUDA_ARCH_LIST=9.0 FUSED_REPARAM_CPU_ISAS= \
    MAX_JOBS=${MAX_JOBS:-$(nproc)} timeout -k 10 "$(left)" "$PY" setup.py build_ext --inplace &&
    "$PY" -c "import fused_reparam as f; print('backends on cuda:', f.available_backends('cuda'))" ||
    { build_failed=1; return 1; }
}

stage_test() {
  local ids
  mapfile -t ids < <(selected_tests)
  echo "${#ids[@]} tests from $SELECTION"
  if [ $dry = 1 ]; then
    # Each line must collect exactly itself where a GPU and every GPU backend are present.
    local collected rc
    collected=$(FUSED_REPARAM_COLLECT_GPU=1 "$PY" -m pytest --collect-only -q \
      -p no:cacheprovider "${ids[@]}" 2>&1)
    rc=$?
    grep -iE 'error|not found' <<<"$collected"
    local missing extra
    missing=$(comm -23 <(printf '%s\n' "${ids[@]}" | sort) <(grep '::' <<<"$collected" | sort))
    extra=$(comm -13 <(printf '%s\n' "${ids[@]}" | sort) <(grep '::' <<<"$collected" | sort))
    [ -n "$missing" ] && printf 'not collected:\n%s\n' "$missing"
    [ -n "$extra" ] && printf 'collected but not listed:\n%s\n' "$extra"
    echo "collected $(grep -c '::' <<<"$collected") of ${#ids[@]} (pytest exit $rc)"
    [ $rc -eq 0 ] && [ -z "$missing" ] && [ -z "$extra" ]
    return
  fi
  ensure_built || return 1
  local extra=()
  # Parallel workers share the GPU and overlap the Triton and Inductor compiles.
  "$PY" -c "import xdist" 2>/dev/null && extra+=(-n 8)
  "$PY" -c "import pytest_timeout" 2>/dev/null && extra+=(--timeout 60)
  # SIGINT at the cap: pytest stops and still reports what failed so far.
  timeout -s INT -k 15 "$(left)" "$PY" -m pytest -q -rfEs --durations=15 -p no:cacheprovider \
    "${extra[@]}" "${ids[@]}"
}

stage_bench() {
  local tmp
  tmp=$(mktemp -d)
  local diag=(--min-log2 26 --max-log2 28 --step 2 --dtypes float32)
  local chol=(--sizes 65536x8,65536x32,16384x64 --dtypes float32)
  if [ $dry = 1 ]; then
    diag=(--device cpu --min-log2 10 --max-log2 12 --step 2 --dtypes float32 --no-compile)
    chol=(--smoke --sizes 64x8,16x33 --dtypes float32)
  else
    ensure_built || return 1
  fi
  # The diagonal rows first, then the Cholesky rows; each script rewrites its results after
  # every size, so a run cut short keeps the sizes it finished.
  local rc=0
  timeout -k 10 "$(left 50)" "$PY" benchmarks/bench_diag_gpu.py "${diag[@]}" --out-dir "$tmp" \
    --stem gpu_diag || rc=1
  timeout -k 10 "$(left)" "$PY" benchmarks/bench_chol_gpu.py "${chol[@]}" --out "$tmp" \
    --stem gpu_chol || rc=1
  : >"$OUT/bench.md"
  for f in gpu_diag gpu_chol; do
    [ -f "$tmp/$f.json" ] && cp "$tmp/$f.json" "$OUT/"
    [ -f "$tmp/$f.md" ] && { cat "$tmp/$f.md"; echo; } >>"$OUT/bench.md"
  done
  rm -rf "$tmp"
  return $rc
}

stage_sanitize() {
  local driver=benchmarks/gpu_kernel_driver.py
  if [ $dry = 1 ]; then
    "$PY" $driver --device cpu
    return
  fi
  ensure_built || return 1
  [ -x "$SANITIZER" ] || { echo "gpu_check: compute-sanitizer not found"; return 1; }
  # Without the caching allocator every tensor is its own allocation, so memcheck sees an
  # access past a tensor's end that would otherwise land inside a cached block.
  local rc=0 sanitizer=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --error-exitcode 97
    --print-limit 20)
  echo "-- memcheck: every kernel and dtype"
  timeout -k 10 "$(left 60)" "${sanitizer[@]}" --tool memcheck "$PY" $driver || rc=1
  # The kernels with shared memory and warp shuffles: the Cholesky and stats ops.
  for tool in synccheck racecheck; do
    echo "-- $tool: kernels with shared memory"
    timeout -k 10 "$(left 50)" "${sanitizer[@]}" --tool $tool "$PY" $driver \
      --ops diag_stats,chol --dtypes float32,float16,float64 || rc=1
  done
  return $rc
}

{
  date -u '+%Y-%m-%d %H:%M UTC'
  git log -1 --format='commit %h %s' 2>/dev/null
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv \
    2>/dev/null || echo "nvidia-smi: not available"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| cuda', torch.version.cuda, '|', torch.cuda.get_device_name() if torch.cuda.is_available()
else 'no GPU')"
  "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
  # The build needs setuptools >= 64 and ninja (without it, compiles run one at a time).
  "$PY" -c "import setuptools; print('setuptools', setuptools.__version__)" 2>&1
  "$PY" -c "import ninja" 2>/dev/null || command -v ninja >/dev/null || echo "WARNING: no ninja"
  command -v nvcc >/dev/null && nvcc --version | tail -1
  [ -x "$SANITIZER" ] && "$SANITIZER" --version | tail -1
  echo "test data: FUSED_REPARAM_TEST_SEED=$FUSED_REPARAM_TEST_SEED"
  [ $dry = 1 ] && echo "dry run: no GPU work"
} 2>&1 | tee -a "$summary"

caps=(build:150 test:150 bench:150 sanitize:100)
for entry in "${caps[@]}"; do
  name=${entry%%:*}
  for s in "${stages[@]}"; do
    [ "$s" = "$name" ] || continue
    if [ $dry = 1 ] && [ "$name" = build ]; then
      note "build: dry run, skipped (the nvcc check compiles every .cu file)"
      continue
    fi
    run_stage "$name" "${entry#*:}" "stage_$name"
  done
done

n=$(find "$OUT" -type f | wc -l)
note "total: $SECONDS s; $n files in $OUT"
if [ "$n" -gt 8 ]; then
  note "gpu_check: more than 8 files in $OUT: not all of them would come back from the GPU machine"
  failed=1
fi
exit $failed
