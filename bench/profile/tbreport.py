#!/usr/bin/env python3
"""Instructions per function from tbcount output, ours against reference.

  tbreport.py [--top N] [--whole] OURS_DIR [REF_DIR]
  tbreport.py [--whole] --annotate FUNC OURS_DIR

Each DIR holds what harness/profile.sh collected for one kernel:
  System.map, vmlinux, tbcount.out, modules (the guest's /proc/modules)
  and ko/*.ko.  Module functions are named [module]function.

With one DIR: the functions that ran most.  With two: the functions whose
count differs most, ours minus reference, and the totals.  --annotate
prints FUNC's disassembly with each instruction's execution count.
The counts are those of the timed regions (the plugin's windows), or of
the whole guest run with --whole.
"""
import argparse
import bisect
import collections
import os
import re
import subprocess
import sys


def text_symbols(d):
    """Sorted (address, name) of the kernel's and its modules' functions."""
    syms = []
    with open(os.path.join(d, 'System.map')) as f:
        for line in f:
            addr, kind, name = line.split()[:3]
            if kind in 'tTwW':
                syms.append((int(addr, 16), name))
    bases = {}
    mods = os.path.join(d, 'modules')
    if os.path.exists(mods):
        with open(mods) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5].startswith('0x'):
                    bases[fields[0]] = int(fields[5], 16)
    kodir = os.path.join(d, 'ko')
    for ko in sorted(os.listdir(kodir)) if os.path.isdir(kodir) else []:
        mod = ko[:-3].replace('-', '_')
        if mod not in bases:
            continue
        # /proc/modules gives the start of the module's text, where the
        # linker put .text first
        out = subprocess.run(['objdump', '-t', os.path.join(kodir, ko)],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[-3] == '.text' and 'F' in fields:
                syms.append((bases[mod] + int(fields[0], 16),
                             f'[{mod}]{fields[-1]}'))
    syms.sort()
    return syms


def block_counts(d, whole):
    """(vaddr, instructions, executions) of each block in d's tbcount.out."""
    with open(os.path.join(d, 'tbcount.out')) as f:
        for line in f:
            fields = line.split()
            yield (int(fields[0], 16), int(fields[1]),
                   int(fields[2] if whole else fields[3]))


def per_function(d, whole=False):
    syms = text_symbols(d)
    addrs = [a for a, _ in syms]
    counts = collections.Counter()
    for vaddr, insns, runs in block_counts(d, whole):
        if not runs:
            continue
        i = bisect.bisect_right(addrs, vaddr) - 1
        name = syms[i][1] if i >= 0 else '?'
        counts[name] += insns * runs
    return counts


def annotate(func, d, whole):
    syms = text_symbols(d)
    names = [n for _, n in syms]
    if func not in names:
        sys.exit(f'no function {func} in {d}')
    i = names.index(func)
    start, end = syms[i][0], syms[i + 1][0]
    dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn',
                          f'--start-address={start:#x}',
                          f'--stop-address={end:#x}',
                          os.path.join(d, 'vmlinux')],
                         capture_output=True, text=True, check=True).stdout
    insns = [(int(m.group(1), 16), m.group(2)) for m in
             (re.match(r'\s*([0-9a-f]+):\s+(.*)', line)
              for line in dis.splitlines()) if m]
    index = {a: k for k, (a, _) in enumerate(insns)}
    runs = collections.Counter()
    for vaddr, n, r in block_counts(d, whole):
        k = index.get(vaddr)
        if k is None:
            continue
        for a, _ in insns[k:k + n]:
            runs[a] += r
    for a, text in insns:
        print(f'{runs[a]:12d}  {a:x}: {text}')


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--top', type=int, default=40)
    ap.add_argument('--annotate', metavar='FUNC')
    ap.add_argument('--whole', action='store_true',
                    help='count the whole guest run, not the timed regions')
    ap.add_argument('ours')
    ap.add_argument('ref', nargs='?')
    args = ap.parse_args()
    if args.annotate:
        annotate(args.annotate, args.ours, args.whole)
        return
    ours = per_function(args.ours, args.whole)
    if not args.whole and not ours:
        # the api workloads are timed inside hmm_bench: no window opened
        print('no timed window (an api workload?): counting the whole run')
        args.whole = True
        ours = per_function(args.ours, True)
    total = sum(ours.values())
    if not args.ref:
        print(f'{total} instructions')
        for name, n in ours.most_common(args.top):
            print(f'{n:14d} {100 * n / total:6.2f}%  {name}')
        return
    ref = per_function(args.ref, args.whole)
    rtotal = sum(ref.values())
    print(f'ours {total}  reference {rtotal}  '
          f'ours/reference {total / rtotal:.4f}')
    print(f'{"ours-ref":>14} {"ours":>14} {"reference":>14}  function')
    diff = {n: ours[n] - ref[n] for n in set(ours) | set(ref)}
    for name in sorted(diff, key=lambda n: -abs(diff[n]))[:args.top]:
        print(f'{diff[name]:+14d} {ours[name]:14d} {ref[name]:14d}  {name}')


if __name__ == '__main__':
    main()
