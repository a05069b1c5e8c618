"""Wall-clock timing for CPU benchmarks: warm up, then the median of repeated calls."""

from __future__ import annotations

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
