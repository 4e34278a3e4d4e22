"""Host-side tests of harness/expected and of the checks results.py makes
with it, run from the repository root with

    python3 -m unittest discover -s harness/tests -v

The real-*.log samples in harness/tests/data/ are console logs of the
series' `make test` runs, trimmed to the markers and the TAP/KTAP lines
(every result line kept).  Each failure mode is shown on a copy of
real-default-always.log changed in one place, judged against the
repository's own harness/expected.
"""

import contextlib
import io
import re
import sys
import tempfile
import unittest
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EXPECTED = HARNESS / "expected"
sys.path.insert(0, str(HARNESS))

import results  # noqa: E402  (needs the sys.path entry above)

#: The reason every device-coherent variant of hmm-tests skips for in a
#: guest without device-coherent memory (see coherent_skipped()).
COHERENT = "no device-coherent hmm_dmirror2"
#: The real runs of `make test`, by sample log.
REAL_RUNS = {
    "real-default-always.log": "default/always",
    "real-default-madvise.log": "default/madvise",
    "real-debug-always.log": "debug/always",
    "real-stripped-always.log": "stripped/always",
}


def real_lines(log: str = "real-default-always.log") -> list[str]:
    """The lines of a real sample log."""
    return results.read_log(DATA / log)


def judge(lines: list[str], run: str = "default/always",
          expected: results.Expectations | None = None) -> dict:
    """Judge lines against harness/expected (or the given expectations)."""
    return results.parse_run(lines, run, (),
                             expected or results.load_expectations(EXPECTED))


def replace(lines: list[str], old: str, new: str) -> list[str]:
    """lines with the one line that ends with old ending with new instead.

    run_vmtests-hmm prints hmm-tests' lines a second time; its block is
    left alone, so a change lands in the hmm-tests suite itself.
    """
    repeat = suite_block(lines, "run_vmtests-hmm") if any(
        line.startswith("HMMCI: SUITE-BEGIN run_vmtests-hmm ") for line in lines) else (-1, -1)
    hits = [i for i, line in enumerate(lines)
            if line.endswith(old) and not repeat[0] <= i <= repeat[1]]
    assert len(hits) == 1, (old, hits)
    changed = list(lines)
    changed[hits[0]] = changed[hits[0]][: -len(old)] + new if new is not None else None
    return [line for line in changed if line is not None]


def suite_block(lines: list[str], name: str) -> tuple[int, int]:
    """Indexes of a suite's SUITE-BEGIN and SUITE-END lines."""
    begin = next(i for i, line in enumerate(lines)
                 if line.startswith(f"HMMCI: SUITE-BEGIN {name} "))
    end = next(i for i, line in enumerate(lines)
               if line.startswith(f"HMMCI: SUITE-END {name} "))
    return begin, end


def write_expected(tmp: str, text: str) -> Path:
    """An expectation file with text in a temporary directory."""
    path = Path(tmp, "expected")
    path.write_text(text, encoding="utf-8")
    return path


def coherent_skipped(tmp: str) -> tuple[list[str], results.Expectations]:
    """real-default-always.log as a guest without device-coherent memory
    reports it (the 104 device-coherent variants of hmm-tests skip), and
    expectations in tmp that list those skips: a run with a known skip
    reason, for the tests of skips."""
    lines = real_lines()
    begin, end = suite_block(lines, "hmm-tests")
    for i in range(begin, end):
        if re.fullmatch(r"ok \d+ hmm2?\.hmm2?_device_coherent\.\S+", lines[i]):
            lines[i] += f" # SKIP {COHERENT}"
    lines = replace(lines, "# Totals: pass:244 fail:0 xfail:0 xpass:0 skip:0 error:0",
                    "# Totals: pass:140 fail:0 xfail:0 xpass:0 skip:104 error:0")
    text = re.sub(r"^hmm-tests +244 +244 +0$",
                  f"hmm-tests 244 140 104\n    skip 104 {COHERENT}",
                  EXPECTED.read_text(), count=1, flags=re.M)
    return lines, results.load_expectations(write_expected(tmp, text))


