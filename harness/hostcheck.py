#!/usr/bin/env python3
"""Run the host-side checks and record them as one run for results.py total.

Usage: hostcheck.py --json OUT.json [--guest-kernel BZIMAGE] [--drivers]

Checks: the harness's own unit tests (results parser, series tool, strip
surgery, stage scripts), the round trip export -> assemble of the real
series, checkpatch --strict and kernel-doc over the series (lint.py), `git am` of the exported series (export-series.sh),
`make apply` on a copy of the base (tests/test_apply.sh), the base's
symbol exports kept by the series (exportcheck.py), given a kernel, the
guest runner's own test (it must catch a failing suite and a WARNING), and
with --drivers, the in-tree drivers' HMM objects compiled against the
series, and the series' objects in a kernel without THP and in one without
ZONE_DEVICE (driver-check.sh drivers|nothp|nodevice: kernel builds,
minutes when cold).

Notes (the driver objects' N/M, the exports new in the series) go into the
JSON's "notes"; `results.py total` prints them above its last line.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def unittest_counts(output):
    """(passed, failed, skipped) from unittest's closing lines."""
    ran = re.search(r"^Ran (\d+) tests?", output, re.M)
    total = int(ran.group(1)) if ran else 0
    failed = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", output))
    skipped = sum(int(n) for n in re.findall(r"skipped=(\d+)", output))
    return total - failed - skipped, failed, skipped


def run(cmd, **kw):
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    return res, int(time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--guest-kernel")
    ap.add_argument("--drivers", action="store_true",
                    help="also compile the drivers' HMM objects and the series without THP "
                         "and without ZONE_DEVICE (driver-check.sh)")
    args = ap.parse_args()
    suites, problems, notes = [], [], []

    # Debian's python3 has the packages make installs (matplotlib for the
    # benchmark chart), whatever python3 comes first on PATH
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    res, secs = run([python, "-m", "unittest", "discover", "-s", "harness/tests"])
    p, f, s = unittest_counts(res.stderr)
    if res.returncode and not f:
        f = 1
    suites.append(dict(name="harness-unittests", kind="host", passed=p, failed=f, skipped=s,
                       seconds=secs, rc=res.returncode, failed_tests=[]))
    if f:
        problems.append("harness unit tests failed:\n" + res.stderr[-3000:])

    res, secs = run(["bash", os.path.join(HERE, "roundtrip.sh")])
    ok = res.returncode == 0
    suites.append(dict(name="series-roundtrip", kind="host", passed=int(ok), failed=int(not ok),
                       skipped=0, seconds=secs, rc=res.returncode, failed_tests=[]))
    if not ok:
        problems.append("series round trip failed:\n" + (res.stdout + res.stderr)[-3000:])

    res, secs = run(["bash", os.path.join(HERE, "export-series.sh"), "--check"])
    ok = res.returncode == 0
    suites.append(dict(name="git-am-series", kind="host", passed=int(ok), failed=int(not ok),
                       skipped=0, seconds=secs, rc=res.returncode, failed_tests=[]))
    if not ok:
        problems.append("the exported series does not git-am to the same tree:\n" +
                        (res.stdout + res.stderr)[-3000:])

    res, secs = run(["bash", os.path.join(HERE, "tests", "test_apply.sh")])
    passed = len(re.findall(r"^ok ", res.stdout, re.M))
    failed = len(re.findall(r"^FAIL ", res.stdout, re.M)) or int(res.returncode != 0)
    suites.append(dict(name="make-apply", kind="host", passed=passed, failed=failed,
                       skipped=0, seconds=secs, rc=res.returncode, failed_tests=[]))
    if failed:
        problems.append("make apply test failed:\n" + (res.stdout + res.stderr)[-3000:])

    res, secs = run([sys.executable, os.path.join(HERE, "lint.py")])
    lint_problems = res.stdout.count("FAIL: lint:")
    checked = re.search(r"lint: (\d+) patches and files checked", res.stdout)
    failed = lint_problems or int(res.returncode != 0)
    suites.append(dict(name="checkpatch+kernel-doc", kind="host",
                       passed=int(checked.group(1)) if checked and not failed else 0,
                       failed=failed, skipped=0, seconds=secs, rc=res.returncode,
                       failed_tests=[]))
    if failed:
        problems.append("style checks failed:\n" + (res.stdout + res.stderr)[-3000:])

    res, secs = run([sys.executable, os.path.join(HERE, "exportcheck.py")])
    ok = res.returncode == 0
    suites.append(dict(name="exports", kind="host", passed=int(ok), failed=int(not ok),
                       skipped=0, seconds=secs, rc=res.returncode, failed_tests=[]))
    if not ok:
        # the FAIL line (the summary shows a problem's first line) names the symbols
        fail = re.findall(r"^FAIL: (exports: .*)$", res.stdout, re.M)
        body = re.sub(r"(?m)^FAIL: exports: .*\n?", "", res.stdout + res.stderr)
        problems.append((fail[0] if fail else "export check failed") + "\n" + body[-3000:])
    new = re.search(r"^exports: every export of the base is kept \((.*)\)$", res.stdout, re.M)
    if new:
        notes.append("exports " + new.group(1))

    # the drivers' HMM code, then the series without THP and without
    # ZONE_DEVICE (driver-check.sh CONFIG)
    for config in ("drivers", "nothp", "nodevice") if args.drivers else ():
        res, secs = run(["bash", os.path.join(HERE, "driver-check.sh"), config])
        passed = len(re.findall(r"^ok ", res.stdout, re.M))
        skipped = len(re.findall(r"^xfail ", res.stdout, re.M))
        failed = len(re.findall(r"^FAIL ", res.stdout, re.M))
        if res.returncode and not failed:
            failed = 1
        label = "driver" if config == "drivers" else config
        suites.append(dict(name=label + "-objects", kind="host", passed=passed, failed=failed,
                           skipped=skipped, seconds=secs, rc=res.returncode, failed_tests=[]))
        summary = re.findall(r"^%s objects: .*$" % label, res.stdout, re.M)
        if summary:
            notes.append(summary[-1])
        if failed:
            problems.append((summary[-1] if summary else config + " build check failed") +
                            "\n" + (res.stdout + res.stderr)[-3000:])

    if args.guest_kernel:
        res, secs = run(["bash", os.path.join(HERE, "tests", "test_guest.sh"), args.guest_kernel])
        passed = len(re.findall(r"^ok ", res.stdout, re.M))
        failed = len(re.findall(r"^not ok ", res.stdout, re.M))
        if res.returncode and not failed:
            failed = 1
        suites.append(dict(name="guest-harness", kind="host", passed=passed, failed=failed,
                           skipped=0, seconds=secs, rc=res.returncode, failed_tests=[]))
        if failed:
            problems.append("guest harness test failed:\n" + (res.stdout + res.stderr)[-3000:])

    ok = not problems
    for s in suites:
        print("    %-20s %4d passed %4d failed %4d skipped %5ds" %
              (s["name"], s["passed"], s["failed"], s["skipped"], s["seconds"]))
    for note in notes:
        print("    " + note)
    for prob in problems:
        print("FAIL: host: " + prob)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(run="host", ok=ok, suites=suites, problems=problems, notes=notes), f,
                  indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
