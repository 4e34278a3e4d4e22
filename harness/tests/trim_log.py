#!/usr/bin/env python3
"""Trim a console log of `make test` (build/results/VARIANT-THP.log) to what
the real-*.log samples in harness/tests/data keep: the HMMCI markers, the
TAP/KTAP lines (every result line, plans, subtest headers, totals) and the
benchmark's info line; the kernel log between DMESG-BEGIN and DMESG-END
is dropped.

Usage: trim_log.py LOG > harness/tests/data/real-VARIANT-THP.log
"""

import re
import sys

KEEP = re.compile(r"^(?:\[ *[0-9.]+\] +)?"
                  r"(?:KTAP version|TAP version|1\.\.|ok |not ok |# Subtest|# Totals)")


def trim(lines):
    in_dmesg = False
    bench_info = False
    for line in lines:
        line = line.rstrip("\r\n")
        if line.startswith("HMMCI: "):
            in_dmesg = line == "HMMCI: DMESG-BEGIN"
            yield line
        elif in_dmesg:
            continue
        elif KEEP.match(line):
            yield line
        elif line.startswith('BENCH {"layer":"info"') and not bench_info:
            bench_info = True
            yield line


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        for line in trim(f):
            print(line)


if __name__ == "__main__":
    main()
