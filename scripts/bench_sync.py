#!/usr/bin/env python3
"""CPython's side of mp-bench-sync (harness/bench/bench_sync.c): one
scenario of multiprocessing's Lock, RLock, Semaphore, Condition, Event or
Barrier, with the fork context, timed inside this interpreter the way the C
side times libmp's.

    bench_sync.py --scenario NAME --n N [--procs P]

Scenarios (N operations in all):
  lock_uncontended, rlock_uncontended   seconds per acquire+release pair,
                                        the fastest of five chunks
  lock_pingpong   round trips/s: two Locks, both held, handed back and forth
  cond_pingpong   round trips/s: two processes notify and wait in turn
  event_latency   seconds from set() to the waiter, asleep in wait(), waking
                  (the median of N samples)
  barrier         rounds/s of P processes waiting on one Barrier
  semaphore       acquire+release pairs/s of P processes on a Semaphore(2)
  lock_timeout, cond_timeout, event_timeout, barrier_timeout
                  seconds past 0.1 that Lock.acquire(timeout=0.1) on a held
                  Lock, Condition.wait(0.1), Event.wait(0.1) on a clear
                  Event or Barrier(2).wait(0.1) alone returns (the median of
                  N samples; the Barrier's reset() is not timed)

Prints one JSON object: {"python": ..., "scenario": ..., "value": ...}.
"""
import argparse
import multiprocessing as mp
import os
import sys
import threading
import time

from benchlib import RUN_LIMIT, emit, join, median, watchdog

CHUNKS = 5


