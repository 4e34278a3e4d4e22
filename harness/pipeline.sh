#!/bin/bash
# pipeline.sh main|test: the two jobs behind `make` and `make test`.
#
#   main  deps, base, strip, assemble, build `default`, run it in both THP
#         modes, print the summary table.
#   test  everything CI checks: main's steps, the host-side checks (among
#         them the export check and the drivers' HMM objects compiled,
#         driver-check.sh), the stripped base built and booted, and the
#         `debug` variant built and run; ends with the line
#         `N passed, N failed, N skipped`.
#
# A guest run that fails does not stop the others: every result is reported,
# and the exit status is non-zero if anything failed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mode=${1:-main}
[[ $mode == main || $mode == test ]] || die "usage: pipeline.sh main|test"
t0=$(date +%s)
res=$BUILD/results
rm -rf "$res"
mkdir -p "$res"
runs=()

"$HARNESS/deps.sh"
"$HARNESS/fetch-base.sh"
"$HARNESS/strip.sh"
"$HARNESS/assemble.sh"
"$HARNESS/build.sh" default

guest_run() {
	runs+=("$res/$1-$2.json")
	"$HARNESS/run.sh" "$1" "$2" || true
}

guest_run default always
guest_run default madvise

if [[ $mode == test ]]; then
	stage "host-side checks"
	runs+=("$res/host.json")
	python3 "$HARNESS/hostcheck.py" --json "$res/host.json" --drivers \
		--guest-kernel "$BUILD/out/default/arch/x86/boot/bzImage" || true
	stage_done
	"$HARNESS/build.sh" stripped
	guest_run stripped always
	"$HARNESS/build.sh" debug
	guest_run debug always
	guest_run debug madvise
fi

stage "summary"
set +e
python3 "$HARNESS/results.py" total "${runs[@]}" >"$res/summary.txt"
rc=$?
set -e
echo "    total time: $(($(date +%s) - t0)) s; results under $res"
# the summary's last line is the `N passed, N failed, N skipped` line
cat "$res/summary.txt"
exit $rc
