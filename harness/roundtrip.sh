#!/bin/bash
# Prove that export -> assemble is the identity: export build/tree into a
# scratch copy of the project and compare it with the project's own files,
# then assemble a fresh tree from that copy and compare the trees.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tree=$BUILD/tree
[[ -d $tree/.git ]] || die "no build tree (run: make assemble)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/project"
python3 "$HARNESS/series.py" export --to "$tmp/project" >/dev/null
cd "$ROOT"
diff -ru patches "$tmp/project/patches" || die "exported patches differ from patches/"
mapfile -t owned < <(sed -n 's/^[[:space:]]\+//p' patches/series 2>/dev/null | grep -v '^#' || true)
for f in "${owned[@]}"; do
	cmp -s "$f" "$tmp/project/$f" || die "exported $f differs from the project's"
done
# the exported project assembles into the very same tree
a=$(git -C "$tree" rev-parse 'HEAD^{tree}')
b=$(python3 "$HARNESS/series.py" --root "$tmp/project" --tree "$tree" tree)
[[ $a == "$b" ]] || die "assembling the exported project gives another tree ($b, not $a)"
echo "round trip: ${#owned[@]} owned file(s), $(ls patches/*.patch 2>/dev/null | wc -l) patch(es): identical"
