#!/usr/bin/env bash
# Installs what fused_reparam needs and builds it in place (editable): torch (only if missing:
# the pin torch==2.13.0, never a plain `torch`; where the package index serves the CUDA build
# for it, install the torch you want first),
# then the package with --no-build-isolation against that torch. Run it in a virtual
# environment. Compiled objects are kept in build/, so a rebuild compiles only what changed.
# Usage: bash scripts/install.sh [--test]   (--test adds what the tests need: pytest, numpy,
# triton, ruff, build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
start=$SECONDS
say() { printf '[install %4ds] %s\n' "$((SECONDS - start))" "$*"; }

if ! "$PY" -c "import torch" 2>/dev/null; then
  version=${FUSED_REPARAM_TORCH_VERSION:-2.13.0}
  say "installing torch==$version"
  "$PY" -m pip install --quiet "torch==$version"
fi
say "build tools and the demo's scikit-learn"
"$PY" -m pip install --quiet "setuptools>=77" wheel ninja scikit-learn
if [ "${1:-}" = "--test" ]; then
  say "test tools: pytest, pytest-xdist, numpy, triton, ruff, build"
  "$PY" -m pip install --quiet pytest pytest-xdist numpy triton ruff build
  # Pyro, for tests/test_pyro.py: --no-deps, so that it never brings or upgrades torch (its
  # other requirements: numpy above, typing_extensions with torch, and tqdm, listed here).
  say "test tools: pyro-ppl (--no-deps)"
  "$PY" -m pip install --quiet --no-deps "pyro-ppl==1.9.2" pyro-api opt_einsum tqdm
fi

jobs=${MAX_JOBS:-$(nproc)}
say "building fused_reparam with $jobs jobs (a first build takes a few minutes on 2 cores)"
# pip -v shows ninja's "[k/n] compile" lines: print just those, as progress.
MAX_JOBS=$jobs "$PY" -m pip install -v --no-build-isolation --no-deps -e . 2>&1 |
  awk '/^ *\[[0-9]+\/[0-9]+\] /{ for (i = NF; i > 0; i--) if ($i ~ /\.(cpp|cu)$/) {
         f = $i; sub(/.*\/csrc\//, "csrc/", f); printf "  %s %s\n", $1, f; fflush(); break } }
       /error:|FAILED:/{ print; fflush() }' || {
  say "build failed: rerun with 'MAX_JOBS=$jobs $PY -m pip install -v --no-build-isolation -e .'"
  exit 1
}
say "done"
"$PY" -c "import fused_reparam, torch; print('fused_reparam', fused_reparam.__version__, \
'| torch', torch.__version__, '| compiled extension:', fused_reparam.has_extension(), \
'| backends on cpu:', fused_reparam.available_backends('cpu'))"
