"""Host tests of bench/report.py on small raw directories built in a tempdir.

    python3 -m unittest discover -s harness/tests -v

The chart test needs matplotlib and is skipped without it.
"""

import importlib.util
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
REPORT = ROOT / "bench" / "report.py"
sys.path.insert(0, str(REPORT.parent))

import report  # noqa: E402  (needs the sys.path entry above)

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

KIB = 1 << 10
MIB = 1 << 20

# Per-round medians (rounds 0, 1, 2, 3) of api/snapshot/4k/64K.  Round 0 is
# the warm-up: counting it would move ours' median from 140 to 220.
SNAPSHOT_OURS = (9999, 100, 300, 140)
SNAPSHOT_REF = (9999, 200, 200, 200)


def measurement(layer, workload, mem, size, median_ns, **extra):
    """A measurement record with plausible min/max/pages."""
    pages = size // 4096
    record = {"layer": layer, "workload": workload, "mem": mem, "size": size, "reps": 16,
              "median_ns": median_ns, "min_ns": median_ns, "max_ns": median_ns,
              "pages": pages, "expected": pages, "ok": True}
    record.update(extra)
    return record


def metric(name, value, **extra):
    """A metric record of the mem layer."""
    return dict({"layer": "mem", "metric": name, "value": value}, **extra)


def standard_round(kernel, number):
    """The records one boot of a kernel prints in the standard fixture."""
    ours = kernel == "ours"
    snapshot = (SNAPSHOT_OURS if ours else SNAPSHOT_REF)[number]
    records = [
        {"layer": "info", "cpus": 2, "threads": 2, "page_size": 4096,
         "thp_pmd_bytes": 2 * MIB},
        measurement("api", "snapshot", "4k", 64 * KIB, snapshot),
        measurement("api", "snapshot", "4k", 2 * MIB, 1000 if ours else 2000),
        measurement("api", "fault", "4k", 64 * KIB, 500),
        measurement("e2e", "migrate", "thp", 2 * MIB, 3000 if ours else 1000),
        measurement("base", "memcpy", "-", 64 * KIB, (50, 50, 70, 60)[number]
                    if ours else 80),
        metric("meta_bytes_per_gib", (8 if ours else 16) * MIB),
        metric("peak_to_dev", 2 * MIB, mem="4k", size=2 * MIB),
        metric("peak_to_dev", (4 if ours else 8) * MIB, mem="4k", size=512 * MIB),
    ]
    # A workload measured at a single size; the reference fails it in round 2.
    if not ours and number == 2:
        records.append(measurement("api", "exclusive", "4k", 64 * KIB, 0, ok=False,
                                   pages=0, error="Device or resource busy"))
    else:
        records.append(measurement("api", "exclusive", "4k", 64 * KIB, 400))
    return records


def write_raw(directory, mode, number, kernel, records, extra_lines=()):
    """Write one console log with some noise around the BENCH lines."""
    lines = ["[    0.000000] Linux version 6.12", "hmm_bench: starting"]
    lines += ["BENCH " + json.dumps(record) for record in records]
    lines += list(extra_lines) + ["hmm_bench: done"]
    path = Path(directory) / f"{mode}-r{number}-{kernel}.out"
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def write_standard(directory, rounds=3, modes=("tcg",)):
    """The standard fixture: warm-up round 0 plus `rounds` counted rounds."""
    for mode in modes:
        for number in range(rounds + 1):
            for kernel in report.KERNELS:
                write_raw(directory, mode, number, kernel, standard_round(kernel, number))


class ReportRun:
    """The outcome of one run of report.py."""

    def __init__(self, res, out_dir):
        self.status = res.returncode
        self.stdout = res.stdout
        self.stderr = res.stderr
        json_path = Path(out_dir) / "out.json"
        self.json = json.loads(json_path.read_text()) if json_path.exists() else None
        md_path = Path(out_dir) / "out.md"
        self.markdown = md_path.read_text() if md_path.exists() else None

    def row(self, layer, workload, mem, size, mode="tcg"):
        """The JSON row of a key."""
        (found,) = [row for row in self.json["modes"][mode]["rows"]
                    if (row["layer"], row["workload"], row["mem"], row["size"])
                    == (layer, workload, mem, size)]
        return found

    def text_line(self, *words):
        """The one stdout line whose first cells are the given words."""
        (found,) = [line for line in self.stdout.splitlines() if line.split()[:len(words)]
                    == list(words)]
        return found


