"""CPython's side of `make bench`: multiprocessing timed in-process.

Called by the benchmark program (harness/bench/bench_process.c) once per round,
interleaved with libmp and the raw system calls; prints one JSON object.
Standard library only.
"""
import argparse
import json
import multiprocessing as mp
import sys
import time


def empty():
    pass


def sleeper():
    time.sleep(60)


def pipe_sender(conn, n, size):
    msg = b"x" * size
    for _ in range(n):
        conn.send_bytes(msg)
    conn.close()


def pipe_time(n, size):
    """Seconds per message: a child sends n messages, we receive them."""
    r, w = mp.Pipe(duplex=False)
    p = mp.Process(target=pipe_sender, args=(w, n, size))
    t0 = time.perf_counter()
    p.start()
    w.close()
    for _ in range(n):
        r.recv_bytes()
    dt = time.perf_counter() - t0
    p.join()
    return dt / n


def start_n(n):
    """Seconds to start n children, then join them all."""
    t0 = time.perf_counter()
    ps = [mp.Process(target=empty) for _ in range(n)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    dt = time.perf_counter() - t0
    assert all(p.exitcode == 0 for p in ps)
    return dt


def terminate_latency():
    """Seconds from terminate() to join() returning, on a running child."""
    ready = mp.Event()
    p = mp.Process(target=ready_then_sleep, args=(ready,))
    p.start()
    ready.wait()
    t0 = time.perf_counter()
    p.terminate()
    p.join()
    dt = time.perf_counter() - t0
    assert p.exitcode == -15, p.exitcode
    return dt


def ready_then_sleep(ready):
    ready.set()
    time.sleep(60)


def daemon_ready(w):
    w.send_bytes(b"r")
    time.sleep(3600)


def daemon_main(k):
    """Starts k daemonic children, waits until each runs, prints the clock
    and their pids, and returns: the interpreter's exit then terminates and
    joins them (multiprocessing's atexit handler)."""
    r, w = mp.Pipe(duplex=False)
    ps = [mp.Process(target=daemon_ready, args=(w,), daemon=True)
          for _ in range(k)]
    for p in ps:
        p.start()
    for _ in range(k):
        r.recv_bytes()
    line = "%.9f %s\n" % (time.monotonic(), " ".join(str(p.pid) for p in ps))
    sys.stdout.write(line)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="fork")
    ap.add_argument("--n", type=int, default=50, help="start+join samples")
    ap.add_argument("--joins", type=int, default=5, help="join(timeout) samples")
    ap.add_argument("--timeout", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--mem", type=int, default=0, help="MB the parent touches")
    ap.add_argument("--pipe", type=int, default=0, help="Pipe messages")
    ap.add_argument("--size", type=int, default=64, help="Pipe message size")
    ap.add_argument("--start-n", type=int, default=0,
                    help="children started, then all joined, per sample")
    ap.add_argument("--start-n-samples", type=int, default=1)
    ap.add_argument("--terminate", type=int, default=0,
                    help="terminate() -> join() samples")
    ap.add_argument("--daemon-main", type=int, default=0,
                    help="only: start this many daemons, print the clock "
                    "and exit (mp-bench-process times the teardown)")
    args = ap.parse_args()
    mp.set_start_method(args.method)
    if args.daemon_main > 0:
        daemon_main(args.daemon_main)
        return

    ballast = bytearray(args.mem << 20)
    for i in range(0, len(ballast), 4096):   # touch every page
        ballast[i] = 1

    for _ in range(args.warmup):   # also starts the fork server
        p = mp.Process(target=empty)
        p.start()
        p.join()
    start_join = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        p = mp.Process(target=empty)
        p.start()
        p.join()
        start_join.append(time.perf_counter() - t0)
        assert p.exitcode == 0

    overshoot, cpu = [], []
    for _ in range(args.joins):
        p = mp.Process(target=sleeper)
        p.start()
        c0 = time.process_time()
        t0 = time.perf_counter()
        p.join(args.timeout)
        overshoot.append(time.perf_counter() - t0 - args.timeout)
        cpu.append(time.process_time() - c0)
        assert p.exitcode is None
        p.kill()
        p.join()
        assert p.exitcode == -9

    pipe = [pipe_time(args.pipe, args.size)] if args.pipe > 0 else []
    startn = [start_n(args.start_n) for _ in range(args.start_n_samples)] \
        if args.start_n > 0 else []
    term = [terminate_latency() for _ in range(args.terminate)]
    json.dump({"python": sys.version.split()[0], "start_join": start_join,
               "join_overshoot": overshoot, "join_cpu": cpu,
               "pipe_per_msg": pipe, "start_n": startn, "terminate": term},
              sys.stdout)


if __name__ == "__main__":
    main()
