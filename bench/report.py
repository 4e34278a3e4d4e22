#!/usr/bin/env python3
"""Compare benchmark runs of our HMM kernel against the reference kernel.

    report.py RAWDIR --json OUT.json [--png OUT.png] [--markdown OUT.md]
              [--min-rounds N]

RAWDIR holds one console log per guest boot, named
`{mode}-r{round}-{kernel}.out` (mode tcg or icount, kernel ours or
reference).  Round 0 is the warm-up and is never counted.  Only lines that
start with `BENCH ` matter; each carries one JSON record:

  * `{"layer": "info", ...}`: the guest's configuration;
  * `{"layer": "api"|"e2e"|"base", "workload": ..., "mem": ..., "size": ...,
    "median_ns": ..., "ok": ..., ...}`: one measurement;
  * `{"layer": "mem", "metric": ..., "value": ...}`: one memory metric.

For every (mode, layer, workload, mem, size) and kernel, the figure is the
median of the per-round medians, with its spread ((max - min) / median of
the per-round medians, in percent).  The ratio is ours / reference.  The
report is printed as one table per mode and written as JSON, and optionally
as a markdown table and a PNG chart.  Exit status 1 on unreadable input or
too few counted rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("tcg", "icount")
KERNELS = ("ours", "reference")
KERNEL_SHORT = {"ours": "ours", "reference": "ref"}
LAYERS = ("api", "e2e", "base")
FILE_RE = re.compile(r"^(?P<mode>[a-z]+)-r(?P<round>\d+)-(?P<kernel>[a-z]+)\.out$")
BENCH_PREFIX = "BENCH "
MEASUREMENT_FIELDS = ("workload", "mem", "size", "median_ns")
# Ratios further than this from 1.0 count as ours slower / faster.
SLOWER, FASTER = 1.05, 0.95
MIB = 1 << 20
TIME_UNITS = (("ns", 1), ("us", 1e3), ("ms", 1e6), ("s", 1e9))
SIZE_UNITS = (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10))
METRIC_TITLES = {
    "meta_bytes_per_gib": "meta bytes per GiB of device memory",
    "peak_to_dev": "peak during TO_DEV",
}
# Chart layout.
CHART_WIDTH_IN = 16
CHART_DPI = 100
CHART_COLUMNS = 4
PANEL_HEIGHT_IN = 3.4
RATIO_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10)
MEM_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


class ReportError(Exception):
    """Input that cannot be reported on; the message says why."""


# --------------------------------------------------------------------------
# Reading the raw files
# --------------------------------------------------------------------------


@dataclass
class Round:
    """The records of one guest boot."""

    measurements: dict[tuple, dict] = field(default_factory=dict)
    metrics: dict[tuple, float] = field(default_factory=dict)
    info: dict | None = None


@dataclass
class RawData:
    """Every counted round, by mode and kernel, plus what was seen on the way."""

    # runs[mode][kernel][round number] -> Round
    runs: dict[str, dict[str, dict[int, Round]]] = field(default_factory=dict)
    # workload -> index of its first appearance, for sorting
    workload_order: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def parse_bench_lines(path: Path) -> list[tuple[int, dict]]:
    """Return (line number, record) for every BENCH line of a console log."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    records = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r\n\t ")
        if not line.startswith(BENCH_PREFIX):
            continue
        try:
            record = json.loads(line[len(BENCH_PREFIX):])
        except json.JSONDecodeError as err:
            raise ReportError(f"{path}:{number}: malformed BENCH line ({err.msg}): "
                              f"{line[:120]}") from None
        if not isinstance(record, dict) or "layer" not in record:
            raise ReportError(f"{path}:{number}: BENCH record is not an object "
                              f"with a layer: {line[:120]}")
        records.append((number, record))
    return records


