"""One timer for the whole package: the seconds of each call of a function, the device synchronised around each call
(a GPU runs asynchronously: without it a call would time its launch, not its work). The estimate keeps the fastest
call (a busy moment of another process slows one call, not all of them), the speed chapter the median.

Hand-written rather than torch.utils.benchmark.Timer: that one picks its own number of runs (blocked_autorange) or
times blocks of calls, where the chapters need a fixed, small number of single calls whose count is a setting
(speed_repeats) and a warm-up they choose."""
from __future__ import annotations

import time


def call_times(fn, repeats: int, warmup: int = 0) -> list:
    """Seconds of each of `repeats` calls of fn(), after `warmup` calls that are not kept."""
    import torch
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = []
    for i in range(warmup + repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times
