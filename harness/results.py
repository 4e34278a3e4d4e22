#!/usr/bin/env python3
"""Turn guest console logs into test results, and total results over runs.

    results.py parse --log CONSOLE.log --run NAME [--expect SUITE]... --json OUT.json
    results.py total RUN1.json [RUN2.json ...]

`parse` reads one QEMU serial-console log written by the guest protocol
described in PROTOCOL.md (HMMCI: markers), counts the passed, failed and
skipped tests of every suite, checks the whole log for kernel splats and
protocol breaches, prints a table plus one `FAIL:` line per problem, and
writes the run's results as JSON.  It exits 0 only if the run is clean.

`total` reads the JSON of several runs, prints one combined table, a
`FAIL:` line per problem, a `NOTE:` line per note of a run (its optional
"notes": facts that are neither passes nor failures, such as the host
checks' "driver objects: N/M build") and, as its last line, `N passed, N
failed, N skipped`.  It exits 0 only if every run is clean.

Counting rules:
  * Only leaf tests are counted.  A parent test (one whose own subtests were
    reported at a deeper indentation) is not counted, except that a parent
    reported `not ok` with no failing leaf below it counts as one failure
    (e.g. a KUnit suite whose init failed).
  * Directives: SKIP is skipped; TODO and XFAIL are passed; XPASS (a test
    expected to fail that passed) is failed.  A `1..0 # SKIP reason` plan
    counts as one skipped test.
  * A `cmd` suite is one test, passed if its exit status is 0.
  * Every plan (`1..N`), the top level's and each KTAP subtest's, must match
    the number of results printed at its level: fewer is truncated output,
    more is a result nobody planned.  Either is a problem.
  * Every problem is one string in the run's "problems" list; each failed
    test contributes exactly one, so problems beyond the failed tests are
    run-level problems (splats, truncation, ...), each worth one failure in
    the `total` line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

PASS, FAIL, SKIP = "pass", "fail", "skip"

#: Lines of log shown after the first line of a kernel splat.
SPLAT_CONTEXT = 15

# --------------------------------------------------------------------------
# Reading the log
# --------------------------------------------------------------------------

# ANSI escape sequences and every other control character except tab.
_CONTROL_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")

# Kernel log prefixes: a `<6>` style level, a printk timestamp, and an
# optional CONFIG_PRINTK_CALLER id such as `[    T1]`.
_LEVEL = r"<\d+>"
_STAMP = r"\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])? ?"
_PREFIX_RE = re.compile(rf"^(?:{_LEVEL})?(?:{_STAMP})?")


def read_log(path: str | Path) -> list[str]:
    """Return the lines of a console log.

    The file is read as bytes and decoded leniently; carriage returns, ANSI
    escape sequences and other control characters are removed.  Line N of
    the file is element N-1 of the result.
    """
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    return [_CONTROL_RE.sub("", line) for line in text.removesuffix("\n").split("\n")]


def strip_prefix(line: str) -> str:
    """Remove a leading kernel log level and printk timestamp, if any."""
    return _PREFIX_RE.sub("", line, count=1)


# --------------------------------------------------------------------------
# Splitting the log into suites (HMMCI: markers)
# --------------------------------------------------------------------------

_MARKER_RE = re.compile(
    r"HMMCI: (BOOTED|DONE|DMESG-BEGIN|DMESG-END|SUITE-BEGIN|SUITE-END|INSMOD-FAILED"
    r"|PLAN-ERROR)\b(.*)"
)
# Markers that report a failure (a module that did not load, a plan that
# /init could not carry out) and do not end an open suite.
_FAILURE_MARKERS = ("INSMOD-FAILED", "PLAN-ERROR")
# Arguments of the markers that have some; trailing junk is tolerated.
_MARKER_ARGS_RE = {
    "SUITE-BEGIN": re.compile(r"\s+(\S+)\s+(\S+)"),
    "SUITE-END": re.compile(r"\s+(\S+)\s+rc=(-?\d+)\s+seconds=(\d+(?:\.\d+)?)"),
    "INSMOD-FAILED": re.compile(r"\s+(\S+)\s+rc=(-?\d+)"),
}


@dataclass
class Suite:
    """One suite as printed between SUITE-BEGIN and SUITE-END."""

    name: str
    kind: str
    body: list[str] = field(default_factory=list)
    rc: int | None = None  # None: no SUITE-END was seen
    seconds: int | float | None = None


@dataclass
class Scan:
    """What the markers of a log say, before any test output is parsed."""

    booted: bool = False
    done: bool = False
    suites: list[Suite] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _number(text: str) -> int | float:
    """Parse a marker's number, keeping integers as int."""
    return float(text) if "." in text else int(text)