def guest_suites(variant: str) -> list[str]:
    """The suites harness/suites runs for a variant, as run.sh reads it."""
    names = []
    for line in (HARNESS / "suites").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#") or words[0] == "module":
            continue
        if variant in words[3:]:
            names.append(words[1])
    return names


class RepositoryFileTest(unittest.TestCase):
    """harness/expected itself: well-formed and in step with harness/suites."""

    def setUp(self):
        self.expected = results.load_expectations(EXPECTED)

    def test_label(self):
        self.assertEqual(self.expected.label, "harness/expected")

    def test_runs_of_make_test(self):
        self.assertEqual(set(self.expected.runs),
                         {"default/always", "default/madvise", "debug/always", "debug/madvise",
                          "stripped/always"})

    def test_every_run_lists_the_suites_of_its_variant(self):
        for run, section in self.expected.runs.items():
            with self.subTest(run=run):
                self.assertEqual(list(section), guest_suites(run.split("/")[0]))

    def test_every_tap_suite_has_its_test_names(self):
        kinds = {line.split()[1]: line.split()[0]
                 for line in (HARNESS / "suites").read_text().splitlines()
                 if line.split() and not line.startswith("#")}
        tap_suites = {name for name, kind in kinds.items()
                      if kind in ("kunit", "kselftest", "vmtests")}
        self.assertEqual(set(self.expected.names), tap_suites)

    def test_no_run_expects_failures(self):
        for run, section in self.expected.runs.items():
            for suite in section.values():
                with self.subTest(run=run, suite=suite.name):
                    self.assertEqual(suite.failed, 0)

    def test_hmm_tests_skips_nothing(self):
        # The guests have device-coherent memory: those variants run too.
        for run in ("default/always", "default/madvise", "debug/always", "debug/madvise"):
            hmm_tests = self.expected.runs[run]["hmm-tests"]
            self.assertEqual((hmm_tests.skipped, hmm_tests.skips), (0, {}))
        coherent = [name for name in self.expected.names["hmm-tests"]
                    if "_device_coherent." in name]
        self.assertEqual(len(coherent), 104)

    def test_the_compatibility_suites_skip_nothing(self):
        # 6.12's own hmm-tests, and ours through run_vmtests.sh, run whole.
        for run, section in self.expected.runs.items():
            for name in ("hmm-tests-6.12", "run_vmtests-hmm"):
                if name in section:
                    with self.subTest(run=run, suite=name):
                        self.assertEqual(section[name].skipped, 0)
        self.assertEqual(len(self.expected.names["hmm-tests-6.12"]), 58)
        self.assertIs(self.expected.names["run_vmtests-hmm"], self.expected.names["hmm-tests"])


