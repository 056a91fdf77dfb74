"""CPython's side of scripts/bench_whole: each scenario as one whole program,
to set beside build/mp-scenario (harness/bench/scenario.c) under hyperfine.

    scenario.py [--method M] none|start_join|start_n N|daemon_teardown K|queue N
    scenario.py queue_ops N | simplequeue_ops N | pipe_ops N
    scenario.py lock_ops N | rlock_ops N

The *_ops scenarios put and get (send and receive) N 64-byte messages, or
acquire and release a Lock (an RLock) N times, in one process, for
instruction counts under callgrind (scripts/bench_callgrind).
"""
import multiprocessing as mp
import sys
import time


def empty():
    pass


def forever():
    while True:
        time.sleep(3600)


def producer(q, n):
    msg = b"\0" * 64
    for _ in range(n):
        q.put(msg)


def main(argv):
    method = None
    if len(argv) > 1 and argv[0] == "--method":
        method, argv = argv[1], argv[2:]
    if not argv:
        sys.exit(__doc__)
    what = argv[0]
    n = int(argv[1]) if len(argv) > 1 else 1
    ctx = mp.get_context(method)
    if what == "none":
        return
    if what in ("start_join", "start_n"):
        ps = [ctx.Process(target=empty) for _ in range(n)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
            if p.exitcode != 0:
                sys.exit("scenario.py: a child's exit code is %r" % p.exitcode)
        return
    if what == "daemon_teardown":
        for _ in range(n):
            ctx.Process(target=forever, daemon=True).start()
        return      # multiprocessing terminates and joins them at exit
    if what == "queue":
        q = ctx.Queue()
        p = ctx.Process(target=producer, args=(q, n))
        p.start()
        for _ in range(n):
            q.get()
        p.join()
        return
    if what in ("queue_ops", "simplequeue_ops"):
        q = ctx.Queue() if what == "queue_ops" else ctx.SimpleQueue()
        msg = b"\0" * 64
        for _ in range(n):
            q.put(msg)
            q.get()
        return
    if what == "pipe_ops":
        a, b = ctx.Pipe()
        msg = b"\0" * 64
        for _ in range(n):
            a.send_bytes(msg)
            b.recv_bytes()
        return
    if what in ("lock_ops", "rlock_ops"):
        lock = ctx.Lock() if what == "lock_ops" else ctx.RLock()
        for _ in range(n):
            lock.acquire()
            lock.release()
        return
    sys.exit("scenario.py: unknown scenario %r" % what)


if __name__ == "__main__":
    main(sys.argv[1:])
