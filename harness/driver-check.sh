#!/bin/bash
# driver-check.sh [CONFIG]: compile chosen objects of the series in one
# kernel configuration.
#
# CONFIG (default `drivers`): configures build/tree out of tree in
# build/out/CONFIG as the `default` variant plus harness/config/CONFIG.config,
# checks that every symbol the fragments set came out as set (a symbol that
# several fragments set: as the last one sets it), then compiles each object
# listed in harness/CONFIG-objects ($DRIVER_OBJECTS, if set) on its own
# (`make O=... path.o`, through the build lock, with ccache) and compares it
# with what that file expects: `ok` (it must compile, without a compiler
# warning) or `fails REASON` (it must not, yet: when it does, the file
# needs updating).  Each object is
# deleted first, so a stale one never passes for a compiled one.
#
#   drivers   the in-tree drivers' HMM code (nouveau and its SVM, amdgpu
#             with amdkfd's SVM, xe, RDMA on-demand paging)
#   nothp     the series' own objects without CONFIG_TRANSPARENT_HUGEPAGE
#   nodevice  without ZONE_DEVICE (no device-private memory): the core mm
#             files the series touches, and the hmm_range_fault() users
#             that need no device memory (RDMA on-demand paging, xe)
#
# Output: one line per object, `ok`, `xfail` (failed as expected, with the
# number of compiler errors and the first) or `FAIL` (with the compiler's
# errors), each object's whole log in build/logs/CONFIG-NAME.log; then
#   driver objects: N/M build; expected failures: a.o, b.o (REASON)
# (`CONFIG objects:` for a CONFIG other than drivers).
# Exit status 0 if every object did what the file expects.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

check=${1:-drivers}
[[ $check =~ ^[a-z]+$ && -f $HARNESS/config/$check.config ]] ||
	die "unknown configuration '$check' (no harness/config/$check.config)"
label="$check objects"
[[ $check == drivers ]] && label="driver objects"
src=$BUILD/tree
out=$BUILD/out/$check
expect=${DRIVER_OBJECTS:-$HARNESS/$check-objects}
[[ $check == drivers ]] && expect=${DRIVER_OBJECTS:-$HARNESS/driver-objects}
frags=("$HARNESS/config/base.config" "$HARNESS/config/$check.config")
[[ -f $src/Makefile ]] || die "no source tree at $src (run: make assemble)"
[[ -f $expect ]] || die "no expectation file $expect"

objs=() wants=() reasons=()
while read -r obj want reason; do
	[[ -z $obj || $obj == \#* ]] && continue
	[[ $obj == *.o && ($want == ok && -z $reason || $want == fails && -n $reason) ]] ||
		die "$expect: bad line '$obj $want $reason' (want: PATH.o ok | PATH.o fails REASON)"
	objs+=("$obj") wants+=("$want") reasons+=("$reason")
done <"$expect"
((${#objs[@]})) || die "$expect lists no objects"

kmake_init "$src" "$out"
stage "configure $check"
configure_kernel "$check" "$src" "$out" "${frags[@]}"
# the fragment's own symbols must all exist in this tree
absent=()
for sym in "${CONFIG_ABSENT[@]}"; do
	grep -q "^CONFIG_$sym=" "$HARNESS/config/$check.config" && absent+=("$sym")
done
((${#absent[@]} == 0)) || die "$check.config asks for symbols this tree does not define: ${absent[*]}"
stage_done

stage "compile the $check objects"
built=0 unexpected=() xfails=() xreasons=()
for i in "${!objs[@]}"; do
	obj=${objs[i]} want=${wants[i]} reason=${reasons[i]}
	name=$(basename "$obj" .o)
	log=$LOGS/$check-$name.log
	rm -f "$out/$obj"
	t=$(date +%s)
	rc=0
	"${KMAKE[@]}" "$obj" >"$log" 2>&1 || rc=$?
	secs=$(($(date +%s) - t))
	if ((rc == 0)) && [[ -f $out/$obj ]]; then
		((++built))
		warnings=$(grep 'warning:' "$log" || true)
		if [[ $want == ok && -n $warnings ]]; then
			unexpected+=("$name.o (compiler warnings)")
			echo "FAIL    $obj (${secs} s): compiles with $(wc -l <<<"$warnings") warning(s) (log: $log)"
			head -n 10 <<<"$warnings" | sed 's/^/          /'
		elif [[ $want == ok ]]; then
			echo "ok      $obj (${secs} s)"
		else
			unexpected+=("$name.o (compiles now)")
			echo "FAIL    $obj (${secs} s): compiles now, but $(basename "$expect") expects it to fail ($reason): update that file"
		fi
		continue
	fi
	errors=$(grep -E 'error:|Error [0-9]|\*\*\*|No rule to make' "$log" || true)
	((rc)) || errors="make succeeded but wrote no $out/$obj (not a target kbuild knows?)"
	[[ -n $errors ]] || errors=$(tail -n 20 "$log")
	if [[ $want == fails ]]; then
		xfails+=("$name.o") xreasons+=("$reason")
		n=$(grep -c 'error:' <<<"$errors" || true)
		echo "xfail   $obj (${secs} s): fails as expected: $reason; $n compiler error(s), the first:"
		{ grep -m1 'error:' <<<"$errors" || head -n 1 <<<"$errors"; } | sed 's/^/          /'
	else
		unexpected+=("$name.o (does not compile)")
		echo "FAIL    $obj (${secs} s): does not compile (log: $log)"
		head -n 25 <<<"$errors" | sed 's/^/          /'
	fi
done

summary="$label: $built/${#objs[@]} build"
if ((${#xfails[@]})); then
	# one list per reason: "a.o, b.o (REASON)"
	mapfile -t uniq < <(printf '%s\n' "${xreasons[@]}" | awk '!seen[$0]++')
	parts=()
	for r in "${uniq[@]}"; do
		names=()
		for j in "${!xfails[@]}"; do [[ ${xreasons[j]} == "$r" ]] && names+=("${xfails[j]}"); done
		parts+=("$(printf '%s, ' "${names[@]}" | sed 's/, $//') ($r)")
	done
	summary+="; expected failures: $(printf '%s; ' "${parts[@]}" | sed 's/; $//')"
fi
((${#unexpected[@]} == 0)) || summary+="; unexpected: $(printf '%s, ' "${unexpected[@]}" | sed 's/, $//')"
echo "$summary"
stage_done
((${#unexpected[@]} == 0))