class RealLogTest(unittest.TestCase):
    """The real logs of `make test` match harness/expected exactly."""

    def test_clean_runs_pass(self):
        for log, run in REAL_RUNS.items():
            with self.subTest(log=log):
                report = judge(real_lines(log), run)
                self.assertEqual(report["problems"], [])
                self.assertTrue(report["ok"])

    def test_a_failed_test_fails_only_once(self):
        # A KUnit failure in an otherwise clean run: the counts are as
        # expected otherwise (the failure is not counted a second time).
        lines = replace(real_lines("real-default-madvise.log"),
                        "    ok 12 hmm_kunit_exclusive_idle",
                        "    not ok 12 hmm_kunit_exclusive_idle")
        report = judge(lines, "default/madvise")
        self.assertEqual(report["problems"], [
            "suite hmm_kunit: test hmm_range_fault.hmm_kunit_exclusive_idle failed"])

    def test_file_says_what_the_logs_show(self):
        # `results.py expected` over the real runs prints the file's sections
        expected = results.load_expectations(EXPECTED)
        reports = [results.parse_run(real_lines(log), run) for log, run in REAL_RUNS.items()]
        with tempfile.TemporaryDirectory() as tmp:
            printed = results.load_expectations(
                write_expected(tmp, "\n".join(results.format_expectations(reports))))
        self.assertEqual(printed.names, expected.names)
        for run in REAL_RUNS.values():
            with self.subTest(run=run):
                self.assertEqual(list(printed.runs[run]), list(expected.runs[run]))
                for name, suite in expected.runs[run].items():
                    mine = printed.runs[run][name]
                    self.assertEqual((mine.tests, mine.passed, mine.skipped, mine.skips),
                                     (suite.tests, suite.passed, suite.skipped, suite.skips))

    def test_default_always_counts(self):
        report = judge(real_lines())
        counts = {s["name"]: (s["passed"], s["failed"], s["skipped"]) for s in report["suites"]}
        self.assertEqual(counts, {
            "hmm_swap_kunit": (12, 0, 0), "migrate_device_kunit": (26, 0, 0),
            "hmm_kunit": (14, 0, 0), "hmm-tests": (244, 0, 0), "hmm-tests-6.12": (58, 0, 0),
            "hmm-stress": (1, 0, 0), "hmm-fuzz": (1, 0, 0),
            "bench-smoke": (1, 0, 0), "unload-test_hmm": (1, 0, 0),
            "run_vmtests-hmm": (244, 0, 0)})