def is_number(value) -> bool:
    """True for an int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def measurement_key(record: dict) -> tuple:
    """The (layer, workload, mem, size) of a measurement record."""
    return (record["layer"], record["workload"], record["mem"], record["size"])


def metric_key(record: dict) -> tuple:
    """The (metric, mem, size) of a metric record; mem and size may be None."""
    return (record["metric"], record.get("mem"), record.get("size"))


def check_record(path: Path, number: int, record: dict) -> None:
    """Raise ReportError if a measurement or metric record lacks a field."""
    where = f"{path}:{number}"
    if record["layer"] == "info":
        return
    if record["layer"] == "mem":
        if "metric" not in record or not is_number(record.get("value")):
            raise ReportError(f"{where}: metric record needs 'metric' and a numeric 'value'")
        return
    missing = [name for name in MEASUREMENT_FIELDS if name not in record]
    if missing:
        raise ReportError(f"{where}: measurement record lacks {', '.join(missing)}")
    if not is_number(record["median_ns"]):
        raise ReportError(f"{where}: median_ns is not a number")


def read_round(path: Path, data: RawData) -> Round:
    """Read one console log into a Round, noting workload order and duplicates."""
    result = Round()
    for number, record in parse_bench_lines(path):
        check_record(path, number, record)
        layer = record["layer"]
        if layer == "info":
            result.info = result.info or record
        elif layer == "mem":
            key = metric_key(record)
            if record.get("error") or record.get("ok") is False:
                data.warnings.append(f"{path}:{number}: metric {format_metric_key(key)} "
                                     f"failed ({record.get('error', 'not ok')}); "
                                     "not counted")
            elif key in result.metrics:
                data.warnings.append(f"{path}:{number}: duplicate metric {key}; first kept")
            else:
                result.metrics[key] = record["value"]
        else:
            key = measurement_key(record)
            data.workload_order.setdefault(record["workload"], len(data.workload_order))
            if key in result.measurements:
                data.warnings.append(f"{path}:{number}: duplicate {format_key(key)}; "
                                     "first kept")
            else:
                result.measurements[key] = record
    return result


def raw_files(rawdir: Path) -> tuple[list[tuple[str, int, str, Path]], list[str]]:
    """The (mode, round, kernel, path) of the raw files, in reading order,
    and a warning for every other *.out file."""
    if not rawdir.is_dir():
        raise ReportError(f"{rawdir}: not a directory")
    found, ignored = [], []
    for path in sorted(rawdir.iterdir()):
        match = FILE_RE.match(path.name)
        if not match or match["mode"] not in MODES or match["kernel"] not in KERNELS:
            if path.suffix == ".out":
                ignored.append(f"{path}: not a {{mode}}-r{{round}}-{{kernel}}.out name; "
                               "ignored")
            continue
        found.append((match["mode"], int(match["round"]), match["kernel"], path))
    found.sort(key=lambda item: (item[1], MODES.index(item[0]), KERNELS.index(item[2])))
    return found, ignored


def load_rawdir(rawdir: Path) -> RawData:
    """Read every counted raw file of a directory (warm-ups are only listed)."""
    files, ignored = raw_files(rawdir)
    data = RawData(warnings=ignored)
    if not files:
        raise ReportError(f"{rawdir}: no {{mode}}-r{{round}}-{{kernel}}.out files")
    for mode, number, kernel, path in files:
        data.runs.setdefault(mode, {}).setdefault(kernel, {})
        if number == 0:
            continue
        result = read_round(path, data)
        if not result.measurements and not result.metrics:
            data.warnings.append(f"{path}: no BENCH records; round not counted")
            continue
        data.runs[mode][kernel][number] = result
    return data


def check_rounds(data: RawData, min_rounds: int) -> None:
    """Raise ReportError if a kernel of a mode has too few counted rounds."""
    for mode, kernels in data.runs.items():
        for kernel in KERNELS:
            count = len(kernels.get(kernel, {}))
            if count < 1:
                raise ReportError(f"mode {mode}: {kernel} has no counted rounds "
                                  "(round 0 is the warm-up)")
            if count < min_rounds:
                raise ReportError(f"mode {mode}: {kernel} has {count} counted rounds, "
                                  f"fewer than --min-rounds {min_rounds}")


def completeness_warnings(mode: str, kernel: str, rounds: dict[int, Round]) -> list[str]:
    """Keys a kernel reported in some counted round but not in all of them."""
    every = set().union(*(r.measurements for r in rounds.values()))
    every_metric = set().union(*(r.metrics for r in rounds.values()))
    warnings = []
    for number in sorted(rounds):
        result = rounds[number]
        for key in sorted(every - result.measurements.keys(), key=sort_key_plain):
            warnings.append(f"mode {mode}: {kernel} round {number}: missing "
                            f"{format_key(key)}")
        for key in sorted(every_metric - result.metrics.keys(), key=metric_sort_key):
            warnings.append(f"mode {mode}: {kernel} round {number}: missing metric "
                            f"{format_metric_key(key)}")
    return warnings


# --------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------


def spread_pct(values: list[float], middle: float) -> float | None:
    """(max - min) / middle in percent, None if middle is not positive."""
    if middle <= 0:
        return None
    return (max(values) - min(values)) / middle * 100.0


def kernel_figure(records: list[dict], numbers: list[int]) -> dict:
    """The figure of one key for one kernel, from its records in round order
    (@numbers: their round numbers)."""
    medians = [record["median_ns"] for record in records]
    middle = statistics.median(medians)
    figure = {
        "median_ns": middle,
        "spread_pct": spread_pct(medians, middle),
        "n": len(records),
        "round_medians": {str(n): m for n, m in zip(numbers, medians)},
        "ok": all(record.get("ok", True) for record in records),
    }
    for name in ("pages", "expected", "thp_bytes"):
        values = [record[name] for record in records if is_number(record.get(name))]
        if values:
            figure[name] = min(values)
    errors = [record["error"] for record in records if record.get("error")]
    if errors:
        figure["error"] = errors[0]
    return figure


def kernel_figures(rounds: dict[int, Round]) -> dict[tuple, dict]:
    """Figures of every key a kernel measured, over its counted rounds."""
    by_key: dict[tuple, list[tuple[int, dict]]] = {}
    for number in sorted(rounds):
        for key, record in rounds[number].measurements.items():
            by_key.setdefault(key, []).append((number, record))
    return {key: kernel_figure([r for _, r in pairs], [n for n, _ in pairs])
            for key, pairs in by_key.items()}


def rounds_faster(ours: dict | None, reference: dict | None) -> tuple[int, int] | None:
    """(rounds in which ours was faster, rounds both measured with a time),
    comparing each round's ours with the same round's reference."""
    if not ours or not reference:
        return None
    mine, theirs = ours["round_medians"], reference["round_medians"]
    paired = [n for n in mine if n in theirs and mine[n] > 0 and theirs[n] > 0]
    if not paired:
        return None
    return sum(1 for n in paired if mine[n] < theirs[n]), len(paired)


def ratio_of(ours: dict | None, reference: dict | None) -> float | None:
    """ours / reference of two figures, None unless both exist and are positive."""
    if not ours or not reference:
        return None
    if ours["median_ns"] <= 0 or reference["median_ns"] <= 0:
        return None
    return ours["median_ns"] / reference["median_ns"]


def memcpy_baselines(figures: dict[str, dict[tuple, dict]]) -> dict[int, float]:
    """size -> the base/memcpy figure, from ours, falling back to reference.

    A mem of "-" is preferred if memcpy was measured for several mem kinds.
    """
    baselines: dict[int, float] = {}
    for kernel in KERNELS:  # ours first, so it wins
        for key in sorted(figures[kernel], key=lambda k: (k[2] != "-", str(k[2]))):
            layer, workload, _mem, size = key
            median = figures[kernel][key]["median_ns"]
            if layer == "base" and workload == "memcpy" and median > 0:
                baselines.setdefault(size, median)
    return baselines


def build_rows(figures: dict[str, dict[tuple, dict]], order: dict[str, int]) -> list[dict]:
    """One row per key measured by either kernel, sorted for the report."""
    baselines = memcpy_baselines(figures)
    keys = set(figures["ours"]) | set(figures["reference"])
    rows = []
    for key in sorted(keys, key=lambda k: row_sort_key(k, order)):
        layer, workload, mem, size = key
        ours, reference = figures["ours"].get(key), figures["reference"].get(key)
        rows.append({
            "layer": layer, "workload": workload, "mem": mem, "size": size,
            "ours": ours, "reference": reference,
            "ratio": ratio_of(ours, reference),
            "rounds_faster": rounds_faster(ours, reference),
            "memcpy_ns": baselines.get(size),
        })
    return rows


def build_metrics(rounds: dict[str, dict[int, Round]]) -> list[dict]:
    """Median of every metric over counted rounds, per kernel, with the ratio."""
    values: dict[tuple, dict[str, list[float]]] = {}
    for kernel in KERNELS:
        for result in rounds[kernel].values():
            for key, value in result.metrics.items():
                values.setdefault(key, {}).setdefault(kernel, []).append(value)
    metrics = []
    for key in sorted(values, key=metric_sort_key):
        metric, mem, size = key
        entry = {"metric": metric}
        if mem is not None:
            entry["mem"] = mem
        if size is not None:
            entry["size"] = size
        for kernel in KERNELS:
            found = values[key].get(kernel)
            entry[kernel] = ({"value": statistics.median(found), "n": len(found)}
                             if found else None)
        ours, reference = entry["ours"], entry["reference"]
        entry["ratio"] = (ours["value"] / reference["value"]
                          if ours and reference and reference["value"] > 0 else None)
        metrics.append(entry)
    return metrics


def both_ok(row: dict) -> bool:
    """True if both kernels measured the row without errors and have a ratio."""
    return (row["ratio"] is not None and row["ours"]["ok"] and row["reference"]["ok"])


def geomean(values: list[float]) -> float:
    """Geometric mean of positive numbers."""
    return math.exp(statistics.fmean(math.log(value) for value in values))


def build_summary(rows: list[dict]) -> dict:
    """Geometric mean ratio per layer and the slower / faster counts."""
    compared = [row for row in rows if both_ok(row)]
    per_layer = {}
    for layer in sorted({row["layer"] for row in compared}, key=layer_rank):
        ratios = [row["ratio"] for row in compared if row["layer"] == layer]
        per_layer[layer] = {"geomean_ratio": geomean(ratios), "rows": len(ratios)}
    return {
        "geomean": per_layer,
        "compared": len(compared),
        "slower": sum(1 for row in compared if row["ratio"] > SLOWER),
        "faster": sum(1 for row in compared if row["ratio"] < FASTER),
    }


def info_warnings(mode: str, rounds: dict[str, dict[int, Round]]) -> tuple[dict, list[str]]:
    """The first info record of each kernel, and a warning if they differ."""
    info = {}
    for kernel in KERNELS:
        for number in sorted(rounds[kernel]):
            if rounds[kernel][number].info:
                record = dict(rounds[kernel][number].info)
                record.pop("layer", None)
                info[kernel] = record
                break
    warnings = []
    if len(info) == 2 and info["ours"] != info["reference"]:
        warnings.append(f"mode {mode}: the kernels' info records differ: "
                        f"ours {info['ours']}, reference {info['reference']}")
    return info, warnings


def one_sided_warnings(mode: str, rows: list[dict]) -> list[str]:
    """Keys that only one kernel measured."""
    warnings = []
    for row in rows:
        for kernel, other in (("ours", "reference"), ("reference", "ours")):
            if row[kernel] is None:
                warnings.append(f"mode {mode}: {format_key(row_key(row))} measured "
                                f"by {other} only")
    return warnings


def build_mode(mode: str, rounds: dict[str, dict[int, Round]],
               order: dict[str, int]) -> tuple[dict, list[str]]:
    """The JSON object of one mode, and the warnings about its data."""
    warnings = []
    for kernel in KERNELS:
        warnings += completeness_warnings(mode, kernel, rounds[kernel])
    figures = {kernel: kernel_figures(rounds[kernel]) for kernel in KERNELS}
    rows = build_rows(figures, order)
    warnings += one_sided_warnings(mode, rows)
    info, more = info_warnings(mode, rounds)
    warnings += more
    report = {
        "rounds": {kernel: len(rounds[kernel]) for kernel in KERNELS},
        "rows": rows,
        "metrics": build_metrics(rounds),
        "summary": build_summary(rows),
        "info": info,
    }
    return report, warnings


def build_report(data: RawData) -> tuple[dict, list[str]]:
    """The whole report, modes in MODES order, and every warning."""
    modes = {}
    warnings = list(data.warnings)
    for mode in MODES:
        if mode in data.runs:
            modes[mode], more = build_mode(mode, data.runs[mode], data.workload_order)
            warnings += more
    return {"modes": modes}, warnings


# --------------------------------------------------------------------------
# Keys and sorting
# --------------------------------------------------------------------------


def layer_rank(layer: str) -> tuple:
    """Sort rank of a layer: api, e2e, base, then any other alphabetically."""
    return (LAYERS.index(layer), "") if layer in LAYERS else (len(LAYERS), layer)


def row_sort_key(key: tuple, order: dict[str, int]) -> tuple:
    """Layer, workload in first-seen order, mem, size."""
    layer, workload, mem, size = key
    return (layer_rank(layer), order.get(workload, len(order)), workload, str(mem), size)


def sort_key_plain(key: tuple) -> tuple:
    """A total order on measurement keys, for stable warnings."""
    layer, workload, mem, size = key
    return (layer_rank(layer), str(workload), str(mem), size)


def metric_sort_key(key: tuple) -> tuple:
    """A total order on metric keys (mem and size may be None)."""
    metric, mem, size = key
    return (metric, "" if mem is None else str(mem), -1 if size is None else size)


def row_key(row: dict) -> tuple:
    """The (layer, workload, mem, size) of a row."""
    return (row["layer"], row["workload"], row["mem"], row["size"])


def format_key(key: tuple) -> str:
    """layer/workload/mem/size with a human size."""
    layer, workload, mem, size = key
    return f"{layer}/{workload}/{mem}/{format_size(size)}"


def format_metric_key(key: tuple) -> str:
    """metric[/mem][/size] with a human size."""
    metric, mem, size = key
    parts = [metric] + ([str(mem)] if mem is not None else [])
    parts += [format_size(size)] if size is not None else []
    return "/".join(parts)


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def three_digits(value: float) -> str:
    """A number below 1000 with three significant digits (fewer below 1)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_time(ns: float | None) -> str:
    """Nanoseconds in the largest unit that keeps the value >= 1: 1.23us."""
    if ns is None:
        return "-"
    if ns < 1000 and float(ns).is_integer():
        return f"{int(ns)}ns"
    for unit, scale in TIME_UNITS:
        text = three_digits(ns / scale)
        if float(text) < 1000 or unit == TIME_UNITS[-1][0]:
            return text + unit
    raise AssertionError("unreachable")


