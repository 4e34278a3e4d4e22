#!/usr/bin/env python3
"""Check that the series keeps every symbol export of the base kernel.

Usage: exportcheck.py [--base DIR] [--tree DIR]

Every symbol the pristine base exports (EXPORT_SYMBOL, EXPORT_SYMBOL_GPL,
EXPORT_SYMBOL_NS, EXPORT_SYMBOL_NS_GPL, EXPORT_SYMBOL_GPL_FOR_MODULES,
EXPORT_PER_CPU_SYMBOL[_GPL]) anywhere in its .c, .h and .S files must be
exported by the assembled tree too, with the same licence (GPL-only or not)
and the same namespace; a module built against 6.12 would otherwise fail to
load.  Symbols the series exports and the base does not are allowed, and
listed.  A symbol is compared by name over the whole tree, wherever it is
exported (a series may move an export to another file); a symbol exported
in several ways (per architecture or #ifdef) must keep the same set of
ways.  Exports in preprocessor lines and macro bodies (lines ending in a
backslash) are not symbols and are ignored.  Wrapper macros such as
EXPORT_TRACEPOINT_SYMBOL or EXPORT_SYMBOL_IF_KUNIT are not covered.

Defaults: --base build/base/linux-VERSION, --tree build/tree.  It prints
one line per missing, changed and new symbol and exits 1 if any symbol is
missing or changed, 2 if a tree is missing.
"""

import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# What grep looks for (cheap), then what a line must hold to count.
GREP_RE = r"EXPORT_(PER_CPU_)?SYMBOL"
EXPORT_RE = re.compile(
    r"\b(EXPORT_SYMBOL|EXPORT_SYMBOL_GPL|EXPORT_SYMBOL_NS|EXPORT_SYMBOL_NS_GPL"
    r"|EXPORT_SYMBOL_GPL_FOR_MODULES|EXPORT_PER_CPU_SYMBOL|EXPORT_PER_CPU_SYMBOL_GPL)"
    r"\s*\(\s*([A-Za-z_]\w*)\s*(?:,\s*([^()]*?)\s*)?\)")


def kind_of(macro, arg):
    """(licence, namespace) of one export: licence "GPL" or ""."""
    licence = "GPL" if "GPL" in macro else ""
    ns = (arg or "").strip().strip('"')
    if macro.endswith("_FOR_MODULES"):
        ns = "module:" + ns
    return licence, ns


def describe(kind):
    """A kind as people read it: `GPL-only` or `not GPL-only`, and the namespace."""
    licence, ns = kind
    text = "GPL-only" if licence else "not GPL-only"
    return text + (" in namespace " + ns if ns else "")


def parse_line(text):
    """[(name, macro, kind)] of the exports on one source line."""
    stripped = text.strip()
    if (not stripped or stripped.startswith(("#", "*", "/*", "//"))
            or stripped.endswith("\\")):
        return []
    return [(m.group(2), m.group(1), kind_of(m.group(1), m.group(3)))
            for m in EXPORT_RE.finditer(text)]


def grep_tree(top):
    """Start a grep for export lines under top; returns the process."""
    cmd = ["grep", "-rnZE", "--exclude-dir=.git", "--include=*.c", "--include=*.h",
           "--include=*.S", GREP_RE, "."]
    return subprocess.Popen(cmd, cwd=top, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, LC_ALL="C"))


def collect(proc):
    """{name: {kind: ["file:line macro", ...]}} from a grep's output."""
    out, err = proc.communicate()
    if proc.returncode not in (0, 1):
        raise SystemExit("exportcheck: grep failed: " + err.decode(errors="replace"))
    exports = defaultdict(lambda: defaultdict(list))
    for raw in out.decode("utf-8", errors="replace").splitlines():
        path, _, rest = raw.partition("\0")
        lineno, _, text = rest.partition(":")
        for name, macro, kind in parse_line(text):
            exports[name][kind].append("%s:%s %s" % (path.removeprefix("./"), lineno, macro))
    return exports


def where(exports, name):
    """Where and how a symbol is exported, shortly: `mm/hmm.c:609 EXPORT_SYMBOL`."""
    places = sorted(p for kind in exports[name] for p in exports[name][kind])
    return ", ".join(places[:3]) + (" and %d more" % (len(places) - 3) if len(places) > 3 else "")


def compare(base, tree):
    """(missing, changed, new): lists of (name, message) for each symbol."""
    missing, changed, new = [], [], []
    for name in sorted(base):
        if name not in tree:
            missing.append((name, "exported by the base (%s), not by the series"
                            % where(base, name)))
            continue
        b, t = set(base[name]), set(tree[name])
        if b == t:
            continue
        what = []
        if {k[0] for k in b} != {k[0] for k in t}:
            what.append("GPL mismatch")
        if {k[1] for k in b} != {k[1] for k in t}:
            what.append("namespace mismatch")
        changed.append((name, "%s: %s in the series (%s), %s in the base (%s)" % (
            " and ".join(what) or "export changed",
            " / ".join(describe(k) for k in sorted(t)), where(tree, name),
            " / ".join(describe(k) for k in sorted(b)), where(base, name))))
    for name in sorted(set(tree) - set(base)):
        new.append((name, "new in the series: %s" % where(tree, name)))
    return missing, changed, new


def default_base():
    try:
        with open(os.path.join(ROOT, "build", "base", "VERSION")) as f:
            return os.path.join(ROOT, "build", "base", "linux-" + f.read().strip())
    except OSError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=None,
                    help="the pristine base (default: build/base/linux-VERSION)")
    ap.add_argument("--tree", default=os.path.join(ROOT, "build", "tree"),
                    help="the assembled tree (default: build/tree)")
    args = ap.parse_args(argv)
    base_dir = args.base or default_base()
    for label, d in (("base kernel", base_dir), ("assembled tree", args.tree)):
        if not d or not os.path.isfile(os.path.join(d, "Makefile")):
            print("error: no %s at %s (run: make assemble)" % (label, d), file=sys.stderr)
            return 2
    procs = grep_tree(base_dir), grep_tree(args.tree)
    base, tree = collect(procs[0]), collect(procs[1])
    missing, changed, new = compare(base, tree)
    print("exports: %d symbols in the base, %d in the tree: %d missing, %d changed, %d new"
          % (len(base), len(tree), len(missing), len(changed), len(new)))
    for name, msg in missing:
        print("    MISSING %s: %s" % (name, msg))
    for name, msg in changed:
        print("    CHANGED %s: %s" % (name, msg))
    for name, msg in new:
        print("    NEW     %s: %s" % (name, msg))
    bad = [name for name, _ in missing + changed]
    if bad:
        print("FAIL: exports: %d symbol(s) of the base missing or changed in the series: %s"
              % (len(bad), ", ".join(bad)))
        return 1
    print("exports: every export of the base is kept%s" %
          (" (%d new in the series: %s)" % (len(new), ", ".join(n for n, _ in new)) if new else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
