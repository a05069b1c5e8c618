"""Wall-clock timing for CPU benchmarks: warm up, then the median of repeated calls."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def median_ms(
    fn: Callable[[], object], *, warmup: int = 2, reps: int = 7, budget_s: float = 20.0
) -> float:
    """Median wall time of fn() in milliseconds (fewer reps if one call is slow)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def interleaved_median_ms(
    fns: dict[str, Callable[[], object]],
    *,
    warmup: int = 2,
    reps: int = 7,
    rounds: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Median wall time in milliseconds of each fn, timed in rounds: each round calls every fn
    once, so a slow phase of a shared machine hits all of them alike. Each round takes them
    in a new (seeded) random order, so no fn always follows the same other one: a large
    allocation right after another fn's frees can pay the page faults of fresh memory.
    `rounds`, when given, receives each fn's time in every round (ms)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    order = random.Random(0)
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        order.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    if rounds is not None:
        rounds.update({name: [1e3 * x for x in t] for name, t in times.items()})
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def best_mean_us(
    fns: dict[str, Callable[[], object]],
    *,
    calls: int = 200,
    reps: int = 7,
    rounds: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Per-call wall time in microseconds of each fn, for calls of tens of microseconds: the
    smallest, over `reps` rounds, of the mean of `calls` back-to-back calls. Each round runs
    every fn in turn, in a new (seeded) random order, so a slow phase of a shared machine hits
    all of them alike and none always runs first. `rounds`, when given, receives each fn's
    mean in every round (us)."""
    for fn in fns.values():
        for _ in range(max(calls // 10, 2)):
            fn()
    order = random.Random(0)
    names = list(fns)
    means: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        order.shuffle(names)
        for name in names:
            fn = fns[name]
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            means[name].append(1e6 * (time.perf_counter() - t0) / calls)
    if rounds is not None:
        rounds.update(means)
    return {name: min(t) for name, t in means.items()}


def size_timed_text(small: int = 7, large: int = 11) -> str:
    """How size_timed_ms times with these round counts: what the results tables say of it."""
    return (
        f"<= 2^16 elements: the best over {small} rounds of the mean of 200 calls; larger: the "
        f"median of {large} rounds; every round runs each implementation in turn; a speed-up "
        "is the median over the rounds of that round's ratio (a slow phase of the shared "
        "machine hits both sides of a ratio alike)"
    )


SIZE_TIMED = size_timed_text()


def size_timed_ms(
    fns: dict[str, Callable[[], object]], numel: int, small: int = 7, large: int = 11
) -> dict[str, object]:
    """Milliseconds per call of each fn: best_mean_us for calls on <= 2^16 elements (tens of
    microseconds, too short for single timings) over `small` rounds, interleaved_median_ms
    over `large` rounds above; under "rounds" each fn's time in every round, from which
    finish_row takes paired ratios."""
    rounds: dict[str, list[float]] = {}
    if numel <= 1 << 16:
        means = best_mean_us(fns, reps=small, rounds=rounds)
        times = {name: t / 1e3 for name, t in means.items()}
    else:
        times = interleaved_median_ms(fns, reps=large, rounds=rounds)
    return {**times, "rounds": rounds}


def shape_cell(row: dict) -> str:
    """A row's "shape" for a table: "64 x 8", or "2^20" for a 1-D power of two."""
    shape = row["shape"]
    return " x ".join(map(str, shape)) if len(shape) > 1 else f"2^{shape[0].bit_length() - 1}"