def format_size(size) -> str:
    """Bytes as 64K, 2M, 512M, 1G (exact multiples) or 1.50M, 700 (others)."""
    if not is_number(size):
        return str(size)
    for unit, scale in SIZE_UNITS:
        if size >= scale:
            if size % scale == 0:
                return f"{size // scale}{unit}"
            return three_digits(size / scale) + unit
    return str(size)


def format_pct(value: float | None) -> str:
    """A spread in percent with one decimal, or '-'."""
    return "-" if value is None else f"{value:.1f}"


def format_ratio(value: float | None) -> str:
    """0.93x, or '-'."""
    return "-" if value is None else f"{value:.2f}x"


def format_mib(value: float | None) -> str:
    """Bytes in MiB with two decimals, or '-'."""
    return "-" if value is None else f"{value / MIB:.2f} MiB"


def kernel_note(kernel: str, figure: dict | None) -> str | None:
    """Why a kernel's figure is not to be trusted, or None."""
    name = KERNEL_SHORT[kernel]
    if figure is None:
        return f"{name}: not measured"
    if figure["ok"]:
        return None
    if figure.get("error"):
        return f"{name}: error: {figure['error']}"
    if "pages" in figure and "expected" in figure and figure["pages"] != figure["expected"]:
        return f"{name}: {figure['pages']}/{figure['expected']} pages"
    return f"{name}: not ok"


