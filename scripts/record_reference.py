#!/usr/bin/env python3
"""Record what CPython's multiprocessing does for each case in cases/.

    record_reference.py [--out DIR] [--method M ...] [--runs N] [--load N]
                        [--quiet] CASE_OR_DIR ...
    record_reference.py --list-ops

Implements the case format of cases/README.md (the contract shared with the C
harness, build/mp-harness).  For every case and start method, each of --runs
runs (default $RECORD_RUNS, else 3) happens in a fresh interpreter, started as

    sys.executable -I -S record_reference.py --run-one SCRATCH METHOD

in its own process group, stdin /dev/null, stdout and stderr regular files,
PYTHONUNBUFFERED unset, SIGINT/SIGTERM/SIGHUP/SIGPIPE/SIGCHLD at SIG_DFL and an
empty signal mask.  This process is a child subreaper, so orphans come back to
it; when the case process has ended it notes which children still run
(`leftover`), kills the process group and reaps everything.

--load N (default $RECORD_LOAD, else 0) keeps N busy-loop processes running
for the whole recording, so that a case whose outcome hangs on timing shows
it: two agreeing runs on an idle machine prove little.  They are killed on
any exit, and end by themselves when this process dies.

A valid case is written to DIR/<area>/<name>.json (default DIR:
reference/cpython-X.Y under the repository root).  A case whose runs differ
(each different result is shown with the runs that gave it),
whose timing falls outside a `duration` window, that times out or whose file is
invalid is reported, gets no reference (a stale one is removed), and makes the
exit status 1.

Python 3.8+, standard library only.  The module-level code is import-safe:
under spawn and forkserver the case's children re-import this file as
__mp_main__ and run _case_child() from it.
"""
import json
import os
import re
import select
import signal
import sys
import threading
import time

METHODS = ("fork", "spawn", "forkserver")
COMPARE_MODES = ("exact", "type", "set", "ignore")
OUTPUT_MODES = ("exact", "lines", "ignore")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
CASE_PART_RE = re.compile(r"[a-z0-9_]+\Z")
DEFAULT_TIMEOUT = 20
HARNESS_ERROR_EXIT = 70


# ---------------------------------------------------------------------------
# The vocabulary: every op, its arguments and its outcome, in
# harness/runner/ops.json, which the C harness reads too
# ---------------------------------------------------------------------------

VOCAB_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "harness", "runner", "ops.json")
_TYPES = ("string", "number", "integer", "boolean", "null", "array",
          "object", "any")
_OP_KEYS = ("op", "group", "child", "outcome", "does", "value", "args")
_ARG_KEYS = ("name", "type", "required", "default", "min", "max", "enum",
             "object", "objects", "kinds", "new", "length", "steps", "event",
             "items", "doc")
_ITEM_KEYS = ("type", "min", "max", "items")
_KINDS = ("process", "connection", "queue", "thread", "lock", "condition",
          "event", "barrier", "value", "shm", "pool", "result", "iterator")
_vocab = None


def vocab():
    """{op: {"child", "outcome", "args": {name: arg}}} from ops.json, each
    arg holding only the keys this file understands (any other key is an
    error: a field the C harness honours must not be ignored here)."""
    global _vocab
    if _vocab is not None:
        return _vocab
    with open(VOCAB_FILE) as f:
        raw = json.load(f, object_pairs_hook=_pairs_no_duplicates)

    def bad(what):
        raise ValueError("%s: %s" % (VOCAB_FILE, what))

    def items_spec(name, arg, spec, depth=0):
        """An "items" spec made canonical, as the C harness shows it."""
        if not isinstance(spec, dict) or set(spec) - set(_ITEM_KEYS) or \
                depth > 4:
            bad("op %r, argument %r: bad \"items\"" % (name, arg))
        t = spec.get("type")
        t = t if isinstance(t, list) else [t]
        if not t or set(t) - set(_TYPES) or "any" in t:
            bad("op %r, argument %r: bad \"items\" type" % (name, arg))
        out = {"type": [x for x in _TYPES if x in t]}
        for k in ("min", "max"):
            if k in spec:
                out[k] = spec[k]
        if "items" in spec:
            out["items"] = items_spec(name, arg, spec["items"], depth + 1)
        return out
    ops = {}
    for o in raw["ops"]:
        name = o.get("op")
        if set(o) - set(_OP_KEYS) or name in ops:
            bad("op %r: unknown key, or listed twice" % name)
        if o["outcome"] not in ("value", "none", "first") or \
                not isinstance(o["child"], bool):
            bad("op %r: bad outcome or child" % name)
        args = {}
        for a in o["args"]:
            if set(a) - set(_ARG_KEYS) or a["name"] in args:
                bad("op %r, argument %r: unknown key, or listed twice"
                    % (name, a.get("name")))
            t = a["type"] if isinstance(a["type"], list) else [a["type"]]
            if not t or set(t) - set(_TYPES):
                bad("op %r, argument %r: unknown type" % (name, a["name"]))
            spec = {"name": a["name"], "type": [x for x in _TYPES if x in t],
                    "required": bool(a["required"])}
            if "enum" in a:
                e = a["enum"]
                spec["enum"] = list(raw[e] if isinstance(e, str) else e)
                if isinstance(e, str):
                    spec["enum_name"] = e
            for k in ("default", "min", "max", "length"):
                if k in a:
                    spec[k] = a[k]
            for k, allowed in (("object", _KINDS), ("new", _KINDS),
                               ("objects", ("any", "own"))):
                if k in a:
                    if a[k] not in allowed:
                        bad("op %r, argument %r: unknown kind"
                            % (name, a["name"]))
                    spec[k] = a[k]
            for k in ("steps", "event"):
                if a.get(k):
                    spec[k] = True
            if "kinds" in a:
                if "objects" not in a or not a["kinds"] or \
                        set(a["kinds"]) - set(_KINDS):
                    bad("op %r, argument %r: bad \"kinds\""
                        % (name, a["name"]))
                spec["kinds"] = list(a["kinds"])
            if "items" in a:
                spec["items"] = items_spec(name, a["name"], a["items"])
            args[a["name"]] = spec
        ops[name] = {"child": o["child"], "outcome": o["outcome"],
                     "args": args}
    _vocab = ops
    return ops


def _arg(st, name):
    """A step's argument, or the default ops.json gives for it."""
    if name in st:
        return st[name]
    return vocab()[st["op"]]["args"][name].get("default")


def list_ops():
    """The vocabulary as this interpreter understands it, with the ops it
    implements: what scripts/test-vocab compares with mp-harness ops."""
    out = []
    for name, o in vocab().items():
        args = []
        for a in o["args"].values():
            a = dict(a)
            a.pop("enum_name", None)
            args.append(a)
        out.append({"op": name, "child": o["child"], "outcome": o["outcome"],
                    "args": args, "implemented": name in OPS})
    return {"ops": out, "unlisted": sorted(set(OPS) - set(vocab()))}


# ---------------------------------------------------------------------------
# Normalisation (shared by the recorder and the in-case interpreter)
# ---------------------------------------------------------------------------

_DROP_LINE_RE = re.compile(r"[ ^~]*\Z")


def normalise_string(s):
    """pid=<digits> -> pid=N, parent=<digits> -> parent=N, 0x<hex> -> 0xADDR,
    psm_<hex> (a SharedMemory name CPython made) -> psm_N."""
    s = re.sub(r"pid=[0-9]+", "pid=N", s)
    s = re.sub(r"parent=[0-9]+", "parent=N", s)
    s = re.sub(r"0x[0-9a-fA-F]+", "0xADDR", s)
    s = re.sub(r"psm_[0-9a-fA-F]+", "psm_N", s)
    return s


def normalise_output(data, mode):
    """Bytes written to stdout/stderr -> the stored form for `mode`."""
    if mode == "ignore":
        return None
    text = data.decode("utf-8", "backslashreplace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()            # the piece after the final newline
    kept = []
    for line in lines:
        if line == "Traceback (most recent call last):":
            continue
        if line.startswith("  "):
            continue
        if _DROP_LINE_RE.match(line):   # only spaces, ^ and ~ (or empty)
            continue
        kept.append(normalise_string(line))
    if mode == "lines":
        kept.sort()
    return kept


def _json_sort_key(v):
    if v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, (int, float)):
        return (2, v)
    if isinstance(v, str):
        return (3, v)
    return (4 if isinstance(v, list) else 5, json.dumps(v, sort_keys=True))


def apply_compare(value, mode):
    if mode == "type":
        return type(value).__name__
    if mode == "ignore":
        return None
    if mode == "set" and isinstance(value, list):
        return sorted(value, key=_json_sort_key)
    return value


