#!/bin/bash
# bench.sh: `make bench`, our HMM against the base's own, side by side.
#
# Builds `default` (the series) and `reference` (the unstripped base) with
# the same config, builds the benchmark module and program against each,
# then boots them in turn, ours first, reference second, with QEMU's
# instruction counting (-icount): the guest clock counts instructions, so
# one round per kernel gives figures that repeat to the instruction,
# whatever the host's load.  Those rounds run the in-kernel workloads (and
# memcpy, the line to compare with) at 64 KiB, 2 MiB, 32 MiB and 512 MiB.
# Plain TCG rounds, which also time the end-to-end workloads but swing
# with the host's load, are an option: round 0 (the warm-up, not counted)
# and rounds 1..BENCH_ROUNDS.  Every boot's output is kept under
# build/bench/raw; bench/report.py turns them into the table (printed),
# build/bench/results.json, build/bench/table.md and build/bench/bench.png.
#
# Environment: BENCH_ICOUNT_ROUNDS (default 1, 0 for none), BENCH_ROUNDS
# (TCG rounds, default 0), BENCH_ICOUNT_ARGS (the arguments of
# bench/hmm-bench in the -icount rounds, which run the guest on one host
# thread; default "--sizes 64K,2M,32M,512M --reps-bytes 16M --only", the
# in-kernel workloads and test_hmm's ioctls, which stop at 32M), BENCH_ARGS (its extra arguments in the TCG rounds,
# e.g. "--sizes 64K,1M --only snapshot").
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rounds=${BENCH_ROUNDS:-0}
icount_rounds=${BENCH_ICOUNT_ROUNDS:-1}
bench_args=${BENCH_ARGS:-}
icount_only=snapshot,fault-read,fault-write,to-dev,to-sys,evict,cpu-fault,exclusive
icount_only+=,dmirror-read,dmirror-to-dev,dmirror-to-sys,dmirror-cpu-fault,dmirror-exclusive,memcpy
icount_args=${BENCH_ICOUNT_ARGS:---sizes 64K,2M,32M,512M --reps-bytes 16M --only $icount_only}
[[ $rounds =~ ^[0-9]+$ ]] || die "BENCH_ROUNDS must be a number, not '$rounds'"
[[ $icount_rounds =~ ^[0-9]+$ ]] || die "BENCH_ICOUNT_ROUNDS must be a number, not '$icount_rounds'"
((rounds + icount_rounds)) || die "BENCH_ROUNDS and BENCH_ICOUNT_ROUNDS are both 0: nothing to run"
for a in "$bench_args" "$icount_args"; do
	[[ $a =~ ^[-A-Za-z0-9,=\ ]*$ ]] || die "BENCH_ARGS and BENCH_ICOUNT_ARGS may hold only options and their values"
done
t0=$(date +%s)

bench_kernels

raw=$BUILD/bench/raw
rm -rf "$raw"
mkdir -p "$raw"
failed=()

# In the guest, before measuring: a clock with ns resolution (early in the
# boot the kernel may still keep time with jiffies, 4 ms steps).
cs=/sys/devices/system/clocksource/clocksource0/current_clocksource
guest_prologue="for i in 1 2 3 4 5 6 7 8 9 10; do case \$(cat $cs) in *jiffies*) sleep 1 ;; *) break ;; esac; done
case \$(cat $cs) in *jiffies*) echo 'the guest clock has only jiffies' >&2; exit 1 ;; esac
echo clocksource \$(cat $cs) >&2"

# No address-space randomization, of the kernel or of user mappings, so
# that both kernels lay the benchmark's memory out alike.  The -icount
# boots also get fixed random numbers (harness/guest/qemu.sh); before
# both, one boot timed every snapshot and fault-read 64K call of an
# unchanged kernel slower, fault-read by about 6000 instructions.
bench_cmdline="transparent_hugepage=madvise nokaslr norandmaps"

# boot MODE ROUND KERNEL: one guest run of the benchmark program.
boot() {
	local mode=$1 round=$2 kernel=$3 variant out name rc=0
	variant=$([[ $kernel == ours ]] && echo default || echo reference)
	out=$BUILD/out/$variant
	name=$mode-r$round-$kernel
	local extra=() args=$bench_args
	[[ $mode == icount ]] && extra=(--icount 0) args=$icount_args
	stage "$name ($variant)"
	"$HARNESS/guest/run-command.sh" --kernel "$out/arch/x86/boot/bzImage" \
		--modules "$out/mods" --file "$BUILD/bench/$variant/hmm_bench.ko" \
		--file "$BUILD/bench/$variant/hmm-bench" --mem 4096 --smp 2 \
		--timeout "${BENCH_TIMEOUT:-5400}" --append "$bench_cmdline" \
		--log "$raw/$name.log" ${extra[@]+"${extra[@]}"} -- \
		sh -c "$guest_prologue && insmod /lib/modules/test_hmm.ko && insmod /files/hmm_bench.ko && /files/hmm-bench $args" \
		>"$raw/$name.out" 2>"$raw/$name.err" || rc=$?
	if ((rc)); then
		failed+=("$name (exit $rc)")
		echo "    $name: exit $rc; $(grep -c '^BENCH ' "$raw/$name.out" || true) records" >&2
		sed 's/^/    /' "$raw/$name.err" | tail -n 25 >&2
	fi
	stage_done "$(grep -c '^BENCH ' "$raw/$name.out" || true) records"
}

for ((r = 1; r <= icount_rounds; r++)); do
	boot icount "$r" ours
	boot icount "$r" reference
done
# round 0 warms up, and is not counted
for ((r = 0; rounds && r <= rounds; r++)); do
	boot tcg "$r" ours
	boot tcg "$r" reference
done

stage "report"
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3 # Debian's, with matplotlib
rrc=0
# every boot must have given its records: the fewest rounds of any mode
min_rounds=$rounds
((icount_rounds == 0 || (rounds && icount_rounds >= rounds))) || min_rounds=$icount_rounds
"$py" "$ROOT/bench/report.py" "$raw" --min-rounds "$min_rounds" \
	--json "$BUILD/bench/results.json" --markdown "$BUILD/bench/table.md" \
	--png "$BUILD/bench/bench.png" || rrc=$?
stage_done "build/bench/{results.json,table.md,bench.png}"
echo "    total time: $(($(date +%s) - t0)) s"
if ((${#failed[@]})); then
	printf '    boot with problems (console logs under %s): %s\n' "$raw" "${failed[@]}" >&2
fi
# ours must run clean; the reference's own failures are part of the figures
for f in "${failed[@]}"; do
	[[ $f == *-ours\ * ]] && exit 1
done
exit "$rrc"
