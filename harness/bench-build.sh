#!/bin/bash
# bench-build.sh VARIANT: build the benchmark module (bench/hmm_bench.c, out
# of tree, with W=1) against a built variant, and the benchmark program
# (bench/hmm-bench.c, static) with that variant's headers.
#
# Output: build/bench/VARIANT/{hmm_bench.ko,hmm-bench}.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

variant=${1:-}
case $variant in default | debug | reference) ;;
*) die "unknown variant '${variant}': choose default, debug or reference" ;;
esac
out=$BUILD/out/$variant
[[ -f $out/Module.symvers ]] || die "variant $variant is not built (run: make build VARIANT=$variant)"
dest=$BUILD/bench/$variant
mod=$dest/module
bench=$ROOT/bench

stage "build the benchmark module and program for $variant"
# M= builds in the module's folder: link the sources into one of our own
rm -rf "$mod"
mkdir -p "$mod"
for f in Kbuild hmm_bench.c hmm_bench_uapi.h; do
	ln -s "$bench/$f" "$mod/$f"
done
kmake=(with_build_lock make -C "$out" M="$mod" W=1)
command -v ccache >/dev/null && kmake+=(CC="ccache gcc")
log=$LOGS/bench-module-$variant.log
run_logged "$log" "${kmake[@]}" modules
if grep -q 'warning:' "$log"; then
	grep 'warning:' "$log" >&2
	die "the benchmark module has compiler warnings (log: $log)"
fi
cp "$mod/hmm_bench.ko" "$dest/"
run_logged "$LOGS/bench-program-$variant.log" gcc -static -O2 -Wall -Wextra -Werror -pthread \
	-isystem "$out/hdr/include" -I "$bench" -I "$ROOT/lib" \
	"$bench/hmm-bench.c" -o "$dest/hmm-bench"
stage_done "$dest"
