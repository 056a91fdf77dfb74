#!/usr/bin/env python3
"""CPython's side of mp-bench-pool (harness/bench/bench_pool.c): one
scenario of multiprocessing.Pool or concurrent.futures.ProcessPoolExecutor,
with the fork context, timed inside this interpreter the way the C side
times libmp's Pool.

    bench_pool.py --scenario NAME --impl pool|executor --n N --workers W

Scenarios (the workers started and warmed up first, except for startup;
a map runs once untimed before the timed one, as on the C side):
  map_c1          tasks/s of map(square, range(N), chunksize=1)
  map_auto        tasks/s of map(square, range(N)) with Pool's default
                  chunksize; the executor is given that chunksize
                  (ceil(N / (4 * W)))
  apply_rtt       seconds of one apply_async(square, (3,)).get() on an idle
                  pool (executor: submit(square, 3).result()), the median
                  of N samples
  imap_unordered  seconds to run N tasks that sleep the durations of
                  mix(N) through imap_unordered (executor: submit() each,
                  then as_completed())
  startup         seconds from Pool(W) to one task's result, then close()
                  and join() (executor: its first submit() starts the
                  workers under fork; shutdown(wait=True)), the median of
                  N samples

Prints one JSON object: {"python": ..., "scenario": ..., "impl": ...,
"value": ..., "check": ...}; `check` is what the C side compares with its
own (the sum of the results, or of the mix's durations).
"""
import argparse
import concurrent.futures as cf
import multiprocessing as mp
import sys
import time

from benchlib import emit, median, watchdog

WARMUP = 100     # tasks mapped before a timed run, so the workers run


def square(x):
    return x * x


def nap(us):
    time.sleep(us / 1e6)
    return us


def mix(n):
    """Task durations in microseconds: bench_pool.c's mix(), the same
    numbers (a 31-bit linear congruential sequence): 7 in 8 under 0.1 ms,
    the rest 1 to 3 ms."""
    x, out = 12345, []
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(1000 + (x >> 4) % 2000 if (x >> 8) % 8 == 0
                   else (x >> 4) % 100)
    return out


def default_chunksize(n, workers):
    """Pool.map's default: divmod(n, 4 * workers), rounded up."""
    c, extra = divmod(n, 4 * workers)
    return c + 1 if extra else c


class Impl:
    """The pool or the executor behind one face."""

    def __init__(self, ctx, kind, workers):
        self.kind = kind
        if kind == "pool":
            self.p = ctx.Pool(workers)
        else:
            self.p = cf.ProcessPoolExecutor(workers, mp_context=ctx)

    def map(self, items, chunksize):
        return list(self.p.map(square, items, chunksize=chunksize))

    def one(self):
        if self.kind == "pool":
            return self.p.apply_async(square, (3,)).get()
        return self.p.submit(square, 3).result()

    def unordered(self, durations):
        if self.kind == "pool":
            return sum(self.p.imap_unordered(nap, durations))
        futs = [self.p.submit(nap, d) for d in durations]
        return sum(f.result() for f in cf.as_completed(futs))

    def close(self):
        if self.kind == "pool":
            self.p.close()
            self.p.join()
        else:
            self.p.shutdown(wait=True)


def run(ctx, scenario, kind, n, workers):
    if scenario == "startup":
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            p = Impl(ctx, kind, workers)
            got = p.one()
            p.close()
            times.append(time.monotonic() - t0)
            if got != 9:
                raise SystemExit("bench_pool: square(3) gave %r" % got)
        return median(times), 9 * n
    p = Impl(ctx, kind, workers)
    p.map(range(WARMUP), 1)
    if scenario in ("map_c1", "map_auto"):
        items = list(range(n))
        cs = 1 if scenario == "map_c1" else default_chunksize(n, workers)
        if scenario == "map_auto" and kind == "pool":
            cs = None  # Pool's own default, which equals cs
        p.map(items, cs)  # untimed, as the C side's
        t0 = time.monotonic()
        out = p.map(items, cs)
        t = time.monotonic() - t0
        value, check = n / t, sum(out)
    elif scenario == "apply_rtt":
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            got = p.one()
            times.append(time.monotonic() - t0)
            if got != 9:
                raise SystemExit("bench_pool: square(3) gave %r" % got)
        value, check = median(times), 9 * n
    elif scenario == "imap_unordered":
        durations = mix(n)
        t0 = time.monotonic()
        check = p.unordered(durations)
        value = time.monotonic() - t0
    else:
        raise SystemExit("bench_pool: unknown scenario %r" % scenario)
    p.close()
    return value, check


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--impl", choices=("pool", "executor"), required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--workers", type=int, required=True)
    a = ap.parse_args(argv)
    watchdog("bench_pool")
    value, check = run(mp.get_context("fork"), a.scenario, a.impl, a.n,
                       a.workers)
    emit(scenario=a.scenario, impl=a.impl, value=value, check=check)


if __name__ == "__main__":
    main(sys.argv[1:])