def row_note(row: dict) -> str:
    """The note column: the notes of both kernels joined with '; '."""
    notes = [kernel_note(kernel, row[kernel]) for kernel in KERNELS]
    return "; ".join(note for note in notes if note)


def figure_cell(figure: dict | None, name: str) -> str:
    """A time or spread cell of one kernel's figure."""
    if figure is None:
        return "-"
    if name == "median_ns":
        return format_time(figure["median_ns"])
    return format_pct(figure["spread_pct"])


TABLE_HEADER = ("layer", "workload", "mem", "size", "ours", "±%", "reference", "±%",
                "ratio", "faster", "memcpy", "note")
RIGHT_ALIGNED = frozenset(range(3, 11))


def format_rounds(value: tuple[int, int] | None) -> str:
    """`3/5`: ours was faster in 3 of the 5 rounds both measured."""
    return "-" if value is None else f"{value[0]}/{value[1]}"


def table_cells(rows: list[dict]) -> list[list[str]]:
    """The table's cells, one list per row, without the header."""
    return [[row["layer"], row["workload"], str(row["mem"]), format_size(row["size"]),
             figure_cell(row["ours"], "median_ns"), figure_cell(row["ours"], "spread"),
             figure_cell(row["reference"], "median_ns"),
             figure_cell(row["reference"], "spread"),
             format_ratio(row["ratio"]), format_rounds(row["rounds_faster"]),
             format_time(row["memcpy_ns"]), row_note(row)]
            for row in rows]


