"""DistributedDataParallel with the fused op: 2 CPU processes (gloo) train the digits VAE for
a few steps. Each rank draws its noise from its own generator (seed BASE + rank), so the ranks
draw different noise, and DDP's averaged gradients equal a single process that replays both
ranks' batches and noise and averages their losses."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fused_reparam import sample_diag
from fused_reparam.vae import VAE, load_digits_data

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)

WORLD = 2
BATCH = 32  # per rank
STEPS = 3
BASE_SEED = 1000
LR = 0.05


def _model() -> VAE:
    """The same initial weights in every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return VAE(latent=4, hidden=32)


def _batch(x: torch.Tensor, step: int, rank: int) -> torch.Tensor:
    """Rank `rank`'s shard of step `step`'s global batch."""
    start = (step * WORLD + rank) * BATCH
    return x[start : start + BATCH]


def _worker(rank: int, x: torch.Tensor, store_path: str, out_dir: str) -> None:
    """One DDP rank: STEPS SGD steps on its shards of `x`; saves its first-step noise,
    gradients and final weights. (The data comes from the parent, so a rank imports no
    scikit-learn: spawned processes start from scratch, and imports are most of their time.)"""
    torch.set_num_threads(1)
    # A file store instead of a TCP port: nothing to pick or collide with.
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_model())
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(BASE_SEED + rank)  # per-rank noise
        # The noise this rank will draw at step 0 (a copy of its generator: same stream).
        probe = torch.Generator().manual_seed(BASE_SEED + rank)
        zeros = torch.zeros(BATCH, 4)
        noise = sample_diag(zeros, zeros, generator=probe)
        grads = None
        for step in range(STEPS):
            loss = -model(_batch(x, step, rank), generator=gen).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over the ranks here
            if step == 0:
                grads = [p.grad.clone() for p in model.parameters()]
            opt.step()
        params = [p.detach().clone() for p in model.parameters()]
        torch.save(
            {"noise": noise, "grads": grads, "params": params},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def _single_process(x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The same training in one process: each step replays both ranks' batches with their
    generators and averages the two losses. Returns (first-step grads, final weights)."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    gens = [torch.Generator().manual_seed(BASE_SEED + r) for r in range(WORLD)]
    grads = None
    for step in range(STEPS):
        losses = [-model(_batch(x, step, r), generator=gens[r]).mean() for r in range(WORLD)]
        loss = sum(losses) / WORLD
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step == 0:
            grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
    return grads, [p.detach().clone() for p in model.parameters()]


def test_ddp_two_ranks_match_a_single_process(tmp_path):
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
    x = load_digits_data()[0][: STEPS * WORLD * BATCH]
    mp.spawn(_worker, args=(x, str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    # The ranks drew different noise (independent standard normals: far from equal).
    a, b = ranks[0]["noise"], ranks[1]["noise"]
    assert not torch.allclose(a, b)
    assert abs(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) < 0.3

    # DDP kept the ranks in sync, and matches one process that replays both ranks.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        grads, params = _single_process(x)
    finally:
        torch.set_num_threads(before)
    for rank in ranks:
        for got, want in zip(rank["grads"], grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        for got, want in zip(rank["params"], params, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
