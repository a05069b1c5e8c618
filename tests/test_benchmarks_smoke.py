"""The benchmark scripts run end to end (tiny sizes, CPU), so they cannot rot between the
sessions that have a GPU to run them for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fused_reparam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not fused_reparam.has_extension(), reason="no compiled extension")


def _run(script: str, *args: str) -> None:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.join(ROOT, "python"), os.environ.get("PYTHONPATH", "")]
        ),
    )
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]


def test_cpu_benchmark_script(tmp_path):
    _run(
        "bench_diag_cpu.py",
        "--min-log2",
        "10",
        "--max-log2",
        "11",
        "--no-compile",
        "--out-dir",
        str(tmp_path),
        "--out",
        "smoke",
    )
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [r["log2_n"] for r in rows] == [10, 11]
    assert all(r["fused_fwd_ms"] > 0 for r in rows)


def test_cpu_chol_benchmark_script(tmp_path):
    _run("bench_chol_cpu.py", "--sizes", "64x3,8x17", "--no-compile", "--out-dir",
         str(tmp_path), "--out", "smoke")  # fmt: skip
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [(r["B"], r["D"]) for r in rows] == [(64, 3), (8, 17)]
    assert all(r["fused_fwdbwd_ms"] > 0 and r["fwd_x_vs_distributions"] > 0 for r in rows)


def test_gpu_benchmark_script_in_cpu_smoke_mode(tmp_path):
    _run(
        "bench_diag_gpu.py",
        "--device",
        "cpu",
        "--min-log2",
        "10",
        "--max-log2",
        "12",
        "--dtypes",
        "float32,bfloat16",
        "--no-compile",
        "--out-dir",
        str(tmp_path),
        "--stem",
        "smoke",
    )
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert {r["dtype"] for r in data["rows"]} == {"float32", "bfloat16"}
    assert (tmp_path / "smoke.md").read_text().count("| 2^1") == 4
