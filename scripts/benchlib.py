"""What the CPython sides of the benchmark programs share (bench_sync.py,
bench_pool.py, bench_shared.py): the median, a join that insists on exit
code 0, the watchdog that gives up on a hung run, and the one JSON line the
C side reads.  Python 3 standard library only."""
import json
import multiprocessing as mp
import os
import signal
import sys

RUN_LIMIT = 300  # seconds, as the C side gives a run


def median(v):
    v = sorted(v)
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def join(p, who):
    p.join()
    if p.exitcode != 0:
        raise SystemExit("%s: a child exited with %r" % (who, p.exitcode))


def watchdog(who):
    """Kills every child and exits 1 when the run takes over RUN_LIMIT."""
    def give_up(signum, frame):
        for c in mp.active_children():
            c.kill()
        sys.stderr.write("%s: a run took over %d s; giving up\n"
                         % (who, RUN_LIMIT))
        os._exit(1)
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(RUN_LIMIT)


def emit(**fields):
    """The run is over: the watchdog off, one JSON object out."""
    signal.alarm(0)
    json.dump(dict(python=sys.version.split()[0], **fields), sys.stdout)
    sys.stdout.write("\n")
