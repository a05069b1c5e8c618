"""The demo: train a VAE on scikit-learn's digits with the fused op, time its sampling step
against eager torch and torch.distributions, check it against the pure-PyTorch reference, and
save a picture of reconstructions and samples.

Run: python -m fused_reparam.demo [--epochs 40] [--latent 8] [--batch-size 64]
     [--device cpu|cuda] [--out vae_digits.png] [--seed 0] [--compare | --no-compare]
     [--threads 1] [--bench-rows 4096]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from typing import TextIO

import torch

from . import _backend
from ._demo_cli import BENCH_COLS, parse_args
from ._demo_sampling import sampling_report
from ._png import write_gray_png
from .vae import VAE, EpochStats, evaluate_elbo, load_digits_data, train_vae


class ProgressBar:
    """A one-line text progress bar redrawn in place (only on a terminal; elsewhere it prints
    the final line alone, so logs stay short)."""

    def __init__(self, total: int, prefix: str = "", width: int = 24, stream: TextIO | None = None):
        self.total, self.prefix, self.width = total, prefix, width
        self.stream = stream if stream is not None else sys.stdout
        self.live = self.stream.isatty()

    def _line(self, n: int, suffix: str) -> str:
        filled = self.width * n // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        return f"{self.prefix}[{bar}] {n:>{len(str(self.total))}}/{self.total} {suffix}"

    def update(self, n: int, suffix: str = "") -> None:
        """Redraws the bar at `n` of `total` steps, with `suffix` after it."""
        if self.live:
            self.stream.write("\r" + self._line(n, suffix) + "\033[K")
            self.stream.flush()

    def close(self, suffix: str = "") -> None:
        """Draws the full bar with `suffix` and ends the line."""
        end = "\r" if self.live else ""
        self.stream.write(end + self._line(self.total, suffix) + ("\033[K" if self.live else ""))
        self.stream.write("\n")
        self.stream.flush()


def _train(
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    args: argparse.Namespace,
    backend: str,
    label: str,
    per_epoch: bool = True,
) -> tuple[VAE, list[EpochStats]]:
    """train_vae with a progress bar: one line per epoch, or (per_epoch=False) one line for
    the whole run."""
    width = len(str(args.epochs))
    bars: dict[int, ProgressBar] = {}

    def bar(epoch: int, steps: int) -> ProgressBar:
        key = epoch if per_epoch else 0
        if key not in bars:
            if per_epoch:
                bars[key] = ProgressBar(steps, f"{label} epoch {epoch:>{width}}/{args.epochs} ")
            else:
                bars[key] = ProgressBar(steps * args.epochs, f"{label} ")
        return bars[key]

    def on_step(epoch: int, step: int, steps: int, elbo: float) -> None:
        done = step if per_epoch else (epoch - 1) * steps + step
        bar(epoch, steps).update(done, f"epoch {epoch}: batch ELBO {elbo:8.2f}")

    def on_epoch(s: EpochStats) -> None:
        if per_epoch:
            text = f"ELBO train {s.train_elbo:7.2f}  test {s.test_elbo:7.2f}  ({s.seconds:.2f} s)"
            bars.pop(s.epoch).close(text)
        elif s.epoch == args.epochs:
            bars.pop(0).close(f"{s.epoch} epochs: ELBO train {s.train_elbo:7.2f}")

    return train_vae(
        train_x, test_x, epochs=args.epochs, latent=args.latent, batch_size=args.batch_size,
        seed=args.seed, backend=backend, on_step=on_step, on_epoch=on_epoch,
    )  # fmt: skip


def _picture(model: VAE, test_x: torch.Tensor, path: str, seed: int, cols: int = 16) -> None:
    """Test digits, their reconstructions, then three rows of samples from the prior, as a
    grayscale PNG (dark ink on white, each 8x8 digit drawn 4x larger)."""
    scale, gap, band = 4, 2, 8
    originals = test_x[:cols]
    recon = model.reconstruct(originals)
    samples = model.generate(3 * cols, torch.Generator(device=test_x.device).manual_seed(seed))
    rows = [originals, recon, *samples.split(cols)]
    cell = 8 * scale
    width = cols * cell + (cols + 1) * gap
    height = len(rows) * cell + (len(rows) + 1) * gap + band
    canvas = torch.full((height, width), 200, dtype=torch.uint8)
    top = gap
    for r, images in enumerate(rows):
        if r == 2:  # a wider band between the reconstructions and the samples
            top += band
        pix = images.detach().float().cpu().clamp(0, 1).reshape(-1, 8, 8)
        pix = pix.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        pix = ((1.0 - pix) * 255.0).round().to(torch.uint8)
        for c in range(pix.shape[0]):
            left = gap + c * (cell + gap)
            canvas[top : top + cell, left : left + cell] = pix[c]
        top += cell + gap
    write_gray_png(path, bytes(canvas.flatten().tolist()), width, height)


def _print_header(device: torch.device, args: argparse.Namespace) -> str:
    """Prints the run's setting; returns the fused backend of the training step (a fallback
    to the reference is printed as a note)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = _backend.resolve_backend("auto", device, "diag_rsample_stats")
    print(
        f"fused_reparam VAE demo on {device} (torch {torch.__version__}, "
        f"CPU threads: {torch.get_num_threads()}); sample_diag(return_stats=True) backend: "
        f"{backend}"
    )
    for w in caught:
        print(f"  note: {w.message}")
    return backend


