#!/bin/bash
# bisect-build.sh: build the `default` variant after every patch of the
# series, incrementally (a worktree of build/tree and one out-of-tree build
# dir, with ccache), and name the first patch after which it does not build.
# Not part of `make test` (it takes several builds); run it with
# `make bisect-build` before sending the series.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tree=$BUILD/tree
wt=$BUILD/bisect/tree
out=$BUILD/bisect/out
[[ -d $tree/.git ]] || die "no build tree (run: make assemble)"
mkdir -p "$BUILD/bisect"
if [[ ! -d $wt ]]; then
	git -C "$tree" worktree prune
	git -C "$tree" worktree add -q --detach "$wt" base
fi
kmake=(with_build_lock make -C "$wt" O="$out" ARCH=x86_64 -j"$(nproc)")
command -v ccache >/dev/null && kmake+=(CC="ccache gcc")
mapfile -t commits < <(git -C "$tree" rev-list --reverse base..HEAD)
i=0
for c in "${commits[@]}"; do
	i=$((i + 1))
	subject=$(git -C "$tree" log -1 --format=%s "$c")
	stage "build after patch $i/${#commits[@]}: $subject"
	git -C "$wt" checkout -q --detach "$c"
	if [[ ! -f $out/.config ]]; then
		mkdir -p "$out"
		run_logged "$LOGS/bisect-config.log" "${kmake[@]}" tinyconfig
		run_logged "$LOGS/bisect-config.log" "$wt/scripts/kconfig/merge_config.sh" -m -O "$out" \
			"$out/.config" "$HARNESS/config/base.config"
	fi
	run_logged "$LOGS/bisect-config.log" "${kmake[@]}" olddefconfig
	log=$LOGS/bisect-$i.log
	if ! "${kmake[@]}" bzImage modules >"$log" 2>&1; then
		echo "    FIRST BROKEN PATCH: $i/${#commits[@]} $subject (log: $log)" >&2
		grep -E -m 20 'error:|Error [0-9]' "$log" >&2 || tail -n 20 "$log" >&2
		exit 1
	fi
	stage_done "$(grep -c 'warning:' "$log" || true) warnings"
done
echo "every one of the ${#commits[@]} patches builds"