def exception_name(e):
    cls = type(e)
    mod = getattr(cls, "__module__", "builtins")
    name = cls.__name__
    if mod == "builtins":
        full = name
    else:
        # C accelerator modules re-exported by their public module
        # (_queue.Empty is queue.Empty, _pickle.PicklingError is
        # pickle.PicklingError): use the public name.
        if mod.startswith("_"):
            pub = sys.modules.get(mod[1:])
            if pub is not None and getattr(pub, name, None) is cls:
                mod = mod[1:]
        full = mod + "." + name
    msg = str(e)
    return full + ": " + msg if msg else full


# ---------------------------------------------------------------------------
# The in-case interpreter (--run-one) and its children
# ---------------------------------------------------------------------------

class HarnessError(BaseException):
    """A failure of the harness itself: the run is invalid, not an outcome."""


def _harness_fail(scratch, msg):
    try:
        fd = os.open(os.path.join(scratch, "harness-error"),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, ("[pid %d] %s\n" % (os.getpid(), msg)).encode())
        os.close(fd)
    finally:
        os._exit(HARNESS_ERROR_EXIT)


class _Ctx(object):
    def __init__(self, path, scratch, objs, is_main):
        self.path = path
        self.scratch = scratch
        self.objs = objs
        self.is_main = is_main


def _obj(ctx, name):
    import multiprocessing
    if name == "@current":
        return multiprocessing.current_process()
    if name == "@parent":
        return multiprocessing.parent_process()
    try:
        return ctx.objs[name]
    except KeyError:
        raise HarnessError("object %r does not exist at run time" % name)


def _op_process(ctx, st):
    import multiprocessing
    kw = {}
    if "target" in st:
        child_path = st["as"] if ctx.is_main else ctx.path + "." + st["as"]
        passed = dict((n, _obj(ctx, n)) for n in st.get("pass", []))
        kw["target"] = _case_child
        kw["args"] = (child_path, ctx.scratch, json.dumps(st["target"]),
                      passed)
    if "name" in st:
        kw["name"] = st["name"]
    if "daemon" in st:
        kw["daemon"] = st["daemon"]
    cls = multiprocessing.Process
    if "context" in st:   # ctx.Process: ForkProcess, SpawnProcess, ...
        cls = multiprocessing.get_context(st["context"]).Process
    ctx.objs[st["as"]] = cls(**kw)
    return None


def _thread_steps(ctx, steps):
    try:
        _run_steps(ctx, steps)
    except HarnessError as e:
        _harness_fail(ctx.scratch, "%s: %s" % (ctx.path, e))


def _op_thread(ctx, st):
    import threading
    path = st["as"] if ctx.path == "main" else ctx.path + "." + st["as"]
    objs = dict((n, _obj(ctx, n)) for n in st.get("pass", []))
    # Named as the C interpreter names it, within Linux's 15 bytes: a
    # lock's repr names the thread that holds it.
    t = threading.Thread(target=_thread_steps, name=st["as"][:15],
                         args=(_Ctx(path, ctx.scratch, objs, False),
                               st["target"]))
    t.start()
    ctx.objs[st["as"]] = t


def _op_wait_sentinel(ctx, st):
    import multiprocessing.connection
    s = _obj(ctx, st["proc"]).sentinel
    return s in multiprocessing.connection.wait([s], st["timeout"])


def _op_set_name(ctx, st):
    _obj(ctx, st["proc"]).name = st["value"]


def _op_set_daemon(ctx, st):
    _obj(ctx, st["proc"]).daemon = st["value"]


def _op_active_children(ctx, st):
    import multiprocessing
    return sorted(c.name for c in multiprocessing.active_children())


def _op_cpu_count(ctx, st):
    import multiprocessing
    return multiprocessing.cpu_count() == os.sysconf("SC_NPROCESSORS_ONLN")


def _op_signal_self(ctx, st):
    os.kill(os.getpid(), getattr(signal, st["signal"]))
    # pthread_sigmask() runs pending Python signal handlers before it
    # returns, so a handler's exception belongs to this step.
    signal.pthread_sigmask(signal.SIG_BLOCK, [])


def _op_print(ctx, st):
    stream = sys.stderr if _arg(st, "stream") == "stderr" else sys.stdout
    print(st["text"], file=stream, flush=_arg(st, "flush"))


GLOBAL = 0   # set_global/get_global: fork children see a change, others not


def _op_set_global(ctx, st):
    global GLOBAL
    GLOBAL = st["value"]


def _op_register_atexit(ctx, st):
    import atexit
    text = st["text"]
    atexit.register(lambda: print(text, flush=True))


def _event_path(ctx, name):
    return os.path.join(ctx.scratch, "events", name)


