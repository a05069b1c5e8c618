#!/usr/bin/env bash
# Builds an sdist and a wheel, installs each into a fresh virtual environment outside the
# source tree, and runs a smoke test there: the package and all its modules import from the
# venv, the compiled ops are present, and a sample, its gradients and the stats are right.
# Usage: bash scripts/check_package.sh   (PYTHON, MAX_JOBS)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
say() { printf '[package %4ds] %s\n' "$((SECONDS - start))" "$*"; }

say "sdist"
"$PY" -m build --sdist --no-isolation -o "$tmp/dist" . >"$tmp/sdist.log" 2>&1 ||
  { cat "$tmp/sdist.log"; exit 1; }
sdist=$(ls "$tmp"/dist/*.tar.gz)
say "wheel (from the source tree: reuses build/'s compiled objects)"
"$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$tmp/dist" . >"$tmp/wheel.log" 2>&1 ||
  { cat "$tmp/wheel.log"; exit 1; }
wheel=$(ls "$tmp"/dist/*.whl)

# torch and numpy come from the environment that runs this check, through a .pth file (a
# path line; the .pth files of that folder are not read, so its fused_reparam is not seen):
# installing torch into each venv would download it again, a multi-GB CUDA build on most
# machines. Everything of fused_reparam comes from the wheel or the sdist alone.
deps_dir=$("$PY" -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
fresh_venv() {
  "$PY" -m venv "$1"
  local site
  site=$("$1/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$deps_dir" >"$site/torch_of_the_test_environment.pth"
  "$1/bin/python" -m pip install -q "setuptools>=64" wheel ninja
}

repo=$PWD
smoke() {
  (cd "$tmp" && "$1/bin/python" - "$repo" "$1" <<'EOF'
import os
import pkgutil
import sys

import torch

import fused_reparam as f

root, venv = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
where = os.path.realpath(os.path.dirname(f.__file__))
assert not where.startswith(root), f"imported from the source tree: {where}"
assert where.startswith(venv), f"not imported from the fresh venv {venv}: {where}"
for m in pkgutil.walk_packages(f.__path__, "fused_reparam."):
    if ".demo" not in m.name and "._triton." not in m.name:  # the demo needs scikit-learn
        __import__(m.name)
assert os.path.exists(os.path.join(where, "py.typed")), "py.typed missing"
assert f.has_extension(), "the compiled extension is missing"
assert f.available_backends("cpu")[0] == "cpu", f.available_backends("cpu")
mu = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
logvar = torch.randn(7, dtype=torch.float64, requires_grad=True)
z = f.sample_diag(mu, logvar, seed=3)
ref = f.sample_diag(mu, logvar, seed=3, backend="reference")
torch.testing.assert_close(z, ref)
z.sum().backward()
torch.testing.assert_close(mu.grad, torch.ones_like(mu))
# d z / d logvar = 0.5 * sigma * eps = 0.5 * (z - mu), summed over the broadcast rows.
torch.testing.assert_close(logvar.grad, (0.5 * (z - mu)).sum(0).detach())
L = torch.eye(7, dtype=torch.float64).expand(5, 7, 7)
s = f.sample_chol(mu, L, seed=3, return_stats=True, num_samples=2)
assert s.z.shape == (2, 5, 7) and s.kl.shape == (5,) and s.log_q.shape == (2, 5)
print(f"smoke test passed: fused_reparam {f.__version__} from {where}")
EOF
  )
}

say "wheel into a fresh venv"
fresh_venv "$tmp/venv-wheel"
"$tmp/venv-wheel/bin/python" -m pip install -q --no-deps "$wheel"
smoke "$tmp/venv-wheel"

say "sdist into a fresh venv (builds the extension from the sdist's sources)"
fresh_venv "$tmp/venv-sdist"
# The wider CPU kernel builds compile as empty tables (FUSED_REPARAM_CPU_ISAS=): their sources
# must still be in the sdist, and the full build already ran for the wheel.
FUSED_REPARAM_CPU_ISAS= MAX_JOBS=${MAX_JOBS:-$(nproc)} "$tmp/venv-sdist/bin/python" -m pip \
  install -q --no-build-isolation --no-deps "$sdist"
smoke "$tmp/venv-sdist"
say "done"
