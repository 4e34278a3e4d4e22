#!/bin/bash
# Test of `make apply` (harness/apply.sh): it refuses trees it must not
# touch, changing nothing, and turns a pristine copy of the base into
# exactly the tree `make` builds.  Prints one `ok -`/`FAIL -` line per check.
set -uo pipefail
HARNESS=$(cd "$(dirname "$0")/.." && pwd)
. "$HARNESS/lib.sh"
tmp=$(mktemp -d /tmp/hmm-test-apply.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0

check() {
	local what=$1
	shift
	if "$@"; then echo "ok - $what"; else echo "FAIL - $what"; failed=$((failed + 1)); fi
}

fake_tree() { # fake_tree DIR VERSION PATCHLEVEL [files...]
	local d=$1 v=$2 p=$3
	shift 3
	mkdir -p "$d/mm"
	printf 'VERSION = %s\nPATCHLEVEL = %s\n' "$v" "$p" >"$d/Makefile"
	for f in "$@"; do mkdir -p "$d/$(dirname "$f")" && echo x >"$d/$f"; done
}

refused() { # refused DIR TEXT: apply.sh fails, says TEXT, leaves DIR as it was
	local before after out
	before=$(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	out=$("$HARNESS/apply.sh" "$1" 2>&1) && return 1
	after=$(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	[[ $out == *"$2"* && $before == "$after" ]]
}

fake_tree "$tmp/old" 6 1 mm/hmm.c mm/migrate_device.c
check "a 6.1 tree is refused, unchanged" refused "$tmp/old" "is Linux 6.1; the series is for 6.12"
fake_tree "$tmp/done" 6 12 mm/hmm.c mm/migrate_device.c mm/hmm_swap_kunit.c
check "a tree with the series is refused, unchanged" refused "$tmp/done" "already has the series"
fake_tree "$tmp/bare" 6 12
check "a tree without HMM of its own is refused, unchanged" refused "$tmp/bare" "already stripped?"
fake_tree "$tmp/dirty" 6 12 mm/hmm.c mm/migrate_device.c
git -C "$tmp/dirty" init -q && git -C "$tmp/dirty" add -A &&
	git -C "$tmp/dirty" -c user.name=t -c user.email=t@t commit -qm t && echo y >>"$tmp/dirty/mm/hmm.c"
check "a git tree with uncommitted changes is refused, unchanged" refused "$tmp/dirty" "uncommitted changes"

tree=$BUILD/tree
if [[ -d $tree/.git && -f $(base_tree)/Makefile ]]; then
	cp -a "$(base_tree)" "$tmp/linux"
	rm -f "$tmp/linux/.unpacked"
	if "$HARNESS/apply.sh" "$tmp/linux" >"$tmp/apply.log" 2>&1; then
		echo "ok - make apply strips and patches a pristine 6.12 tree"
		mkdir "$tmp/want" && git -C "$tree" archive HEAD | tar -x -C "$tmp/want"
		# the build tree drops Debian's ignore-everything rule; a user's tree keeps it
		check "the applied tree is exactly the tree make builds" \
			diff -rq --exclude=.gitignore "$tmp/want" "$tmp/linux"
	else
		echo "FAIL - make apply strips and patches a pristine 6.12 tree"
		tail -n 20 "$tmp/apply.log"
		failed=$((failed + 1))
	fi
else
	echo "FAIL - no build tree or base to apply (run make assemble first)"
	failed=$((failed + 1))
fi
((failed == 0)) && echo "test_apply.sh: all checks passed"
exit $((failed != 0))
