#!/bin/bash
# Make build/stripped: the base kernel with its own HMM family removed
# (strip/strip.py), proven complete by strip/check.py.  Cached on the base
# version and the strip tool itself.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

base=$(base_tree)
out=$BUILD/stripped
stamp=$(
	base_version
	hash_files "$HARNESS"/strip/*.py
)
stamp=$(echo "$stamp" | sha256sum | cut -c1-16)

stage "strip the base's own HMM"
if [[ -f $out/.stripped && $(cat "$out/.stripped") == "$stamp" ]]; then
	stage_done "cached"
	exit 0
fi
rm -rf "$out" "$out.tmp"
cp -a "$base" "$out.tmp"
rm -f "$out.tmp/.unpacked"
# Debian's packaging ignores every top-level path in .gitignore; the tree
# becomes a git work tree, so that one rule goes.
sed -i -e '/^# Debian packaging: ignore everything at the top level/,/^!\/debian\/$/d' "$out.tmp/.gitignore"
run_logged "$LOGS/strip.log" python3 "$HARNESS/strip/strip.py" "$out.tmp"
run_logged "$LOGS/strip-check.log" python3 "$HARNESS/strip/check.py" "$out.tmp"
echo "$stamp" >"$out.tmp/.stripped"
mv "$out.tmp" "$out"
stage_done "$(tail -n 1 "$LOGS/strip-check.log")"
