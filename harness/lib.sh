# Shared helpers of the harness scripts (sourced, not run).
# shellcheck shell=bash

HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HARNESS/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
# The guests' device-coherent memory: QEMU puts 1 GiB of the guests' 4 GiB
# above 4 GiB; this retypes its first 512 MiB to specific-purpose memory
# (see run.sh), which test_hmm takes through spm_addr_dev0/1 (harness/suites).
GUEST_MEMMAP='memmap=512M%0x100000000-1+0xefffffff'
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

# bench_kernels: the dependencies, the base, the assembled tree, and the
# default and reference kernels with their benchmark programs (make bench,
# make profile).
bench_kernels() {
	local v

	"$HARNESS/deps.sh"
	"$HARNESS/fetch-base.sh"
	"$HARNESS/strip.sh"
	"$HARNESS/assemble.sh"
	for v in default reference; do
		"$HARNESS/build.sh" "$v"
		"$HARNESS/bench-build.sh" "$v"
	done
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

# kmake_init SRC OUT: set KMAKE, the kernel make command for SRC built in
# OUT: through the build lock, all CPUs, with ccache when there is one.
kmake_init() {
	KMAKE=(with_build_lock make -C "$1" O="$2" ARCH=x86_64 -j"$(nproc)")
	if command -v ccache >/dev/null; then
		KMAKE+=(CC="ccache gcc")
		export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache} CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-20G}
	fi
}

# configure_kernel NAME SRC OUT FRAG...: tinyconfig with FRAGs merged in
# (redone only when FRAGs change), then olddefconfig, through KMAKE
# (kmake_init first).  Dies, naming them, if a fragment symbol that SRC
# defines did not come out as asked, `CONFIG_X=v` or `# CONFIG_X is not
# set` (a dependency missing, a select forcing it; of a symbol that
# several fragments set, the last one counts); the fragment
# symbols SRC does not define are left in CONFIG_ABSENT.  Log:
# build/logs/config-NAME.log.
configure_kernel() {
	local name=$1 src=$2 out=$3
	shift 3
	local frags=("$@") stamp defined line sym val bad=()
	mkdir -p "$out"
	stamp=$(hash_files "${frags[@]}")
	if [[ ! -f $out/.config || $(cat "$out/.config-stamp" 2>/dev/null) != "$stamp" ]]; then
		rm -f "$out/.config-stamp"
		run_logged "$LOGS/config-$name.log" "${KMAKE[@]}" tinyconfig
		run_logged "$LOGS/config-$name.log" \
			"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}"
	fi
	run_logged "$LOGS/config-$name.log" "${KMAKE[@]}" olddefconfig
	defined=$(grep -rhoE --include='Kconfig*' '^[[:space:]]*(menu)?config [A-Z0-9_]+' "$src" |
		awk '{ print $2 }' | sort -u)
	CONFIG_ABSENT=()
	# a symbol set by several fragments: merge_config.sh keeps the last
	local -A asked=()
	local -a order=()
	while IFS= read -r line; do
		if [[ $line =~ ^CONFIG_([A-Z0-9_]+)=(.*)$ ]]; then
			sym=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
		elif [[ $line =~ ^#\ CONFIG_([A-Z0-9_]+)\ is\ not\ set$ ]]; then
			sym=${BASH_REMATCH[1]} val=
		else
			continue
		fi
		[[ -v asked[$sym] ]] || order+=("$sym")
		asked[$sym]=$val
	done < <(cat "${frags[@]}")
	for sym in "${order[@]}"; do
		val=${asked[$sym]}
		if [[ -n $val ]]; then
			line="CONFIG_$sym=$val"
		else
			line="# CONFIG_$sym is not set"
		fi
		if ! grep -qx "$sym" <<<"$defined"; then
			CONFIG_ABSENT+=("$sym")
		elif { [[ -n $val ]] && ! grep -qx "CONFIG_$sym=$val" "$out/.config"; } ||
			{ [[ -z $val ]] && grep -q "^CONFIG_$sym=" "$out/.config"; }; then
			bad+=("${line} (got: $(grep -E "^(# )?CONFIG_${sym}[= ]" "$out/.config" || echo unset))")
		fi
	done
	if ((${#bad[@]})); then
		printf '    not as asked: %s\n' "${bad[@]}" >&2
		die "the $name config does not have what the fragments ask (dependencies?)"
	fi
	echo "$stamp" >"$out/.config-stamp"
}