def render_text_table(cells: list[list[str]]) -> list[str]:
    """Plain-text table lines with aligned columns."""
    table = [list(TABLE_HEADER)] + cells
    widths = [max(len(line[col]) for line in table) for col in range(len(TABLE_HEADER))]
    lines = []
    for line in table:
        parts = [cell.rjust(width) if col in RIGHT_ALIGNED else cell.ljust(width)
                 for col, (cell, width) in enumerate(zip(line, widths))]
        lines.append("  ".join(parts).rstrip())
    return lines


def render_markdown_table(cells: list[list[str]]) -> list[str]:
    """A GitHub markdown table."""
    align = ["---:" if col in RIGHT_ALIGNED else "---" for col in range(len(TABLE_HEADER))]
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "|".join(align) + "|"]
    for line in cells:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |")
    return lines


def mode_heading(mode: str, rounds: dict[str, int]) -> str:
    """`mode: tcg (N rounds each, medians of per-round medians)`."""
    if rounds["ours"] == rounds["reference"]:
        count = f"{rounds['ours']} rounds each"
    else:
        count = f"ours {rounds['ours']} rounds, reference {rounds['reference']} rounds"
    return f"mode: {mode} ({count}, medians of per-round medians)"


def shown_metrics(metrics: list[dict]) -> list[dict]:
    """The metrics for the text report: peak_to_dev only at its largest size per mem."""
    largest: dict[object, int] = {}
    for entry in metrics:
        if entry["metric"] == "peak_to_dev" and is_number(entry.get("size")):
            mem = entry.get("mem")
            largest[mem] = max(largest.get(mem, entry["size"]), entry["size"])
    return [entry for entry in metrics
            if entry["metric"] != "peak_to_dev" or not is_number(entry.get("size"))
            or entry["size"] == largest[entry.get("mem")]]


