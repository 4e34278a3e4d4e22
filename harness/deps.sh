#!/bin/bash
# Install the Debian packages the build needs (when root), or name them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkgs=(make gcc git flex bison bc libelf-dev libssl-dev cpio rsync xz-utils
	qemu-system-x86 busybox-static ccache unifdef python3 python3-docutils python3-ply python3-git
	python3-matplotlib bash-static libcap-dev libnuma-dev)
# bash-static: the guest's /bin/bash for run_vmtests.sh; libcap-dev and
# libnuma-dev: the mm selftests that `make kselftest-install` builds.
stage "check build dependencies"
missing=()
for p in "${pkgs[@]}"; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'install ok installed'* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "missing packages; install them with:" >&2
		echo "  sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "    installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	run_logged "$LOGS/deps.log" apt-get update -q
	run_logged "$LOGS/deps.log" apt-get install -y -q "${missing[@]}"
fi
stage_done "${#pkgs[@]} packages present"
