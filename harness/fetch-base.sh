#!/bin/bash
# Fetch Debian's linux-source-6.12 (version pinned in base.pin) and unpack it
# into build/base/linux-VERSION.  Cached: a second run fetches nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkg=$(pin package)
want=$(pin version)
want_sha=$(pin sha256)
cache=$BUILD/cache
mkdir -p "$cache" "$BUILD/base"

deb_name() { echo "${pkg}_${1//:/%3a}_all.deb"; }

stage "fetch base kernel ($pkg $want)"
avail=$(df -Pk "$BUILD" | awk 'NR == 2 { print $4 }')
((avail > 12 * 1024 * 1024)) ||
	die "too little disk: $((avail / 1024)) MiB free under $BUILD, the build needs about 12 GiB"

version=$want
deb=$cache/$(deb_name "$want")
if [[ ! -f $deb ]] || [[ $(sha256sum "$deb" | cut -d' ' -f1) != "$want_sha" ]]; then
	rm -f "$deb"
	tmp=$(mktemp -d "$cache/dl.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if (cd "$tmp" && apt-get download -q "$pkg=$want") >"$LOGS/fetch.log" 2>&1; then
		mv "$tmp/$(deb_name "$want")" "$deb"
		got=$(sha256sum "$deb" | cut -d' ' -f1)
		if [[ $got != "$want_sha" ]]; then
			rm -f "$deb"
			die "checksum mismatch for $pkg $want: got $got, pinned $want_sha"
		fi
	else
		# the pinned version left the archive: take the newest one
		newest=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
		if [[ -z $newest || $newest == "(none)" ]]; then
			die "cannot find $pkg in the Debian archive (no network, or run 'apt-get update'); log: $LOGS/fetch.log"
		fi
		(cd "$tmp" && apt-get download -q "$pkg=$newest") >>"$LOGS/fetch.log" 2>&1 ||
			die "cannot download $pkg $newest from the Debian archive (network?); log: $LOGS/fetch.log"
		version=$newest
		deb=$cache/$(deb_name "$newest")
		mv "$tmp/$(deb_name "$newest")" "$deb"
		cat >&2 <<-WARN
		*****************************************************************
		WARNING: the pinned base $pkg $want is no longer in the archive.
		WARNING: using the newest one instead:  $pkg $newest
		WARNING: sha256 $(sha256sum "$deb" | cut -d' ' -f1)
		WARNING: update harness/base.pin once the series is checked on it.
		*****************************************************************
		WARN
	fi
fi

upstream=${version%%-*}
tree=$BUILD/base/linux-$upstream
if [[ ! -f $tree/.unpacked ]]; then
	rm -rf "$tree" "$tree.tmp"
	mkdir -p "$tree.tmp"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$pkg.tar.xz" |
		tar -xJ -C "$tree.tmp" --strip-components=1 ||
		die "cannot unpack $deb"
	touch "$tree.tmp/.unpacked"
	mv "$tree.tmp" "$tree"
fi
echo "$upstream" >"$BUILD/base/VERSION"
echo "$version" >"$BUILD/base/DEBIAN_VERSION"
stage_done "$pkg $version"