def metric_line(entry: dict) -> str:
    """One metric: its title, each kernel's value and the ratio."""
    title = METRIC_TITLES.get(entry["metric"], entry["metric"])
    where = [str(entry["mem"])] if "mem" in entry else []
    where += [format_size(entry["size"])] if "size" in entry else []
    if where:
        title += f" ({', '.join(where)})"
    values = []
    for kernel in KERNELS:
        value = entry[kernel]["value"] if entry[kernel] else None
        values.append(f"{kernel} {format_metric_value(entry['metric'], value)}")
    return f"{title}: {', '.join(values)}, ratio {format_ratio(entry['ratio'])}"


def format_metric_value(metric: str, value: float | None) -> str:
    """Byte metrics in MiB, anything else as a plain number."""
    if metric in METRIC_TITLES:
        return format_mib(value)
    return "-" if value is None else f"{value:g}"


def summary_line(mode: str, summary: dict) -> str:
    """Geometric mean ratio per layer and the slower / faster counts."""
    layers = ", ".join(f"{layer} {format_ratio(item['geomean_ratio'])} ({item['rows']} rows)"
                       for layer, item in summary["geomean"].items()) or "no rows compared"
    return (f"summary {mode}: geomean ours/reference: {layers}; "
            f"ours slower (>{SLOWER:.2f}x) in {summary['slower']}, "
            f"faster (<{FASTER:.2f}x) in {summary['faster']} "
            f"of {summary['compared']} rows where both are ok")