def uncontended(ctx, recursive, n):
    lock = ctx.RLock() if recursive else ctx.Lock()
    acquire, release = lock.acquire, lock.release
    per = max(1, n // CHUNKS)
    times = []
    for _ in range(CHUNKS):
        t0 = time.monotonic()
        for _ in range(per):
            acquire()
            release()
        times.append((time.monotonic() - t0) / per)
    return min(times)


def lock_pp_child(l1, l2, n):
    for _ in range(n):
        l1.acquire()
        l2.release()


def lock_pingpong(ctx, n):
    l1, l2 = ctx.Lock(), ctx.Lock()
    l1.acquire()
    l2.acquire()
    p = ctx.Process(target=lock_pp_child, args=(l1, l2, n + 1))
    p.start()
    t0 = 0
    for k in range(n + 1):
        if k == 1:
            t0 = time.monotonic()  # the first round trip waits for the child
        l1.release()
        l2.acquire()
    t = time.monotonic() - t0
    join(p, "bench_sync")
    return n / t


def cond_pp_child(cond, ready, n):
    cond.acquire()
    ready.put(0)
    for _ in range(n):
        cond.wait()
        cond.notify()
    cond.release()


def cond_pingpong(ctx, n):
    cond, ready = ctx.Condition(), ctx.SimpleQueue()
    p = ctx.Process(target=cond_pp_child, args=(cond, ready, n + 1))
    p.start()
    ready.get()
    cond.acquire()  # the child waits by the time this returns
    t0 = 0
    for k in range(n + 1):
        if k == 1:
            t0 = time.monotonic()
        cond.notify()
        cond.wait()
    t = time.monotonic() - t0
    cond.release()
    join(p, "bench_sync")
    return n / t


def event_child(ev, back, n):
    for _ in range(n):
        ev.wait()
        t = time.monotonic()
        ev.clear()
        back.put(t)


def await_asleep(fd):
    """Returns once the process whose stat file is fd sleeps (state S)."""
    deadline = time.monotonic() + RUN_LIMIT
    while True:
        stat = os.pread(fd, 512, 0)
        if stat[stat.rindex(b")") + 2:][:1] == b"S":
            return
        if time.monotonic() > deadline:
            raise SystemExit("bench_sync: the Event's waiter never slept")
        os.sched_yield()


def event_latency(ctx, n):
    ev, back = ctx.Event(), ctx.SimpleQueue()
    p = ctx.Process(target=event_child, args=(ev, back, n + 1))
    p.start()
    fd = os.open("/proc/%d/stat" % p.pid, os.O_RDONLY)
    lat = []
    for k in range(n + 1):
        await_asleep(fd)
        t0 = time.monotonic()
        ev.set()
        t1 = back.get()
        if k:  # the first one finds the child just started
            lat.append(t1 - t0)
    os.close(fd)
    join(p, "bench_sync")
    return median(lat)


def barrier_child(barrier, back, n):
    barrier.wait()  # every party has started
    t0 = time.monotonic()
    for _ in range(n):
        barrier.wait()
    back.put((t0, time.monotonic()))


def sem_child(sem, ready, go, back, n):
    ready.put(0)
    go.wait()
    acquire, release = sem.acquire, sem.release
    t0 = time.monotonic()
    for _ in range(n):
        acquire()
        release()
    back.put((t0, time.monotonic()))


def spans(back, procs, ops):
    got = [back.get() for _ in range(procs)]
    return ops / (max(e for _, e in got) - min(s for s, _ in got))


def barrier(ctx, procs, n):
    b, back = ctx.Barrier(procs), ctx.SimpleQueue()
    ps = [ctx.Process(target=barrier_child, args=(b, back, n))
          for _ in range(procs)]
    for p in ps:
        p.start()
    v = spans(back, procs, n)
    for p in ps:
        join(p, "bench_sync")
    return v


def semaphore(ctx, procs, n):
    sem, go = ctx.Semaphore(2), ctx.Event()
    ready, back = ctx.SimpleQueue(), ctx.SimpleQueue()
    per = max(1, n // procs)
    ps = [ctx.Process(target=sem_child, args=(sem, ready, go, back, per))
          for _ in range(procs)]
    for p in ps:
        p.start()
    for _ in ps:
        ready.get()
    go.set()
    v = spans(back, procs, per * procs)
    for p in ps:
        join(p, "bench_sync")
    return v


TIMEOUT = 0.1


def timeout(ctx, kind, n):
    """The median of n waits' lateness past TIMEOUT."""
    reset = None
    if kind == "lock":
        lock = ctx.Lock()
        lock.acquire()

        def wait():
            return lock.acquire(timeout=TIMEOUT)
    elif kind == "cond":
        cond = ctx.Condition()
        cond.acquire()

        def wait():
            return cond.wait(TIMEOUT)
    elif kind == "event":
        ev = ctx.Event()

        def wait():
            return ev.wait(TIMEOUT)
    else:
        b = ctx.Barrier(2)
        reset = b.reset

        def wait():
            try:
                b.wait(TIMEOUT)
            except threading.BrokenBarrierError:
                return False
            return True
    late = []
    for _ in range(n):
        t0 = time.monotonic()
        got = wait()
        t1 = time.monotonic()
        if got:
            raise SystemExit("bench_sync: a %s wait did not time out" % kind)
        if reset is not None:
            reset()
        late.append(t1 - t0 - TIMEOUT)
    return median(late)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--procs", type=int, default=1)
    a = ap.parse_args(argv)
    ctx = mp.get_context("fork")
    watchdog("bench_sync")
    runs = {
        "lock_uncontended": lambda: uncontended(ctx, False, a.n),
        "rlock_uncontended": lambda: uncontended(ctx, True, a.n),
        "lock_pingpong": lambda: lock_pingpong(ctx, a.n),
        "cond_pingpong": lambda: cond_pingpong(ctx, a.n),
        "event_latency": lambda: event_latency(ctx, a.n),
        "barrier": lambda: barrier(ctx, a.procs, a.n),
        "semaphore": lambda: semaphore(ctx, a.procs, a.n),
    }
    for kind in ("lock", "cond", "event", "barrier"):
        runs[kind + "_timeout"] = (lambda k: lambda: timeout(ctx, k, a.n))(kind)
    if a.scenario not in runs:
        ap.error("unknown scenario %r" % a.scenario)
    emit(scenario=a.scenario, value=runs[a.scenario]())


if __name__ == "__main__":
    main(sys.argv[1:])
