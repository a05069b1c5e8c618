#!/usr/bin/env bash
# Installs what fused_reparam needs and builds it in place: torch (only if missing: the local
# CPU build torch==2.13.0 where it is offered; never a plain `torch`, which would pull a
# multi-GB CUDA build), then the package with --no-build-isolation against that torch.
# Usage: bash scripts/install.sh [--test]   (--test adds pytest, numpy, triton, ruff)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==${FUSED_REPARAM_TORCH_VERSION:-2.13.0}"
fi
"$PY" -m pip install --quiet "setuptools>=64" wheel ninja
# The demo (python -m fused_reparam.demo) trains on scikit-learn's bundled digits data.
"$PY" -m pip install --quiet scikit-learn
if [ "${1:-}" = "--test" ]; then
  "$PY" -m pip install --quiet pytest numpy triton ruff
fi
MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip install --quiet --no-build-isolation -e .
"$PY" -c "import fused_reparam, torch; print('fused_reparam', fused_reparam.__version__, \
'| torch', torch.__version__, '| compiled extension:', fused_reparam.has_extension(), \
'| backends on cpu:', fused_reparam.available_backends('cpu'))"
