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
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import torch
from torch.distributions import Normal, kl_divergence

from . import _backend, sample_diag
from ._png import write_gray_png
from .vae import VAE, EpochStats, evaluate_elbo, load_digits_data, train_vae

# The seeds of a run are --seed to --seed + 4 (weights, batch order, noise, evaluations).
SEED_MAX = 2**63 - 5
# Columns of the large size of the sampling table; --bench-rows sets its rows.
BENCH_COLS = 256
BENCH_ROWS_MAX = 65536
# Rounds of the sampling-step timing (each times every implementation once, in turn).
TIMING_ROUNDS = 21


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


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line; the numeric flags are range-checked while parsing."""
    parser = argparse.ArgumentParser(
        prog="python -m fused_reparam.demo",
        description=__doc__,
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


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, torch.device]:
    """The checked flags and the device. Every flag is checked here, before any data is
    loaded, and a bad one ends the run with a one-line error naming it (exit code 2). Last,
    the output folder is created when missing."""
    parser = build_parser()
    args = parser.parse_args(argv)
    device = resolve_device(parser, args.device)
    problem = output_path_problem(args.out) or make_output_folder(args.out)
    if problem is not None:
        parser.error(problem)
    return args, device


# The sampling step of a training step (VAE.forward): z and the ELBO's KL term, forward and
# backward, as each implementation writes it. mu and logvar are the two halves of the
# encoder's output, as in VAE.encode.
SampleFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def eager_z_kl(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z and KL(q || N(0, I)) per row in eager torch, as a VAE usually writes them."""
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn_like(std)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
    return z, kl


def distributions_z_kl(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z and KL(q || N(0, I)) per row with torch.distributions (default arguments)."""
    q = Normal(mu, torch.exp(0.5 * logvar))
    return q.rsample(), kl_divergence(q, Normal(0.0, 1.0)).sum(-1)


def fused_z_kl(
    generator: torch.Generator | None = None, *, seed: int | None = None, backend: str = "auto"
) -> SampleFn:
    """z and the KL per row from one ``sample_diag(..., return_stats=True)`` call, as in each
    training step (the noise from `generator`, or from `seed` when given)."""

    def sample(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = sample_diag(
            mu, logvar, generator=generator, seed=seed, backend=backend, return_stats=True
        )
        return s.z, s.kl

    return sample


@dataclass
class StepInputs:
    """The encoder output `h` ``[rows, 2 * cols]`` (a leaf; mu and logvar are its halves)
    and fixed upstream gradients of z ``[rows, cols]`` and of the KL ``[rows]``."""

    h: torch.Tensor
    grad_z: torch.Tensor
    grad_kl: torch.Tensor

    @classmethod
    def make(cls, rows: int, cols: int, device: torch.device, seed: int = 0) -> StepInputs:
        """Random inputs of the given size (the same for every implementation)."""
        g = torch.Generator(device=device).manual_seed(seed)
        h = torch.randn(rows, 2 * cols, device=device, generator=g)
        grad_z = torch.randn(rows, cols, device=device, generator=g)
        grad_kl = torch.randn(rows, device=device, generator=g)
        return cls(h.requires_grad_(), grad_z, grad_kl)


def run_step(sample: SampleFn, inputs: StepInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """One sampling step, forward and backward; returns (z, kl) detached (h.grad holds the
    gradient, as after ``opt.zero_grad(set_to_none=True)`` and ``loss.backward()``)."""
    inputs.h.grad = None
    mu, logvar = inputs.h.chunk(2, dim=-1)
    z, kl = sample(mu, logvar)
    torch.autograd.backward([z, kl], [inputs.grad_z, inputs.grad_kl])
    return z.detach(), kl.detach()


def _calls_per_round(fn: Callable[[], object], sync: Callable[[], None], target_s: float) -> int:
    """How many back-to-back calls of fn (after a warm-up) take about `target_s`."""
    for _ in range(3):
        fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    one = time.perf_counter() - t0
    return max(1, min(1000, round(target_s / max(one, 1e-9))))


def interleaved_medians(
    fns: dict[str, Callable[[], object]],
    rounds: int,
    sync: Callable[[], None] = lambda: None,
    target_s: float = 2e-3,
) -> dict[str, float]:
    """Median seconds per call of each fn. Each round times every fn in turn (the order
    rotated round by round, so a slow phase of a shared machine hits all alike), as the mean
    of back-to-back calls lasting about `target_s`."""
    calls = {name: _calls_per_round(fn, sync, target_s) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, n = fns[name], calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            sync()
            times[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(t) for name, t in times.items()}


def max_differences(
    rows: int, cols: int, device: torch.device, seed: int
) -> tuple[float, float, float]:
    """Max abs differences of z, of the KL and of the gradient between the fused op and
    backend='reference', with the same seed and so the same noise."""
    inputs = StepInputs.make(rows, cols, device, seed=1)
    z, kl = run_step(fused_z_kl(seed=seed), inputs)
    grad = inputs.h.grad
    ref_z, ref_kl = run_step(fused_z_kl(seed=seed, backend="reference"), inputs)
    ref_grad = inputs.h.grad

    def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
        return (a - b).abs().max().item()

    return max_abs(z, ref_z), max_abs(kl, ref_kl), max_abs(grad, ref_grad)


@dataclass
class SizeResult:
    """The sampling step at one size: median seconds per forward+backward of each timed
    implementation (the fused op first), and the max abs differences from the reference."""

    rows: int
    cols: int
    seconds: dict[str, float]
    diff_z: float
    diff_kl: float
    diff_grad: float


def measure_size(rows: int, cols: int, device: torch.device, rounds: int, seed: int) -> SizeResult:
    """Times the sampling step of each implementation at ``[rows, cols]`` and compares the
    fused op with the reference."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    inputs = StepInputs.make(rows, cols, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    impls: dict[str, SampleFn] = {
        "fused": fused_z_kl(generator),
        "eager": eager_z_kl,
        "distributions": distributions_z_kl,
    }
    fns = {name: (lambda f=f: run_step(f, inputs)) for name, f in impls.items()}
    seconds = interleaved_medians(fns, rounds, sync)
    return SizeResult(rows, cols, seconds, *max_differences(rows, cols, device, seed))