def _compare_with_reference(
    train_x: torch.Tensor, test_x: torch.Tensor, args: argparse.Namespace, fused: EpochStats
) -> None:
    """Trains the same model with backend='reference' and prints both final ELBOs."""
    print("\nthe same run with backend='reference' (plain PyTorch ops; same seed and noise):")
    _, ref_history = _train(train_x, test_x, args, "reference", "reference", False)
    ref = ref_history[-1]
    print(f"\n  {'final ELBO (nats per image)':<28}{'train':>8}{'test':>8}")
    for label, s in (("sample_diag", fused), ("reference", ref)):
        print(f"  {label:<28}{s.train_elbo:>8.2f}{s.test_elbo:>8.2f}")


def _print_step_time(history: list[EpochStats], n: int, batch_size: int) -> None:
    """The fused run's median epoch time and time per training step."""
    sec = statistics.median(s.seconds for s in history)
    steps = math.ceil(n / batch_size)
    print(
        f"\ntraining with sample_diag: median epoch {sec:.3f} s, {1e3 * sec / steps:.2f} ms per "
        f"step of {batch_size} images\n(encoder, sampling step, decoder, Adam; the table below "
        "times the sampling step alone)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Trains the digits VAE with the fused op; with --compare also with the reference and
    prints the sampling-step table; writes a PNG of reconstructions and samples."""
    args, device = parse_args(argv, __doc__)
    t_start = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    backend = _print_header(device, args)

    train_x, test_x = load_digits_data(device)
    print(
        f"digits: {train_x.shape[0]} train / {test_x.shape[0]} test images, 8x8, pixels in [0, 1]"
        f"; MLP VAE, latent {args.latent}, Bernoulli decoder, Adam, batch {args.batch_size}\n"
    )
    model, history = _train(train_x, test_x, args, "auto", "fused")
    iwae = evaluate_elbo(model, test_x, seed=args.seed + 4, num_samples=64)
    print(f"test bounds: ELBO {history[-1].test_elbo:.2f}, IWAE-64 {iwae:.2f} (nats per image)")

    if args.compare:
        _compare_with_reference(train_x, test_x, args, history[-1])
        _print_step_time(history, train_x.shape[0], args.batch_size)
        sizes = [(args.batch_size, args.latent), (args.bench_rows, BENCH_COLS)]
        print()
        print("\n".join(sampling_report(device, sizes, f"sample_diag ({backend})", args.seed)))

    _picture(model, test_x, args.out, args.seed)
    print(f"\nwrote {args.out}: top rows test digits and reconstructions, below samples")
    print(f"total {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
