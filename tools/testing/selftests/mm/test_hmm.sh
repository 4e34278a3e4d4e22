#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run hmm-tests against the test_hmm pseudo driver: load the module, run
# every test, unload the module.  run_vmtests.sh runs it as its "hmm"
# category.
#
# The exit status is the verdict, so that a runner can trust it:
#   0  no test failed (hmm-tests reports each skip and its reason)
#   1  a test failed, hmm-tests is missing, or test_hmm would not load
#      or unload
#   4  (the kselftest skip code) this system cannot run the tests at all:
#      not root, no modprobe, or a kernel without CONFIG_TEST_HMM=m

ksft_skip=4
module=test_hmm
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

usage() {
	cat <<EOF
usage: $0 smoke [SPM_ADDR_DEV0 SPM_ADDR_DEV1]

  smoke    load $module, run hmm-tests, unload $module

SPM_ADDR_DEV0 and SPM_ADDR_DEV1 are the physical start addresses of two
256 MiB ranges of specific-purpose memory (for example from the kernel
parameter memmap=512M%0x100000000-1+0xefffffff) that back the
device-coherent devices /dev/hmm_dmirror2 and /dev/hmm_dmirror3.  Without
them those tests skip, unless options for $module in /etc/modprobe.d give
the ranges.

If $module is already loaded, the tests run against it as it is and it
stays loaded.
EOF
}

skip() {
	echo "$0: SKIP: $*"
	exit $ksft_skip
}

fail() {
	echo "$0: FAIL: $*"
	exit 1
}

check_requirements() {
	[ "$(id -u)" -eq 0 ] || skip "must be run as root"
	command -v modprobe >/dev/null 2>&1 || skip "modprobe not found"
	[ -d /sys/module/$module ] || modinfo $module >/dev/null 2>&1 ||
		skip "no $module module in this kernel (CONFIG_TEST_HMM=m)"
	[ -x "$here/hmm-tests" ] || fail "$here/hmm-tests is missing (build the mm selftests)"
}

# run_smoke [SPM_ADDR_DEV0 SPM_ADDR_DEV1]: the verdict as the exit status.
run_smoke() {
	local params=() ours=0 rc limit=

	command -v timeout >/dev/null 2>&1 && limit="timeout 300"

	if [ $# -eq 2 ]; then
		params=("spm_addr_dev0=$1" "spm_addr_dev1=$2")
	elif [ $# -ne 0 ]; then
		usage
		exit 1
	fi

	if [ -d /sys/module/$module ]; then
		[ ${#params[@]} -eq 0 ] ||
			fail "$module is already loaded: unload it to give it new ranges"
		echo "# $module is already loaded: testing it as it is"
	else
		modprobe $module "${params[@]}" || fail "modprobe $module ${params[*]} failed"
		ours=1
	fi

	"$here/hmm-tests"
	rc=$?
	[ $rc -eq 0 ] || echo "$0: hmm-tests exited with status $rc"

	# Unloading waits for every device page to come back: a page the
	# kernel leaked would hang it, so give it a time limit when possible.
	if [ $ours -eq 1 ] && ! $limit modprobe -r $module; then
		echo "$0: FAIL: modprobe -r $module failed"
		rc=1
	fi
	[ $rc -eq 0 ] || exit 1
	exit 0
}

case $1 in
smoke)
	shift
	check_requirements
	run_smoke "$@"
	;;
-h | --help)
	usage
	;;
*)
	usage
	exit 1
	;;
esac
