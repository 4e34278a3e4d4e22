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
mkdir -p "$out"
jobs=$(nproc)
kmake=(with_build_lock make -C "$src" O="$out" ARCH=x86_64 -j"$jobs")
if command -v ccache >/dev/null; then
	kmake+=(CC="ccache gcc")
	export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache} CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-20G}
fi

stage "configure $variant"
stamp=$(hash_files "${frags[@]}")
if [[ ! -f $out/.config || $(cat "$out/.config-stamp" 2>/dev/null) != "$stamp" ]]; then
	rm -f "$out/.config-stamp"
	run_logged "$LOGS/config-$variant.log" "${kmake[@]}" tinyconfig
	run_logged "$LOGS/config-$variant.log" \
		"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}"
fi
run_logged "$LOGS/config-$variant.log" "${kmake[@]}" olddefconfig
# every fragment symbol this tree defines must have come out as asked
defined=$(grep -rhoE --include='Kconfig*' '^[[:space:]]*(menu)?config [A-Z0-9_]+' "$src" |
	awk '{ print $2 }' | sort -u)
bad=() absent=()
while IFS= read -r line; do
	[[ $line =~ ^CONFIG_([A-Z0-9_]+)=(.*)$ ]] || continue
	sym=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
	if ! grep -qx "$sym" <<<"$defined"; then
		absent+=("$sym")
	elif ! grep -qx "CONFIG_$sym=$val" "$out/.config"; then
		bad+=("CONFIG_$sym=$val (got: $(grep -E "^(# )?CONFIG_$sym[= ]" "$out/.config" || echo unset))")
	fi
done < <(cat "${frags[@]}")
if ((${#bad[@]})); then
	printf '    not as asked: %s\n' "${bad[@]}" >&2
	die "the $variant config does not have what the fragments ask (dependencies?)"
fi
echo "$stamp" >"$out/.config-stamp"
stage_done "${absent[*]:+not in this tree: ${absent[*]}}"

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
