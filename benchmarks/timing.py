"""Timing helper shared by the benchmark scripts (run them from the repo root)."""
import statistics
import time


def median_times(fns, reps, warmup=2, block=1):
    """Run the callables interleaved ``reps`` rounds; return each one's median seconds per call.

    Interleaving makes the reference and the candidate see the same machine
    load, so their ratio is meaningful on a shared machine.  With ``block > 1``
    each round calls every callable ``block`` times back to back and records
    the mean of those calls: for sub-millisecond callables this keeps one
    callable's garbage collection and cache footprint from being charged to
    the next one (single interleaved calls measure them cache-cold).
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(block):
                fn()
            times[i].append((time.perf_counter() - t0) / block)
    return [statistics.median(t) for t in times]