class ReportTestCase(unittest.TestCase):
    """A raw directory and an output directory per test."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.raw = Path(self.tmp.name) / "raw"
        self.out = Path(self.tmp.name) / "out"
        self.raw.mkdir()
        self.out.mkdir()

    def tearDown(self):
        self.tmp.cleanup()

    def run_report(self, *extra):
        """Run report.py on self.raw, writing out.json and out.md."""
        res = subprocess.run(
            [sys.executable, str(REPORT), str(self.raw), "--json", str(self.out / "out.json"),
             "--markdown", str(self.out / "out.md"), *extra],
            capture_output=True, text=True)
        return ReportRun(res, self.out)


class AggregationTest(ReportTestCase):
    """The standard fixture: three counted rounds plus the warm-up."""

    def setUp(self):
        super().setUp()
        write_standard(self.raw)
        self.run = self.run_report()
        self.assertEqual(self.run.status, 0, self.run.stderr)

    def test_warm_up_is_not_counted(self):
        self.assertEqual(self.run.json["modes"]["tcg"]["rounds"],
                         {"ours": 3, "reference": 3})
        ours = self.run.row("api", "snapshot", "4k", 64 * KIB)["ours"]
        self.assertEqual(ours["n"], 3)
        self.assertIn("(3 rounds each, medians of per-round medians)", self.run.stdout)

    def test_median_of_medians_and_spread(self):
        row = self.run.row("api", "snapshot", "4k", 64 * KIB)
        self.assertEqual(row["ours"]["median_ns"], 140)
        self.assertAlmostEqual(row["ours"]["spread_pct"], (300 - 100) / 140 * 100)
        self.assertEqual(row["reference"]["median_ns"], 200)
        self.assertEqual(row["reference"]["spread_pct"], 0)
        self.assertEqual(self.run.text_line("api", "snapshot", "4k", "64K").split()[4:9],
                         ["140ns", "142.9", "200ns", "0.0", "0.70x"])

    def test_ratio(self):
        self.assertAlmostEqual(self.run.row("api", "snapshot", "4k", 64 * KIB)["ratio"], 0.7)
        self.assertAlmostEqual(self.run.row("e2e", "migrate", "thp", 2 * MIB)["ratio"], 3.0)
        self.assertIn("3.00x", self.run.text_line("e2e", "migrate", "thp", "2M"))

    def test_rounds_faster_pairs_each_round_with_the_same_round(self):
        # ours 100, 300, 140 against 200 each round: faster in rounds 1 and 3
        self.assertEqual(self.run.row("api", "snapshot", "4k", 64 * KIB)["rounds_faster"],
                         [2, 3])
        # equal times are not faster
        self.assertEqual(self.run.row("api", "fault", "4k", 64 * KIB)["rounds_faster"], [0, 3])
        self.assertEqual(self.run.row("e2e", "migrate", "thp", 2 * MIB)["rounds_faster"],
                         [0, 3])

    def test_memcpy_column_is_ours_of_the_same_size(self):
        self.assertEqual(self.run.row("api", "snapshot", "4k", 64 * KIB)["memcpy_ns"], 60)
        self.assertIsNone(self.run.row("api", "snapshot", "4k", 2 * MIB)["memcpy_ns"])
        self.assertTrue(self.run.text_line("api", "fault", "4k", "64K").endswith("60ns"))

    def test_error_propagates_into_the_note(self):
        row = self.run.row("api", "exclusive", "4k", 64 * KIB)
        self.assertTrue(row["ours"]["ok"])
        self.assertFalse(row["reference"]["ok"])
        self.assertEqual(row["reference"]["error"], "Device or resource busy")
        self.assertEqual(row["reference"]["pages"], 0)
        self.assertEqual(row["reference"]["expected"], 16)
        self.assertTrue(self.run.text_line("api", "exclusive").endswith(
            "ref: error: Device or resource busy"))

    def test_rows_are_sorted(self):
        keys = [(row["layer"], row["workload"], row["size"])
                for row in self.run.json["modes"]["tcg"]["rows"]]
        self.assertEqual(keys, [("api", "snapshot", 64 * KIB), ("api", "snapshot", 2 * MIB),
                                ("api", "fault", 64 * KIB), ("api", "exclusive", 64 * KIB),
                                ("e2e", "migrate", 2 * MIB), ("base", "memcpy", 64 * KIB)])

    def test_metrics(self):
        metrics = self.run.json["modes"]["tcg"]["metrics"]
        (meta,) = [m for m in metrics if m["metric"] == "meta_bytes_per_gib"]
        self.assertEqual(meta["ours"], {"value": 8 * MIB, "n": 3})
        self.assertAlmostEqual(meta["ratio"], 0.5)
        self.assertIn("meta bytes per GiB of device memory: ours 8.00 MiB, "
                      "reference 16.00 MiB, ratio 0.50x", self.run.stdout)
        self.assertIn("peak during TO_DEV (4k, 512M): ours 4.00 MiB", self.run.stdout)
        self.assertNotIn("peak during TO_DEV (4k, 2M)", self.run.stdout)

    def test_summary(self):
        summary = self.run.json["modes"]["tcg"]["summary"]
        # exclusive is left out: the reference failed it.
        self.assertEqual(summary["compared"], 5)
        self.assertAlmostEqual(summary["geomean"]["api"]["geomean_ratio"],
                               (0.7 * 0.5 * 1.0) ** (1 / 3))
        self.assertEqual(summary["slower"], 1)  # e2e migrate
        self.assertEqual(summary["faster"], 3)  # snapshot x2, memcpy
        self.assertIn("summary tcg:", self.run.stdout)

    def test_no_warnings_on_complete_data(self):
        self.assertEqual(self.run.stderr, "")

    def test_markdown_contains_the_rows(self):
        self.assertIn("| api | snapshot | 4k | 64K | 140ns | 142.9 | 200ns | 0.0 | 0.70x "
                      "| 2/3 | 60ns |  |", self.run.markdown)
        self.assertIn("| e2e | migrate | thp | 2M | 3.00us |", self.run.markdown)
        self.assertIn("ref: error: Device or resource busy |", self.run.markdown)

    def test_json_is_deterministic(self):
        first = (self.out / "out.json").read_text()
        self.assertEqual(self.run_report().status, 0)
        self.assertEqual((self.out / "out.json").read_text(), first)


class InputTest(ReportTestCase):
    """Incomplete, partial and broken raw directories."""

    def test_pages_short_of_expected_in_the_note(self):
        write_standard(self.raw, rounds=1)
        records = standard_round("ours", 1)
        records[1] = measurement("api", "snapshot", "4k", 64 * KIB, 100, ok=False, pages=12)
        write_raw(self.raw, "tcg", 1, "ours", records)
        run = self.run_report()
        self.assertEqual(run.status, 0, run.stderr)
        self.assertTrue(run.text_line("api", "snapshot", "4k", "64K").endswith(
            "ours: 12/16 pages"))

    def test_missing_key_is_a_warning(self):
        write_standard(self.raw)
        records = [r for r in standard_round("ours", 2) if r.get("workload") != "fault"]
        write_raw(self.raw, "tcg", 2, "ours", records)
        run = self.run_report()
        self.assertEqual(run.status, 0, run.stderr)
        self.assertIn("warning: mode tcg: ours round 2: missing api/fault/4k/64K", run.stderr)
        self.assertEqual(run.row("api", "fault", "4k", 64 * KIB)["ours"]["n"], 2)

    def test_memcpy_falls_back_to_the_reference(self):
        write_standard(self.raw)
        for number in range(4):
            records = [r for r in standard_round("ours", number) if r.get("layer") != "base"]
            write_raw(self.raw, "tcg", number, "ours", records)
        run = self.run_report()
        self.assertEqual(run.status, 0, run.stderr)
        self.assertEqual(run.row("api", "snapshot", "4k", 64 * KIB)["memcpy_ns"], 80)
        self.assertIn("measured by reference only", run.stderr)

    def test_failed_metric_is_not_counted(self):
        write_standard(self.raw)
        records = [r for r in standard_round("ours", 2) if r.get("size") != 512 * MIB]
        records.append(metric("peak_to_dev", 0, mem="4k", size=512 * MIB,
                              error="Cannot allocate memory"))
        write_raw(self.raw, "tcg", 2, "ours", records)
        run = self.run_report()
        self.assertEqual(run.status, 0, run.stderr)
        self.assertIn("metric peak_to_dev/4k/512M failed (Cannot allocate memory)",
                      run.stderr)
        (peak,) = [m for m in run.json["modes"]["tcg"]["metrics"]
                   if m["metric"] == "peak_to_dev" and m["size"] == 512 * MIB]
        self.assertEqual(peak["ours"], {"value": 4 * MIB, "n": 2})

    def test_malformed_bench_line_is_an_error(self):
        write_standard(self.raw)
        path = write_raw(self.raw, "tcg", 2, "reference", standard_round("reference", 2),
                         extra_lines=['BENCH {"layer": "api", "workload"'])
        run = self.run_report()
        self.assertEqual(run.status, 1)
        line = 3 + len(standard_round("reference", 2))
        self.assertIn(f"{path}:{line}: malformed BENCH line", run.stderr)

    def test_no_counted_rounds_is_an_error(self):
        write_standard(self.raw, rounds=0)
        run = self.run_report()
        self.assertEqual(run.status, 1)
        self.assertIn("no counted rounds", run.stderr)
        self.assertIsNone(run.json)

    def test_one_kernel_without_counted_rounds_is_an_error(self):
        write_standard(self.raw)
        for number in range(1, 4):
            (self.raw / f"tcg-r{number}-reference.out").unlink()
        run = self.run_report()
        self.assertEqual(run.status, 1)
        self.assertIn("mode tcg: reference has no counted rounds", run.stderr)

    def test_min_rounds(self):
        write_standard(self.raw)
        self.assertEqual(self.run_report("--min-rounds", "3").status, 0)
        run = self.run_report("--min-rounds", "4")
        self.assertEqual(run.status, 1)
        self.assertIn("fewer than --min-rounds 4", run.stderr)

    def test_two_modes_tcg_first(self):
        write_standard(self.raw, rounds=2, modes=("icount", "tcg"))
        run = self.run_report()
        self.assertEqual(run.status, 0, run.stderr)
        self.assertEqual(list(run.json["modes"]), ["icount", "tcg"])  # sorted keys
        self.assertLess(run.stdout.index("== mode: tcg (2 rounds each"),
                        run.stdout.index("== mode: icount (2 rounds each"))
        self.assertLess(run.markdown.index("mode: tcg"), run.markdown.index("mode: icount"))


class FormatTest(unittest.TestCase):
    """The human formats of times and sizes."""

    def test_times(self):
        cases = {123: "123ns", 123.5: "124ns", 1234: "1.23us", 12345: "12.3us",
                 999.7: "1.00us", 999_999: "1.00ms", 12_345_678: "12.3ms",
                 2.5e9: "2.50s", 1234e9: "1234s", None: "-"}
        for ns, text in cases.items():
            self.assertEqual(report.format_time(ns), text, ns)

    def test_sizes(self):
        cases = {4096: "4K", 65536: "64K", 2 * MIB: "2M", 512 * MIB: "512M",
                 1 << 30: "1G", 1536 * KIB: "1.50M", 700: "700"}
        for size, text in cases.items():
            self.assertEqual(report.format_size(size), text, size)


@unittest.skipUnless(HAVE_MATPLOTLIB, "matplotlib is not installed")
class ChartTest(ReportTestCase):
    """The PNG chart, with a single-size workload and a failing kernel."""

    def test_png_is_written(self):
        write_standard(self.raw)
        png = self.out / "chart.png"
        run = self.run_report("--png", str(png))
        self.assertEqual(run.status, 0, run.stderr)
        self.assertEqual(png.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_png_with_nothing_comparable(self):
        for number in range(2):
            write_raw(self.raw, "icount", number, "ours",
                      [measurement("api", "snapshot", "4k", 64 * KIB, 100)])
            write_raw(self.raw, "icount", number, "reference",
                      [measurement("api", "snapshot", "4k", 64 * KIB, 0, ok=False,
                                   error="Invalid argument")])
        png = self.out / "chart.png"
        run = self.run_report("--png", str(png))
        self.assertEqual(run.status, 0, run.stderr)
        self.assertEqual(png.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