def render_text(report: dict) -> str:
    """The plain-text report of every mode."""
    lines = []
    for mode, body in report["modes"].items():
        if lines:
            lines.append("")
        lines.append("== " + mode_heading(mode, body["rounds"]))
        lines += render_text_table(table_cells(body["rows"]))
        metrics = shown_metrics(body["metrics"])
        if metrics:
            lines.append("")
            lines += [metric_line(entry) for entry in metrics]
        lines.append(summary_line(mode, body["summary"]))
    return "\n".join(lines) + "\n"


def render_markdown(report: dict) -> str:
    """A markdown section per mode: heading, table, metrics and summary."""
    lines = []
    for mode, body in report["modes"].items():
        if lines:
            lines.append("")
        lines += [f"**{mode_heading(mode, body['rounds'])}**", ""]
        lines += render_markdown_table(table_cells(body["rows"]))
        lines.append("")
        lines += [metric_line(entry) + "  " for entry in shown_metrics(body["metrics"])]
        lines.append(summary_line(mode, body["summary"]))
    return "\n".join(lines) + "\n"


def render_json(report: dict) -> str:
    """The report as deterministic JSON."""
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------
# Chart
# --------------------------------------------------------------------------


def chart_mode(report: dict) -> str | None:
    """The mode the chart shows: tcg, else icount, else None."""
    for mode in MODES:
        if mode in report["modes"]:
            return mode
    return None


def group_ratios(rows: list[dict]) -> list[tuple[str, float]]:
    """(layer/workload mem, geometric mean ratio over sizes where both are ok)."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        label = f"{row['layer']}/{row['workload']} {row['mem']}"
        ratios = groups.setdefault(label, [])
        if both_ok(row):
            ratios.append(row["ratio"])
    return [(label, geomean(ratios)) for label, ratios in groups.items() if ratios]


def plotted_points(rows: list[dict], kernel: str) -> tuple[list, list]:
    """Sizes and medians of a kernel's ok, positive figures."""
    points = [(row["size"], row[kernel]["median_ns"]) for row in rows
              if row[kernel] and row[kernel]["ok"] and row[kernel]["median_ns"] > 0]
    return [size for size, _ in points], [ns for _, ns in points]


def draw_ratio_panel(ax, rows: list[dict]) -> None:
    """Horizontal bars of ours / reference on a log axis around 1.0."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    groups = group_ratios(rows)
    ax.set_title("ours / reference (geometric mean over sizes where both are ok)")
    if not groups:
        ax.text(0.5, 0.5, "no rows where both kernels are ok", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    labels = [label for label, _ in groups]
    ratios = [ratio for _, ratio in groups]
    positions = list(range(len(groups)))
    colors = ["tab:red" if r > SLOWER else "tab:green" if r < FASTER else "tab:gray"
              for r in ratios]
    ax.barh(positions, [r - 1 for r in ratios], left=1, color=colors)
    reach = max(max(abs(math.log10(r)) for r in ratios) * 1.25, math.log10(1.5))
    ax.set_xscale("log")
    ax.set_xlim(10 ** -reach, 10 ** reach)
    ax.xaxis.set_major_locator(FixedLocator(RATIO_TICKS))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    for position, ratio in zip(positions, ratios):
        ax.text(ratio, position, f" {ratio:.2f}x ", va="center", fontsize=7,
                ha="left" if ratio >= 1 else "right")
    ax.set_xlabel("ours faster ←    ratio ours / reference (log scale)    → ours slower")


def set_time_axis(ax, times: list[float]) -> None:
    """Log time axis; 1-2-5 ticks if the data span less than 2 decades."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    if max(times) / min(times) < 100:
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    if max(times) / min(times) < 10:
        ax.set_ylim(min(times) / 3, max(times) * 3)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: format_time(value)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="y", labelsize=7)