class FailureModeTest(unittest.TestCase):
    """Each way a suite can silently change fails the run, naming it."""

    def setUp(self):
        self.lines = real_lines()

    def assertProblems(self, lines, problems, run="default/always"):
        report = judge(lines, run)
        self.assertFalse(report["ok"])
        self.assertEqual(report["problems"], problems)

    def test_a_test_removed(self):
        lines = replace(self.lines, "ok 2 hmm.hmm_device_private.migrate_readback", None)
        lines = replace(lines, "1..244", "1..243")
        self.assertProblems(lines, [
            "suite hmm-tests: 243 tests (243 passed, 0 failed, 0 skipped), harness/expected "
            "expects 244 (244 passed, 0 skipped)",
            "suite hmm-tests: 1 test is missing (listed in harness/expected; removed or "
            "renamed?): hmm.hmm_device_private.migrate_readback",
        ])

    def test_a_test_added(self):
        lines = replace(self.lines, "    ok 14 hmm_kunit_exclusive_thp_hole",
                        "    ok 14 hmm_kunit_exclusive_thp_hole\n"
                        "[    2.2]     ok 15 hmm_kunit_brand_new")
        lines = replace("\n".join(lines).split("\n"), "    1..14", "    1..15")
        self.assertProblems(lines, [
            "suite hmm_kunit: 15 tests (15 passed, 0 failed, 0 skipped), harness/expected "
            "expects 14 (14 passed, 0 skipped)",
            "suite hmm_kunit: 1 test is not in harness/expected (new or renamed?): "
            "hmm_range_fault.hmm_kunit_brand_new",
        ])

    def test_a_test_renamed(self):
        lines = replace(self.lines, "ok 6 hmm.hmm_device_private.zero_page_range",
                        "ok 6 hmm.hmm_device_private.zero_range")
        self.assertProblems(lines, [
            "suite hmm-tests: 1 test is missing (listed in harness/expected; removed or "
            "renamed?): hmm.hmm_device_private.zero_page_range",
            "suite hmm-tests: 1 test is not in harness/expected (new or renamed?): "
            "hmm.hmm_device_private.zero_range",
        ])

    def coherent_skipped(self) -> tuple[list[str], results.Expectations]:
        """coherent_skipped() in a temporary directory of this test."""
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return coherent_skipped(tmp.name)

    def test_a_run_with_the_listed_skips_passes(self):
        lines, expected = self.coherent_skipped()
        report = judge(lines, expected=expected)
        self.assertEqual(report["problems"], [])
        self.assertTrue(report["ok"])

    def test_a_new_skip_for_a_listed_reason(self):
        lines, expected = self.coherent_skipped()
        lines = replace(lines, "ok 2 hmm.hmm_device_private.migrate_readback",
                        f"ok 2 hmm.hmm_device_private.migrate_readback # SKIP {COHERENT}")
        self.assertEqual(judge(lines, expected=expected)["problems"], [
            f"suite hmm-tests: 105 skipped for '{COHERENT}', {expected.label} expects 104"])

    def test_a_new_skip_for_a_new_reason(self):
        lines = replace(self.lines, "    ok 10 hmm_kunit_thp",
                        "    ok 10 hmm_kunit_thp # SKIP no THP at fault time")
        self.assertProblems(lines, [
            "suite hmm_kunit: 1 skipped for 'no THP at fault time', a reason "
            "harness/expected does not list: hmm_range_fault.hmm_kunit_thp"])

    def test_a_skip_where_none_is_expected(self):
        name = "hmm2.hmm2_device_coherent.snapshot_mixed"
        lines = replace(self.lines, f" {name}", f" {name} # SKIP {COHERENT}")
        self.assertProblems(lines, [
            f"suite hmm-tests: 1 skipped for '{COHERENT}', a reason harness/expected does "
            f"not list: {name}"])

    def test_a_skip_with_another_reason(self):
        name = "hmm2.hmm2_device_coherent.snapshot_mixed"
        lines, expected = self.coherent_skipped()
        lines = replace(lines, f"{name} # SKIP {COHERENT}",
                        f"{name} # SKIP hmm_dmirror2 busy")
        self.assertEqual(judge(lines, expected=expected)["problems"], [
            f"suite hmm-tests: 103 skipped for '{COHERENT}', {expected.label} expects 104",
            f"suite hmm-tests: 1 skipped for 'hmm_dmirror2 busy', a reason {expected.label} "
            f"does not list: {name}",
        ])

    def test_a_skip_with_no_reason(self):
        name = "hmm2.hmm2_device_coherent.snapshot_mixed"
        lines, expected = self.coherent_skipped()
        lines = replace(lines, f"{name} # SKIP {COHERENT}", f"{name} # SKIP")
        self.assertIn("suite hmm-tests: 1 skipped with no reason given, a reason "
                      f"{expected.label} does not list: {name}",
                      judge(lines, expected=expected)["problems"])

    def test_a_skip_that_passes_now(self):
        name = "hmm2.hmm2_device_coherent.snapshot_mixed"
        lines, expected = self.coherent_skipped()
        lines = replace(lines, f"{name} # SKIP {COHERENT}", name)
        self.assertEqual(judge(lines, expected=expected)["problems"], [
            f"suite hmm-tests: 103 skipped for '{COHERENT}', {expected.label} expects 104"])

    def test_plan_larger_than_the_results(self):
        lines = replace(self.lines, "1..244", "1..245")
        self.assertProblems(lines, [
            "suite hmm-tests: plan says 245 tests but only 244 reported (truncated output)"])

    def test_plan_smaller_than_the_results(self):
        lines = replace(self.lines, "1..244", "1..160")
        self.assertProblems(lines, ["suite hmm-tests: plan says 160 tests but 244 reported"])

    def test_kunit_subtest_plan_mismatch(self):
        lines = replace(self.lines, "    1..14", "    1..13")
        self.assertProblems(lines, [
            "suite hmm_kunit: subtest hmm_range_fault: plan says 13 tests but 14 reported"])

    def test_a_suite_missing_from_the_log(self):
        begin, end = suite_block(self.lines, "hmm_kunit")
        lines = self.lines[:begin] + self.lines[end + 1:]
        self.assertProblems(lines, [
            "expected suite hmm_kunit did not run (harness/expected expects 14 tests)"])

    def test_a_suite_not_in_the_file(self):
        begin, _ = suite_block(self.lines, "bench-smoke")
        lines = (self.lines[:begin]
                 + ["HMMCI: SUITE-BEGIN extra cmd", "HMMCI: SUITE-END extra rc=0 seconds=0"]
                 + self.lines[begin:])
        self.assertProblems(lines, [
            "suite extra ran but harness/expected has no line for it under [default/always]"])

    def test_an_empty_kselftest(self):
        begin, end = suite_block(self.lines, "hmm-tests")
        totals = "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:0 error:0"
        lines = self.lines[: begin + 1] + ["TAP version 13", "1..0", totals] + self.lines[end:]
        self.assertProblems(lines, [
            "suite hmm-tests: ran no tests (no test results in its output)",
            "suite hmm-tests: 0 tests (0 passed, 0 failed, 0 skipped), harness/expected "
            "expects 244 (244 passed, 0 skipped)",
        ])

    def test_a_kunit_module_that_printed_nothing(self):
        begin, end = suite_block(self.lines, "hmm_swap_kunit")
        lines = self.lines[: begin + 1] + self.lines[end:]
        self.assertProblems(lines, [
            "suite hmm_swap_kunit: ran no tests (no test results in its output)",
            "suite hmm_swap_kunit: 0 tests (0 passed, 0 failed, 0 skipped), harness/expected "
            "expects 12 (12 passed, 0 skipped)",
        ])

    def test_a_whole_suite_skipped(self):
        begin, end = suite_block(self.lines, "hmm-tests")
        lines = (self.lines[: begin + 1] + ["TAP version 13", "1..0 # SKIP no /dev/hmm_dmirror0"]
                 + ["HMMCI: SUITE-END hmm-tests rc=4 seconds=0"] + self.lines[end + 1:])
        self.assertProblems(lines, [
            "suite hmm-tests: 1 test (0 passed, 0 failed, 1 skipped), harness/expected "
            "expects 244 (244 passed, 0 skipped)",
            "suite hmm-tests: 1 skipped for 'no /dev/hmm_dmirror0', a reason harness/expected "
            "does not list: (all)",
            "suite hmm-tests: 244 tests are missing (listed in harness/expected; removed or "
            "renamed?): global.module_unload_with_pages_on_device, "
            "hmm.hmm_device_private.migrate_readback, "
            "hmm.hmm_device_private.cpu_write_after_migrate, "
            "hmm.hmm_device_private.holes_and_data, hmm.hmm_device_private.untouched_range "
            "and 239 more",
            "suite hmm-tests: 1 test is not in harness/expected (new or renamed?): (all)",
        ])

    def test_an_empty_section_lists_no_suite(self):
        with tempfile.TemporaryDirectory() as tmp:
            expected = results.load_expectations(write_expected(tmp, "[default/always]\n"))
        problems = judge(real_lines("real-stripped-always.log"), expected=expected)["problems"]
        self.assertEqual(problems[0], "suite boots ran but "
                         f"{expected.label} has no line for it under [default/always]")

    def test_a_run_without_a_section(self):
        report = judge(self.lines, "default/never")
        self.assertEqual(report["problems"], [
            "harness/expected has no [default/never] section, so this run's counts cannot be "
            "checked (`results.py expected` prints one to review)"])

    def test_a_failed_test_is_one_problem(self):
        lines = replace(self.lines, "    ok 4 hmm_kunit_per_page",
                        "    not ok 4 hmm_kunit_per_page")
        self.assertProblems(lines, ["suite hmm_kunit: test hmm_range_fault.hmm_kunit_per_page "
                                    "failed"])

    def test_fewer_failures_than_expected(self):
        text = re.sub(r"^hmm_kunit +14 +14 +0$", "hmm_kunit 14 13 0", EXPECTED.read_text(),
                      count=1, flags=re.M)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_expected(tmp, text)
            expected = results.load_expectations(path)
        self.assertEqual(judge(self.lines, expected=expected)["problems"], [
            f"suite hmm_kunit: 0 failed, {path} expects 1 to fail (fixed? then update it)"])

    def test_a_tap_suite_without_its_names(self):
        text = re.sub(r"\[tests hmm_kunit\]\n(?:[^\[\n].*\n|\n)*", "", EXPECTED.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            path = write_expected(tmp, text)
            expected = results.load_expectations(path)
        self.assertEqual(judge(self.lines, expected=expected)["problems"], [
            f"suite hmm_kunit: {path} has no [tests hmm_kunit] list, so a renamed test would "
            "go unnoticed"])


class CommandLineTest(unittest.TestCase):
    """results.py parse --expected, total, and expected."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def main(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = results.main(list(argv))
        return status, out.getvalue()

    def parse(self, lines: list[str], run: str, expected=EXPECTED) -> tuple[int, str, str]:
        log = Path(self.tmp.name, run.replace("/", "-") + ".log")
        log.write_text("\n".join(lines) + "\n")
        out = str(log.with_suffix(".json"))
        status, output = self.main("parse", "--log", str(log), "--run", run,
                                   "--expected", str(expected), "--json", out)
        return status, output, out

    def test_real_run_passes_and_total_line_is_unchanged(self):
        status, output, always = self.parse(real_lines(), "default/always")
        self.assertEqual(status, 0, output)
        status, output, stripped = self.parse(real_lines("real-stripped-always.log"),
                                              "stripped/always")
        self.assertEqual(status, 0, output)
        status, output = self.main("total", always, stripped)
        self.assertEqual(status, 0)
        self.assertEqual(output.splitlines()[-1], "603 passed, 0 failed, 0 skipped")

    def test_changed_run_fails_and_counts_each_problem(self):
        lines = replace(real_lines(), "ok 6 hmm.hmm_device_private.zero_page_range",
                        "ok 6 hmm.hmm_device_private.zero_range")
        status, output, path = self.parse(lines, "default/always")
        self.assertEqual(status, 1)
        self.assertIn("FAIL: default/always: suite hmm-tests: 1 test is missing (listed in "
                      "harness/expected; removed or renamed?): "
                      "hmm.hmm_device_private.zero_page_range", output.splitlines())
        status, output = self.main("total", path)
        self.assertEqual(status, 1)
        lines = output.splitlines()
        self.assertIn("default/always (run problems) 0 2 0 -", [" ".join(line.split())
                                                              for line in lines])
        self.assertEqual(lines[-1], "602 passed, 2 failed, 0 skipped")

    def test_malformed_file_fails_the_run(self):
        bad = write_expected(self.tmp.name, "[default/always]\nhmm-tests 163 82\n")
        status, output, _ = self.parse(real_lines(), "default/always", expected=bad)
        self.assertEqual(status, 1)
        self.assertIn(f"FAIL: default/always: cannot use the expectations: {bad}:2: want: "
                      "SUITE TESTS PASSED SKIPPED, not 'hmm-tests 163 82'", output)

    def test_missing_file_fails_the_run(self):
        status, output, _ = self.parse(real_lines(), "default/always",
                                       expected=Path(self.tmp.name, "nothing"))
        self.assertEqual(status, 1)
        self.assertIn("cannot use the expectations: [Errno 2]", output)

    def test_expected_names_an_unreadable_json(self):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            status, output = self.main("expected", f"{self.tmp.name}/none.json")
        self.assertEqual(status, 1)
        self.assertIn("unreadable results", err.getvalue())

    def test_expected_only_prints(self):
        _, _, path = self.parse(real_lines(), "default/always")
        before = EXPECTED.read_text()
        status, output = self.main("expected", path)
        self.assertEqual(status, 0)
        self.assertEqual(EXPECTED.read_text(), before)
        lines = output.splitlines()
        self.assertIn("[default/always]", lines)
        self.assertIn("hmm-tests               244     244        0", lines)
        self.assertIn("[tests hmm-tests]", lines)
        self.assertNotIn("[tests bench-smoke]", lines)


class MalformedFileTest(unittest.TestCase):
    """A malformed expectation file is an error naming its line."""

    CASES = {
        "hmm-tests 1 1 0\n": "expected:1: a line before the first section",
        "[default]\n": "expected:1: bad section header '[default]'",
        "[a/b]\nx 2 1 0\n[a/b]\n": "expected:3: a second [a/b] section",
        "[a/b]\nx 2 1 0\nx 2 1 0\n": "expected:3: suite x listed twice in this section",
        "[a/b]\nx 0 0 0\n": "expected:2: suite x: 0 tests (an empty suite is never expected)",
        "[a/b]\nx 2 2 1\n": "expected:2: suite x: 2 passed + 1 skipped is more than 2 tests",
        "[a/b]\nx 2 1 1\n": "expected:2: [a/b] suite x: 1 skipped but its skip lines add up to 0",
        "[a/b]\nx 3 1 2\n  skip 1 r\n  skip 2 r\n": "expected:4: suite x: skip reason 'r' "
                                                    "listed twice",
        "[a/b]\n  skip 1 r\n": "expected:2: a skip line must follow its suite's line",
        "[a/b]\nx 2 1 1\n  skip none r\n": "expected:3: want: skip COUNT REASON",
        "[a/b]\nx 2 2 0\n[tests x]\nx.one\n": "expected:2: [a/b] suite x: 2 tests but "
                                              "[tests x] lists 1",
        "[tests x]\na\na\n": "expected:3: test a listed twice",
        "[tests x]\na\n[tests x]\n": "expected:3: a second [tests x] section",
        "[tests y = x]\n": "expected:1: [tests y = x]: no [tests x] list",
        "[tests x]\na\n[tests y = x]\nb\n": "expected:4: a [tests SUITE = OTHER] section "
                                             "lists no names of its own",
        "[tests x]\na\n[tests y = x]\n[tests y]\n": "expected:4: a second [tests y] section",
        "[tests x]\na\n[a/b]\ny 2 2 0\n[tests y = x]\n": "expected:4: [a/b] suite y: 2 "
                                                         "tests but [tests y] lists 1",
    }

    def test_cases(self):
        with tempfile.TemporaryDirectory() as tmp:
            for text, message in self.CASES.items():
                with self.subTest(text=text):
                    path = write_expected(tmp, text)
                    with self.assertRaises(results.ExpectationError) as caught:
                        results.load_expectations(path)
                    self.assertIn(message, str(caught.exception))
                    self.assertTrue(str(caught.exception).startswith(str(path)))

    def test_comments_blank_lines_and_reasons_with_spaces(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = write_expected(tmp, "# c\n\n[a/b]\n# suite tests passed skipped\n"
                                       "x 4 1 3\n    skip 2 no  device # 2\n    skip 1\n"
                                       "[tests x]\n  name with spaces 9\nb\nc\nd\n")
            expected = results.load_expectations(path)
        suite = expected.runs["a/b"]["x"]
        self.assertEqual(suite.skips, {"no  device # 2": 2, "": 1})
        self.assertEqual(expected.names["x"], ["name with spaces 9", "b", "c", "d"])

    def test_a_suite_that_runs_the_tests_of_another(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = write_expected(tmp, "[tests y = x]\n[a/b]\ny 2 2 0\n[tests x]\none\ntwo\n")
            expected = results.load_expectations(path)
        self.assertEqual(expected.names["y"], ["one", "two"])
        self.assertEqual(expected.names["x"], ["one", "two"])


if __name__ == "__main__":
    unittest.main()
