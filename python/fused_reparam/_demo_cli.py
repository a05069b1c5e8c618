"""The demo's command line: every flag is checked while parsing, before any data is loaded or
any training starts, and a bad one ends the run with a one-line error naming it (exit 2)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

import torch

# The seeds of a run are --seed to --seed + 4 (weights, batch order, noise, evaluations).
SEED_MAX = 2**63 - 5
# Columns of the large size of the sampling table; --bench-rows sets its rows.
BENCH_COLS = 256
BENCH_ROWS_MAX = 65536


def int_in_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type`: the flag's text as an int in [low, high] (no upper bound when
    `high` is None), else an error that argparse prefixes with the flag's name."""
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The demo's command line; the numeric flags are range-checked while parsing."""
    parser = argparse.ArgumentParser(
        prog="python -m fused_reparam.demo",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--epochs", type=int_in_range(1), default=40, help="training epochs >= 1 (default 40)")
    add("--latent", type=int_in_range(1), default=8, help="latent dims >= 1 (default 8)")
    add("--batch-size", type=int_in_range(1), default=64, help="batch size >= 1 (default 64)")
    add("--device", choices=("cpu", "cuda"), default=None,
        help="cpu or cuda (default: cuda when torch sees a GPU, else cpu)")  # fmt: skip
    add("--out", default="vae_digits.png",
        help="PNG path; missing folders are created (default %(default)s)")  # fmt: skip
    add("--seed", type=int_in_range(0, SEED_MAX), default=0,
        help="seed of the whole run (default 0)")  # fmt: skip
    add("--compare", action=argparse.BooleanOptionalAction, default=True,
        help="also train with backend='reference' and time the sampling step against eager "
        "torch and torch.distributions (default: on)")  # fmt: skip
    add("--threads", type=int_in_range(0), default=1,
        help="CPU threads (default 1: a batch of 64 through a small MLP gains nothing from "
        "intra-op threads, and on a busy machine they cost more than they give; 0: torch's "
        "default)")  # fmt: skip
    add("--bench-rows", type=int_in_range(1, BENCH_ROWS_MAX), default=4096,
        help=f"rows of the large size of the sampling-step table, {BENCH_COLS} latents each "
        "(default 4096: 2^20 elements)")  # fmt: skip
    return parser


def resolve_device(parser: argparse.ArgumentParser, name: str | None) -> torch.device:
    """The device of --device (None: cuda when available, else cpu); a parser error when
    cuda is asked for and torch sees no GPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        parser.error(
            f"argument --device: cuda is not available (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'none'}, GPUs seen: {torch.cuda.device_count()})"
            "; use --device cpu"
        )
    return torch.device(name)


def output_path_problem(path: str) -> str | None:
    """Why the PNG cannot be written at `path` (its folder may still be missing), or None."""
    if not path:
        return "argument --out: the path is empty; give a file path such as vae_digits.png"
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        name = os.path.join(path, "vae_digits.png")
        return f"argument --out: {path!r} is a folder; give a file path such as {name}"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"argument --out: {path!r} exists and is not writable"
    return None


def make_output_folder(path: str) -> str | None:
    """Creates the folder of `path` when it is missing; returns why it cannot be created or
    written to, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        return f"argument --out: cannot create the folder {folder!r}: {err.strerror or err}"
    if not os.access(folder, os.W_OK):
        return f"argument --out: the folder {folder!r} is not writable"
    return None


def parse_args(
    argv: Sequence[str] | None = None, description: str = ""
) -> tuple[argparse.Namespace, torch.device]:
    """The checked flags and the device. Every flag is checked here, before any data is
    loaded, and a bad one ends the run with a one-line error naming it (exit code 2). Last,
    the output folder is created when missing."""
    parser = build_parser(description)
    args = parser.parse_args(argv)
    device = resolve_device(parser, args.device)
    problem = output_path_problem(args.out) or make_output_folder(args.out)
    if problem is not None:
        parser.error(problem)
    return args, device