def _three_digits(value: float) -> str:
    """A positive `value` with 3 significant digits, trailing zeros kept (26.0, 7.50, 122)."""
    rounded = float(f"{value:.3g}")
    return f"{rounded:.{max(0, 2 - math.floor(math.log10(rounded)))}f}"


def format_time(seconds: float) -> str:
    """A duration with 3 significant digits in us, ms or s."""
    for unit, scale in (("us", 1e6), ("ms", 1e3)):
        if seconds * scale < 999.5:
            return f"{_three_digits(seconds * scale)} {unit}"
    return f"{_three_digits(seconds)} s"


def speedup_text(fused_s: float, peer_s: float) -> str:
    """The fused op's speed-up over a peer, peer time / fused time; below 1 it says so."""
    ratio = peer_s / fused_s
    return f"{ratio:.2f}x" if ratio >= 1.0 else f"{ratio:.2f}x (slower)"


def size_label(rows: int, cols: int) -> str:
    """``rows x cols``, with the element count as a power of two when it is one."""
    n = rows * cols
    return f"{rows} x {cols}" + (f" = 2^{n.bit_length() - 1}" if n & (n - 1) == 0 else "")


PEERS = (("eager", "eager torch"), ("distributions", "torch.distributions"))


def table_rows(result: SizeResult, fused_label: str) -> list[list[str]]:
    """The table's rows of one size: the fused op, its peers, the reference."""
    fused_s = result.seconds["fused"]
    blank = ["", "", ""]
    rows = [[size_label(result.rows, result.cols), fused_label, format_time(fused_s), "-", *blank]]
    for key, label in PEERS:
        peer_s = result.seconds[key]
        rows.append(["", label, format_time(peer_s), speedup_text(fused_s, peer_s), *blank])
    diffs = [f"{d:.1e}" for d in (result.diff_z, result.diff_kl, result.diff_grad)]
    rows.append(["", "reference (same seed)", "not timed", "-", *diffs])
    return rows


TABLE_HEADER = ["size", "implementation", "fwd+bwd", "speed-up", "|dz|", "|dkl|", "|dgrad|"]


def format_sampling_table(results: Sequence[SizeResult], fused_label: str) -> list[str]:
    """The sampling-step table, one block of rows per size, as aligned text lines: the fused
    op's time and speed-up over each peer (below 1: "(slower)"), and the max abs differences
    from the reference with the same seed."""
    body = [row for result in results for row in table_rows(result, fused_label)]
    rows = [TABLE_HEADER, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


SAMPLING_NOTES = """\
  speed-up: the fused op's, time of the peer / time of sample_diag; below 1 it is slower.
  sample_diag: sample_diag(mu, logvar, generator=g, return_stats=True), its z and kl (it also
      returns log q(z) from the same kernel, unused by the ELBO)
  eager torch: std = exp(0.5 * logvar); z = mu + std * randn_like(std);
      kl = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))
  torch.distributions: q = Normal(mu, std); z = q.rsample();
      kl = kl_divergence(q, Normal(0, 1)).sum(-1) (default argument validation)
  reference: backend='reference' with the same seed (the Philox noise in plain torch ops): the
      ground truth of the fused values and gradients, not a speed peer; |dz|, |dkl|, |dgrad|:
      the max abs difference from sample_diag of z, the KL, and the gradient of mu and logvar."""


def sampling_report(
    device: torch.device, sizes: Sequence[tuple[int, int]], fused_label: str, seed: int
) -> list[str]:
    """The lines that present the sampling-step table at `sizes` (measured here)."""
    results = [measure_size(r, c, device, TIMING_ROUNDS, seed) for r, c in sizes]
    threads = torch.get_num_threads()
    head = (
        "the sampling step as in each training step, forward+backward: z and the KL term from mu\n"
        f"and logvar (the halves of the encoder output); float32 on {device}, {threads} CPU "
        f"thread{'s' if threads != 1 else ''};\nmedian time per call over {TIMING_ROUNDS} rounds, "
        "the implementations interleaved in each round:"
    )
    return [head, *format_sampling_table(results, fused_label), SAMPLING_NOTES]


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
    args, device = parse_args(argv)
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
