#!/usr/bin/env python3
"""Turn guest console logs into test results, and total results over runs.

    results.py parse --log CONSOLE.log --run NAME [--expect SUITE]...
                     [--expected harness/expected] --json OUT.json
    results.py total RUN1.json [RUN2.json ...]
    results.py expected RUN1.json [RUN2.json ...]

`parse` reads one QEMU serial-console log written by the guest protocol
described in PROTOCOL.md (HMMCI: markers), counts the passed, failed and
skipped tests of every suite, checks the whole log for kernel splats and
protocol breaches, prints a table plus one `FAIL:` line per problem, and
writes the run's results as JSON.  It exits 0 only if the run is clean.
With --expected (run.sh passes harness/expected), the run must also report
exactly what that file lists for it: its suites, each suite's number of
tests, its skips and their reasons, its tests' names; every difference is a
problem naming the suite and what changed (the file's header has the
format and the rules).

`total` reads the JSON of several runs, prints one combined table, a
`FAIL:` line per problem, a `NOTE:` line per note of a run (its optional
"notes": facts that are neither passes nor failures, such as the host
checks' "driver objects: N/M build") and, as its last line, `N passed, N
failed, N skipped`.  It exits 0 only if every run is clean.

`expected` prints what harness/expected would say for the given runs'
JSON, for a person to compare and copy from; it never writes the file.

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
# Expectations: what each run must report (harness/expected)
# --------------------------------------------------------------------------

#: The repository root; the expectation file is named relative to it.
ROOT = Path(__file__).resolve().parent.parent
#: How many test names one problem lists before it says "and N more".
NAMES_SHOWN = 5

_SECTION_RE = re.compile(r"\[\s*(?:tests\s+(?P<suite>[^\s=\]]+)(?:\s*=\s*(?P<same>[^\s=\]]+))?"
                         r"|(?P<run>[^\s/\]]+/[^\s/\]]+))\s*\]$")
_NUMBER_RE = re.compile(r"[0-9]+")


class ExpectationError(ValueError):
    """A malformed expectation file; the message names the file and line."""


@dataclass
class SuiteExpectation:
    """One suite line of a run's section, with its skip lines."""

    name: str
    tests: int
    passed: int
    skipped: int
    skips: dict[str, int] = field(default_factory=dict)  # reason -> count
    line: int = 0

    @property
    def failed(self) -> int:
        """How many of its tests are expected to fail."""
        return self.tests - self.passed - self.skipped


@dataclass
class Expectations:
    """The parsed expectation file."""

    label: str  # the file, as problems name it (harness/expected)
    runs: dict[str, dict[str, SuiteExpectation]]  # run -> suite -> line
    names: dict[str, list[str]]  # suite -> its tests' names


