#!/usr/bin/env python3
"""CPython's side of mp-bench-shared (harness/bench/bench_shared.c): one
scenario of multiprocessing's Value, Array or shared_memory.SharedMemory,
with the fork context, timed inside this interpreter the way the C side
times libmp's.

    bench_shared.py --scenario NAME --n N [--procs P]

Scenarios:
  incr       increments/s of P processes, N in all, each
             `with v.get_lock(): v.value += 1` on one Value('i'); the
             children wait on an Event before counting and the time runs
             from set() to the last child's end
  copy_in    bytes/s of `a[:] = values` into an Array('d', 2**20) (a list of
             floats), the fastest of five chunks of N/5 copies
  copy_out   bytes/s of `a[:]` out of it, likewise
  shm_cycle  seconds per SharedMemory(create=True, size=4096), a second
             SharedMemory(name), close() of both, unlink(): the median of N

Every run checks its result, as the C side does.  Prints one JSON object:
{"python": ..., "scenario": ..., "value": ...}.
"""
import argparse
import multiprocessing as mp
import sys
import time

from benchlib import emit, join, median, watchdog

CHUNKS = 5
COPY_ELEMS = 1 << 20
SHM_SIZE = 4096


def incr_child(v, go, done, n):
    go.wait()
    lock = v.get_lock()
    for _ in range(n):
        with lock:
            v.value += 1
    done.put(0)


def incr(ctx, procs, n):
    v = ctx.Value("i", 0)
    per = n // procs
    if procs == 1:
        lock = v.get_lock()
        t0 = time.monotonic()
        for _ in range(per):
            with lock:
                v.value += 1
        t = time.monotonic() - t0
    else:
        go, done = ctx.Event(), ctx.SimpleQueue()
        ps = [ctx.Process(target=incr_child, args=(v, go, done, per))
              for _ in range(procs)]
        for p in ps:
            p.start()
        t0 = time.monotonic()
        go.set()
        for _ in ps:
            done.get()
        t = time.monotonic() - t0
        for p in ps:
            join(p, "bench_shared")
    if v.value != per * procs:
        raise SystemExit("bench_shared: %d locked increments made %d"
                         % (per * procs, v.value))
    return per * procs / t


def copy(ctx, into, n):
    a = ctx.Array("d", COPY_ELEMS)
    values = [float(k) for k in range(COPY_ELEMS)]
    if not into:
        a[:] = values
    per = max(1, n // CHUNKS)
    best = float("inf")
    out = None
    for _ in range(CHUNKS):
        t0 = time.monotonic()
        for _ in range(per):
            if into:
                a[:] = values
            else:
                out = a[:]
        best = min(best, (time.monotonic() - t0) / per)
    if (a[:] if into else out) != values:
        raise SystemExit("bench_shared: the copies differ")
    return COPY_ELEMS * 8 / best


def shm_cycle(n):
    from multiprocessing import shared_memory
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        s = shared_memory.SharedMemory(create=True, size=SHM_SIZE)
        s2 = shared_memory.SharedMemory(s.name)
        s2.close()
        s.close()
        s.unlink()
        times.append(time.monotonic() - t0)
    return median(times)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--procs", type=int, default=1)
    a = ap.parse_args(argv)
    ctx = mp.get_context("fork")
    watchdog("bench_shared")
    runs = {
        "incr": lambda: incr(ctx, a.procs, a.n),
        "copy_in": lambda: copy(ctx, True, a.n),
        "copy_out": lambda: copy(ctx, False, a.n),
        "shm_cycle": lambda: shm_cycle(a.n),
    }
    if a.scenario not in runs:
        ap.error("unknown scenario %r" % a.scenario)
    emit(scenario=a.scenario, value=runs[a.scenario]())


if __name__ == "__main__":
    main(sys.argv[1:])
