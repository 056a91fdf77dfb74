#!/usr/bin/env python3
"""Compare two reference directories (e.g. reference/cpython-3.8 and
reference/cpython-3.13) written by record_reference.py.

    diff_reference.py [--width N] A B

Prints one row for every (case, method, field) where they disagree --
outcomes per process path and step index -- and the cases or methods present
in only one of them.  `python`, `platform` and `recorded` are not compared.
Exit status: 0 identical, 1 different, 2 usage or read error.

Python 3.8+, standard library only.
"""
import argparse
import json
import os
import sys

METHODS = ("fork", "spawn", "forkserver")
FIELDS = ("exit", "outcomes", "leftover", "stdout", "stderr")
ABSENT = object()


def load_dir(root):
    refs = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for fn in sorted(files):
            if not fn.endswith(".json"):
                continue
            path = os.path.join(dirpath, fn)
            cid = os.path.relpath(path, root)[:-len(".json")]
            cid = cid.replace(os.sep, "/")
            with open(path) as f:
                refs[cid] = json.load(f)
    return refs


def show(v, width):
    if v is ABSENT:
        return "(absent)"
    s = json.dumps(v)
    if width and len(s) > width:
        s = s[:width - 3] + "..."
    return s


def _method_order(keys):
    return [m for m in METHODS if m in keys] + \
        sorted(k for k in keys if k not in METHODS)


def diff_method(a, b):
    """Yields (field, value in A, value in B)."""
    for field in FIELDS + tuple(sorted((set(a) | set(b)) - set(FIELDS))):
        va, vb = a.get(field, ABSENT), b.get(field, ABSENT)
        if va == vb:
            continue
        if field == "outcomes" and isinstance(va, dict) and \
                isinstance(vb, dict):
            paths = list(va) + sorted(p for p in vb if p not in va)
            for p in paths:
                la, lb = va.get(p, ABSENT), vb.get(p, ABSENT)
                if la == lb:
                    continue
                if la is ABSENT or lb is ABSENT or \
                        not isinstance(la, list) or not isinstance(lb, list):
                    yield ("outcomes.%s" % p, la, lb)
                    continue
                for i in range(max(len(la), len(lb))):
                    oa = la[i] if i < len(la) else ABSENT
                    ob = lb[i] if i < len(lb) else ABSENT
                    if oa != ob:
                        yield ("outcomes.%s[%d]" % (p, i), oa, ob)
        else:
            yield (field, va, vb)


def main(argv):
    ap = argparse.ArgumentParser(
        description="Show where two reference directories disagree.")
    ap.add_argument("--width", type=int, default=60,
                    help="truncate shown values to N characters (0: never)")
    ap.add_argument("a", metavar="A")
    ap.add_argument("b", metavar="B")
    args = ap.parse_args(argv)
    try:
        for d in (args.a, args.b):
            if not os.path.isdir(d):
                raise IOError("%s: not a directory" % d)
        ra, rb = load_dir(args.a), load_dir(args.b)
    except (IOError, OSError, ValueError) as e:
        sys.stderr.write("diff_reference: %s\n" % e)
        return 2

    name_a = os.path.basename(os.path.normpath(args.a)) or args.a
    name_b = os.path.basename(os.path.normpath(args.b)) or args.b
    if name_a == name_b:
        name_a, name_b = "A", "B"
    rows = []
    only_a = sorted(c for c in ra if c not in rb)
    only_b = sorted(c for c in rb if c not in ra)
    for cid in sorted(c for c in ra if c in rb):
        ma = ra[cid].get("methods", {})
        mb = rb[cid].get("methods", {})
        for m in _method_order(set(ma) | set(mb)):
            if m not in ma or m not in mb:
                rows.append((cid, m, "(method)",
                             "recorded" if m in ma else "(absent)",
                             "recorded" if m in mb else "(absent)"))
                continue
            for field, va, vb in diff_method(ma[m], mb[m]):
                rows.append((cid, m, field, show(va, args.width),
                             show(vb, args.width)))

    out = sys.stdout
    if rows:
        head = ("case", "method", "field", name_a, name_b)
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
        fmt = "  ".join("%%-%ds" % w for w in widths) + "  %s\n"
        out.write(fmt % head)
        out.write(fmt % tuple("-" * len(h) for h in head))
        for r in rows:
            out.write(fmt % r)
    for label, lst in ((name_a, only_a), (name_b, only_b)):
        for cid in lst:
            out.write("only in %s: %s\n" % (label, cid))
    n_cases = len({r[0] for r in rows})
    if rows or only_a or only_b:
        out.write("\n%d difference(s) in %d case(s); %d case(s) only in %s, "
                  "%d only in %s; %d case(s) compared\n"
                  % (len(rows), n_cases, len(only_a), name_a, len(only_b),
                     name_b, len(set(ra) & set(rb))))
        return 1
    out.write("identical: %d case(s)\n" % len(ra))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