def scan_log(lines: list[str]) -> Scan:
    """Find the HMMCI markers and collect each suite's output lines.

    A marker may be preceded on its line by junk (interleaved printk output
    or suite output lacking a final newline); that junk is kept as a line of
    the open suite.  A suite without SUITE-END ends at the next marker other
    than a failure marker (INSMOD-FAILED, PLAN-ERROR), or at the end of the
    log.  Failure markers are problems.
    """
    scan = Scan()
    current: Suite | None = None
    for number, line in enumerate(lines, 1):
        marker = _MARKER_RE.search(line)
        if current is not None:
            content = line if marker is None else line[: marker.start()]
            if content:
                current.body.append(content)
        if marker is None:
            continue
        word, rest = marker.groups()
        args: tuple[str, ...] = ()
        if word in _MARKER_ARGS_RE:
            parsed = _MARKER_ARGS_RE[word].match(rest)
            if parsed is None:
                scan.problems.append(f"line {number}: malformed marker: {line[marker.start():]}")
                continue
            args = parsed.groups()

        if word in _FAILURE_MARKERS:
            scan.problems.append(f"line {number}: {line[marker.start():]}")
        elif word == "SUITE-END":
            if current is None or current.name != args[0]:
                scan.problems.append(f"line {number}: SUITE-END {args[0]} without its SUITE-BEGIN")
                continue
            current.rc, current.seconds = int(args[1]), _number(args[2])
            current = None
        else:
            current = None
            if word == "SUITE-BEGIN":
                current = Suite(name=args[0], kind=args[1])
                scan.suites.append(current)
            scan.booted |= word == "BOOTED"
            scan.done |= word == "DONE"
    return scan


# --------------------------------------------------------------------------
# TAP 13 / KTAP
# --------------------------------------------------------------------------

_VERSION_RE = re.compile(r"(\s*)K?TAP version \d+")
_PLAN_RE = re.compile(r"(\s*)1\.\.(\d+)\s*(?:#(.*))?$")
_RESULT_RE = re.compile(r"(\s*)(not ok|ok) (\d+)\b\s*(?:- )?([^#]*?)\s*(?:#(.*))?$")
_BAIL_OUT_RE = re.compile(r"\s*Bail out!\s*(.*)")
_DIRECTIVE_RE = re.compile(r"\s*(SKIP|TODO|XFAIL|XPASS)\b", re.IGNORECASE)
_DIRECTIVE_OUTCOME = {"SKIP": SKIP, "TODO": PASS, "XFAIL": PASS, "XPASS": FAIL}


@dataclass
class TapResult:
    """One result line, with the results of its subtests."""

    name: str
    outcome: str
    indent: int
    children: list[TapResult] = field(default_factory=list)
    reason: str = ""  # the text after a SKIP (or other) directive
    planned: int | None = None  # the plan of its subtests, if they had one
    placeholder: bool = False  # stands for a `1..0 # SKIP` plan, not a result line


@dataclass
class Tap:
    """The test results found in a suite's output."""

    roots: list[TapResult]
    planned: int | None  # sum of the top-level plans, None without a plan
    top_level: int  # number of top-level results
    bail_outs: list[str]


class Leaf(NamedTuple):
    """A counted test: its qualified name, outcome and directive reason."""

    name: str
    outcome: str
    reason: str = ""


def _directive(comment: str | None) -> str | None:
    """The directive (SKIP, TODO, XFAIL, XPASS) opening a # comment, if any."""
    directive = _DIRECTIVE_RE.match(comment or "")
    return directive[1].upper() if directive else None


def _reason(comment: str | None) -> str:
    """The text after the directive of a # comment ("" without a directive)."""
    directive = _DIRECTIVE_RE.match(comment or "")
    return comment[directive.end():].strip() if directive else ""


def _outcome(status: str, comment: str | None) -> str:
    """Outcome of a result line from its ok/not ok and its # comment."""
    directive = _directive(comment)
    if directive:
        return _DIRECTIVE_OUTCOME[directive]
    return PASS if status == "ok" else FAIL


