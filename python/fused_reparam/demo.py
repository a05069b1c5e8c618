"""The main job, for now: sample, backpropagate, and compare speed with eager PyTorch.

Run: python -m fused_reparam.demo [--n 4194304] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from . import _backend, sample_diag


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


def main(argv: list[str] | None = None) -> None:
    """Samples a batch of latents, checks the gradients, prints fused vs eager timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1 << 22, help="elements per sample")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    backend = _backend.resolve_backend("auto", device, "diag_rsample")
    print(f"fused_reparam demo on {device} (backend: {backend}), {args.n:,} float32 elements")

    torch.manual_seed(0)
    rows = max(1, args.n // 64)
    mu = torch.randn(rows, 64, device=device, requires_grad=True)
    logvar = (0.1 * torch.randn(rows, 64, device=device)).requires_grad_()

    # Correctness on this machine: the same eps through the fused op and through plain torch.
    eps = torch.randn(rows, 64, device=device)
    z = sample_diag(mu, logvar, eps=eps)
    z.square().sum().backward()
    g_mu, g_lv = mu.grad.clone(), logvar.grad.clone()
    mu.grad = logvar.grad = None
    (mu + torch.exp(0.5 * logvar) * eps).square().sum().backward()
    torch.testing.assert_close(g_mu, mu.grad)
    torch.testing.assert_close(g_lv, logvar.grad)
    print("gradients with an explicit eps match plain PyTorch")

    def fused_fwd() -> torch.Tensor:
        with torch.no_grad():
            return sample_diag(mu, logvar)

    def eager_fwd() -> torch.Tensor:
        with torch.no_grad():
            return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def fused_step() -> None:
        mu.grad = logvar.grad = None
        sample_diag(mu, logvar).sum().backward()

    def eager_step() -> None:
        mu.grad = logvar.grad = None
        (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).sum().backward()

    print(f"{'':<22}{'fused ms':>10}{'eager ms':>10}{'speed-up':>10}")
    for name, f, e in (
        ("forward", fused_fwd, eager_fwd),
        ("forward+backward", fused_step, eager_step),
    ):
        tf = _median_ms(f, args.repeats, sync)
        te = _median_ms(e, args.repeats, sync)
        print(f"{name:<22}{tf:>10.2f}{te:>10.2f}{te / tf:>9.1f}x")


if __name__ == "__main__":
    main()
