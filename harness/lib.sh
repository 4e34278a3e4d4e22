# Shared helpers of the harness scripts (sourced, not run).
# shellcheck shell=bash

HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HARNESS/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
LOGS=$BUILD/logs
mkdir -p "$LOGS"

die() {
	echo "error: $*" >&2
	exit 1
}

# stage "what": announce a stage; stage_done: report its elapsed time.
stage() {
	STAGE_NAME=$1
	STAGE_T0=$(date +%s)
	echo "==> $STAGE_NAME"
}

stage_done() {
	echo "    $STAGE_NAME: done in $(($(date +%s) - STAGE_T0)) s${1:+ ($1)}"
}

# run_logged LOG CMD...: run CMD with its output in LOG; on failure name
# the log and show the lines that matter.
run_logged() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		echo "    FAILED: $STAGE_NAME (log: $log)" >&2
		grep -E -i -m 30 'error|fatal|failed|not found|warning: .* undefined' "$log" >&2 ||
			tail -n 30 "$log" >&2
		exit 1
	fi
}

# with_build_lock CMD...: run CMD holding the machine's one kernel-build
# slot (two kernel builds at once thrash a 2-core machine).
with_build_lock() {
	flock "${HMMCI_BUILD_LOCK:-/tmp/hmm-kbuild.lock}" "$@"
}

# pin KEY: a value from base.pin
pin() {
	sed -n "s/^$1=//p" "$HARNESS/base.pin"
}

# hash_files FILE...: one sha256 over the names and contents of FILEs
hash_files() {
	local f
	for f in "$@"; do
		printf '%s\n' "$f"
		cat "$f"
	done | sha256sum | cut -c1-16
}

# The version of the base actually in use, once fetched.
base_version() {
	cat "$BUILD/base/VERSION" 2>/dev/null || die "base kernel not fetched yet (run: make base)"
}

base_tree() {
	echo "$BUILD/base/linux-$(base_version)"
}