def parse_tap(body: list[str]) -> Tap:
    """Parse TAP 13 / KTAP, nested by indentation, from a suite's lines.

    Printk timestamps and levels are stripped first, so kernel log lines
    (KUnit) and plain program output (kselftest) are handled alike.  Lines
    that are not version, plan, result or bail-out lines are ignored.  The
    top level is the indentation of the first version or plan line.  A plan
    printed deeper than a result line (a KTAP subtest's `1..N`) becomes the
    `planned` of that result.
    """
    stack: list[TapResult] = []  # results whose parent is not yet known
    plans: list[tuple[int, int]] = []  # plans whose parent is not yet known
    bail_outs: list[str] = []
    top_indent: int | None = None
    for raw in body:
        line = strip_prefix(raw)
        header = _VERSION_RE.match(line) or _PLAN_RE.match(line)
        if header and top_indent is None:
            top_indent = len(header[1])

        if plan := _PLAN_RE.match(line):
            indent, count = len(plan[1]), int(plan[2])
            plans.append((indent, count))
            if count == 0 and _directive(plan[3]) == "SKIP":
                stack.append(TapResult("(all)", SKIP, indent, reason=_reason(plan[3]),
                                       placeholder=True))
        elif result := _RESULT_RE.match(line):
            indent = len(result[1])
            name = result[4] or f"test {result[3]}"
            node = TapResult(name, _outcome(result[2], result[5]), indent,
                             reason=_reason(result[5]))
            while stack and stack[-1].indent > indent:
                node.children.insert(0, stack.pop())
            deeper = []
            while plans and plans[-1][0] > indent:
                deeper.insert(0, plans.pop())
            if deeper:
                level = min(plan_indent for plan_indent, _ in deeper)
                node.planned = sum(count for plan_indent, count in deeper
                                   if plan_indent == level)
            stack.append(node)
        elif bail_out := _BAIL_OUT_RE.match(line):
            bail_outs.append(bail_out[1])

    if top_indent is None:
        top_indent = min((root.indent for root in stack), default=0)
    top_plans = [count for indent, count in plans if indent == top_indent]
    return Tap(
        roots=stack,
        planned=sum(top_plans) if top_plans else None,
        top_level=sum(1 for root in stack if root.indent == top_indent and not root.placeholder),
        bail_outs=bail_outs,
    )


def leaf_outcomes(node: TapResult, prefix: str = "") -> list[Leaf]:
    """Return the leaves under a result: (qualified name, outcome, reason).

    Names are joined with dots (suite.case.param).  A parent that failed
    with no failing leaf counts as one failed test itself.
    """
    name = f"{prefix}.{node.name}" if prefix else node.name
    if not node.children:
        return [Leaf(name, node.outcome, node.reason)]
    leaves = [leaf for child in node.children for leaf in leaf_outcomes(child, name)]
    if node.outcome == FAIL and all(leaf.outcome != FAIL for leaf in leaves):
        leaves.append(Leaf(name, FAIL, node.reason))
    return leaves


def plan_mismatches(node: TapResult, prefix: str = "") -> list[str]:
    """One problem per subtest under node (itself included) whose plan does
    not match the number of its subtests' results."""
    name = f"{prefix}.{node.name}" if prefix else node.name
    problems = []
    results = sum(1 for child in node.children if not child.placeholder)
    if node.planned is not None and node.planned != results:
        problems.append(f"subtest {name}: plan says {node.planned} tests but "
                        f"{results} reported")
    for child in node.children:
        problems += plan_mismatches(child, name)
    return problems


# --------------------------------------------------------------------------
# Judging suites and runs
# --------------------------------------------------------------------------


