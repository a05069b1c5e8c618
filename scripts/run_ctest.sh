#!/usr/bin/env bash
# Configures, builds and runs the C++ tests with CMake + ctest (torch found via python3).
# Usage: bash scripts/run_ctest.sh [extra cmake -D options]   (BUILD_DIR overrides build/cmake)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUILD_DIR=${BUILD_DIR:-build/cmake}

gen=()
if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
# A build dir configured with another generator cannot be reused: start it afresh.
if [ -f "$BUILD_DIR/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}\$" \
    "$BUILD_DIR/CMakeCache.txt"; then
  rm -rf "$BUILD_DIR"
fi
prefix=$("$PY" -c "import torch; print(torch.utils.cmake_prefix_path)")

cmake -S . -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" "$@"
cmake --build "$BUILD_DIR" -j "${MAX_JOBS:-2}"
ctest --test-dir "$BUILD_DIR" --output-on-failure
