"""The benchmark scripts run end to end (tiny sizes, CPU), so they cannot rot between runs
on a GPU."""

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
        "--threads",
        "1,2",
        "--no-compile",
        "--out-dir",
        str(tmp_path),
        "--out",
        "smoke",
    )
    data = json.loads((tmp_path / "smoke.json").read_text())
    rows = data["rows"]
    assert [(r["threads"], r["log2_n"]) for r in rows] == [(1, 10), (1, 11), (2, 10), (2, 11)]
    assert data["meta"]["threads"] == [1, 2]
    assert all(r["fused_fwd_ms"] > 0 for r in rows)
    md = (tmp_path / "smoke.md").read_text()
    assert "## 1 thread\n" in md and "## 2 threads\n" in md and md.count("| 2^1") == 4


def test_cpu_chol_benchmark_script(tmp_path):
    _run("bench_chol_cpu.py", "--sizes", "64x3,8x17", "--threads", "1,2", "--no-compile",
         "--out-dir", str(tmp_path), "--out", "smoke")  # fmt: skip
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [(r["threads"], r["B"], r["D"]) for r in rows] == [
        (t, b, d) for t in (1, 2) for b, d in ((64, 3), (8, 17))
    ]
    assert all(r["fused_fwdbwd_ms"] > 0 and r["fwd_x_vs_distributions"] > 0 for r in rows)


def test_cpu_chol_benchmark_compares_with_jax_at_one_thread(tmp_path):
    pytest.importorskip("jax")
    _run("bench_chol_cpu.py", "--sizes", "8x3", "--threads", "1", "--no-compile",
         "--out-dir", str(tmp_path), "--out", "smoke")  # fmt: skip
    (row,) = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert row["jax_fwd_ms"] > 0 and row["jax_fwdbwd_ms"] > 0 and row["fwdbwd_x_vs_jax"] > 0


def test_cpu_stats_benchmark_script(tmp_path):
    _run("bench_stats_cpu.py", "--sizes", "1x64x3,2x8x17", "--threads", "1,2", "--no-compile",
         "--out-dir", str(tmp_path), "--out", "smoke")  # fmt: skip
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [(r["threads"], r["K"], r["B"], r["D"]) for r in rows] == [
        (t, *size) for t in (1, 2) for size in ((1, 64, 3), (2, 8, 17))
    ]
    assert all(r["fused_fwdbwd_ms"] > 0 and r["fwdbwd_x_vs_eager"] > 0 for r in rows)


def test_cpu_scales_benchmark_script(tmp_path):
    _run("bench_scales_cpu.py", "--max-log2", "10", "--threads", "1", "--out-dir",
         str(tmp_path), "--out", "smoke")  # fmt: skip
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [(r["scale"], r["shape"]) for r in rows] == [
        (scale, [64, 8]) for scale in ("logvar", "log_std", "std", "softplus")
    ]
    assert all(r["fwdbwd_x_vs_logvar"] > 0 and r["fwd_x_vs_dist"] > 0 for r in rows)
    assert (tmp_path / "smoke.md").read_text().count("| 64 x 8 |") == 4


def test_cpu_tanh_benchmark_script(tmp_path):
    _run("bench_tanh_cpu.py", "--max-rows", "256", "--threads", "1", "--no-compile",
         "--out-dir", str(tmp_path), "--out", "smoke")  # fmt: skip
    (row,) = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert (row["B"], row["D"]) == (256, 6)
    assert row["fwdbwd_x_vs_eager"] > 0 and row["fwd_x_vs_gaussian"] > 0


def test_cpu_families_benchmark_script(tmp_path):
    _run("bench_families_cpu.py", "--max-log2", "10", "--threads", "1", "--out-dir",
         str(tmp_path), "--out", "smoke")  # fmt: skip
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [r["family"] for r in rows] == ["laplace", "logistic", "gumbel"]
    assert all(r["fwdbwd_x_vs_torch"] > 0 for r in rows)


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
    assert all(r["softplus_fwd_ms"] > 0 and r["softplus_bwd_ms"] > 0 for r in data["rows"])
    assert (tmp_path / "smoke.md").read_text().count("| 2^1") == 4


def test_gpu_chol_benchmark_script_in_cpu_smoke_mode(tmp_path):
    _run("bench_chol_gpu.py", "--smoke", "--sizes", "16384x4,8x17", "--out", str(tmp_path),
         "--stem", "smoke")  # fmt: skip
    data = json.loads((tmp_path / "smoke.json").read_text())
    rows = data["rows"]
    assert [(r["dtype"], r["B"], r["D"]) for r in rows] == [
        (dtype, b, d) for dtype in ("float32", "bfloat16") for b, d in ((16384, 4), (8, 17))
    ]
    tri = 16384 * 4 * 5 // 2
    assert rows[0]["fwd_bytes"] == 4 * (2 * 16384 * 4 + tri)
    assert rows[0]["fwdbwd_bytes"] == 4 * (4 * 16384 * 4 + 3 * tri)
    for r in rows:
        for name in ("fused_cpu", "eager", "distributions"):
            assert r[f"{name}_fwd_ms"] > 0 and r[f"{name}_fwdbwd_gbs"] > 0
            assert r[f"{name}_bwd_ms"] > 0 and r[f"{name}_bwd_gbs"] > 0
            assert r[f"{name}_fwd_x_vs_eager"] > 0
        assert "compile_fwd_ms" not in r  # no compile in smoke mode unless --compile
        assert r["fused_cpu_target_applies"] == (r["B"] == 16384)
        assert r["eager_kept_bytes"] > 0 and r["fused_cpu_kept_bytes"] < r["eager_kept_bytes"]
    md = (tmp_path / "smoke.md").read_text()
    assert md.count("| fused_cpu |") == 4 + 2  # 4 sizes x dtypes, 2 of them in the targets table
    assert "## Targets" in md


def test_cpu_latency_benchmark_script(tmp_path):
    _run("bench_latency_cpu.py", "--sizes", "diag:8x3,diag+kl:8x3,chol:4x5", "--threads", "1,2",
         "--no-compile", "--out-dir", str(tmp_path), "--out", "smoke")  # fmt: skip
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [(r["threads"], r["op"], r["B"], r["D"]) for r in rows] == [
        (t, *size) for t in (1, 2) for size in (("diag", 8, 3), ("diag+kl", 8, 3), ("chol", 4, 5))
    ]
    assert all(r["fused_fwdbwd_us"] > 0 and r["fwd_x_vs_distributions"] > 0 for r in rows)
    md = (tmp_path / "smoke.md").read_text()
    assert md.count("| diag+kl | 8 | 3 |") == 2 and "## 2 threads" in md
