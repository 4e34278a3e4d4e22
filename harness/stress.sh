#!/bin/bash
# stress.sh stress|fuzz [VARIANT]: the long forms of stress/hmm-stress.c and
# stress/hmm-fuzz.c (`make stress`, `make fuzz`), in VARIANT (default
# debug: KASAN, lockdep, the hang detectors), with test_hmm loaded as
# harness/suites loads it.  `make test` runs their short forms.
#
#   stress: STRESS_SECONDS (600), STRESS_PROCS (4), STRESS_THREADS (8)
#   fuzz:   FUZZ_CALLS (1000000), FUZZ_SEED (1), FUZZ_THREADS (8)
#
# Passes when the program passes and the kernel log has no splat (the same
# list results.py fails a run on).  Log: build/results/MODE-VARIANT.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mode=${1:-}
variant=${2:-debug}
case $mode in
stress)
	args="-d ${STRESS_SECONDS:-600} -p ${STRESS_PROCS:-4} -t ${STRESS_THREADS:-8}"
	timeout=$((${STRESS_SECONDS:-600} + 1800))
	;;
fuzz)
	args="-s ${FUZZ_SEED:-1} -n ${FUZZ_CALLS:-1000000} -t ${FUZZ_THREADS:-8}"
	timeout=${FUZZ_TIMEOUT:-14400}
	;;
*) die "usage: stress.sh stress|fuzz [VARIANT]" ;;
esac
out=$BUILD/out/$variant
kernel=$out/arch/x86/boot/bzImage
[[ -f $kernel ]] || die "variant $variant is not built (run: make build VARIANT=$variant)"
krel=$(cat "$out/include/config/kernel.release")
work=$BUILD/stress/$variant
res=$BUILD/results
rm -rf "$work"
mkdir -p "$work/modules" "$res"

stage "$mode: build hmm-$mode and take test_hmm.ko of $variant"
gcc -static -O2 -Wall -pthread -isystem "$out/hdr/include" -I "$BUILD/tree" \
	"$ROOT/stress/hmm-$mode.c" -o "$work/hmm-$mode"
find "$out/mods/lib/modules/$krel" -name test_hmm.ko -exec cp {} "$work/modules/" \;
[[ -f $work/modules/test_hmm.ko ]] || die "the $variant build has no test_hmm.ko"
# the parameters of the `module test_hmm` line of harness/suites
params=$(awk '$1 == "module" && $2 == "test_hmm" {
	for (i = 4; i <= NF; i++) if ($i ~ /=/) printf "%s ", $i }' "$HARNESS/suites")
stage_done

stage "$mode: hmm-$mode $args in $variant (timeout ${timeout}s)"
log=$res/$mode-$variant.log
set +e
"$HARNESS/guest/run-command.sh" --kernel "$kernel" --smp "${HMMCI_SMP:-4}" --mem 4096 \
	--append "transparent_hugepage=always hugepages=64 $GUEST_MEMMAP" \
	--modules "$work/modules" --file "$work/hmm-$mode" --timeout "$timeout" --log "$log" \
	-- sh -c "insmod /lib/modules/test_hmm.ko $params || exit 1; /files/hmm-$mode $args"
rc=$?
set -e
splats=$(python3 -c '
import sys
sys.path.insert(0, sys.argv[1])
import results
print("\n".join(results.find_splats(results.read_log(sys.argv[2]))))' "$HARNESS" "$log")
if [[ -n $splats ]]; then
	echo "$splats" | head -n 40 >&2
	die "$mode: the kernel reported problems (log: $log)"
fi
((rc == 0)) || die "$mode: hmm-$mode failed with status $rc (log: $log)"
stage_done "passed (log: $log)"