def evaluate_suite(suite: Suite) -> tuple[dict, list[str]]:
    """Count a suite's results; return its JSON record and its problems."""
    where = f"suite {suite.name}"
    problems: list[str] = []
    tap: Tap | None = None
    if suite.kind == "cmd":
        finished = suite.rc is not None
        leaves = [Leaf(suite.name, PASS if suite.rc == 0 else FAIL)] if finished else []
    elif suite.kind in ("kselftest", "kunit"):
        tap = parse_tap(suite.body)
        leaves = [leaf for root in tap.roots for leaf in leaf_outcomes(root)]
    else:
        problems.append(f"{where}: unknown suite kind {suite.kind!r}")
        leaves = []

    counts = Counter(leaf.outcome for leaf in leaves)
    failed_tests = [leaf.name for leaf in leaves if leaf.outcome == FAIL]
    problems += [f"{where}: test {name} failed" for name in failed_tests]
    if tap is not None:
        problems += [f"{where}: Bail out! {reason}" for reason in tap.bail_outs]
        if tap.planned is not None and tap.planned > tap.top_level:
            problems.append(
                f"{where}: plan says {tap.planned} tests but only {tap.top_level} "
                "reported (truncated output)"
            )
        elif tap.planned is not None and tap.planned < tap.top_level:
            problems.append(
                f"{where}: plan says {tap.planned} tests but {tap.top_level} reported"
            )
        problems += [f"{where}: {problem}" for root in tap.roots
                     for problem in plan_mismatches(root)]
        if not leaves:
            problems.append(f"{where}: ran no tests (no test results in its output)")
    if suite.rc is None:
        problems.append(f"{where}: no SUITE-END (guest died mid-suite)")
    elif suite.rc != 0 and not failed_tests:
        ksft_skip = suite.kind == "kselftest" and suite.rc == 4 and not counts[PASS]
        if not ksft_skip:
            problems.append(f"{where}: exit status {suite.rc} but no failed test reported")

    record = {
        "name": suite.name,
        "kind": suite.kind,
        "passed": counts[PASS],
        "failed": counts[FAIL],
        "skipped": counts[SKIP],
        "seconds": suite.seconds,
        "rc": suite.rc,
        "failed_tests": failed_tests,
    }
    return record, problems


# A kernel splat starts a kernel log line: at the start of the line (after a
# log level) or right after a printk timestamp, which also catches splats
# printed in the middle of a line of interleaved output.
_SPLAT_RE = re.compile(
    rf"(?:^(?:{_LEVEL})?|(?P<stamp>{_STAMP}))"
    r"(?P<report>(?:(?:watchdog|kernel|Internal error): )?"
    r"(?:BUG:|WARNING:|kernel BUG at|Oops\b|Kernel panic|general protection fault"
    r"|Unable to handle kernel|KASAN:|UBSAN:|KFENCE:|INFO: possible recursive locking"
    r"|INFO: task .+ blocked for more than|rcu: INFO:|list_(?:add|del) corruption).*)"
)


def _splat_context(lines: list[str], start: int) -> list[str]:
    """Up to SPLAT_CONTEXT lines from index start, ending at the end of the
    report's trace or before the next HMMCI marker."""
    context = []
    for line in lines[start : start + SPLAT_CONTEXT]:
        if _MARKER_RE.search(line):
            break
        context.append(line)
        if "---[ end trace" in line:
            break
    return context


def find_splats(lines: list[str]) -> list[str]:
    """Return one problem per kernel splat in the log.

    A splat seen again with the same timestamp and text (a suite's kernel
    log is printed once in its suite and again in the DMESG section) is
    reported once, and so is a splat line shown in the context of the
    previous one.
    """
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    next_index = 0
    for index, line in enumerate(lines):
        splat = _SPLAT_RE.search(line)
        if splat is None or index < next_index:
            continue
        key = ((splat["stamp"] or "").strip(), splat["report"])
        if key in seen:
            continue
        seen.add(key)
        context = _splat_context(lines, index + 1)
        next_index = index + 1 + len(context)
        head = f"kernel splat at line {index + 1}: {splat['report']}"
        problems.append("\n".join([head] + ["    " + text for text in context]))
    return problems


def parse_run(lines: list[str], run: str, expect: Iterable[str] = ()) -> dict:
    """Judge one console log; return the run's JSON report."""
    scan = scan_log(lines)
    problems: list[str] = []
    if not scan.booted:
        problems.append("guest never reached init (no HMMCI: BOOTED)")
    elif not scan.done:
        problems.append("guest did not finish: truncated log, crash or timeout (no HMMCI: DONE)")
    ran = {suite.name for suite in scan.suites}
    missing = [name for name in dict.fromkeys(expect) if name not in ran]
    problems += [f"expected suite {name} did not run" for name in missing]

    suites = []
    for suite in scan.suites:
        record, suite_problems = evaluate_suite(suite)
        suites.append(record)
        problems += suite_problems
    problems += scan.problems
    problems += find_splats(lines)
    return {"run": run, "ok": not problems, "suites": suites, "problems": problems}


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

_COLUMNS = ("run", "suite", "passed", "failed", "skipped", "seconds")


def run_level_failures(report: dict) -> int:
    """Failures of a run not already counted as failed tests.

    Each failed test has one problem, so every other problem is one more
    failure; a run marked not ok always has at least one failure.
    """
    failed = sum(suite["failed"] for suite in report["suites"])
    extra = max(len(report["problems"]) - failed, 0)
    return 1 if not report["ok"] and failed + extra == 0 else extra


