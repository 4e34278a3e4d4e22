#!/bin/bash
# Host-side test of harness/guest/: boots a real kernel in QEMU.
#
# usage: harness/tests/test_guest.sh [BZIMAGE]
#   The kernel comes from the first argument or $HMMCI_TEST_KERNEL; with
#   neither, the test is skipped (exit 0).  Optional: HMMCI_TEST_KUNIT_KO=
#   a KUnit test module built for that kernel, also run with run_kunit.
# Needs qemu-system-x86, busybox-static, cpio.  About 5 boots (~15-30 s
# each under TCG).
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guest=$here/../guest

case ${1:-} in
-h | --help)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
[ $# -le 1 ] || { echo "usage: $prog [BZIMAGE]" >&2; exit 2; }

kernel=${1:-${HMMCI_TEST_KERNEL:-}}
if [ -z "$kernel" ]; then
	echo "SKIP: no kernel given (pass BZIMAGE or set HMMCI_TEST_KERNEL)"
	exit 0
fi
[ -f "$kernel" ] || { echo "$prog: error: kernel '$kernel' does not exist" >&2; exit 2; }
kunit_ko=${HMMCI_TEST_KUNIT_KO:-}
[ -z "$kunit_ko" ] || [ -f "$kunit_ko" ] ||
	{ echo "$prog: error: HMMCI_TEST_KUNIT_KO '$kunit_ko' does not exist" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hmmci-test-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failures=0
pass() { echo "ok - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
# check DESCRIPTION COMMAND...: pass if the command succeeds.
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
# HMMCI lines of a console log, CRs removed.
markers() { tr -d '\r' <"$1" | grep -o 'HMMCI: .*' || true; }
# block LOG NAME: the captured output of suite NAME.
block() {
	tr -d '\r' <"$1" | awk -v n="$2" '
		$0 ~ "^HMMCI: SUITE-BEGIN " n " " { on = 1; next }
		on && $0 ~ "^HMMCI: SUITE-END " n " " { on = 0; next }
		on { print }'
}
# dmesg_has LOG REGEX: the dumped kernel log of LOG matches REGEX.
dmesg_has() {
	# grep reads to the end (no -q): an early exit would kill sed with
	# SIGPIPE on a long log, which pipefail turns into a false "no match".
	tr -d '\r' <"$1" | sed -n '/^HMMCI: DMESG-BEGIN/,/^HMMCI: DMESG-END/p' |
		grep -c -- "$2" >/dev/null
}

echo "# kernel: $kernel"

# --- 0. cheap input checks (no boot) ---
echo 'run_cmd x true' >"$tmp/p.sh"
if "$guest/mkinitramfs.sh" --out "$tmp/bad.cpio.gz" >"$tmp/err" 2>&1; then
	fail "mkinitramfs.sh without --plan fails"
else
	check "mkinitramfs.sh without --plan fails with a message" grep -q -- '--plan is required' "$tmp/err"
fi
if "$guest/mkinitramfs.sh" --out "$tmp/bad.cpio.gz" --plan "$tmp/p.sh" \
	--file "$tmp/does-not-exist" >"$tmp/err" 2>&1; then
	fail "mkinitramfs.sh with a missing --file fails"
else
	check "mkinitramfs.sh with a missing --file fails, leaving no output" \
		test ! -e "$tmp/bad.cpio.gz"
fi
rc=0
"$guest/qemu.sh" --kernel "$tmp/nope" --initrd "$tmp/p.sh" --log "$tmp/l" >"$tmp/err" 2>&1 || rc=$?
check "qemu.sh with a missing kernel exits 2" test "$rc" -eq 2
check "qemu.sh with a missing kernel says so" grep -q "kernel '$tmp/nope' does not exist" "$tmp/err"

# --- 1. a plan with a kselftest-like TAP program ---
mkdir -p "$tmp/tests/sub" "$tmp/mods"
cat >"$tmp/tests/sub/tap.sh" <<'EOF'
#!/bin/sh
echo "TAP version 13"
echo "1..2"
echo "ok 1 first in $(pwd)"
echo "not ok 2 second $1"
exit 1
EOF
chmod 755 "$tmp/tests/sub/tap.sh"
{
	echo 'load_module /lib/modules/does-not-exist.ko'
	echo 'run_kselftest tap /tests/sub/tap.sh "x y"'
	echo 'run_kunit nokunit /lib/modules/does-not-exist.ko'
	if [ -n "$kunit_ko" ]; then
		echo "run_kunit kunit /lib/modules/${kunit_ko##*/}"
	fi
	echo 'run_cmd noeol printf "no newline"'
	echo 'run_kselftest'
} >"$tmp/plan1.sh"
[ -z "$kunit_ko" ] || cp "$kunit_ko" "$tmp/mods/"
"$guest/mkinitramfs.sh" --out "$tmp/i1.cpio.gz" --plan "$tmp/plan1.sh" \
	--tests "$tmp/tests" --modules "$tmp/mods"
start=$SECONDS
rc=0
"$guest/qemu.sh" --kernel "$kernel" --initrd "$tmp/i1.cpio.gz" --log "$tmp/log1" \
	--timeout 600 || rc=$?
boot1=$((SECONDS - start))
echo "# plan boot took ${boot1} s"
check "qemu.sh exits 0 for a finished plan" test "$rc" -eq 0
markers "$tmp/log1" >"$tmp/m1"
# Exact non-zero statuses depend on busybox; only zero/non-zero matters.
sed -i -E 's/seconds=[0-9]+$/seconds=N/; s/rc=[1-9][0-9]*/rc=NZ/' "$tmp/m1"
{
	echo 'HMMCI: BOOTED'
	echo 'HMMCI: INSMOD-FAILED does-not-exist.ko rc=NZ'
	echo 'HMMCI: SUITE-BEGIN tap kselftest'
	echo 'HMMCI: SUITE-END tap rc=NZ seconds=N'
	echo 'HMMCI: SUITE-BEGIN nokunit kunit'
	echo 'HMMCI: SUITE-END nokunit rc=NZ seconds=N'
	if [ -n "$kunit_ko" ]; then
		echo 'HMMCI: SUITE-BEGIN kunit kunit'
		echo 'HMMCI: SUITE-END kunit rc=0 seconds=N'
	fi
	echo 'HMMCI: SUITE-BEGIN noeol cmd'
	echo 'HMMCI: SUITE-END noeol rc=0 seconds=N'
	echo 'HMMCI: PLAN-ERROR run_kselftest: usage: run_kselftest NAME PATH [ARGS...]'
	echo 'HMMCI: DMESG-BEGIN'
	echo 'HMMCI: DMESG-END'
	echo 'HMMCI: DONE'
} >"$tmp/m1.expected"
if diff -u "$tmp/m1.expected" "$tmp/m1" >"$tmp/diff"; then
	pass "the plan produces the expected HMMCI markers in order"
else
	fail "the plan produces the expected HMMCI markers in order:"
	sed 's/^/#   /' "$tmp/diff"
fi
printf '%s\n' "TAP version 13" "1..2" "ok 1 first in /tests/sub" "not ok 2 second x y" \
	>"$tmp/tap.expected"
check "the kselftest output is captured verbatim (cwd = test dir, args kept)" \
	diff -u "$tmp/tap.expected" <(block "$tmp/log1" tap)
check "output without a final newline still ends before SUITE-END" \
	test "$(block "$tmp/log1" noeol)" = "no newline"
check "the kernel log is dumped between DMESG-BEGIN and DMESG-END" \
	dmesg_has "$tmp/log1" "Linux version"
if [ -n "$kunit_ko" ]; then
	block "$tmp/log1" kunit >"$tmp/kunit.out"
	check "run_kunit captures the module's KTAP from dmesg" \
		grep -qE '(K?TAP version|# Subtest:)' "$tmp/kunit.out"
fi

# --- 2. run-command.sh returns the command's status ---
rc=0
out=$("$guest/run-command.sh" --kernel "$kernel" -- sh -c 'echo hi; exit 3') || rc=$?
check "run-command.sh prints only the command's output" test "$out" = hi
check "run-command.sh exits with the command's status (3)" test "$rc" -eq 3

# --- 2b. instruction counting: the guest boots with -icount; bad shifts are refused ---
rc=0
out=$("$guest/run-command.sh" --kernel "$kernel" --icount 0 -- sh -c 'echo counted') || rc=$?
check "run-command.sh --icount 0 boots and runs the command" test "$rc-$out" = 0-counted
rc=0
"$guest/qemu.sh" --kernel "$kernel" --initrd "$kernel" --log "$tmp/icount.log" --icount x \
	2>"$tmp/icount.err" || rc=$?
check "qemu.sh --icount x exits 2 and says why" \
	grep -q "must be a shift from 0 to 9" "$tmp/icount.err"
check "qemu.sh --icount x exit status is 2" test "$rc" -eq 2

# --- 3. arguments with spaces and quotes survive; --file works ---
echo "file content" >"$tmp/data.txt"
rc=0
# shellcheck disable=SC2016 # literal $ and quotes on purpose
out=$("$guest/run-command.sh" --kernel "$kernel" --file "$tmp/data.txt:/data/x.txt" -- \
	sh -c 'printf "[%s]\n" "$@"; cat /data/x.txt' sh 'a b' "it's" '"$HOME" \n' '') || rc=$?
# shellcheck disable=SC2016
expected=$(printf '%s\n' '[a b]' "[it's]" '["$HOME" \n]' '[]' 'file content')
check "run-command.sh keeps arguments with spaces and quotes" test "$out" = "$expected"
check "run-command.sh exits 0 when the command succeeds" test "$rc" -eq 0

# --- 4. kernel warnings are reported ---
rc=0
"$guest/run-command.sh" --kernel "$kernel" -- \
	sh -c 'echo "<4>WARNING: injected by test_guest" >/dev/kmsg' >"$tmp/out4" 2>"$tmp/err4" || rc=$?
check "run-command.sh exits 4 when the kernel log has a WARNING" test "$rc" -eq 4
check "run-command.sh names the WARNING line" grep -q 'injected by test_guest' "$tmp/err4"
sed -n 's/.*console log kept at //p' "$tmp/err4" | xargs -r rm -f

# --- 5. a guest that never finishes is killed by the timeout ---
echo 'run_cmd hang sleep 1000000' >"$tmp/plan5.sh"
"$guest/mkinitramfs.sh" --out "$tmp/i5.cpio.gz" --plan "$tmp/plan5.sh"
limit=$((boot1 + 10))
[ "$limit" -ge 20 ] || limit=20
rc=0
"$guest/qemu.sh" --kernel "$kernel" --initrd "$tmp/i5.cpio.gz" --log "$tmp/log5" \
	--timeout "$limit" 2>"$tmp/err5" >/dev/null || rc=$?
check "qemu.sh exits 124 when the guest hangs (--timeout $limit)" test "$rc" -eq 124
check "qemu.sh says the guest timed out" \
	grep -q "guest timed out after $limit s (log: $tmp/log5)" "$tmp/err5"
check "the hanging guest had booted" grep -q 'HMMCI: BOOTED' "$tmp/log5"

if [ "$failures" -ne 0 ]; then
	echo "$prog: $failures check(s) failed"
	exit 1
fi
echo "$prog: all checks passed"
