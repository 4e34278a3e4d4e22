#!/bin/bash
# Build the busybox initramfs of the HMMCI test guest (newc cpio, gzip).
# See harness/PROTOCOL.md for what the guest does with it.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	cat <<EOF
usage: $prog --out FILE.cpio.gz --plan PLAN.sh [--modules DIR] [--tests DIR]
       [--file HOSTPATH[:GUESTPATH]]...

  --out FILE     the initramfs to write (written atomically)
  --plan FILE    shell snippet installed as /plan.sh (calls load_module,
                 run_kselftest, run_kunit, run_cmd; see harness/PROTOCOL.md)
  --modules DIR  every *.ko under DIR (recursively) goes flat into /lib/modules/
  --tests DIR    the contents of DIR go into /tests/ (modes kept)
  --file H[:G]   host file or directory H goes to guest path G
                 (absolute; default /files/<basename of H>); repeatable

Needs Debian's busybox-static (/bin/busybox) and cpio.
EOF
}

die() {
	echo "$prog: error: $*" >&2
	exit 1
}

need_arg() {
	[ "$2" -ge 2 ] || die "$1 needs an argument (see --help)"
}

out='' plan='' modules='' tests=''
files=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) need_arg "$1" $#; out=$2; shift 2 ;;
	--plan) need_arg "$1" $#; plan=$2; shift 2 ;;
	--modules) need_arg "$1" $#; modules=$2; shift 2 ;;
	--tests) need_arg "$1" $#; tests=$2; shift 2 ;;
	--file) need_arg "$1" $#; files+=("$2"); shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

[ -n "$out" ] || die "--out is required (see --help)"
[ -n "$plan" ] || die "--plan is required (see --help)"
[ -f "$plan" ] || die "plan file '$plan' does not exist"
[ -z "$modules" ] || [ -d "$modules" ] || die "modules directory '$modules' does not exist"
[ -z "$tests" ] || [ -d "$tests" ] || die "tests directory '$tests' does not exist"
[ -d "$(dirname "$out")" ] || die "output directory '$(dirname "$out")' does not exist"
[ -f "$here/init" ] || die "guest init '$here/init' is missing"
command -v cpio >/dev/null || die "cpio not found (install cpio)"
command -v gzip >/dev/null || die "gzip not found (install gzip)"

busybox=/bin/busybox
if command -v dpkg-query >/dev/null &&
	[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" != "install ok installed" ]; then
	die "busybox-static is not installed (install busybox-static)"
fi
[ -x "$busybox" ] || die "$busybox not found (install busybox-static)"
if command -v ldd >/dev/null && ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked (install busybox-static)"
fi

stage=
tmpout=
cleanup() {
	[ -z "$stage" ] || rm -rf "$stage"
	[ -z "$tmpout" ] || rm -f "$tmpout"
}
trap cleanup EXIT
stage=$(mktemp -d "${TMPDIR:-/tmp}/hmmci-initramfs.XXXXXX")
root=$stage/root
mkdir -p "$root"

# Base layout and busybox with its applet links (absolute symlinks).
for d in bin sbin usr/bin usr/sbin dev proc sys tmp root etc lib/modules tests files mnt run; do
	mkdir -p "$root/$d"
done
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
while IFS= read -r applet; do
	[ -n "$applet" ] || continue
	[ "$applet" != bin/busybox ] || continue
	mkdir -p "$root/$(dirname "$applet")"
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)
[ -e "$root/bin/sh" ] || die "$busybox has no sh applet"

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

cp "$here/init" "$root/init"
chmod 755 "$root/init"
cp "$plan" "$root/plan.sh"
chmod 644 "$root/plan.sh"

# Modules: flat into /lib/modules; the same basename twice is an error
# unless the files are identical.
if [ -n "$modules" ]; then
	while IFS= read -r -d '' ko; do
		dest=$root/lib/modules/${ko##*/}
		if [ -e "$dest" ]; then
			cmp -s "$ko" "$dest" ||
				die "two different modules named ${ko##*/} under '$modules' (flat /lib/modules cannot hold both)"
			continue
		fi
		cp "$ko" "$dest"
		chmod 644 "$dest"
	done < <(find "$modules" -name '*.ko' \( -type f -o -type l \) -print0 | LC_ALL=C sort -z)
fi

if [ -n "$tests" ]; then
	cp -R --preserve=mode,links "$tests/." "$root/tests/"
fi

for spec in "${files[@]}"; do
	host=$spec
	guest=
	if [[ $spec == *:/* ]]; then
		host=${spec%:*}
		guest=${spec##*:}
	fi
	[ -n "$host" ] || die "--file '$spec': empty host path"
	[ -e "$host" ] || die "--file '$spec': '$host' does not exist"
	if [ -z "$guest" ]; then
		guest=/files/$(basename "$host")
	fi
	case $guest in
	/*) ;;
	*) die "--file '$spec': guest path '$guest' must be absolute" ;;
	esac
	case /$guest/ in
	*/../* | */./*) die "--file '$spec': guest path '$guest' must not contain . or .. components" ;;
	esac
	guest=${guest%/}
	[ -n "$guest" ] || die "--file '$spec': guest path cannot be /"
	if [ -e "$root$guest" ] || [ -L "$root$guest" ]; then
		die "--file '$spec': guest path '$guest' already exists in the initramfs"
	fi
	mkdir -p "$root$(dirname "$guest")"
	cp -R -H --preserve=mode,links "$host" "$root$guest"
done

# Fixed timestamps for a reproducible archive.
find "$root" -exec touch -h -d @0 {} +

# newc_node NAME MODE(octal) MAJOR MINOR INO: one newc cpio entry, no data.
newc_node() {
	local name=$1 mode=$2 major=$3 minor=$4 ino=$5 namesize hdr pad
	namesize=$((${#name} + 1))
	# magic ino mode uid gid nlink mtime filesize devmajor devminor
	# rdevmajor rdevminor namesize check
	hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$ino" $((8#$mode)) 0 0 1 0 0 0 0 "$major" "$minor" "$namesize" 0)
	printf '%s%s\0' "$hdr" "$name"
	pad=$(((4 - (110 + namesize) % 4) % 4))
	head -c "$pad" /dev/zero
}

# Device nodes in a second, appended archive (the kernel unpacks
# concatenated archives), so that no mknod is needed on the host.  The
# kernel opens /dev/console for init before /init can mount devtmpfs.
devnodes() {
	newc_node dev/console 020600 5 1 900001
	newc_node dev/null 020666 1 3 900002
	newc_node TRAILER!!! 0 0 0 0
}

tmpout=$(mktemp "$out.tmp.XXXXXX")
{
	(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --quiet -o -H newc -R 0:0 --reproducible)
	devnodes
} | gzip -n -6 >"$tmpout"
chmod 644 "$tmpout"
mv -f "$tmpout" "$out"
tmpout=