def _op_event(ctx, st):
    data = b"." * _arg(st, "count")
    try:
        fd = os.open(_event_path(ctx, st["name"]),
                     os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        raise HarnessError("event %r: %s" % (st["name"], e))
    try:
        while data:
            try:
                n = os.write(fd, data)
            except OSError as e:
                raise HarnessError("event %r: %s" % (st["name"], e))
            data = data[n:]
    finally:
        os.close(fd)


def _op_wait_event(ctx, st):
    name = st["name"]
    timeout = _arg(st, "timeout")
    try:
        fd = os.open(_event_path(ctx, name), os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise HarnessError("wait_event %r: %s" % (name, e))
    try:
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            try:
                b = os.read(fd, 1)
            except BlockingIOError:
                b = None
            if b:
                return None
            if b == b"":
                raise HarnessError("wait_event %r: the FIFO has no writer"
                                   % name)
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError("wait_event %r timed out after %gs"
                                   % (name, timeout))
            poller.poll(int(left * 1000) + 1)
    finally:
        os.close(fd)


def _set_signal(name, disposition):
    signal.signal(getattr(signal, name), disposition)


def _op_signal_handler(ctx, st):
    """A handler that does only what a C signal handler can do as well:
    write(2) a line, _exit(2), or nothing."""
    action = st["action"]
    fd = 2 if _arg(st, "stream") == "stderr" else 1
    line = (_arg(st, "text") + "\n").encode("utf-8")
    code = _arg(st, "code")

    def handler(signum, frame):
        if action == "exit":
            os._exit(code)
        if action == "write":
            data = line
            while data:
                data = data[os.write(fd, data):]
    signal.signal(getattr(signal, st["signal"]), handler)


def _p(ctx, st):
    return _obj(ctx, st["proc"])


def _c(ctx, st):
    return _obj(ctx, st["conn"])


def _op_pipe(ctx, st):
    import multiprocessing
    a, b = multiprocessing.Pipe(_arg(st, "duplex"))
    ctx.objs[st["ends"][0]] = a
    ctx.objs[st["ends"][1]] = b


def _op_recv_bytes(ctx, st):
    conn = _c(ctx, st)
    if "maxlength" in st:
        data = conn.recv_bytes(st["maxlength"])
    else:
        data = conn.recv_bytes()
    return data.decode("utf-8", "backslashreplace")


def _q(ctx, st):
    return _obj(ctx, st["queue"])


def _op_queue(ctx, st):
    import multiprocessing
    kind = _arg(st, "kind")
    if kind == "SimpleQueue":
        q = multiprocessing.SimpleQueue()
    else:
        q = getattr(multiprocessing, kind)(_arg(st, "maxsize"))
    ctx.objs[st["as"]] = q


def _block_timeout(st):
    """put/get's optional (block, timeout), positional, as given."""
    if "block" in st or "timeout" in st:
        return [st.get("block", True), st.get("timeout")]
    return []


def _op_put(ctx, st):
    data = st["data"].encode("utf-8") * _arg(st, "repeat")
    _q(ctx, st).put(data, *_block_timeout(st))


def _got(st, data):
    if _arg(st, "length_only"):
        return len(data)
    return data.decode("utf-8", "backslashreplace")


def _op_conn_state(ctx, st):
    conn = _c(ctx, st)
    return [conn.closed, conn.readable, conn.writable]


def _op_wait(ctx, st):
    """connection.wait() on connections and process sentinels; the value is
    the sorted names of what it returned."""
    import multiprocessing
    import multiprocessing.connection
    named = []
    for name in st["objects"]:
        o = _obj(ctx, name)
        if isinstance(o, multiprocessing.process.BaseProcess):
            o = o.sentinel            # may raise: that is the outcome
        named.append((name, o))
    ready = multiprocessing.connection.wait([o for _n, o in named],
                                            st["timeout"])
    found = []
    for r in ready:
        for name, o in named:
            # a connection comes back as itself, a sentinel as its int
            if o is r or (isinstance(o, int) and isinstance(r, int)
                          and o == r):
                found.append(name)
                break
        else:
            raise HarnessError("wait() returned %r, which is none of %s"
                               % (r, st["objects"]))
    return sorted(found)


# Synchronisation objects: made with the default context, or with the one
# "context" names (get_context(m).Lock()).

def _mp_or_context(st):
    import multiprocessing
    if "context" in st:
        return multiprocessing.get_context(st["context"])
    return multiprocessing


def _op_lock(ctx, st):
    kind = _arg(st, "kind")
    cls = getattr(_mp_or_context(st), kind)
    if kind in ("Semaphore", "BoundedSemaphore"):
        ctx.objs[st["as"]] = cls(_arg(st, "value"))
    else:
        ctx.objs[st["as"]] = cls()


def _op_condition(ctx, st):
    lock = _obj(ctx, st["lock"]) if "lock" in st else None
    ctx.objs[st["as"]] = _mp_or_context(st).Condition(lock)


def _op_event_object(ctx, st):
    ctx.objs[st["as"]] = _mp_or_context(st).Event()


def _barrier_print_name():
    """A Barrier's "print_name" action (module level: spawn pickles it by
    name)."""
    import multiprocessing
    print(multiprocessing.current_process().name)


def _barrier_raise():
    """A Barrier's "raise" action."""
    raise ValueError("barrier action failed")


_BARRIER_ACTIONS = {"print_name": _barrier_print_name,
                    "raise": _barrier_raise}


def _op_barrier(ctx, st):
    action = _BARRIER_ACTIONS[st["action"]] if "action" in st else None
    ctx.objs[st["as"]] = _mp_or_context(st).Barrier(
        st["parties"], action, st.get("timeout"))


def _l(ctx, st, key="lock"):
    return _obj(ctx, st[key])


def _op_cond_wait_for(ctx, st):
    if "value_of" in st:
        sem = _obj(ctx, st["value_of"])
        predicate = lambda: sem.get_value()   # noqa: E731
    else:
        value = _arg(st, "value")
        predicate = lambda: value             # noqa: E731
    return _l(ctx, st, "cond").wait_for(predicate, st.get("timeout"))


# Pools: the task library, at module level so that spawn and forkserver
# workers find each function by its name, as pickle does; the C
# interpreter has an MP_TARGET twin of each (harness/runner/steps_pool.c).

def square(x):
    return x * x


def add(a, b):
    return a + b


def sleep_then_return(seconds, value=None):
    time.sleep(seconds)
    return seconds if value is None else value


def fail_on(x, k=3):
    if x == k:
        raise ValueError("bad %d" % x)
    return x


def exit_with(n):
    sys.exit(n)


def worker_name(x=None):
    import multiprocessing
    return multiprocessing.current_process().name


def worker_pid(x=None):
    return os.getpid()


def get_global(x=None):
    return GLOBAL


def init_global(value):
    global GLOBAL
    GLOBAL = value


TASKS = dict((f.__name__, f) for f in (
    square, add, sleep_then_return, fail_on, exit_with, worker_name,
    worker_pid, get_global))
INITIALIZERS = {"init_global": init_global}

# A worker's pid is recorded as its class: the order in which this process
# first recorded it (0, 1, ...), so that runs compare.
_PID_CLASSES = {}
_PID_LOCK = threading.Lock()


def _classed(func, v):
    if func != "worker_pid":
        return v
    if isinstance(v, list):
        return [_classed(func, x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool):
        with _PID_LOCK:
            return _PID_CLASSES.setdefault(v, len(_PID_CLASSES))
    return v


class _Result(object):
    """An AsyncResult, the task's name, and what its callbacks received."""

    def __init__(self, func):
        self.func = func
        self.calls = []
        self.r = None


class _Iter(object):
    def __init__(self, it, func):
        self.it = it
        self.func = func


def _op_pool(ctx, st):
    init = st.get("initializer")
    ctx.objs[st["as"]] = _mp_or_context(st).Pool(
        st.get("processes"), INITIALIZERS[init] if init else None,
        tuple(st.get("initargs", ())), st.get("maxtasksperchild"))


def _pl(ctx, st):
    return _obj(ctx, st["pool"])


def _callbacks(st, res):
    """apply_async's and map_async's callback and error_callback."""
    cb = ecb = None
    if _arg(st, "callback"):
        def cb(v):
            res.calls.append(["callback", v])
    if _arg(st, "error_callback"):
        def ecb(e):
            res.calls.append(["error_callback",
                              normalise_string(exception_name(e))])
    return cb, ecb


def _op_apply(ctx, st):
    f = st["func"]
    return _classed(f, _pl(ctx, st).apply(
        TASKS[f], tuple(_arg(st, "args")), dict(_arg(st, "kwds"))))


def _op_apply_async(ctx, st):
    res = _Result(st["func"])
    cb, ecb = _callbacks(st, res)
    res.r = _pl(ctx, st).apply_async(
        TASKS[st["func"]], tuple(_arg(st, "args")), dict(_arg(st, "kwds")),
        cb, ecb)
    ctx.objs[st["as"]] = res


def _star(st):
    return [tuple(x) for x in st["items"]]


def _op_map_async(ctx, st, star=False):
    res = _Result(st["func"])
    cb, ecb = _callbacks(st, res)
    call = _pl(ctx, st).starmap_async if star else _pl(ctx, st).map_async
    res.r = call(TASKS[st["func"]], _star(st) if star else st["items"],
                 st.get("chunksize"), cb, ecb)
    ctx.objs[st["as"]] = res


def _op_imap(ctx, st, unordered=False):
    pool = _pl(ctx, st)
    call = pool.imap_unordered if unordered else pool.imap
    ctx.objs[st["as"]] = _Iter(call(TASKS[st["func"]], st["items"],
                                    _arg(st, "chunksize")), st["func"])


def _op_imap_next(ctx, st):
    h = _obj(ctx, st["iterator"])
    if "timeout" in st:
        return _classed(h.func, h.it.next(st["timeout"]))
    return _classed(h.func, next(h.it))


def _op_imap_drain(ctx, st):
    h = _obj(ctx, st["iterator"])
    out = []
    while True:
        try:
            v = next(h.it)
        except StopIteration:
            return out
        except Exception as e:
            out.append({"raises": normalise_string(exception_name(e))})
        else:
            out.append({"value": _classed(h.func, v)})


def _op_result_callbacks(ctx, st):
    h = _obj(ctx, st["result"])
    return [[k, _classed(h.func, v) if k == "callback" else v]
            for k, v in list(h.calls)]


def _rs(ctx, st):
    return _obj(ctx, st["result"])


# Shared values (Value, RawValue, Array, RawArray) and SharedMemory.  Data
# travels as text, as for connections: a string is UTF-8 bytes for a 'c'
# typecode (ctypes' c_char) and a str otherwise; bytes read back are
# decoded (undecodable ones as \xNN).

def _shared_data(tc, x):
    if isinstance(x, str) and tc == "c":
        return x.encode("utf-8")
    return x


_TYPECODES = {}   # id(object) -> typecode, of the objects made here


def _tc(v):
    """A shared object's typecode: kept when it was made here; for one a
    spawn or forkserver parent passed, its ctypes type's."""
    tc = _TYPECODES.get(id(v))
    if tc is None:
        inner = v.get_obj() if hasattr(v, "get_obj") else v
        t = getattr(inner, "_type_", None)
        t = getattr(t, "_type_", t)   # an array's item type
        tc = t if isinstance(t, str) else None
        _TYPECODES[id(v)] = tc
    return tc


def _as_text(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", "backslashreplace")
    return x


def _lock_arg(ctx, st):
    lock = _arg(st, "lock")
    return _obj(ctx, lock) if isinstance(lock, str) else lock


def _op_value(ctx, st, raw=False):
    import multiprocessing
    tc = st["typecode"]
    args = (_shared_data(tc, st["init"]),) if "init" in st else ()
    if raw:
        v = multiprocessing.RawValue(tc, *args)
    else:
        v = multiprocessing.Value(tc, *args, lock=_lock_arg(ctx, st))
    ctx.objs[st["as"]] = v
    _TYPECODES[id(v)] = tc


def _op_array(ctx, st, raw=False):
    import multiprocessing
    tc = st["typecode"]
    init = _shared_data(tc, st["init"])
    if raw:
        a = multiprocessing.RawArray(tc, init)
    else:
        a = multiprocessing.Array(tc, init, lock=_lock_arg(ctx, st))
    ctx.objs[st["as"]] = a
    _TYPECODES[id(a)] = tc


def _v(ctx, st):
    return _obj(ctx, st["value"])


def _op_value_set(ctx, st):
    v = _v(ctx, st)
    v.value = _shared_data(_tc(v), st["to"])


def _op_value_increment(ctx, st):
    v = _v(ctx, st)
    if _arg(st, "locked"):
        for _ in range(st["n"]):
            with v.get_lock():
                v.value += 1
    else:
        for _ in range(st["n"]):
            v.value += 1


def _op_get_lock(ctx, st):
    ctx.objs[st["as"]] = _v(ctx, st).get_lock()


def _op_array_set(ctx, st):
    a = _v(ctx, st)
    a[st["index"]] = _shared_data(_tc(a), st["to"])


def _op_array_slice_get(ctx, st):
    got = _v(ctx, st)[st.get("start"):st.get("stop")]
    return _as_text(got)


def _op_array_slice_set(ctx, st):
    a = _v(ctx, st)
    a[st.get("start"):st.get("stop")] = _shared_data(_tc(a), st["to"])


def _op_shm(ctx, st):
    from multiprocessing import shared_memory
    name = st.get("name")
    if "name_of" in st:
        name = _obj(ctx, st["name_of"]).name
    ctx.objs[st["as"]] = shared_memory.SharedMemory(
        name, _arg(st, "create"), _arg(st, "size"))


def _s(ctx, st):
    return _obj(ctx, st["shm"])


def _op_shm_write(ctx, st):
    data = st["data"].encode("utf-8")
    off = _arg(st, "offset")
    _s(ctx, st).buf[off:off + len(data)] = data


def _op_shm_read(ctx, st):
    off = _arg(st, "offset")
    return _as_text(bytes(_s(ctx, st).buf[off:off + st["length"]]))


OPS = {
    "process": _op_process,
    "start": lambda c, s: _p(c, s).start(),
    "join": lambda c, s: _p(c, s).join(s.get("timeout")),
    "is_alive": lambda c, s: _p(c, s).is_alive(),
    "exitcode": lambda c, s: _p(c, s).exitcode,
    "pid": lambda c, s: type(_p(c, s).pid).__name__,
    "pid_is": lambda c, s: _p(c, s).pid == (
        os.getpid() if s["of"] == "self" else os.getppid()),
    "name": lambda c, s: _p(c, s).name,
    "set_name": _op_set_name,
    "daemon": lambda c, s: _p(c, s).daemon,
    "set_daemon": _op_set_daemon,
    "sentinel": lambda c, s: type(_p(c, s).sentinel).__name__,
    "wait_sentinel": _op_wait_sentinel,
    "terminate": lambda c, s: _p(c, s).terminate(),
    "kill": lambda c, s: _p(c, s).kill(),
    "close": lambda c, s: _p(c, s).close(),
    "repr": lambda c, s: normalise_string(repr(_p(c, s))),
    "is_none": lambda c, s: _p(c, s) is None,
    "active_children": _op_active_children,
    "cpu_count": _op_cpu_count,
    "sleep": lambda c, s: time.sleep(s["seconds"]),
    "signal_self": _op_signal_self,
    "ignore_signal": lambda c, s: _set_signal(s["signal"], signal.SIG_IGN),
    "default_signal": lambda c, s: _set_signal(s["signal"], signal.SIG_DFL),
    "signal_handler": _op_signal_handler,
    "print": _op_print,
    "set_global": _op_set_global,
    "get_start_method": lambda c, s: __import__("multiprocessing")
        .get_start_method(allow_none=_arg(s, "allow_none")),
    "set_start_method": lambda c, s: __import__("multiprocessing")
        .set_start_method(s["method"], force=_arg(s, "force")),
    "get_global": lambda c, s: GLOBAL,
    "register_atexit": _op_register_atexit,
    "pipe": _op_pipe,
    "send_bytes": lambda c, s: _c(c, s).send_bytes(
        s["data"].encode("utf-8") * _arg(s, "repeat")),
    "recv_bytes": _op_recv_bytes,
    "recv_bytes_into": lambda c, s: _c(c, s).recv_bytes_into(
        bytearray(s["size"])),
    "poll": lambda c, s: _c(c, s).poll(_arg(s, "timeout")),
    "conn_close": lambda c, s: _c(c, s).close(),
    "conn_state": _op_conn_state,
    "wait": _op_wait,
    "queue": _op_queue,
    "put": _op_put,
    "put_nowait": lambda c, s: _q(c, s).put_nowait(s["data"].encode("utf-8")),
    "get": lambda c, s: _got(s, _q(c, s).get(*_block_timeout(s))),
    "get_nowait": lambda c, s: _got(s, _q(c, s).get_nowait()),
    "qsize": lambda c, s: _q(c, s).qsize(),
    "empty": lambda c, s: _q(c, s).empty(),
    "full": lambda c, s: _q(c, s).full(),
    "queue_close": lambda c, s: _q(c, s).close(),
    "join_thread": lambda c, s: _q(c, s).join_thread(),
    "cancel_join_thread": lambda c, s: _q(c, s).cancel_join_thread(),
    "task_done": lambda c, s: _q(c, s).task_done(),
    "queue_join": lambda c, s: _q(c, s).join(),
    "lock": _op_lock,
    "acquire": lambda c, s: _l(c, s).acquire(_arg(s, "block"),
                                             s.get("timeout")),
    "release": lambda c, s: _l(c, s).release(),
    "get_value": lambda c, s: _l(c, s).get_value(),
    "lock_repr": lambda c, s: normalise_string(repr(_l(c, s))),
    "condition": _op_condition,
    "cond_acquire": lambda c, s: _l(c, s, "cond").acquire(
        _arg(s, "block"), s.get("timeout")),
    "cond_release": lambda c, s: _l(c, s, "cond").release(),
    "cond_wait": lambda c, s: _l(c, s, "cond").wait(s.get("timeout")),
    "cond_wait_for": _op_cond_wait_for,
    "cond_notify": lambda c, s: _l(c, s, "cond").notify(_arg(s, "n")),
    "cond_notify_all": lambda c, s: _l(c, s, "cond").notify_all(),
    "cond_repr": lambda c, s: normalise_string(repr(_l(c, s, "cond"))),
    "event_object": _op_event_object,
    "event_is_set": lambda c, s: _l(c, s, "event").is_set(),
    "event_set": lambda c, s: _l(c, s, "event").set(),
    "event_clear": lambda c, s: _l(c, s, "event").clear(),
    "event_wait": lambda c, s: _l(c, s, "event").wait(s.get("timeout")),
    "event_repr": lambda c, s: normalise_string(repr(_l(c, s, "event"))),
    "barrier": _op_barrier,
    "barrier_wait": lambda c, s: _l(c, s, "barrier").wait(s.get("timeout")),
    "barrier_reset": lambda c, s: _l(c, s, "barrier").reset(),
    "barrier_abort": lambda c, s: _l(c, s, "barrier").abort(),
    "barrier_parties": lambda c, s: _l(c, s, "barrier").parties,
    "barrier_n_waiting": lambda c, s: _l(c, s, "barrier").n_waiting,
    "barrier_broken": lambda c, s: _l(c, s, "barrier").broken,
    "event": _op_event,
    "wait_event": _op_wait_event,
    "thread": _op_thread,
    "thread_join": lambda c, s: _obj(c, s["thread"]).join(),
    "pool": _op_pool,
    "apply": _op_apply,
    "apply_async": _op_apply_async,
    "map": lambda c, s: _classed(s["func"], _pl(c, s).map(
        TASKS[s["func"]], s["items"], s.get("chunksize"))),
    "map_async": _op_map_async,
    "starmap": lambda c, s: _classed(s["func"], _pl(c, s).starmap(
        TASKS[s["func"]], _star(s), s.get("chunksize"))),
    "starmap_async": lambda c, s: _op_map_async(c, s, star=True),
    "imap": _op_imap,
    "imap_unordered": lambda c, s: _op_imap(c, s, unordered=True),
    "pool_close": lambda c, s: _pl(c, s).close(),
    "pool_terminate": lambda c, s: _pl(c, s).terminate(),
    "pool_join": lambda c, s: _pl(c, s).join(),
    "pool_exit": lambda c, s: _pl(c, s).__exit__(None, None, None),
    "pool_repr": lambda c, s: normalise_string(repr(_pl(c, s))),
    "result_get": lambda c, s: _classed(_rs(c, s).func, _rs(c, s).r.get(
        s.get("timeout"))),
    "result_wait": lambda c, s: _rs(c, s).r.wait(s.get("timeout")),
    "result_ready": lambda c, s: _rs(c, s).r.ready(),
    "result_successful": lambda c, s: _rs(c, s).r.successful(),
    "result_callbacks": _op_result_callbacks,
    "imap_next": _op_imap_next,
    "imap_drain": _op_imap_drain,
    "value": _op_value,
    "raw_value": lambda c, s: _op_value(c, s, raw=True),
    "array": _op_array,
    "raw_array": lambda c, s: _op_array(c, s, raw=True),
    "value_get": lambda c, s: _as_text(_v(c, s).value),
    "value_set": _op_value_set,
    "value_between": lambda c, s: s["lo"] <= _v(c, s).value <= s["hi"],
    "value_increment": _op_value_increment,
    "value_repr": lambda c, s: normalise_string(repr(_v(c, s))),
    "value_acquire": lambda c, s: _v(c, s).acquire(_arg(s, "block"),
                                                   s.get("timeout")),
    "value_release": lambda c, s: _v(c, s).release(),
    "get_lock": _op_get_lock,
    "get_obj": lambda c, s: normalise_string(repr(_v(c, s).get_obj())),
    "array_len": lambda c, s: len(_v(c, s)),
    "array_get": lambda c, s: _as_text(_v(c, s)[s["index"]]),
    "array_set": _op_array_set,
    "array_slice_get": _op_array_slice_get,
    "array_slice_set": _op_array_slice_set,
    "array_raw": lambda c, s: _as_text(_v(c, s).raw),
    "shm": _op_shm,
    "shm_name": lambda c, s: normalise_string(_s(c, s).name),
    "shm_size": lambda c, s: _s(c, s).size,
    "shm_repr": lambda c, s: normalise_string(repr(_s(c, s))),
    "shm_write": _op_shm_write,
    "shm_read": _op_shm_read,
    "shm_close": lambda c, s: _s(c, s).close(),
    "shm_unlink": lambda c, s: _s(c, s).unlink(),
}


# The ops that end the process (ops.json: "outcome": "none") run outside the
# outcome-recording try block: their exceptions propagate, uncaught.

def _op_exit(ctx, st):
    if "code" in st:
        sys.exit(st["code"])
    sys.exit()


def _op_raise(ctx, st):
    import builtins
    cls = getattr(builtins, st["exception"])
    exc = cls(st["message"]) if "message" in st else cls()
    raise exc


OPS.update({
    "exit": _op_exit,
    "os_exit": lambda c, s: os._exit(s["code"]),
    "raise": _op_raise,
    "abort": lambda c, s: os.abort(),
})


def _run_steps(ctx, steps):
    fd = os.open(os.path.join(ctx.scratch, "out", ctx.path + ".jsonl"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i, st in enumerate(steps):
        op = st["op"]
        fn = OPS[op]
        outcome = vocab()[op]["outcome"]
        if outcome == "none":
            fn(ctx, st)
        if outcome == "first":
            # Recorded before the signal goes out: a process killed as soon
            # as its event is seen has still recorded the step (the C
            # interpreter does the same).  An event that cannot be sent is a
            # harness error, never an outcome.
            line = json.dumps({"i": i, "d": 0.0, "o": {"value": None}}) + "\n"
            os.write(fd, line.encode("utf-8"))
            fn(ctx, st)
            continue
        t0 = time.monotonic()
        try:
            value = fn(ctx, st)
            out = {"value": apply_compare(value, st.get("compare", "exact"))}
        except HarnessError:
            raise
        except BaseException as e:   # errors are outcomes
            out = {"raises": normalise_string(exception_name(e))}
        d = time.monotonic() - t0
        line = json.dumps({"i": i, "d": d, "o": out}) + "\n"
        os.write(fd, line.encode("utf-8"))


def _case_child(path, scratch, steps_json, passed):
    """Target of every case child: pid file, then the steps."""
    try:
        fd = os.open(os.path.join(scratch, "pids", path),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, ("%d\n" % os.getpid()).encode())
        os.close(fd)
        ctx = _Ctx(path, scratch, dict(passed), False)
        _run_steps(ctx, json.loads(steps_json))
    except HarnessError as e:
        _harness_fail(scratch, "%s: %s" % (path, e))


_MAIN_OBJECTS = {}   # the main process's objects, like a script's globals


def _run_one(scratch, method):
    try:
        import multiprocessing
        multiprocessing.set_start_method(method)
        with open(os.path.join(scratch, "case.json")) as f:
            steps = json.load(f)["steps"]
        ctx = _Ctx("main", scratch, _MAIN_OBJECTS, True)
        _run_steps(ctx, steps)
    except HarnessError as e:
        _harness_fail(scratch, "main: %s" % e)


# ---------------------------------------------------------------------------
# Case validation
# ---------------------------------------------------------------------------

class CaseError(Exception):
    pass


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _builtin_exception_names():
    import builtins
    return set(n for n, v in vars(builtins).items()
               if isinstance(v, type) and issubclass(v, BaseException))


def _signal_names():
    return set(signal.Signals.__members__)


COMMON_STEP_KEYS = ("op", "compare", "duration", "note", "gather")
CASE_KEYS = ("about", "seeds", "steps", "methods", "timeout", "output",
             "xfail")


def _object_kind(scope, name):
    """"process", "connection", or None for an unknown name."""
    if name in ("@current", "@parent"):
        return "process"
    return scope.get(name)


_TYPE_TEXT = (("integer", "an integer"), ("number", "a number"),
              ("null", "null"), ("boolean", "a boolean"),
              ("string", "a string"), ("array", "a list"),
              ("object", "an object"))


def _type_ok(types, v):
    return any(t == "any" or
               (t == "string" and isinstance(v, str)) or
               (t == "number" and _is_num(v)) or
               (t == "integer" and _is_int(v)) or
               (t == "boolean" and isinstance(v, bool)) or
               (t == "null" and v is None) or
               (t == "array" and isinstance(v, list)) or
               (t == "object" and isinstance(v, dict)) for t in types)


def _type_text(types):
    words = [text for t, text in _TYPE_TEXT if t in types]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


class _Validator(object):
    def __init__(self):
        self.errors = []
        self.paths = {}       # process path -> its step list
        self.events = set()
        self.gathers = set()
        # what this CPython has, of the names ops.json lists
        self.present = {"exceptions": _builtin_exception_names(),
                        "signals": _signal_names(),
                        "tasks": set(TASKS)}

    def err(self, where, msg):
        self.errors.append("%s: %s" % (where, msg) if where else msg)

    def check_names(self, w, arg, v, known):
        """A list of distinct object names, each known."""
        seen = set()
        for n in v:
            if not isinstance(n, str):
                self.err(w, '"%s" must be a list of object names' % arg)
            elif n in seen:
                self.err(w, 'object "%s" listed twice in "%s"' % (n, arg))
            elif not known(n):
                self.err(w, 'unknown object "%s"' % n)
            seen.add(n)

    def new_name(self, w, arg, n, scope, kind, is_main):
        """A valid name for a new object; errors say why not."""
        if not (isinstance(n, str) and NAME_RE.match(n)):
            self.err(w, '"%s" must be a name ([A-Za-z_][A-Za-z0-9_]*)' % arg)
        elif n in scope:
            self.err(w, 'duplicate name "%s"' % n)
        elif kind in ("process", "thread") and is_main and n == "main":
            self.err(w, 'a child or thread of the main process cannot be '
                     'named "main" (its path would be the main process\'s '
                     'outcome key)')
        else:
            return True
        return False

    def check_keys(self, w, what, v):
        """An object's keys are names (the C interpreter passes them as
        keyword arguments' names)."""
        for k in v:
            if not (NAME_RE.match(k) and len(k) <= 63):
                self.err(w, '%s: key "%s" must be a name matching '
                         '[A-Za-z_][A-Za-z0-9_]* of at most 63 characters'
                         % (what, k))
                return False
        return True

    def check_value(self, w, what, spec, v):
        """One item of an array (value of an object) against its spec."""
        if not _type_ok(spec["type"], v):
            self.err(w, "%s must be %s" % (what, _type_text(spec["type"])))
            return False
        for k, word in (("min", "least"), ("max", "most")):
            if k in spec and _is_num(v) and \
                    (v < spec[k] if k == "min" else v > spec[k]):
                self.err(w, "%s must be %s of at %s %.15g"
                         % (what, _type_text(spec["type"]), word, spec[k]))
                return False
        if "items" in spec and isinstance(v, (list, dict)):
            return self.check_items(w, what, spec["items"], v)
        return True

    def check_items(self, w, what, spec, v):
        if isinstance(v, dict):
            if not self.check_keys(w, what, v):
                return False
            return all(self.check_value(w, '%s["%s"]' % (what, k), spec, x)
                       for k, x in v.items())
        return all(self.check_value(w, "%s[%d]" % (what, i), spec, x)
                   for i, x in enumerate(v))

    def check_arg(self, w, arg, a, v, scope, is_main):
        """One argument against its ops.json description; True if valid."""
        if not _type_ok(a["type"], v):
            if ("object" in a and a["type"] == ["string"]) or "new" in a or \
                    a.get("event"):
                self.err(w, '"%s" must be a name' % arg)
            else:
                self.err(w, '"%s" must be %s' % (arg, _type_text(a["type"])))
            return False
        if isinstance(v, dict) and "items" not in a and \
                not self.check_keys(w, '"%s"' % arg, v):
            return False
        if "items" in a and isinstance(v, (list, dict)) and \
                not self.check_items(w, '"%s"' % arg, a["items"], v):
            return False
        if "min" in a and _is_num(v) and v < a["min"]:
            self.err(w, '"%s" must be %s of at least %s'
                     % (arg, _type_text(a["type"]), a["min"]))
            return False
        if "max" in a and _is_num(v) and v > a["max"]:
            self.err(w, '"%s" must be %s of at most %s'
                     % (arg, _type_text(a["type"]), a["max"]))
            return False
        if "enum" in a:
            named = a.get("enum_name")
            if v not in a["enum"]:
                if named:
                    self.err(w, '"%s": unknown %s %s' % (arg, named[:-1], v))
                else:
                    self.err(w, '"%s" must be one of %s' % (
                        arg, ", ".join('"%s"' % x for x in a["enum"])))
                return False
            if named and v not in self.present[named]:
                self.err(w, '"%s": CPython %s has no %s %s'
                         % (arg, _python_version(), named[:-1], v))
                return False
        if "object" in a and isinstance(v, str):   # else lock=True/False
            k = _object_kind(scope, v)
            if k is None:
                self.err(w, 'unknown object "%s"' % v)
            elif k != a["object"]:
                self.err(w, '"%s" is not %s %s' % (
                    v, "an" if a["object"][0] in "aeiou" else "a",
                    a["object"]))
            return k == a["object"]
        if "objects" in a:
            # "any": the built-in names too; "own": this process's objects
            known = (lambda n: _object_kind(scope, n) is not None) \
                if a["objects"] == "any" else (lambda n: n in scope)
            n_err = len(self.errors)
            self.check_names(w, arg, v, known)
            for i, n in enumerate(v):
                k = _object_kind(scope, n) if isinstance(n, str) else None
                if len(self.errors) == n_err and "kinds" in a and \
                        k is not None and k not in a["kinds"]:
                    self.err(w, '"%s"[%d]: "%s" is %s %s, which cannot be '
                             'listed here' % (arg, i, n, "an" if k[0] in
                                              "aeiou" else "a", k))
            return len(self.errors) == n_err
        if "new" in a and "length" not in a:
            return self.new_name(w, arg, v, scope, a["new"], is_main)
        if "new" in a:
            if len(v) != a["length"]:
                self.err(w, '"%s" must be %d new names' % (arg, a["length"]))
                return False
            if len(set(n for n in v if isinstance(n, str))) != len(v):
                self.err(w, '"%s" needs distinct names' % arg)
                return False
            return all([self.new_name(w, arg, n, scope, a["new"], is_main)
                        for n in v])
        if a.get("steps") and not v:
            self.err(w, '"%s" must be a non-empty list of steps' % arg)
            return False
        if a.get("event"):
            if not NAME_RE.match(v):
                self.err(w, '"%s" must be a name ([A-Za-z_][A-Za-z0-9_]*)'
                         % arg)
                return False
            self.events.add(v)
        return True

    def steps(self, steps, where, path, scope, is_main, in_thread=False):
        """Validate one process's (or thread's) step list; scope: name ->
        kind."""
        self.paths[path] = steps
        scope = dict(scope)
        for i, st in enumerate(steps):
            w = "%s[%d]" % (where, i)
            if not isinstance(st, dict):
                self.err(w, "a step must be an object")
                continue
            op = st.get("op")
            if "op" not in st:
                self.err(w, 'missing "op"')
                continue
            if not isinstance(op, str) or op not in vocab():
                self.err(w, "unknown op %s" % json.dumps(op))
                continue
            wbase = w
            w = "%s (%s)" % (w, op)
            spec = vocab()[op]
            args = spec["args"]
            if not spec["child"] and not is_main:
                self.err(w, "only the main process's steps may use it")
            if spec["outcome"] == "none" and in_thread:
                # sys.exit() in a thread ends the thread; an uncaught
                # exception goes to threading.excepthook
                self.err(w, "a thread's steps cannot end the process")
            for k in st:
                if k not in args and k not in COMMON_STEP_KEYS:
                    self.err(w, 'unknown key "%s"' % k)
            if "compare" in st and st["compare"] not in COMPARE_MODES:
                self.err(w, '"compare" must be one of %s'
                         % ", ".join('"%s"' % m for m in COMPARE_MODES))
            if "duration" in st:
                d = st["duration"]
                if not (isinstance(d, list) and len(d) == 2
                        and _is_num(d[0]) and _is_num(d[1])
                        and 0 <= d[0] <= d[1]):
                    self.err(w, '"duration" must be [lo, hi], two numbers '
                             'with 0 <= lo <= hi')
            if "note" in st and not isinstance(st["note"], str):
                self.err(w, '"note" must be a string')
            if "gather" in st:
                if isinstance(st["gather"], str) and \
                        NAME_RE.match(st["gather"]):
                    self.gathers.add(st["gather"])
                else:
                    self.err(w, '"gather" must be a name '
                             '([A-Za-z_][A-Za-z0-9_]*)')
            valid = {}
            for arg, a in args.items():
                if arg not in st:
                    if a["required"]:
                        self.err(w, 'missing "%s"' % arg)
                    continue
                valid[arg] = self.check_arg(w, arg, a, st[arg], scope,
                                            is_main)
            # a child's steps see only what the step passes them
            passed = [n for arg, a in args.items()
                      if a.get("objects") == "own" and valid.get(arg)
                      for n in st[arg]]
            # the process's (thread's) path names its steps' outcomes
            name, kind = next(((st[arg], a["new"]) for arg, a in args.items()
                               if a.get("new") in ("process", "thread")
                               and valid.get(arg)), (None, None))
            for arg, a in args.items():
                if a.get("steps") and valid.get(arg) and name is not None:
                    child_path = name if path == "main" else path + "." + name
                    self.steps(st[arg], wbase + "." + arg, child_path,
                               dict((n, scope[n]) for n in passed), False,
                               in_thread=kind == "thread")
            for arg, a in args.items():
                if "new" in a and valid.get(arg):
                    for n in ([st[arg]] if "length" not in a else st[arg]):
                        scope[n] = a["new"]


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _pairs_no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError('duplicate key "%s"' % k)
        d[k] = v
    return d


def load_case(file, shown):
    """Returns the validated case (plus derived data) or raises CaseError
    with one or more message lines."""
    with open(file, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CaseError("%s: not UTF-8: %s" % (shown, e))
    try:
        case = json.loads(text, object_pairs_hook=_pairs_no_duplicates,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise CaseError("%s:%d:%d: %s" % (shown, e.lineno, e.colno, e.msg))
    except ValueError as e:
        raise CaseError("%s: %s" % (shown, e))
    v = _Validator()
    if not isinstance(case, dict):
        raise CaseError("%s: a case must be a JSON object" % shown)
    for k in case:
        if k not in CASE_KEYS:
            v.err("", 'unknown key "%s"' % k)
    if "about" not in case:
        v.err("", 'missing "about"')
    elif not isinstance(case["about"], str):
        v.err("", '"about" must be a string')
    if "seeds" in case and not isinstance(case["seeds"], str):
        v.err("", '"seeds" must be a string')

    def method_list(key, val):
        if not (isinstance(val, list) and val
                and all(isinstance(m, str) and m in METHODS for m in val)
                and len(set(val)) == len(val)):
            v.err("", '"%s" must be a non-empty list of distinct methods '
                  'from "fork", "spawn", "forkserver"' % key)
            return False
        return True

    methods = list(METHODS)
    if "methods" in case and method_list("methods", case["methods"]):
        methods = [m for m in METHODS if m in case["methods"]]
    timeout = DEFAULT_TIMEOUT
    if "timeout" in case:
        if _is_num(case["timeout"]) and case["timeout"] > 0:
            timeout = case["timeout"]
        else:
            v.err("", '"timeout" must be a positive number')
    output = {"stdout": "lines", "stderr": "lines"}
    if "output" in case:
        o = case["output"]
        if not isinstance(o, dict):
            v.err("", '"output" must be an object')
        else:
            for k, m in o.items():
                if k not in output:
                    v.err("output", 'unknown key "%s"' % k)
                elif m not in OUTPUT_MODES:
                    v.err("output", '"%s" must be one of "exact", "lines", '
                          '"ignore"' % k)
                else:
                    output[k] = m
    if "xfail" in case:
        x = case["xfail"]
        if not isinstance(x, dict):
            v.err("", '"xfail" must be an object')
        else:
            for k in x:
                if k not in ("reason", "methods"):
                    v.err("xfail", 'unknown key "%s"' % k)
            if not isinstance(x.get("reason"), str) or not x.get("reason"):
                v.err("xfail", '"reason" must say why (a non-empty string)')
            if "methods" in x:
                method_list("xfail.methods", x["methods"])
    if "steps" not in case:
        v.err("", 'missing "steps"')
    elif not isinstance(case["steps"], list) or not case["steps"]:
        v.err("", '"steps" must be a non-empty list of steps')
    else:
        v.steps(case["steps"], "steps", "main", {}, True)
    if v.errors:
        raise CaseError("\n".join("%s: %s" % (shown, e) for e in v.errors))
    return {"steps": case["steps"], "methods": methods, "timeout": timeout,
            "output": output, "paths": v.paths, "events": sorted(v.events),
            "gathers": sorted(v.gathers)}


# ---------------------------------------------------------------------------
# The recorder
# ---------------------------------------------------------------------------

def _set_subreaper():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:     # PR_SET_CHILD_SUBREAPER
        e = ctypes.get_errno()
        sys.stderr.write("record_reference: prctl(PR_SET_CHILD_SUBREAPER): "
                         "%s\n" % os.strerror(e))
        sys.exit(2)


_RESET_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE", "SIGCHLD")


def _child_setup():
    """preexec_fn of the case process: the pinned environment."""
    os.setpgrp()
    for name in _RESET_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files
    except Exception:
        pass


def _proc_stat(pid):
    """(state, pgrp) of pid from /proc, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (IOError, OSError):
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[2])


def _group_members(pgid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None and st[1] == pgid:
                found.append(int(entry))
    return found


def _leftover(scratch, pgid):
    d = os.path.join(scratch, "pids")
    left = []
    for path in os.listdir(d):
        try:
            with open(os.path.join(d, path)) as f:
                pid = int(f.read().strip())
        except (ValueError, IOError, OSError):
            continue              # killed while writing it: not running
        st = _proc_stat(pid)
        if st is not None and st[0] not in ("Z", "X", "x") and st[1] == pgid:
            left.append(path)
    return sorted(left)


def _kill_and_reap(pgid):
    """SIGKILL the process group, reap every child; never hang."""
    for _ in range(100):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        while True:
            try:
                os.waitpid(-pgid, 0)
            except ChildProcessError:
                break
        while True:
            try:
                pid, _st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not _group_members(pgid):
            return True
        time.sleep(0.01)
    return False


def _status_to_exit(st):
    if os.WIFSIGNALED(st):
        return -os.WTERMSIG(st)
    return os.WEXITSTATUS(st)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError):
        return b""


SCRIPT = os.path.abspath(__file__)


def gather(case, outcomes):
    """Moves the outcome of every step with a "gather" key out of its
    process's list into {name: [outcomes]}, each list in a fixed order (the
    harness compares them in any order), leaving {"gathered": name}."""
    gathered = dict((name, []) for name in case["gathers"])
    for path, lines in outcomes.items():
        steps = case["paths"].get(path, [])
        for i, o in enumerate(lines):
            name = steps[i].get("gather") if i < len(steps) else None
            if name is not None:
                gathered[name].append(o)
                lines[i] = {"gathered": name}
    for name in gathered:
        gathered[name].sort(key=lambda o: json.dumps(o, sort_keys=True))
    return gathered


def run_case_once(case, method):
    """One run of one case under one method.  Returns a dict: result (the
    stored form), durations [(path, step index, seconds)], problem (None or
    why the run is invalid)."""
    import shutil
    import subprocess
    import tempfile
    import threading
    scratch = tempfile.mkdtemp(prefix="mp-ref-")
    held = []
    proc = None
    problem = None
    try:
        for d in ("out", "pids", "events", "tmp"):
            os.mkdir(os.path.join(scratch, d))
        with open(os.path.join(scratch, "case.json"), "w") as f:
            json.dump({"steps": case["steps"]}, f)
        for name in case["events"]:
            p = os.path.join(scratch, "events", name)
            os.mkfifo(p, 0o600)
            held.append(os.open(p, os.O_RDWR | os.O_NONBLOCK))
        outf = open(os.path.join(scratch, "stdout"), "wb")
        errf = open(os.path.join(scratch, "stderr"), "wb")
        env = dict(os.environ)
        env.pop("PYTHONUNBUFFERED", None)
        env["TMPDIR"] = os.path.join(scratch, "tmp")  # pymp-* dirs die here
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", SCRIPT, "--run-one", scratch,
                 method],
                stdin=subprocess.DEVNULL, stdout=outf, stderr=errf,
                cwd=scratch, env=env, close_fds=True,
                preexec_fn=_child_setup)
        finally:
            outf.close()
            errf.close()
        pgid = proc.pid
        status = {}

        def waiter():
            try:
                status["st"] = os.waitpid(proc.pid, 0)[1]
            except ChildProcessError:   # reaped by an interrupted cleanup
                status["st"] = signal.SIGKILL

        t = threading.Thread(target=waiter)
        t.daemon = True
        t.start()
        t.join(case["timeout"])
        timed_out = t.is_alive()
        if timed_out:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            t.join()
            problem = "timed out after %gs" % case["timeout"]
            leftover = []
        else:
            leftover = _leftover(scratch, pgid)
        proc.returncode = _status_to_exit(status["st"])
        if not _kill_and_reap(pgid):
            problem = problem or "process group %d survived SIGKILL" % pgid
        for fd in held:
            os.close(fd)
        held = []

        herr = _read(os.path.join(scratch, "harness-error"))
        if herr and not problem:
            problem = "harness error: " + \
                herr.decode("utf-8", "replace").strip().replace("\n", "; ")

        outcomes = {"main": []}
        durations = []
        outdir = os.path.join(scratch, "out")
        for fn in sorted(os.listdir(outdir)):
            path = fn[:-len(".jsonl")]
            lines = []
            for k, raw in enumerate(_read(os.path.join(outdir, fn))
                                    .split(b"\n")):
                if not raw:
                    continue
                try:
                    rec = json.loads(raw.decode("utf-8"))
                    ok = rec["i"] == len(lines)
                except Exception:
                    ok = False
                if not ok:
                    problem = problem or \
                        "harness error: bad outcome line in %s" % fn
                    break
                durations.append((path, rec["i"], rec["d"]))
                lines.append(rec["o"])
            if path not in case["paths"]:
                problem = problem or \
                    "harness error: outcomes for unknown path %s" % path
            if lines or path == "main":
                outcomes[path] = lines   # a child with no outcome: no key
        ordered = {"main": outcomes.pop("main")}
        for k in sorted(outcomes):
            ordered[k] = outcomes[k]
        result = {"exit": proc.returncode, "outcomes": ordered}
        if case["gathers"]:
            result["gathered"] = gather(case, ordered)
        result.update({
            "leftover": leftover,
            "stdout": normalise_output(_read(os.path.join(scratch, "stdout")),
                                       case["output"]["stdout"]),
            "stderr": normalise_output(_read(os.path.join(scratch, "stderr")),
                                       case["output"]["stderr"]),
        })
        return {"result": result, "durations": durations, "problem": problem}
    finally:
        if proc is not None and proc.returncode is None:
            _kill_and_reap(proc.pid)   # interrupted: leave nothing behind
            proc.returncode = -9
        for fd in held:
            os.close(fd)
        shutil.rmtree(scratch, ignore_errors=True)


def _short(v, width=70):
    s = json.dumps(v)
    return s if len(s) <= width else s[:width - 3] + "..."


def first_difference(a, b, where=""):
    """A readable description of the first place a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            w = "%s.%s" % (where, k) if where else k
            if k not in a:
                return "%s: absent vs %s" % (w, _short(b[k]))
            if k not in b:
                return "%s: %s vs absent" % (w, _short(a[k]))
            if a[k] != b[k]:
                return first_difference(a[k], b[k], w)
        return None
    if isinstance(a, list) and isinstance(b, list) and \
            where.split(".")[0] in ("outcomes", "stdout", "stderr"):
        for i in range(max(len(a), len(b))):
            w = "%s[%d]" % (where, i)
            if i >= len(a):
                return "%s: absent vs %s" % (w, _short(b[i]))
            if i >= len(b):
                return "%s: %s vs absent" % (w, _short(a[i]))
            if a[i] != b[i]:
                return "%s: %s vs %s" % (w, _short(a[i]), _short(b[i]))
        return None
    if a != b:
        return "%s: %s vs %s" % (where, _short(a), _short(b))
    return None


def _step_label(case, path, i):
    st = case["paths"][path][i]
    return "%s step %d (%s)" % (path, i, st["op"])


def record_method(case, method, runs):
    """Returns (result or None, [problem lines])."""
    results = []
    problems = []
    for r in range(runs):
        one = run_case_once(case, method)
        if one["problem"]:
            problems.append("run %d: %s" % (r + 1, one["problem"]))
            return None, problems
        for path, i, d in one["durations"]:
            steps = case["paths"].get(path)
            if steps is None or i >= len(steps):
                continue
            win = steps[i].get("duration")
            if win is not None and not (win[0] <= d <= win[1]):
                problems.append("run %d: %s took %.3fs, outside [%g, %g]"
                                % (r + 1, _step_label(case, path, i), d,
                                   win[0], win[1]))
        results.append(one["result"])
    variants = []            # [result, [run numbers]], in order of first run
    for r, res in enumerate(results):
        for v in variants:
            if v[0] == res:
                v[1].append(r + 1)
                break
        else:
            variants.append([res, [r + 1]])
    if len(variants) > 1:
        problems.append("%d different results in %d runs:" % (
            len(variants), len(results)))

        def runs_of(v):
            return ("run " if len(v[1]) == 1 else "runs ") + \
                ", ".join(str(n) for n in v[1])
        for v in variants[1:]:
            problems.append("  %s against %s: %s" % (
                runs_of(variants[0]), runs_of(v),
                first_difference(variants[0][0], v[0])))
    if problems:
        return None, problems
    return results[0], []


def case_files(arg):
    if os.path.isdir(arg):
        found = []
        for root, dirs, files in os.walk(arg):
            dirs.sort()
            for fn in sorted(files):
                if fn.endswith(".json"):
                    found.append(os.path.join(root, fn))
        return sorted(found)
    return [arg]


def case_id(file):
    parts = os.path.abspath(file).split(os.sep)
    if "cases" not in parts:
        return None
    idx = len(parts) - 1 - parts[::-1].index("cases")
    rel = parts[idx + 1:]
    if len(rel) != 2 or not rel[1].endswith(".json"):
        return None
    rel[1] = rel[1][:-len(".json")]
    if not all(CASE_PART_RE.match(p) for p in rel):
        return None
    return "/".join(rel)


def _python_version():
    import platform
    return platform.python_version()


def write_reference(out_dir, cid, recorded, keep_others, case_methods):
    import platform
    ref_path = os.path.join(out_dir, cid + ".json")
    methods = dict(recorded)
    if keep_others and os.path.exists(ref_path):
        try:
            with open(ref_path) as f:
                old = json.load(f)
            if old.get("python") == _python_version():
                for m, res in old.get("methods", {}).items():
                    if m not in methods and m in case_methods:
                        methods[m] = res
        except (ValueError, IOError, OSError):
            pass
    doc = {
        "case": cid,
        "implementation": "CPython",
        "python": _python_version(),
        "platform": platform.platform(),
        "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
        "methods": dict((m, methods[m]) for m in METHODS if m in methods),
    }
    os.makedirs(os.path.dirname(ref_path), exist_ok=True)
    tmp = ref_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, ref_path)


def _remove_stale(out_dir, cid):
    if cid is None:
        return False
    p = os.path.join(out_dir, cid + ".json")
    if os.path.exists(p):
        os.unlink(p)
        return True
    return False


# The recorder's pid comes as an argument: it may die before getppid() runs.
_LOAD_LOOP = """
import os, sys
while os.getppid() == int(sys.argv[1]):    # else the recorder died
    for _ in range(100000):
        pass
"""


class CpuLoad(object):
    """n busy-loop processes for the duration of a with block."""

    def __init__(self, n):
        self.n = n
        self.procs = []

    def __enter__(self):
        import subprocess
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LOAD_LOOP,
                 str(os.getpid())],
                stdin=subprocess.DEVNULL, close_fds=True))
        if self.procs:
            sys.stderr.write("record_reference: under load: %d busy "
                             "process(es), pids %s\n" % (
                                 self.n, " ".join(str(p.pid)
                                                  for p in self.procs)))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                p.kill()
            except OSError:
                pass
        for p in self.procs:
            p.wait()      # reaped already by a case's cleanup: returns
        self.procs = []
        return False


def _env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v != "" else default
    except ValueError:
        sys.stderr.write("record_reference: %s=%r is not an integer\n"
                         % (name, v))
        sys.exit(2)


def main(argv):
    import argparse
    repo = os.path.dirname(os.path.dirname(SCRIPT))
    ver = "%d.%d" % sys.version_info[:2]
    ap = argparse.ArgumentParser(
        description="Record CPython's outcomes for conformance cases.")
    ap.add_argument("--out", default=os.path.join(repo, "reference",
                                                  "cpython-" + ver),
                    help="reference directory (default: "
                         "reference/cpython-%s)" % ver)
    ap.add_argument("--method", action="append", choices=METHODS,
                    help="record only this start method (repeatable)")
    ap.add_argument("--runs", type=int,
                    default=_env_int("RECORD_RUNS", 3),
                    help="runs per case and method; all must agree "
                         "(default $RECORD_RUNS, else 3)")
    ap.add_argument("--load", type=int, metavar="N",
                    default=_env_int("RECORD_LOAD", 0),
                    help="record with N busy-loop processes running "
                         "(default $RECORD_LOAD, else 0)")
    ap.add_argument("--quiet", action="store_true",
                    help="print only problems and the summary")
    ap.add_argument("--list-ops", action="store_true",
                    help="print the ops this recorder knows, as JSON "
                         "(scripts/test-vocab compares them with "
                         "mp-harness ops --json)")
    ap.add_argument("cases", nargs="*", metavar="CASE_OR_DIR")
    args = ap.parse_args(argv)
    if args.list_ops:
        json.dump(list_ops(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if not args.cases:
        ap.error("give at least one CASE_OR_DIR")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.load < 0:
        ap.error("--load must be 0 or more")

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # waitpid must work

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    _set_subreaper()
    with CpuLoad(args.load):
        return _record(args)


def _record(args):

    files = []
    status = 0
    for a in args.cases:
        if not os.path.exists(a):
            sys.stderr.write("%s: no such file or directory\n" % a)
            status = 1
            continue
        files.extend(case_files(a))
    n_ok = n_invalid = n_bad = n_skipped = 0
    t_start = time.monotonic()
    for file in files:
        cid = case_id(file)
        if cid is None:
            sys.stderr.write("%s: cannot derive a case id: expected "
                             "cases/<area>/<name>.json with [a-z0-9_] "
                             "names\n" % file)
            n_bad += 1
            continue
        try:
            case = load_case(file, file)
        except CaseError as e:
            sys.stderr.write("%s\n" % e)
            if _remove_stale(args.out, cid):
                sys.stderr.write("%s: removed stale reference\n" % cid)
            n_bad += 1
            continue
        except (IOError, OSError) as e:
            sys.stderr.write("%s: %s\n" % (file, e))
            n_bad += 1
            continue
        methods = [m for m in case["methods"]
                   if not args.method or m in args.method]
        if not methods:
            n_skipped += 1
            if not args.quiet:
                sys.stderr.write("%s: skipped (no selected method)\n" % cid)
            continue
        recorded = {}
        problems = []
        status_words = []
        t0 = time.monotonic()
        for m in methods:
            res, probs = record_method(case, m, args.runs)
            if res is None:
                status_words.append("%s INVALID" % m)
                problems.extend("  %s: %s" % (m, p) for p in probs)
            else:
                status_words.append("%s ok" % m)
                recorded[m] = res
        line = "%s: %s (%.1fs)" % (cid, ", ".join(status_words),
                                   time.monotonic() - t0)
        if problems:
            n_invalid += 1
            sys.stderr.write(line + "\n" + "\n".join(problems) + "\n")
            if _remove_stale(args.out, cid):
                sys.stderr.write("  removed stale reference %s.json\n" % cid)
        else:
            n_ok += 1
            if not args.quiet:
                sys.stderr.write(line + "\n")
            write_reference(args.out, cid, recorded,
                            keep_others=bool(args.method),
                            case_methods=case["methods"])
    sys.stderr.write(
        "record_reference: python %s: %d recorded, %d invalid, %d bad case "
        "file(s), %d skipped; %d run(s) each, %d busy process(es); %.1fs; "
        "references in %s\n"
        % (_python_version(), n_ok, n_invalid, n_bad, n_skipped, args.runs,
           args.load, time.monotonic() - t_start, args.out))
    if n_invalid or n_bad:
        status = 1
    return status


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--run-one":
        _run_one(sys.argv[2], sys.argv[3])
    else:
        try:
            sys.exit(main(sys.argv[1:]))
        except KeyboardInterrupt:
            sys.stderr.write("record_reference: interrupted\n")
            sys.exit(130)
