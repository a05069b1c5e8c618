"""The demo: train a VAE on scikit-learn's digits with the fused op, time it against the
pure-PyTorch reference, and save a picture of reconstructions and samples.

Run: python -m fused_reparam.demo [--epochs 40] [--latent 8] [--device cpu|cuda]
     [--out vae_digits.png] [--seed 0] [--compare | --no-compare] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import TextIO

import torch

from . import _backend, sample_diag
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
        train_x, test_x, epochs=args.epochs, latent=args.latent, seed=args.seed,
        backend=backend, on_step=on_step, on_epoch=on_epoch,
    )  # fmt: skip


def _median_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _microbenchmark(device: torch.device, rows: int, dim: int, repeats: int) -> None:
    """The sampling step alone, forward+backward, fused (auto) vs reference, at a size where
    the kernel, not the per-call overhead, dominates."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    g = torch.Generator(device=device).manual_seed(0)
    mu = torch.randn(rows, dim, device=device, generator=g).requires_grad_()
    logvar = (0.1 * torch.randn(rows, dim, device=device, generator=g)).requires_grad_()
    gz = torch.randn(rows, dim, device=device, generator=g)
    gk = torch.randn(rows, device=device, generator=g)
    print(
        f"\nsampling step alone, forward+backward, [{rows}, {dim}] float32 "
        f"({rows * dim:,} elements), median of {repeats}:"
    )
    print(f"  {'':<26}{'fused':>10}{'reference':>12}{'speed-up':>10}")
    for name, op, stats in (
        ("z", "diag_rsample", False),
        ("z, kl, log_q", "diag_rsample_stats", True),
    ):
        fused = _backend.resolve_backend("auto", device, op)
        ms = {}
        for backend in ("auto", "reference"):

            def step(backend: str = backend, stats: bool = stats) -> None:
                mu.grad = logvar.grad = None
                out = sample_diag(mu, logvar, backend=backend, return_stats=stats)
                if stats:
                    torch.autograd.backward([out.z, out.kl, out.log_q], [gz, gk, gk])
                else:
                    out.backward(gz)

            ms[backend] = _median_ms(step, repeats, sync)
        label = f"{name} (fused: {fused})"
        speedup = ms["reference"] / ms["auto"]
        print(f"  {label:<26}{ms['auto']:>7.2f} ms{ms['reference']:>9.2f} ms{speedup:>9.1f}x")


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


def main(argv: list[str] | None = None) -> None:
    """Trains the digits VAE with the fused op, optionally against the reference; writes a
    PNG of reconstructions and samples."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--latent", type=int, default=8, help="latent dims (default 8)")
    parser.add_argument(
        "--device", default=None, help="cpu or cuda (default: cuda when there is a GPU)"
    )
    parser.add_argument("--out", default="vae_digits.png", help="PNG path (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    parser.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train with backend='reference' and time the sampling step (default: on)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: a batch of 64 through a small MLP gains nothing from "
        "intra-op threads, and on a busy machine they cost more than they give; 0: torch's "
        "default)",
    )
    parser.add_argument(
        "--bench-rows",
        type=int,
        default=4096,
        help="rows of the sampling-step microbenchmark, 256 latents each (default 4096)",
    )
    args = parser.parse_args(argv)
    t_start = time.perf_counter()

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads > 0:
        torch.set_num_threads(args.threads)
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

    train_x, test_x = load_digits_data(device)
    print(
        f"digits: {train_x.shape[0]} train / {test_x.shape[0]} test images, 8x8, pixels in [0, 1]"
        f"; MLP VAE, latent {args.latent}, Bernoulli decoder, Adam, batch 64\n"
    )
    model, history = _train(train_x, test_x, args, "auto", "fused")
    iwae = evaluate_elbo(model, test_x, seed=args.seed + 4, num_samples=64)
    print(f"test bounds: ELBO {history[-1].test_elbo:.2f}, IWAE-64 {iwae:.2f} (nats per image)")

    if args.compare:
        print("\nthe same model, seed and noise with backend='reference' (plain PyTorch ops):")
        _, ref_history = _train(train_x, test_x, args, "reference", "reference", False)
        print(f"\n  {'':<18}{'s/epoch':>9}{'train ELBO':>12}{'test ELBO':>11}")
        for label, hist in ((f"fused ({backend})", history), ("reference", ref_history)):
            sec = statistics.median(s.seconds for s in hist)
            last = hist[-1]
            print(f"  {label:<18}{sec:>9.3f}{last.train_elbo:>12.2f}{last.test_elbo:>11.2f}")
        print(
            "  (median epoch time; a batch is only 64 x 8 latents, so the MLP dominates it: the"
            "\n  microbenchmark below times the sampling step alone, at a size where it matters)"
        )
        _microbenchmark(device, args.bench_rows, 256, repeats=10)

    _picture(model, test_x, args.out, args.seed)
    print(f"\nwrote {args.out}: top rows test digits and reconstructions, below samples")
    print(f"total {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
