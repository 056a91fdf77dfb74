#!/usr/bin/env python3
"""CPython's side of mp-bench-queue: messages/s through multiprocessing's
Queue, SimpleQueue and Pipe, for the sizes and topologies asked, timed
inside this interpreter.

The producers and consumers (fork children) meet at a Barrier with the parent,
which then reads the clock; each consumer reads it again after its last
message and reports it.  Throughput is messages / (latest end - start).  With
P -> P processes, Queue and SimpleQueue are shared by all (each consumer takes
n/P messages); Pipe has one pipe per producer/consumer pair.

Round-trip latency: a child echoes what it gets; the parent times `rtt`
round trips of a `size`-byte message.

    bench_queue.py --impls queue,simplequeue,pipe --sizes 8,64 --procs 1,4
                   --n 20000 --budget 1.5e8 [--rtt 2000]

Prints one JSON object: {"python": ..., "results": [...]}.
"""
import argparse
import json
import multiprocessing as mp
import sys
import time


def producer(obj, n, size, barrier, impl):
    data = b"x" * size
    barrier.wait()
    if impl == "pipe":
        send = obj.send_bytes
        for _ in range(n):
            send(data)
    else:
        put = obj.put
        for _ in range(n):
            put(data)


def consumer(obj, n, barrier, impl, ends):
    barrier.wait()
    if impl == "pipe":
        recv = obj.recv_bytes
        for _ in range(n):
            recv()
    else:
        get = obj.get
        for _ in range(n):
            get()
    ends.put(time.monotonic())


def throughput(ctx, impl, size, procs, n):
    per = n // procs
    barrier = ctx.Barrier(2 * procs + 1)
    ends = ctx.SimpleQueue()
    children = []
    if impl == "pipe":
        pairs = [ctx.Pipe(False) for _ in range(procs)]
        for r, w in pairs:
            children.append(ctx.Process(target=producer,
                                        args=(w, per, size, barrier, impl)))
            children.append(ctx.Process(target=consumer,
                                        args=(r, per, barrier, impl, ends)))
    else:
        q = ctx.Queue() if impl == "queue" else ctx.SimpleQueue()
        for _ in range(procs):
            children.append(ctx.Process(target=producer,
                                        args=(q, per, size, barrier, impl)))
            children.append(ctx.Process(target=consumer,
                                        args=(q, per, barrier, impl, ends)))
    for c in children:
        c.start()
    barrier.wait()
    t0 = time.monotonic()
    last = max(ends.get() for _ in range(procs))
    for c in children:
        c.join()
        if c.exitcode != 0:
            raise SystemExit("bench_queue: a %s child failed" % impl)
    return per * procs, last - t0


def echo(obj_in, obj_out, count, impl):
    if impl == "pipe":
        for _ in range(count):
            obj_out.send_bytes(obj_in.recv_bytes())
    else:
        for _ in range(count):
            obj_out.put(obj_in.get())


def round_trip(ctx, impl, size, count):
    if impl == "pipe":
        a, b = ctx.Pipe()
        child = ctx.Process(target=echo, args=(b, b, count + 1, impl))
        send, recv = a.send_bytes, a.recv_bytes
    else:
        make = ctx.Queue if impl == "queue" else ctx.SimpleQueue
        there, back = make(), make()
        child = ctx.Process(target=echo, args=(there, back, count + 1, impl))
        send, recv = there.put, back.get
    child.start()
    data = b"r" * size
    send(data)           # warm-up: the child is running
    recv()
    t0 = time.monotonic()
    for _ in range(count):
        send(data)
        recv()
    t = time.monotonic() - t0
    child.join()
    return t / count


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--impls", default="queue,simplequeue,pipe")
    ap.add_argument("--sizes", default="8,64,4096,65536")
    ap.add_argument("--procs", default="1,4")
    ap.add_argument("--n", type=int, default=20000,
                    help="messages per run, 1 -> 1 (twice that for 4 -> 4)")
    ap.add_argument("--budget", type=float, default=1.5e8,
                    help="bytes per run at most, 1 -> 1")
    ap.add_argument("--rtt", type=int, default=0,
                    help="round trips to time per implementation (64 B)")
    ap.add_argument("--method", default="fork")
    ap.add_argument("--flat", action="store_true",
                    help="the same number of messages whatever --procs")
    a = ap.parse_args(argv)
    ctx = mp.get_context(a.method)
    results = []
    for procs in [int(x) for x in a.procs.split(",") if x]:
        for size in [int(x) for x in a.sizes.split(",") if x]:
            # as the C side counts: fewer large messages
            n = int(min(a.n, a.budget / size) * (procs / 2 if procs > 1
                                                   and not a.flat else 1))
            n = max(procs * 16, n - n % procs)
            for impl in a.impls.split(","):
                msgs, secs = throughput(ctx, impl, size, procs, n)
                results.append({"impl": impl, "size": size, "procs": procs,
                                "msgs": msgs, "seconds": secs,
                                "msgs_per_s": msgs / secs})
    rtt = []
    if a.rtt > 0:
        for impl in a.impls.split(","):
            rtt.append({"impl": impl, "size": 64,
                        "seconds": round_trip(ctx, impl, 64, a.rtt)})
    json.dump({"python": sys.version.split()[0], "results": results,
               "rtt": rtt}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
