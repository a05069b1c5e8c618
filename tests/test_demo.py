"""The demo's command line (fused_reparam.demo): every bad flag stops the run before any data is
loaded with a one-line error naming the flag (exit code 2), a missing output folder is created,
the sampling-step table has its rows and columns and says "slower" when a peer is faster, and
the demo runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")

from fused_reparam import _demo_cli, _demo_sampling, _png, demo


@pytest.fixture(autouse=True)
def _keep_threads():
    """demo.main sets torch's thread count (--threads, 1 by default): put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class DataLoaded(Exception):
    """Raised by the stand-in data loader: the run got past the flag checks."""


@pytest.fixture
def no_work(monkeypatch):
    """Loading the data or training raises DataLoaded, so a test sees where the run stops."""

    def refuse(*args, **kwargs):
        raise DataLoaded

    monkeypatch.setattr(demo, "load_digits_data", refuse)
    monkeypatch.setattr(demo, "train_vae", refuse)


def run_with_bad_flags(argv: list[str], capsys) -> str:
    """demo.main(argv) must stop with exit code 2 before any work; returns its error line."""
    with pytest.raises(SystemExit) as stop:
        demo.main(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed (no header, no note) before the error
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("python -m fused_reparam.demo: error: argument ")
    return error


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
        (["--epochs", "two"], "argument --epochs: must be an integer >= 1, got 'two'"),
        (["--latent", "0"], "argument --latent: must be an integer >= 1, got 0"),
        (["--batch-size", "-3"], "argument --batch-size: must be an integer >= 1, got -3"),
        (["--threads", "-1"], "argument --threads: must be an integer >= 0, got -1"),
        (["--seed", "-1"], f"argument --seed: must be an integer in [0, {_demo_cli.SEED_MAX}]"),
        (["--bench-rows", "0"], "argument --bench-rows: must be an integer in [1, 65536]"),
        (["--bench-rows", "65537"], "argument --bench-rows: must be an integer in [1, 65536]"),
        (["--device", "bogus"], "argument --device: invalid choice: 'bogus'"),
        (["--out", ""], "argument --out: the path is empty"),
    ],
)
def test_bad_flag_stops_before_any_work(argv, expected, no_work, capsys):
    error = run_with_bad_flags(argv, capsys)
    assert expected in error


def test_device_choices_are_named(no_work, capsys):
    assert "(choose from 'cpu', 'cuda')" in run_with_bad_flags(["--device", "gpu"], capsys)


