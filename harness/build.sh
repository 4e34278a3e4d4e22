#!/bin/bash
# build.sh VARIANT: configure and build one kernel variant out of tree.
#
#   default    the assembled tree (stripped base + the series), base.config
#   debug      the assembled tree, base.config + debug.config
#   reference  the unstripped base (its own HMM), base.config
#   stripped   the stripped base alone, base.config (proves the strip builds)
#
# Output: build/out/VARIANT/{arch/x86/boot/bzImage, mods/, hdr/}.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

variant=${1:-}
case $variant in
default | debug) src=$BUILD/tree ;;
reference) src=$(base_tree) ;;
stripped) src=$BUILD/stripped ;;
*) die "unknown variant '${variant}': choose default, debug, reference or stripped" ;;
esac
[[ -f $src/Makefile ]] || die "no source tree for $variant at $src (run: make assemble)"

frags=("$HARNESS/config/base.config")
[[ $variant == debug ]] && frags+=("$HARNESS/config/debug.config")
out=$BUILD/out/$variant
jobs=$(nproc)
kmake_init "$src" "$out"
kmake=("${KMAKE[@]}")

stage "configure $variant"
configure_kernel "$variant" "$src" "$out" "${frags[@]}"
stage_done "${CONFIG_ABSENT[*]:+not in this tree: ${CONFIG_ABSENT[*]}}"

stage "build $variant kernel and modules (-j$jobs)"
log=$LOGS/build-$variant.log
set +e
"${kmake[@]}" bzImage modules 2>&1 | tee "$log" |
	awk '/^  [A-Z]+ / { n++; if (n % 500 == 0) printf "    ... %d build steps\n", n; fflush() }'
rc=${PIPESTATUS[0]}
set -e
if ((rc)); then
	echo "    FAILED: build $variant (log: $log)" >&2
	grep -E -m 40 'error:|Error [0-9]|undefined reference|\*\*\*' "$log" >&2 || tail -n 40 "$log" >&2
	exit 1
fi
rm -rf "$out/mods" "$out/hdr"
run_logged "$LOGS/install-$variant.log" "${kmake[@]}" INSTALL_MOD_PATH="$out/mods" modules_install
run_logged "$LOGS/install-$variant.log" "${kmake[@]}" INSTALL_HDR_PATH="$out/hdr" headers_install
warnings=$(grep -c 'warning:' "$log" || true)
stage_done "$(stat -c %s "$out/arch/x86/boot/bzImage") byte bzImage, $warnings compiler warnings"