def set_size_axis(ax, sizes: list[int]) -> None:
    """Log size axis with a labelled tick at every measured size."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    if len(sizes) == 1:
        ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([format_size(size) for size in sizes], fontsize=7, rotation=45)
    ax.xaxis.set_minor_formatter(NullFormatter())


def draw_cost_panel(ax, title: str, rows: list[dict], mem_colors: dict,
                    baselines: dict[int, float]) -> None:
    """Median cost against size on log-log axes for one layer/workload."""
    ax.set_title(title, fontsize=9)
    sizes = sorted({row["size"] for row in rows})
    times = []
    for mem in sorted({row["mem"] for row in rows}, key=str):
        mem_rows = [row for row in rows if row["mem"] == mem]
        for kernel, style in (("ours", "-o"), ("reference", "--s")):
            xs, ys = plotted_points(mem_rows, kernel)
            if xs:
                label = KERNEL_SHORT[kernel] if mem == "-" else f"{mem} {KERNEL_SHORT[kernel]}"
                ax.plot(xs, ys, style, color=mem_colors[mem], markersize=3, label=label)
                times += ys
    base = [(size, baselines[size]) for size in sizes if baselines.get(size)]
    if base:
        ax.plot([s for s, _ in base], [ns for _, ns in base], "-", color="black",
                linewidth=0.8, marker="_", markersize=6, label="memcpy")
        times += [ns for _, ns in base]
    if not times:
        ax.text(0.5, 0.5, "no ok data", ha="center", va="center", transform=ax.transAxes)
        return
    set_size_axis(ax, sizes)
    set_time_axis(ax, times)
    ax.grid(True, which="major", linewidth=0.3)
    ax.legend(fontsize=6)


def panel_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by layer/workload, in row order."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(f"{row['layer']}/{row['workload']}", []).append(row)
    return groups


def require_matplotlib() -> None:
    """Raise ReportError unless matplotlib can be imported."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ReportError("--png needs matplotlib (apt-get install python3-matplotlib)")


def write_png(report: dict, path: Path) -> None:
    """Draw the ratio bars and the cost panels of the chart mode into a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mode = chart_mode(report)
    body = report["modes"][mode]
    rows = body["rows"]
    groups = panel_groups(rows)
    grid_rows = max(1, math.ceil(len(groups) / CHART_COLUMNS))
    bar_height = max(2.5, 0.3 * len(group_ratios(rows)) + 1.5)
    figure = Figure(figsize=(CHART_WIDTH_IN, bar_height + grid_rows * PANEL_HEIGHT_IN),
                    dpi=CHART_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"HMM benchmark, {mode_heading(mode, body['rounds'])}")
    grid = figure.add_gridspec(1 + grid_rows, CHART_COLUMNS,
                               height_ratios=[bar_height] + [PANEL_HEIGHT_IN] * grid_rows)
    draw_ratio_panel(figure.add_subplot(grid[0, :]), rows)
    mems = sorted({row["mem"] for row in rows}, key=str)
    mem_colors = {mem: MEM_COLORS[i % len(MEM_COLORS)] for i, mem in enumerate(mems)}
    baselines = {row["size"]: row["memcpy_ns"] for row in rows if row["memcpy_ns"]}
    for index, (title, group) in enumerate(groups.items()):
        ax = figure.add_subplot(grid[1 + index // CHART_COLUMNS, index % CHART_COLUMNS])
        draw_cost_panel(ax, title, group, mem_colors, baselines)
    figure.savefig(path, dpi=CHART_DPI)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rawdir", type=Path, help="directory of {mode}-r{round}-{kernel}.out")
    parser.add_argument("--json", required=True, type=Path, help="where to write the JSON")
    parser.add_argument("--png", type=Path, help="where to write the chart")
    parser.add_argument("--markdown", type=Path, help="where to write the markdown tables")
    parser.add_argument("--min-rounds", type=positive_int, default=1, metavar="N",
                        help="fail if a kernel has fewer counted rounds (default 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        if args.png:
            require_matplotlib()
        data = load_rawdir(args.rawdir)
        check_rounds(data, args.min_rounds)
        report, warnings = build_report(data)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        sys.stdout.write(render_text(report))
        args.json.write_text(render_json(report))
        if args.markdown:
            args.markdown.write_text(render_markdown(report))
        if args.png:
            write_png(report, args.png)
    except (ReportError, OSError) as err:
        print(f"report.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