def run_totals(report: dict) -> tuple[int, int, int]:
    """(passed, failed, skipped) of a run, run-level failures included."""
    suites = report["suites"]
    return (
        sum(suite["passed"] for suite in suites),
        sum(suite["failed"] for suite in suites) + run_level_failures(report),
        sum(suite["skipped"] for suite in suites),
    )


def run_rows(report: dict) -> list[tuple]:
    """Table rows of a run: its suites, its run-level failures, a subtotal."""
    run, suites = report["run"], report["suites"]
    rows = [
        (run, s["name"], s["passed"], s["failed"], s["skipped"], s["seconds"]) for s in suites
    ]
    extra = run_level_failures(report)
    if extra:
        rows.append((run, "(run problems)", 0, extra, 0, None))
    seconds = sum(s["seconds"] for s in suites if s["seconds"] is not None)
    rows.append((run, "(subtotal)", *run_totals(report), seconds))
    return rows


def _cell(value) -> str:
    """Text of a table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_table(rows: list[tuple]) -> list[str]:
    """Align rows under the column headers; names left, numbers right."""
    cells = [_COLUMNS] + [tuple(_cell(value) for value in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    return [
        "  ".join(
            text.ljust(width) if i < 2 else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in cells
    ]


def _fail_lines(report: dict, first_line_only: bool = False) -> list[str]:
    """`FAIL: run: problem` lines for each problem of a run."""
    return [
        f"FAIL: {report['run']}: "
        + (problem.partition("\n")[0] if first_line_only else problem)
        for problem in report["problems"]
    ]


def load_report(path: str) -> dict:
    """Read a run's JSON; an unreadable or malformed file is a failed run."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(report["ok"], bool) or not isinstance(report["problems"], list):
            raise TypeError("'ok' or 'problems' has the wrong type")
        if not all(isinstance(note, str) for note in report.get("notes", [])):
            raise TypeError("'notes' is not a list of strings")
        for suite in report["suites"]:
            if not all(isinstance(suite[key], int) for key in ("passed", "failed", "skipped")):
                raise TypeError(f"suite {suite['name']}: counts are not integers")
            if not isinstance(suite["seconds"], (int, float, type(None))):
                raise TypeError(f"suite {suite['name']}: seconds is not a number")
        report["run"] = str(report["run"])
        return report
    except (OSError, ValueError, LookupError, TypeError) as error:
        problem = f"unreadable results {path}: {error}"
        return {"run": path, "ok": False, "suites": [], "problems": [problem]}


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def cmd_parse(args: argparse.Namespace) -> int:
    """`parse`: judge one log, print its table and problems, write JSON."""
    try:
        report = parse_run(read_log(args.log), args.run, args.expect)
    except OSError as error:
        problem = f"cannot read console log {args.log}: {error}"
        report = {"run": args.run, "ok": False, "suites": [], "problems": [problem]}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n".join(format_table(run_rows(report)) + _fail_lines(report)))
    return 0 if report["ok"] else 1


def cmd_total(args: argparse.Namespace) -> int:
    """`total`: combine runs' JSON into one table and a final count line."""
    reports = [load_report(path) for path in args.reports]
    lines = format_table([row for report in reports for row in run_rows(report)])
    lines += [line for report in reports for line in _fail_lines(report, first_line_only=True)]
    lines += [f"NOTE: {report['run']}: {note}" for report in reports
              for note in report.get("notes", [])]
    totals = [run_totals(report) for report in reports]
    passed, failed, skipped = (sum(column) for column in zip(*totals))
    lines.append(f"{passed} passed, {failed} failed, {skipped} skipped")
    print("\n".join(lines))
    return 0 if all(report["ok"] for report in reports) else 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser("parse", help="judge one console log")
    parse.add_argument("--log", required=True, help="QEMU serial console log")
    parse.add_argument("--run", required=True, help="name of this run")
    parse.add_argument("--expect", action="append", default=[], metavar="SUITE",
                       help="suite that must have run (repeatable)")
    parse.add_argument("--json", required=True, help="where to write the run's results")
    parse.set_defaults(handler=cmd_parse)

    total = commands.add_parser("total", help="combine the results of runs")
    total.add_argument("reports", nargs="+", metavar="RUN.json")
    total.set_defaults(handler=cmd_total)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
