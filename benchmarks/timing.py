"""Timing helper shared by the benchmark scripts (run them from the repo root)."""
import statistics
import time


def median_times(fns, reps, warmup=2):
    """Run the callables interleaved ``reps`` times; return each one's median seconds.

    Interleaving makes the reference and the candidate see the same machine
    load, so their ratio is meaningful on a shared machine.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]
