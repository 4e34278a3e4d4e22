#!/bin/bash
# apply.sh LINUX: strip a user's own Linux 6.12 tree of its HMM and apply the
# series to it, in place (for example Debian's /usr/src/linux-source-6.12
# unpacked).  Refuses, with nothing changed, a tree that is not 6.12, a tree
# that already has the series (or was stripped), and a git tree with
# uncommitted changes.  All work is done on a scratch copy first; the tree
# is only written once everything applied.  In a git tree the result is
# committed: one commit for the strip, then one per patch (git am).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[[ $# -eq 1 ]] || die "usage: apply.sh /path/to/linux-6.12"
[[ -d $1 ]] || die "no such directory: $1"
dst=$(cd "$1" && pwd)
[[ -f $dst/Makefile && -d $dst/mm ]] || die "$dst is not a Linux source tree"
ver=$(sed -n 's/^VERSION = //p' "$dst/Makefile")
lvl=$(sed -n 's/^PATCHLEVEL = //p' "$dst/Makefile")
[[ $ver == 6 && $lvl == 12 ]] || die "$dst is Linux $ver.$lvl; the series is for 6.12"
[[ ! -e $dst/mm/hmm_swap_kunit.c ]] || die "$dst already has the series (mm/hmm_swap_kunit.c exists)"
[[ -e $dst/mm/hmm.c && -e $dst/mm/migrate_device.c ]] ||
	die "$dst has no HMM of its own to replace (already stripped?)"
is_git=
if git -C "$dst" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
	[[ $(git -C "$dst" rev-parse --show-toplevel) == "$dst" ]]; then
	is_git=1
	[[ -z $(git -C "$dst" status --porcelain --untracked-files=no) ]] ||
		die "$dst has uncommitted changes: commit or stash them first"
fi

work=$(mktemp -d /tmp/hmm-apply.XXXXXX)
trap 'rm -rf "$work"' EXIT

stage "strip a copy of $dst"
rsync -a --exclude=.git "$dst/" "$work/tree/"
run_logged "$LOGS/apply-strip.log" python3 "$HARNESS/strip/strip.py" "$work/tree"
run_logged "$LOGS/apply-strip.log" python3 "$HARNESS/strip/check.py" "$work/tree"
stage_done

stage "apply the series to the copy"
rsync -a "$work/tree/" "$work/stripped/"
mapfile -t entries < <(python3 -c "
import sys; sys.path.insert(0, '$HARNESS'); import series
for name, owned in series.read_series('$ROOT'):
    print(name, *owned)")
for entry in "${entries[@]}"; do
	read -ra f <<<"$entry"
	(cd "$work/tree" && git apply --whitespace=nowarn "$ROOT/patches/${f[0]}") 2>"$work/err" ||
		die "patch ${f[0]} does not apply to $dst: $(head -n 3 "$work/err" | tr '\n' ' ')"
	for owned in "${f[@]:1}"; do
		mkdir -p "$work/tree/$(dirname "$owned")"
		cp -p "$ROOT/$owned" "$work/tree/$owned"
	done
done
stage_done "${#entries[@]} patches"

stage "write $dst"
if [[ -n $is_git ]]; then
	# the strip as one commit, then the series mail by mail
	rsync -a --delete --exclude=.git "$work/stripped/" "$dst/"
	git -C "$dst" add -A .
	git -C "$dst" commit -q -m "Remove the kernel's own HMM (strip step of the HMM series)"
	"$HARNESS/export-series.sh" >/dev/null
	mapfile -t mails < <(ls "$BUILD/series"/*.patch | grep -v '/0000-cover-letter\.patch$')
	git -C "$dst" am -q "${mails[@]}" || die "git am failed in $dst (see git am --abort)"
else
	rsync -a --delete "$work/tree/" "$dst/"
fi
stage_done "$dst now has the HMM series"