def test_cuda_without_a_gpu_is_an_error_not_a_fallback(no_work, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    error = run_with_bad_flags(["--device", "cuda"], capsys)
    assert "argument --device: cuda is not available" in error and "--device cpu" in error


def test_default_device_is_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _demo_cli.resolve_device(_demo_cli.build_parser(), None) == torch.device("cpu")


def test_out_that_is_a_folder_is_an_error(tmp_path, no_work, capsys):
    error = run_with_bad_flags(["--out", str(tmp_path)], capsys)
    assert "argument --out:" in error and "is a folder" in error


def test_out_that_ends_in_a_slash_is_an_error(tmp_path, no_work, capsys):
    error = run_with_bad_flags(["--out", f"{tmp_path}/not_yet/"], capsys)
    assert "argument --out:" in error and "is a folder" in error
    assert not (tmp_path / "not_yet").exists()


def test_out_whose_folder_cannot_be_created_is_an_error(tmp_path, no_work, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    error = run_with_bad_flags(["--out", str(blocker / "sub" / "x.png")], capsys)
    assert "argument --out: cannot create the folder" in error


def test_missing_output_folder_is_created_before_work(tmp_path, no_work):
    out = tmp_path / "new" / "deeper" / "digits.png"
    with pytest.raises(DataLoaded):  # the checks passed: the run went on to load the data
        demo.main(["--out", str(out)])
    assert out.parent.is_dir() and not out.exists()


def test_a_bad_flag_creates_no_folder(tmp_path, no_work, capsys):
    out = tmp_path / "new" / "digits.png"
    run_with_bad_flags(["--out", str(out), "--latent", "0"], capsys)
    assert not out.parent.exists()


def test_bad_flag_exit_code_from_the_command_line():
    """The real entry point: exit code 2 and the error on stderr, quickly (no training)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fused_reparam.demo", "--epochs", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "argument --epochs: must be an integer >= 1, got 0" in proc.stderr
    assert proc.stdout == ""
    assert time.perf_counter() - t0 < 60  # the import of torch, not 40 epochs


def made_up_result(rows: int, cols: int, fused: float, eager: float, dist: float):
    return _demo_sampling.SizeResult(
        rows, cols, {"fused": fused, "eager": eager, "distributions": dist}, 1e-6, 2e-5, 3e-7
    )


def test_sampling_table_rows_and_columns():
    results = [
        made_up_result(64, 8, 34e-6, 29e-6, 68e-6),
        made_up_result(4096, 256, 5e-3, 1e-2, 2e-2),
    ]
    lines = _demo_sampling.format_sampling_table(results, "sample_diag (cpu)")
    assert lines[0].split() == ["size", "implementation", "fwd+bwd", "speed-up", "|dz|", "|dkl|",
                                "|dgrad|"]  # fmt: skip
    assert len(lines) == 1 + 2 * 4
    small, large = lines[1:5], lines[5:]
    for block in (small, large):
        assert "sample_diag (cpu)" in block[0]
        assert "eager torch" in block[1] and "torch.distributions" in block[2]
        assert "reference (same seed)" in block[3] and "not timed" in block[3]
        assert block[3].split()[-3:] == ["1.0e-06", "2.0e-05", "3.0e-07"]
    assert small[0].strip().startswith("64 x 8 = 2^9") and "34.0 us" in small[0]
    assert large[0].strip().startswith("4096 x 256 = 2^20") and "5.00 ms" in large[0]
    # eager is faster than the fused op at the small size: said in words.
    assert small[1].endswith("0.85x (slower)") and "29.0 us" in small[1]
    assert small[2].endswith("2.00x") and "slower" not in small[2]
    assert large[1].endswith("2.00x") and large[2].endswith("4.00x")


def test_speedup_text_says_slower():
    assert _demo_sampling.speedup_text(1.0, 0.85) == "0.85x (slower)"
    assert _demo_sampling.speedup_text(2.0, 1.0) == "0.50x (slower)"
    assert _demo_sampling.speedup_text(1.0, 1.0) == "1.00x"
    assert _demo_sampling.speedup_text(1.0, 3.456) == "3.46x"


def test_format_time_and_size_label():
    assert _demo_sampling.format_time(34.4e-6) == "34.4 us"
    assert _demo_sampling.format_time(0.9996e-3) == "1.00 ms"
    assert _demo_sampling.format_time(12.34e-3) == "12.3 ms"
    assert _demo_sampling.format_time(26e-3) == "26.0 ms"
    assert _demo_sampling.format_time(122.4e-6) == "122 us"
    assert _demo_sampling.format_time(2.5) == "2.50 s"
    assert _demo_sampling.size_label(64, 8) == "64 x 8 = 2^9"
    assert _demo_sampling.size_label(100, 8) == "100 x 8"


def test_interleaved_medians_rotates_the_order():
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    medians = _demo_sampling.interleaved_medians(fns, rounds=3, target_s=0.0)  # one call per round
    assert set(medians) == {"a", "b", "c"} and all(t >= 0 for t in medians.values())
    timed = calls[-9:]  # after the warm-up and calibration calls
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_fused_matches_the_reference_with_the_same_seed():
    dz, dkl, dgrad = _demo_sampling.max_differences(32, 16, torch.device("cpu"), seed=7)
    assert dz < 1e-5 and dkl < 1e-4 and dgrad < 1e-5


def test_sampling_step_of_every_peer_runs():
    result = _demo_sampling.measure_size(16, 4, torch.device("cpu"), rounds=2, seed=0)
    assert set(result.seconds) == {"fused", "eager", "distributions"}
    assert all(t > 0 for t in result.seconds.values())


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "made_here" / "digits.png"
    argv = ["--epochs", "1", "--batch-size", "256", "--out", str(out), "--bench-rows", "16"]
    demo.main([*argv, "--compare"])
    text = capsys.readouterr().out
    assert "ELBO train" in text and "IWAE-64" in text
    assert "1 CPU thread;" in text
    for row in ("256 x 8 = 2^11", "16 x 256 = 2^12", "eager torch", "torch.distributions"):
        assert row in text
    assert text.count("reference (same seed)") == 2
    width, height, pixels = _png.decode_gray_png(out.read_bytes())
    assert (width, height) == (16 * 32 + 17 * 2, 5 * 32 + 6 * 2 + 8)
    assert len(set(pixels)) > 20  # digits, not a blank canvas
    assert os.path.isfile(out)
