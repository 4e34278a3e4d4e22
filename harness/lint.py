#!/usr/bin/env python3
"""Style checks of the series: checkpatch.pl --strict and kernel-doc -Wall.

Usage: lint.py [--tree BUILD_TREE] [--json OUT.json]

- checkpatch.pl --strict on every patch of patches/, on every mail of the
  exported series (build/series, when made) and on every file the project
  owns (the patches carry no personal Signed-off-by by policy, so
  --no-signoff); any error, warning or check fails, unless it is listed in
  harness/checkpatch-exceptions with a reason.
- docutils on every project-owned .rst file: valid reStructuredText;
- kernel-doc -Wall on every project-owned C file and header: no warning;
  on every base file a patch touches: no warning the stripped base does not
  already have (line numbers aside).

Runs the scripts of the assembled build tree (they are the base's own).
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXCEPTIONS = os.path.join(HERE, "checkpatch-exceptions")
# checkpatch's spdxcheck.py and the rst check use Debian's python3 with the
# packages make installs (python3-ply, python3-docutils), whatever python3
# comes first on PATH.
DEBIAN_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
DEBIAN_ENV = dict(os.environ, PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""))


def series(root):
    sys.path.insert(0, HERE)
    import series as s  # noqa: E402
    return s.read_series(root)


def exceptions():
    """{(file, TYPE)} allowed, from the exception list (file TYPE # reason)."""
    allowed = set()
    if os.path.exists(EXCEPTIONS):
        for line in open(EXCEPTIONS):
            line = line.split("#", 1)[0].strip()
            if line:
                name, kind = line.split()
                allowed.add((name, kind))
    return allowed


def checkpatch(tree, args, label, allowed):
    res = subprocess.run(["perl", "scripts/checkpatch.pl", "--strict", "--no-signoff",
                          "--show-types", "--no-summary", "--quiet"] + args,
                         cwd=tree, capture_output=True, text=True, env=DEBIAN_ENV)
    problems = []
    for mo in re.finditer(r"^(ERROR|WARNING|CHECK):(\w+): (.*)$", res.stdout, re.M):
        if (label, mo.group(2)) not in allowed:
            problems.append("%s: %s:%s: %s" % (label, mo.group(1), mo.group(2), mo.group(3)))
    return problems


def kernel_doc(tree, path):
    res = subprocess.run(["perl", "scripts/kernel-doc", "-none", "-Wall", path], cwd=tree,
                         capture_output=True, text=True)
    return [re.sub(r"^[^:]*:\d+: ", "", ln) for ln in res.stderr.splitlines() if "warning" in ln]


def rst_check(path, label):
    """docutils --halt=warning on an rst file, kernel-doc directives removed
    (docutils does not know them; kernel-doc itself checks those files)."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"(?m)^\.\. kernel-doc::.*\n(?:[ \t]+:.*\n)*", "", text)
    with tempfile.NamedTemporaryFile("w", suffix=".rst", delete=False) as f:
        f.write(text)
    try:
        res = subprocess.run([DEBIAN_PYTHON, "-m", "docutils", "--halt=warning",
                              "--report=warning", f.name, os.devnull],
                             capture_output=True, text=True)
    finally:
        os.remove(f.name)
    if res.returncode:
        return ["%s: reStructuredText: %s" % (label, res.stderr.strip()[:500])]
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=os.path.join(os.environ.get("BUILD", os.path.join(ROOT, "build")),
                                                   "tree"))
    ap.add_argument("--json")
    args = ap.parse_args()
    tree = args.tree
    allowed = exceptions()
    entries = series(ROOT)
    checked, problems = 0, []

    for name, _ in entries:
        problems += checkpatch(tree, [os.path.join(ROOT, "patches", name)], name, allowed)
        checked += 1
    # the exported mails (make series) carry the owned files too
    mails = sorted(glob.glob(os.path.join(os.path.dirname(tree), "series", "0*.patch")))
    for mail in mails:
        if not mail.endswith("/0000-cover-letter.patch"):
            problems += checkpatch(tree, [mail], os.path.basename(mail), allowed)
            checked += 1
    owned = [path for _, files in entries for path in files]
    for path in owned:
        problems += checkpatch(tree, ["-f", path], path, allowed)
        checked += 1

    for path in owned:
        if path.endswith((".c", ".h")) and not path.startswith("tools/"):
            for warning in kernel_doc(tree, path):
                problems.append("%s: kernel-doc: %s" % (path, warning))
            checked += 1
    for path in owned:
        if path.endswith(".rst"):
            problems += rst_check(os.path.join(ROOT, path), path)
            checked += 1
    # the benchmark module and program (bench/) are not in the series but
    # follow the same rules
    for path in sorted(glob.glob(os.path.join(ROOT, "bench", "*.[ch]"))):
        label = os.path.relpath(path, ROOT)
        problems += checkpatch(tree, ["-f", path], label, allowed)
        problems += ["%s: kernel-doc: %s" % (label, w) for w in kernel_doc(tree, path)]
        checked += 1
    touched = subprocess.run(["git", "diff", "--name-only", "base", "HEAD", "--"] ,
                             cwd=tree, capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        for path in touched:
            if path in owned or not path.endswith((".c", ".h")):
                continue
            old = os.path.join(tmp, os.path.basename(path))
            with open(old, "w") as f:
                f.write(subprocess.run(["git", "show", "base:" + path], cwd=tree,
                                       capture_output=True, text=True).stdout)
            before = set(kernel_doc(tree, old))
            for warning in kernel_doc(tree, path):
                if warning not in before:
                    problems.append("%s: new kernel-doc warning: %s" % (path, warning))
            checked += 1

    for p in problems:
        print("FAIL: lint: " + p)
    print("    lint: %d patches and files checked, %d problems" % (checked, len(problems)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(checked=checked, problems=problems), f)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
