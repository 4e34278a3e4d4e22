"""Host-side tests of harness/results.py, run from the repository root with

    python3 -m unittest discover -s harness/tests -v

The sample console logs are in harness/tests/data/.
"""

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(HARNESS))

import results  # noqa: E402  (needs the sys.path entry above)


def parse(log: str, expect=()) -> dict:
    """Judge a sample log as run "run"."""
    return results.parse_run(results.read_log(DATA / log), "run", list(expect))


def suite(report: dict, name: str) -> dict:
    """The JSON record of the named suite."""
    (record,) = [s for s in report["suites"] if s["name"] == name]
    return record


def counts(record: dict) -> tuple[int, int, int]:
    """(passed, failed, skipped) of a suite record."""
    return record["passed"], record["failed"], record["skipped"]


def run_main(*argv: str) -> tuple[int, str]:
    """Run results.main in-process; return its exit status and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = results.main(list(argv))
    return status, out.getvalue()


def problems_matching(report: dict, text: str) -> list[str]:
    """The problems of a report that contain text."""
    return [problem for problem in report["problems"] if text in problem]


class CleanLogTest(unittest.TestCase):
    """A log where everything passed."""

    def setUp(self):
        self.report = parse("clean.log", expect=["hmm-tests", "example-kunit", "smoke"])

    def test_run_is_ok(self):
        self.assertTrue(self.report["ok"])
        self.assertEqual(self.report["problems"], [])

    def test_kselftest_counts(self):
        record = suite(self.report, "hmm-tests")
        # 3 ok + 1 XFAIL passed, 1 SKIP skipped.
        self.assertEqual(counts(record), (4, 0, 1))
        self.assertEqual((record["kind"], record["rc"], record["seconds"]), ("kselftest", 0, 3))

    def test_kunit_counts_leaves_only(self):
        # 3 plain cases + 3 parameters; the params case and the suite are parents.
        self.assertEqual(counts(suite(self.report, "example-kunit")), (4, 0, 2))

    def test_cmd_suite(self):
        record = suite(self.report, "smoke")
        self.assertEqual(counts(record), (1, 0, 0))
        self.assertEqual(record["seconds"], 1.5)

    def test_cli_exit_status_table_and_json(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sub" / "x86.json"
            status, output = run_main(
                "parse", "--log", str(DATA / "clean.log"), "--run", "x86",
                "--expect", "hmm-tests", "--json", str(out),
            )
            written = json.loads(out.read_text())
        self.assertEqual(status, 0)
        self.assertNotIn("FAIL:", output)
        self.assertEqual(output.splitlines()[0].split(),
                         ["run", "suite", "passed", "failed", "skipped", "seconds"])
        self.assertIn("example-kunit", output)
        self.assertEqual(set(written), {"run", "ok", "suites", "problems"})
        self.assertEqual(written["run"], "x86")
        self.assertEqual(
            set(written["suites"][0]),
            {"name", "kind", "passed", "failed", "skipped", "seconds", "rc", "failed_tests",
             "skip_reasons", "test_names"},
        )
        hmm_tests = written["suites"][0]
        self.assertEqual(hmm_tests["skip_reasons"], {"no coherent device": 1})
        self.assertEqual(len(hmm_tests["test_names"]), 5)
        self.assertEqual(hmm_tests["test_names"][2], "hmm.hmm_device_coherent.open_close")


class FailingTestsTest(unittest.TestCase):
    """Failed test cases, as KTAP from KUnit and TAP from kselftest."""

    def test_kunit_case_not_ok(self):
        report = parse("kunit_fail.log")
        record = suite(report, "hmm-kunit")
        self.assertFalse(report["ok"])
        self.assertEqual(counts(record), (2, 1, 0))
        self.assertEqual(record["failed_tests"], ["hmm_dmirror.hmm_migrate_back"])
        self.assertEqual(report["problems"],
                         ["suite hmm-kunit: test hmm_dmirror.hmm_migrate_back failed"])

    def test_kselftest_not_ok(self):
        report = parse("kselftest_fail.log")
        record = suite(report, "hmm-tests")
        self.assertEqual(counts(record), (2, 1, 0))
        self.assertEqual(record["failed_tests"], ["hmm.hmm_device_private.migrate"])
        # rc=1 is explained by the failed test: no second problem.
        self.assertEqual(len(report["problems"]), 1)

    def test_cli_prints_fail_line_and_exits_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            status, output = run_main("parse", "--log", str(DATA / "kselftest_fail.log"),
                                      "--run", "arm64", "--json", f"{tmp}/r.json")
        self.assertEqual(status, 1)
        self.assertIn("FAIL: arm64: suite hmm-tests: test hmm.hmm_device_private.migrate failed",
                      output.splitlines())


class DirectivesTest(unittest.TestCase):
    """SKIP, XFAIL, TODO, XPASS and Bail out!."""

    def setUp(self):
        self.report = parse("directives.log")

    def test_directive_counts(self):
        record = suite(self.report, "directives")
        # plain, XFAIL, TODO and a mere comment pass; SKIP (even not ok) skips.
        self.assertEqual(counts(record), (4, 1, 1))
        self.assertEqual(record["failed_tests"], ["d.xpass"])

    def test_skip_is_not_a_pass(self):
        self.assertEqual(counts(suite(parse("clean.log"), "hmm-tests"))[2], 1)
        self.assertEqual(counts(suite(parse("exit_status.log"), "all-skipped")), (0, 0, 2))

    def test_bail_out(self):
        self.assertTrue(problems_matching(self.report,
                                          "suite bail: Bail out! cannot open /dev/hmm_dmirror0"))


class SplatTest(unittest.TestCase):
    """Kernel splats fail a run even when every test passed."""

    def test_warning_fails_run(self):
        report = parse("warning.log")
        self.assertEqual(counts(suite(report, "hmm-tests")), (1, 0, 0))
        self.assertFalse(report["ok"])
        (problem,) = report["problems"]
        first, *context = problem.split("\n")
        self.assertEqual(first, "kernel splat at line 10: WARNING: CPU: 1 PID: 212 at "
                                "mm/hmm.c:421 hmm_vma_walk_pmd+0x3c1/0x4e0")
        self.assertEqual(len(context), results.SPLAT_CONTEXT)
        self.assertIn("Modules linked in: test_hmm", context[0])

    def test_kasan_reported_once(self):
        # Printed in the KUnit suite and again in the DMESG section.
        report = parse("kasan.log")
        self.assertEqual(counts(suite(report, "hmm-kunit")), (1, 0, 0))
        (problem,) = report["problems"]
        self.assertTrue(problem.startswith("kernel splat at line 9: BUG: KASAN: "
                                           "slab-use-after-free in dmirror_release"))
        self.assertIn("Read of size 8", problem)

    def test_context_stops_at_end_of_trace_and_next_splat_is_reported(self):
        lines = [
            "[    1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
            "[    1.1] ---[ end trace 0000000000000000 ]---",
            "[    1.2] BUG: sleeping function called from invalid context at b.c:2",
        ]
        problems = results.find_splats(lines)
        self.assertEqual(len(problems), 2)
        self.assertTrue(problems[0].endswith("---[ end trace 0000000000000000 ]---"))
        self.assertIn("line 3: BUG: sleeping function", problems[1])

    def test_every_pattern_is_a_splat(self):
        splats = [
            "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008",
            "[    1.000000] BUG: sleeping function called from invalid context at mm/x.c:1",
            "[    1.000000] BUG: KFENCE: out-of-bounds read in f+0x1/0x2",
            "[   22.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [hmm-tests:99]",
            "[    1.000000] WARNING: possible circular locking dependency detected",
            "[    1.000000] kernel BUG at mm/hmm.c:600!",
            "[    1.000000] Oops: general protection fault, probably for non-canonical address",
            "[    1.000000] Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP",
            "[    1.000000] Kernel panic - not syncing: Fatal exception",
            "[    1.000000] general protection fault, probably for non-canonical address",
            "[    1.000000] Unable to handle kernel NULL pointer dereference at virtual address 0",
            "[    1.000000] KASAN: null-ptr-deref in range [0x0-0x7]",
            "[    1.000000] UBSAN: array-index-out-of-bounds in mm/hmm.c:10:5",
            "[    1.000000] INFO: possible recursive locking detected",
            "[  150.000000] INFO: task hmm-tests:120 blocked for more than 120 seconds.",
            "[   30.000000] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
            "[    1.000000] list_add corruption. next->prev should be prev (ffff), but was 0.",
            "[    1.000000] list_del corruption, ffff888100000000->next is LIST_POISON1",
            "<4>[    1.000000] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
            "[    1.000000][    T1] BUG: KASAN: use-after-free in f+0x1/0x2",
            "kernel: BUG: unable to handle page fault for address: ffffc90000000000",
            "WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
            # printk interleaved with test output on the same console line
            "# checking migration[    7.000000] BUG: unable to handle page fault",
        ]
        for line in splats:
            with self.subTest(line=line):
                self.assertEqual(len(results.find_splats([line])), 1)

    def test_harmless_lines_are_not_splats(self):
        harmless = [
            "[    0.000000] Kernel command line: console=ttyS0 oops=panic "
            "panic_on_warn=1 transparent_hugepage=always",
            "[    0.300000] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on",
            "[    0.400000] ACPI BIOS Warning (bug): Incorrect checksum in table [DSDT]",
            "# warning_is_not_a_warning",
            "# warning_is_not_a_warning: no WARNING: printed",
            "ok 3 test_no_BUG_here",
            "not ok 4 kasan.KASAN: not a report",
            "#  RUN           BUG: in a test name ...",
            "[    2.000005]     # check_warning: WARNING: expected message, not a splat",
            "[    2.000000] warning: process `x' used the deprecated sysctl",
            "[    2.000000] BUG in the middle: BUG: is not at the start",
        ]
        for line in harmless:
            with self.subTest(line=line):
                self.assertEqual(results.find_splats([line]), [])

    def test_harmless_log_is_clean(self):
        report = parse("harmless.log")
        self.assertEqual(report["problems"], [])
        self.assertEqual(counts(suite(report, "harmless")), (4, 0, 0))


class BrokenRunTest(unittest.TestCase):
    """Guests that crashed, never booted, or did not run what was expected."""

    def test_truncated_log(self):
        report = parse("truncated.log")
        self.assertFalse(report["ok"])
        record = suite(report, "hmm-tests")
        self.assertEqual(counts(record), (2, 0, 0))
        self.assertIsNone(record["rc"])
        self.assertIsNone(record["seconds"])
        for text in ("guest did not finish: truncated log, crash or timeout",
                     "suite hmm-tests: no SUITE-END (guest died mid-suite)",
                     "suite hmm-tests: plan says 4 tests but only 2 reported",
                     "kernel splat at line 9: BUG: kernel NULL pointer dereference"):
            with self.subTest(text=text):
                self.assertEqual(len(problems_matching(report, text)), 1)
        # The Oops and panic lines are part of the NULL pointer report's context.
        self.assertEqual(len(problems_matching(report, "kernel splat")), 1)
        self.assertIn("Kernel panic - not syncing", problems_matching(report, "kernel splat")[0])

    def test_never_booted(self):
        report = parse("no_boot.log")
        self.assertFalse(report["ok"])
        self.assertEqual(report["suites"], [])
        self.assertEqual(report["problems"][0], "guest never reached init (no HMMCI: BOOTED)")
        self.assertFalse(problems_matching(report, "guest did not finish"))
        self.assertTrue(problems_matching(report, "Kernel panic - not syncing: No working init"))

    def test_expected_suite_missing(self):
        report = parse("clean.log", expect=["hmm-tests", "hmm-kunit", "hmm-kunit"])
        self.assertEqual(report["problems"], ["expected suite hmm-kunit did not run"])
        self.assertFalse(report["ok"])

    def test_unreadable_log(self):
        with tempfile.TemporaryDirectory() as tmp:
            status, output = run_main("parse", "--log", f"{tmp}/missing.log", "--run", "r",
                                      "--json", f"{tmp}/r.json")
            written = json.loads(Path(tmp, "r.json").read_text())
        self.assertEqual(status, 1)
        self.assertIn("FAIL: r: cannot read console log", output)
        self.assertFalse(written["ok"])


class SuiteVerdictTest(unittest.TestCase):
    """Plans, exit statuses and empty suites."""

    def test_plan_says_five_but_three_results(self):
        report = parse("plan_short.log")
        self.assertEqual(counts(suite(report, "hmm-tests")), (3, 0, 0))
        self.assertEqual(report["problems"],
                         ["suite hmm-tests: plan says 5 tests but only 3 reported "
                          "(truncated output)"])

    def test_more_results_than_planned_and_a_short_subtest_plan(self):
        report = parse("plan_mismatch.log")
        self.assertFalse(report["ok"])
        self.assertEqual(counts(suite(report, "hmm-tests")), (3, 0, 0))
        self.assertEqual(report["problems"], [
            "suite hmm-tests: plan says 2 tests but 3 reported",
            "suite hmm_kunit: subtest hmm_range_fault: plan says 3 tests but 2 reported",
        ])

    def test_skip_reasons_are_kept(self):
        body = ["TAP version 13", "1..3", "ok 1 a # SKIP no device", "ok 2 b # skip",
                "  1..0 # SKIP nothing to run", "ok 3 c"]
        tap = results.parse_tap(body)
        leaves = [leaf for root in tap.roots for leaf in results.leaf_outcomes(root)]
        self.assertEqual([(leaf.name, leaf.reason) for leaf in leaves if leaf.outcome == "skip"],
                         [("a", "no device"), ("b", ""), ("c.(all)", "nothing to run")])
        # the `1..0 # SKIP` placeholder is no result: c's plan of 0 matches
        self.assertEqual(results.plan_mismatches(tap.roots[2]), [])
        self.assertEqual((tap.planned, tap.top_level), (3, 3))

    def test_exit_statuses(self):
        report = parse("exit_status.log")
        self.assertEqual(counts(suite(report, "rc-one")), (2, 0, 0))
        self.assertEqual(counts(suite(report, "whole-skip")), (0, 0, 1))
        self.assertEqual(counts(suite(report, "failing-cmd")), (0, 1, 0))
        self.assertEqual(report["problems"], [
            "suite rc-one: exit status 1 but no failed test reported",
            "suite skip-rc-with-pass: exit status 4 but no failed test reported",
            "suite failing-cmd: test failing-cmd failed",
        ])

    def test_suites_without_results_fail(self):
        report = parse("zero_results.log")
        self.assertFalse(report["ok"])
        self.assertEqual(report["problems"], [
            "suite empty-selftest: ran no tests (no test results in its output)",
            "suite empty-kunit: ran no tests (no test results in its output)",
        ])

    def test_kunit_parameterised_nesting(self):
        record = suite(parse("kunit_params.log"), "nested")
        # Leaves: order 0 (pass), order 9 (fail), order 10 (skip), plain_test
        # (pass), fine_case (pass); broken_init is a leaf that failed (suite
        # init); odd_parent failed with no failing leaf, so it counts itself.
        self.assertEqual(counts(record), (3, 3, 1))
        self.assertEqual(record["failed_tests"],
                         ["params.order_test.order 9", "broken_init", "odd_parent"])

    def test_markers_out_of_protocol(self):
        lines = [
            "HMMCI: BOOTED",
            "HMMCI: INSMOD-FAILED test_hmm.ko rc=1",
            "HMMCI: SUITE-BEGIN a cmd",
            "HMMCI: PLAN-ERROR run_kunit: usage: run_kunit NAME PATH.ko",
            "HMMCI: SUITE-END b rc=0 seconds=0",
            "HMMCI: SUITE-END a rc=zero",
            "HMMCI: SUITE-END a rc=0 seconds=0",
            "HMMCI: SUITE-BEGIN c weird",
            "HMMCI: SUITE-END c rc=0 seconds=0",
            "HMMCI: DONE",
        ]
        report = results.parse_run(lines, "run")
        # Failure markers and bad SUITE-ENDs do not end the open suite "a".
        self.assertEqual(counts(suite(report, "a")), (1, 0, 0))
        self.assertEqual(report["problems"], [
            "suite c: unknown suite kind 'weird'",
            "line 2: HMMCI: INSMOD-FAILED test_hmm.ko rc=1",
            "line 4: HMMCI: PLAN-ERROR run_kunit: usage: run_kunit NAME PATH.ko",
            "line 5: SUITE-END b without its SUITE-BEGIN",
            "line 6: malformed marker: HMMCI: SUITE-END a rc=zero",
        ])


class RobustnessTest(unittest.TestCase):
    """Carriage returns, ANSI escapes, bad bytes, timestamps, glued markers."""

    def test_garbage_log(self):
        report = parse("garbage.log", expect=["hmm-tests", "kunit-crlf"])
        self.assertEqual(report["problems"], [])
        # Junk before SUITE-BEGIN is ignored, "ok 3" glued to SUITE-END counts.
        self.assertEqual(counts(suite(report, "hmm-tests")), (2, 0, 1))
        record = suite(report, "kunit-crlf")
        self.assertEqual(counts(record), (2, 0, 0))
        self.assertEqual(record["seconds"], 0)

    def test_read_log_cleans_lines_and_keeps_numbering(self):
        lines = results.read_log(DATA / "garbage.log")
        self.assertEqual(lines[3], "HMMCI: BOOTED")
        self.assertEqual(lines[18], "[    2.000005][    T1]     ok 1 first")
        self.assertTrue(all("\r" not in line and "\x1b" not in line for line in lines))
        self.assertEqual(len(lines), 24)

    def test_splat_line_number_in_crlf_log(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "console.log"
            log.write_bytes(b"\xff\r\nHMMCI: BOOTED\r\n\x1b[1m[ 1.5] UBSAN: shift-out-of-bounds"
                            b" in mm/x.c:3:1\x1b[0m\r\nHMMCI: DONE\r\n")
            report = results.parse_run(results.read_log(log), "run")
        self.assertEqual(report["problems"],
                         ["kernel splat at line 3: UBSAN: shift-out-of-bounds in mm/x.c:3:1"])

    def test_strip_prefix(self):
        self.assertEqual(results.strip_prefix("<6>[    1.234567]     ok 1 x"), "    ok 1 x")
        self.assertEqual(results.strip_prefix("[ 1.2][  T12] ok 1 x"), "ok 1 x")
        self.assertEqual(results.strip_prefix("  ok 1 x"), "  ok 1 x")


class TotalTest(unittest.TestCase):
    """The `total` subcommand."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def json_for(self, log: str, run: str) -> str:
        """Parse a sample log into a JSON file; return its path."""
        path = f"{self.tmp.name}/{run}.json"
        with contextlib.redirect_stdout(io.StringIO()):
            results.main(["parse", "--log", str(DATA / log), "--run", run, "--json", path])
        return path

    def test_two_clean_runs(self):
        status, output = run_main("total", self.json_for("clean.log", "x86"),
                                  self.json_for("garbage.log", "arm64"))
        self.assertEqual(status, 0)
        self.assertEqual(output.splitlines()[-1], "13 passed, 0 failed, 4 skipped")
        self.assertEqual(len([line for line in output.splitlines() if "(subtotal)" in line]), 2)

    def test_splat_run_counts_as_failed(self):
        status, output = run_main("total", self.json_for("clean.log", "x86"),
                                  self.json_for("warning.log", "arm64"))
        self.assertEqual(status, 1)
        lines = output.splitlines()
        self.assertEqual(lines[-1], "10 passed, 1 failed, 3 skipped")
        self.assertIn("FAIL: arm64: kernel splat at line 10: WARNING: CPU: 1 PID: 212 at "
                      "mm/hmm.c:421 hmm_vma_walk_pmd+0x3c1/0x4e0", lines)

    def test_failed_test_is_not_counted_twice(self):
        status, output = run_main("total", self.json_for("kselftest_fail.log", "x86"))
        self.assertEqual(status, 1)
        self.assertEqual(output.splitlines()[-1], "2 passed, 1 failed, 0 skipped")

    def test_run_level_problems_add_failures(self):
        status, output = run_main("total", self.json_for("truncated.log", "x86"))
        self.assertEqual(status, 1)
        # 1 passed cmd + 2 passed tests; 4 problems, none a failed test.
        self.assertEqual(output.splitlines()[-1], "3 passed, 4 failed, 0 skipped")

    def test_missing_and_malformed_json_fail(self):
        bad = Path(self.tmp.name, "bad.json")
        bad.write_text('{"run": "x", "ok": true}')
        status, output = run_main("total", self.json_for("clean.log", "x86"),
                                  f"{self.tmp.name}/missing.json", str(bad))
        self.assertEqual(status, 1)
        self.assertEqual(output.splitlines()[-1], "9 passed, 2 failed, 3 skipped")
        self.assertIn("missing.json", output)

    def test_not_ok_report_without_problems_still_fails(self):
        path = Path(self.tmp.name, "odd.json")
        path.write_text(json.dumps({"run": "odd", "ok": False, "suites": [], "problems": []}))
        status, output = run_main("total", str(path))
        self.assertEqual(status, 1)
        self.assertEqual(output.splitlines()[-1], "0 passed, 1 failed, 0 skipped")

    def test_host_checks_have_a_line_of_their_own(self):
        path = Path(self.tmp.name, "host.json")
        suites = [{"name": "lint", "kind": "host", "passed": 5, "failed": 1,
                   "skipped": 0, "seconds": 3, "rc": 1, "failed_tests": []}]
        path.write_text(json.dumps({"run": "host", "ok": False, "suites": suites,
                                    "problems": ["lint: 1 problem"]}))
        status, output = run_main("total", self.json_for("clean.log", "x86"), str(path))
        self.assertEqual(status, 1)
        lines = output.splitlines()
        # the host run's failure shows, and fails the total, but is not a test
        self.assertIn("FAIL: host: lint: 1 problem", lines)
        self.assertEqual(lines[-2], "host checks: 5 passed, 1 failed, 0 skipped")
        self.assertEqual(lines[-1], "9 passed, 0 failed, 3 skipped")

    def test_notes_are_printed_above_the_count_line_and_not_counted(self):
        path = Path(self.tmp.name, "host.json")
        suites = [{"name": "driver-objects", "kind": "host", "passed": 4, "failed": 0,
                   "skipped": 2, "seconds": 30, "rc": 0, "failed_tests": []}]
        note = "driver objects: 4/6 build; expected failures: a.o, b.o (reason)"
        path.write_text(json.dumps({"run": "host", "ok": True, "suites": suites,
                                    "problems": [], "notes": [note]}))
        status, output = run_main("total", self.json_for("clean.log", "x86"), str(path))
        self.assertEqual(status, 0)
        lines = output.splitlines()
        self.assertEqual(lines[-3], "NOTE: host: " + note)
        self.assertEqual(lines[-2], "host checks: 4 passed, 0 failed, 2 skipped")
        self.assertEqual(lines[-1], "9 passed, 0 failed, 3 skipped")

    def test_notes_must_be_strings(self):
        path = Path(self.tmp.name, "host.json")
        path.write_text(json.dumps({"run": "host", "ok": True, "suites": [], "problems": [],
                                    "notes": [3]}))
        status, output = run_main("total", str(path))
        self.assertEqual(status, 1)
        self.assertIn("'notes' is not a list of strings", output)


class ScriptTest(unittest.TestCase):
    """results.py works as an executable script."""

    def test_executable(self):
        with tempfile.TemporaryDirectory() as tmp:
            parsed = subprocess.run(
                [str(HARNESS / "results.py"), "parse", "--log", str(DATA / "warning.log"),
                 "--run", "x86", "--json", f"{tmp}/x86.json"],
                capture_output=True, text=True, check=False,
            )
            total = subprocess.run(
                [str(HARNESS / "results.py"), "total", f"{tmp}/x86.json"],
                capture_output=True, text=True, check=False,
            )
        self.assertEqual(parsed.returncode, 1, parsed.stderr)
        self.assertIn("FAIL: x86: kernel splat at line 10", parsed.stdout)
        self.assertEqual(total.returncode, 1, total.stderr)
        self.assertEqual(total.stdout.splitlines()[-1], "1 passed, 1 failed, 0 skipped")


if __name__ == "__main__":
    unittest.main()
