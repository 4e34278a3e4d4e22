#!/bin/bash
# guest-run.sh VARIANT "FILES" "CMD": boot a built variant with FILES (copied
# to /files in the guest) and its modules, run CMD there, print its output
# and exit with its status.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
variant=$1 files=$2 cmd=$3
out=$BUILD/out/$variant
[[ -f $out/arch/x86/boot/bzImage ]] || die "variant $variant is not built (run: make build VARIANT=$variant)"
args=(--kernel "$out/arch/x86/boot/bzImage" --modules "$out/mods")
for f in $files; do
	[[ -e $f ]] || die "no such file: $f"
	args+=(--file "$f")
done
exec "$HARNESS/guest/run-command.sh" "${args[@]}" -- sh -c "$cmd"
