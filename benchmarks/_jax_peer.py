"""JAX peers for the CPU benchmarks, where JAX is installed: the same sample under `jax.jit`,
forward, and forward+backward as `jax.vjp` with the same upstream gradient.

JAX sizes its thread pools when it is imported, so a run that compares with JAX pins itself
first (`prepare`): the process is bound to one CPU and XLA's Eigen pool is single-threaded,
before JAX or torch start any worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np


def prepare(threads: list[int]) -> str | None:
    """Sets up JAX for a run at `threads`; returns why JAX is left out, or None.

    Only one-thread runs compare with JAX: with more, JAX's worker threads (which keep
    spinning after a call) and torch's OpenMP threads compete for the same cores in one
    process, and torch's multi-threaded timings on this 2-core machine came out 3-10x slower
    at some sizes, varying from run to run.
    """
    if threads != [1]:
        return "JAX is compared at one thread only: pass --threads 1"
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()
    try:
        import jax  # noqa: F401
    except ImportError as exc:
        return f"JAX is not installed ({exc})"
    return None


def chol_peer(mu: np.ndarray, scale_tril: np.ndarray, grad: np.ndarray) -> tuple[Callable, ...]:
    """(forward, forward+backward) of z = mu + L @ eps under jax.jit, eps drawn in the call."""
    import jax
    import jax.numpy as jnp

    mu_j, l_j, g_j = (jnp.asarray(a) for a in (mu, scale_tril, grad))
    key = jax.random.key(0)

    def sample(m, lower, k):
        eps = jax.random.normal(k, m.shape, m.dtype)
        return m + jnp.einsum("bij,bj->bi", lower, eps)

    forward = jax.jit(sample)

    @jax.jit
    def forward_backward(m, lower, k, g):
        z, vjp = jax.vjp(lambda m_, l_: sample(m_, l_, k), m, lower)
        return z, vjp(g)

    def fwd() -> None:
        jax.block_until_ready(forward(mu_j, l_j, key))

    def fwdbwd() -> None:
        jax.block_until_ready(forward_backward(mu_j, l_j, key, g_j))

    return fwd, fwdbwd