def _label(path: str | Path) -> str:
    """A path relative to the repository root if it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_expectations(path: str | Path) -> Expectations:
    """Read an expectation file (format: the header of harness/expected).

    Raises OSError if it cannot be read, ExpectationError if it is
    malformed or contradicts itself (skip lines that do not add up to the
    suite's skips, a [tests SUITE] list of another length than TESTS).
    """
    label = _label(path)
    text = Path(path).read_text(encoding="utf-8")
    runs: dict[str, dict[str, SuiteExpectation]] = {}
    names: dict[str, list[str]] = {}
    aliases: dict[str, tuple[str, int]] = {}  # suite -> (suite it runs the tests of, line)
    section: dict[str, SuiteExpectation] | list[str] | tuple | None = None
    last: SuiteExpectation | None = None

    def error(number: int, message: str) -> ExpectationError:
        return ExpectationError(f"{label}:{number}: {message}")

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            header = _SECTION_RE.match(line)
            if header is None:
                raise error(number, f"bad section header {line!r} "
                                    "(want [VARIANT/THP] or [tests SUITE])")
            if header["run"]:
                if header["run"] in runs:
                    raise error(number, f"a second [{header['run']}] section")
                section = runs[header["run"]] = {}
            else:
                if header["suite"] in names or header["suite"] in aliases:
                    raise error(number, f"a second [tests {header['suite']}] section")
                if header["same"]:
                    aliases[header["suite"]] = (header["same"], number)
                    section = ()
                else:
                    section = names[header["suite"]] = []
            last = None
        elif section is None:
            raise error(number, "a line before the first section")
        elif isinstance(section, tuple):
            raise error(number, "a [tests SUITE = OTHER] section lists no names of its own")
        elif isinstance(section, list):
            if line in section:
                raise error(number, f"test {line} listed twice")
            section.append(line)
        elif line.split()[0] == "skip":
            words = line.split(None, 2)
            if last is None:
                raise error(number, "a skip line must follow its suite's line")
            if len(words) < 2 or not _NUMBER_RE.fullmatch(words[1]) or int(words[1]) == 0:
                raise error(number, "want: skip COUNT REASON, COUNT at least 1")
            reason = words[2] if len(words) > 2 else ""
            if reason in last.skips:
                raise error(number, f"suite {last.name}: skip reason {reason!r} listed twice")
            last.skips[reason] = int(words[1])
        else:
            words = line.split()
            if len(words) != 4 or not all(_NUMBER_RE.fullmatch(word) for word in words[1:]):
                raise error(number, f"want: SUITE TESTS PASSED SKIPPED, not {line!r}")
            name, tests, passed, skipped = words[0], *(int(word) for word in words[1:])
            if name in section:
                raise error(number, f"suite {name} listed twice in this section")
            if tests == 0:
                raise error(number, f"suite {name}: 0 tests (an empty suite is never expected)")
            if passed + skipped > tests:
                raise error(number, f"suite {name}: {passed} passed + {skipped} skipped "
                                    f"is more than {tests} tests")
            last = section[name] = SuiteExpectation(name, tests, passed, skipped, line=number)

    for suite, (same, number) in aliases.items():
        if same not in names:
            raise error(number, f"[tests {suite} = {same}]: no [tests {same}] list")
        names[suite] = names[same]
    for run, suites in runs.items():
        for suite in suites.values():
            listed = sum(suite.skips.values())
            if listed != suite.skipped:
                raise error(suite.line, f"[{run}] suite {suite.name}: {suite.skipped} skipped "
                                        f"but its skip lines add up to {listed}")
            if suite.name in names and len(names[suite.name]) != suite.tests:
                raise error(suite.line, f"[{run}] suite {suite.name}: {suite.tests} tests but "
                                        f"[tests {suite.name}] lists {len(names[suite.name])}")
    return Expectations(label, runs, names)


def _tests(count: int) -> str:
    """"1 test", "2 tests"."""
    return f"{count} test{'' if count == 1 else 's'}"


def _some(names: list[str]) -> str:
    """The first NAMES_SHOWN names, and how many more."""
    shown = ", ".join(names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _for_reason(reason: str) -> str:
    """How a skip reason is quoted in a problem."""
    return f"for {reason!r}" if reason else "with no reason given"


def compare_suite(suite: Suite, leaves: list[Leaf], expected: SuiteExpectation,
                  names: list[str] | None, label: str) -> list[str]:
    """Problems where a suite's results differ from its expected line.

    The number of tests, the skips per reason and (with a [tests SUITE]
    list) the tests' names must be as listed.  Fewer failures than the
    line allows are a problem; more are already one problem per failed
    test, so they are not counted again here.
    """
    where = f"suite {suite.name}"
    problems: list[str] = []
    counts = Counter(leaf.outcome for leaf in leaves)
    if len(leaves) != expected.tests:
        problems.append(
            f"{where}: {_tests(len(leaves))} ({counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[SKIP]} skipped), {label} expects {expected.tests} ({expected.passed} "
            f"passed, {expected.skipped} skipped)")
    elif counts[FAIL] < expected.failed:
        problems.append(f"{where}: {counts[FAIL]} failed, {label} expects {expected.failed} "
                        "to fail (fixed? then update it)")
    if not leaves:
        return problems  # skips and names would only say again that nothing ran

    skipped: dict[str, list[str]] = {}
    for leaf in leaves:
        if leaf.outcome == SKIP:
            skipped.setdefault(leaf.reason, []).append(leaf.name)
    for reason in dict.fromkeys([*expected.skips, *skipped]):
        got, want = len(skipped.get(reason, [])), expected.skips.get(reason, 0)
        if want == 0:
            problems.append(f"{where}: {got} skipped {_for_reason(reason)}, a reason {label} "
                            f"does not list: {_some(skipped[reason])}")
        elif got != want:
            problems.append(f"{where}: {got} skipped {_for_reason(reason)}, {label} "
                            f"expects {want}")

    if names is None:
        if suite.kind != "cmd":
            problems.append(f"{where}: {label} has no [tests {suite.name}] list, so a renamed "
                            "test would go unnoticed")
    else:
        seen = {leaf.name for leaf in leaves}
        listed = set(names)
        gone = [name for name in names if name not in seen]
        new = list(dict.fromkeys(leaf.name for leaf in leaves if leaf.name not in listed))
        if gone:
            problems.append(f"{where}: {_tests(len(gone))} {'is' if len(gone) == 1 else 'are'} "
                            f"missing (listed in {label}; removed or renamed?): {_some(gone)}")
        if new:
            problems.append(f"{where}: {_tests(len(new))} {'is' if len(new) == 1 else 'are'} "
                            f"not in {label} (new or renamed?): {_some(new)}")
    return problems


def format_expectations(reports: list[dict]) -> list[str]:
    """The expectation file's sections that would match these runs.

    For review only: nothing writes the file.  Runs whose suites carry no
    test names (the host checks) are left out.
    """
    lines: list[str] = []
    names: dict[str, list[str]] = {}
    for report in reports:
        suites = [s for s in report["suites"] if "test_names" in s]
        if not suites:
            lines += [f"# {report['run']}: no guest suites, left out", ""]
            continue
        lines.append(f"[{report['run']}]")
        width = max(len(s["name"]) for s in suites + [{"name": "# suite"}])
        lines.append(f"{'# suite':<{width}}  tests  passed  skipped")
        for s in suites:
            tests = len(s["test_names"])
            lines.append(f"{s['name']:<{width}}  {tests:5}  {s['passed']:6}  {s['skipped']:7}")
            lines += [f"    skip {count} {reason}".rstrip()
                      for reason, count in s.get("skip_reasons", {}).items()]
            if s["failed"]:
                lines.append(f"    # {s['failed']} failed in this run: expected to fail?")
            if s["kind"] == "cmd":
                continue
            if names.setdefault(s["name"], s["test_names"]) != s["test_names"]:
                lines.append("    # its test names differ from another run's: check them")
        if report["problems"]:
            lines.append(f"# this run had {len(report['problems'])} problem(s): review it")
        lines.append("")
    for suite, tests in names.items():
        same = next((other for other, its in names.items() if its == tests), suite)
        if same != suite:
            lines += [f"[tests {suite} = {same}]", ""]
        else:
            lines += [f"[tests {suite}]", *tests, ""]
    return lines[:-1] if lines and not lines[-1] else lines


# --------------------------------------------------------------------------
# Judging suites and runs
# --------------------------------------------------------------------------


def evaluate_suite(suite: Suite, expected: Expectations | None = None,
                   run: str = "") -> tuple[dict, list[str]]:
    """Count a suite's results; return its JSON record and its problems.

    With expectations that have a line for this suite in the section of
    this run, the results are compared with it (compare_suite).
    """
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

    section = expected.runs.get(run, {}) if expected is not None else {}
    if suite.name in section:
        problems += compare_suite(suite, leaves, section[suite.name],
                                  expected.names.get(suite.name), expected.label)

    record = {
        "name": suite.name,
        "kind": suite.kind,
        "passed": counts[PASS],
        "failed": counts[FAIL],
        "skipped": counts[SKIP],
        "seconds": suite.seconds,
        "rc": suite.rc,
        "failed_tests": failed_tests,
        "skip_reasons": dict(Counter(leaf.reason for leaf in leaves if leaf.outcome == SKIP)),
        "test_names": [leaf.name for leaf in leaves],
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


def parse_run(lines: list[str], run: str, expect: Iterable[str] = (),
              expected: Expectations | None = None) -> dict:
    """Judge one console log; return the run's JSON report.

    expect names suites that must have run.  With expectations, the run
    must have a section in them, must run exactly the suites it lists, and
    each suite must report what its line says (compare_suite).
    """
    scan = scan_log(lines)
    problems: list[str] = []
    if not scan.booted:
        problems.append("guest never reached init (no HMMCI: BOOTED)")
    elif not scan.done:
        problems.append("guest did not finish: truncated log, crash or timeout (no HMMCI: DONE)")
    section: dict[str, SuiteExpectation] = {}
    listed = expected is not None and run in expected.runs
    if expected is not None:
        if listed:
            section = expected.runs[run]
        else:
            problems.append(f"{expected.label} has no [{run}] section, so this run's counts "
                            "cannot be checked (`results.py expected` prints one to review)")
    ran = {suite.name for suite in scan.suites}
    for name in dict.fromkeys([*expect, *section]):
        if name not in ran:
            count = (f" ({expected.label} expects {_tests(section[name].tests)})"
                     if name in section else "")
            problems.append(f"expected suite {name} did not run{count}")

    suites = []
    for suite in scan.suites:
        record, suite_problems = evaluate_suite(suite, expected, run)
        if listed and suite.name not in section:
            suite_problems.insert(0, f"suite {suite.name} ran but {expected.label} has no "
                                     f"line for it under [{run}]")
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
    expected, trouble = None, []
    if args.expected:
        try:
            expected = load_expectations(args.expected)
        except (OSError, ExpectationError) as error:
            trouble = [f"cannot use the expectations: {error}"]
    try:
        report = parse_run(read_log(args.log), args.run, args.expect, expected)
    except OSError as error:
        problem = f"cannot read console log {args.log}: {error}"
        report = {"run": args.run, "ok": False, "suites": [], "problems": [problem]}
    if trouble:
        report["problems"] = trouble + report["problems"]
        report["ok"] = False
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n".join(format_table(run_rows(report)) + _fail_lines(report)))
    return 0 if report["ok"] else 1


#: The run name of hostcheck.py's report.
HOST_RUN = "host"


def cmd_total(args: argparse.Namespace) -> int:
    """`total`: combine runs' JSON into one table and a final count line."""
    reports = [load_report(path) for path in args.reports]
    lines = format_table([row for report in reports for row in run_rows(report)])
    lines += [line for report in reports for line in _fail_lines(report, first_line_only=True)]
    lines += [f"NOTE: {report['run']}: {note}" for report in reports
              for note in report.get("notes", [])]
    # The host-side checks (lint, round trips, the harness's own tests) get
    # a line of their own: the last line counts the tests of the guests.
    host = [run_totals(report) for report in reports if report["run"] == HOST_RUN]
    if host:
        passed, failed, skipped = (sum(column) for column in zip(*host))
        lines.append(f"host checks: {passed} passed, {failed} failed, {skipped} skipped")
    guest = [run_totals(report) for report in reports if report["run"] != HOST_RUN]
    passed, failed, skipped = (sum(column) for column in zip(*guest)) if guest else (0, 0, 0)
    lines.append(f"{passed} passed, {failed} failed, {skipped} skipped")
    print("\n".join(lines))
    return 0 if all(report["ok"] for report in reports) else 1


def cmd_expected(args: argparse.Namespace) -> int:
    """`expected`: print the expectation sections matching runs' JSON."""
    reports = [load_report(path) for path in args.reports]
    unreadable = [r for r in reports
                  if not r["suites"] and r["problems"][:1] and
                  r["problems"][0].startswith("unreadable results")]
    for report in unreadable:
        print(f"error: {report['problems'][0]}", file=sys.stderr)
    print(f"# printed by `results.py expected` from {' '.join(args.reports)};")
    print("# compare with harness/expected and review before changing it")
    print("\n".join(format_expectations([r for r in reports if r not in unreadable])))
    return 1 if unreadable else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser("parse", help="judge one console log")
    parse.add_argument("--log", required=True, help="QEMU serial console log")
    parse.add_argument("--run", required=True, help="name of this run")
    parse.add_argument("--expect", action="append", default=[], metavar="SUITE",
                       help="suite that must have run (repeatable)")
    parse.add_argument("--expected", metavar="FILE",
                       help="what each run must report (harness/expected); the run fails "
                            "where it differs")
    parse.add_argument("--json", required=True, help="where to write the run's results")
    parse.set_defaults(handler=cmd_parse)

    total = commands.add_parser("total", help="combine the results of runs")
    total.add_argument("reports", nargs="+", metavar="RUN.json")
    total.set_defaults(handler=cmd_total)

    show = commands.add_parser(
        "expected", help="print what the expectation file would say for these runs "
                         "(only prints; the file is edited by hand)")
    show.add_argument("reports", nargs="+", metavar="RUN.json")
    show.set_defaults(handler=cmd_expected)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
