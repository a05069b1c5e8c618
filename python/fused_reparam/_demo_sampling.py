"""The demo's sampling-step table: the fused op's z and KL, forward+backward, timed against
eager torch and torch.distributions (implementations interleaved round by round, medians), and
checked against the reference backend for exactness."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.distributions import Normal, kl_divergence

from . import sample_diag

# Rounds of the sampling-step timing (each times every implementation once, in turn).
TIMING_ROUNDS = 21


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
