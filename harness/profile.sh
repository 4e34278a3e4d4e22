#!/bin/bash
# profile.sh: where the bench's instructions go, ours against reference.
#
# Boots `default` and `reference` under QEMU -icount with the tbcount TCG
# plugin (bench/profile/tbcount.c), runs hmm-bench there with
# $PROFILE_ARGS, and prints the kernel functions (test_hmm and hmm_bench
# included) whose instruction counts differ most.  Only the timed regions
# count: the plugin opens and closes a window at each clock_gettime() call
# of hmm-bench.  $PROFILE_WINDOWS picks some of them: "every=2,phase=1"
# counts the second of two regions that alternate (dmirror-to-sys and
# dmirror-cpu-fault time their MIGRATE_TO_DEV first).  The api workloads
# are timed inside hmm_bench, where no window opens: for them the whole
# guest run counts, boot and set-up included, so pick a size that
# dominates it.
#
# Output under build/profile/{ours,reference}; the report in
# build/profile/report.txt.  Annotate one function afterwards with:
#   bench/profile/tbreport.py --annotate FUNC build/profile/ours
set -euo pipefail
. "$(dirname "$0")/lib.sh"

args=${PROFILE_ARGS:---only fault-read --mem 4k --sizes 32M --reps-bytes 512M}
top=${PROFILE_TOP:-40}
dest=$BUILD/profile

bench_kernels
# the real QEMU, which deps.sh installs; the wrapper below comes first in PATH
qemu=$(command -v qemu-system-x86_64)

stage "build the tbcount plugin"
rm -rf "$dest"
mkdir -p "$dest/bin"
run_logged "$LOGS/profile-plugin.log" gcc -shared -fPIC -O2 -Wall -Wextra \
	-Wno-unused-parameter -Werror -o "$dest/tbcount.so" \
	"$ROOT/bench/profile/tbcount.c"
# qemu.sh runs qemu-system-x86_64 from PATH: put the plugin on its command
# line through a wrapper found first.
cat >"$dest/bin/qemu-system-x86_64" <<WRAP
#!/bin/sh
exec "$qemu" -plugin "$dest/tbcount.so,out=\$TBCOUNT_OUT,toggle=\$TBCOUNT_TOGGLE${PROFILE_WINDOWS:+,$PROFILE_WINDOWS}" "\$@"
WRAP
chmod +x "$dest/bin/qemu-system-x86_64"
stage_done

cs=/sys/devices/system/clocksource/clocksource0/current_clocksource
wait_clock="for i in 1 2 3 4 5 6 7 8 9 10; do case \$(cat $cs) in *jiffies*) sleep 1 ;; *) break ;; esac; done"
for kernel in ours reference; do
	v=$([[ $kernel == ours ]] && echo default || echo reference)
	out=$BUILD/out/$v
	d=$dest/$kernel
	mkdir -p "$d/ko"
	toggle=$(nm "$BUILD/bench/$v/hmm-bench" | awk '$3 == "clock_gettime" { print $1 }')
	[[ -n $toggle ]] || die "no clock_gettime in $BUILD/bench/$v/hmm-bench"
	stage "profile $kernel ($v): hmm-bench $args"
	TBCOUNT_OUT=$d/tbcount.out TBCOUNT_TOGGLE=$toggle PATH=$dest/bin:$PATH \
		"$HARNESS/guest/run-command.sh" --kernel "$out/arch/x86/boot/bzImage" \
		--modules "$out/mods" --file "$BUILD/bench/$v/hmm_bench.ko" \
		--file "$BUILD/bench/$v/hmm-bench" --mem 4096 --smp 2 --icount 0 \
		--timeout "${PROFILE_TIMEOUT:-3600}" --log "$d/console.log" \
		--append "transparent_hugepage=madvise nokaslr norandmaps" -- \
		sh -c "$wait_clock; insmod /lib/modules/test_hmm.ko && insmod /files/hmm_bench.ko && /files/hmm-bench $args && echo MODULES && cat /proc/modules" \
		>"$d/guest.out"
	sed -n '/^MODULES$/,$p' "$d/guest.out" | tail -n +2 >"$d/modules"
	cp "$out/System.map" "$d/"
	ln -sf "$out/vmlinux" "$d/vmlinux"
	find "$out/mods" -name test_hmm.ko -exec cp {} "$d/ko/" \;
	cp "$BUILD/bench/$v/hmm_bench.ko" "$d/ko/"
	[[ -s $d/tbcount.out ]] || die "no counts from the $kernel guest (log: $d/console.log)"
	stage_done "$(grep -c '^BENCH ' "$d/guest.out") bench records"
done

grep '^BENCH {"layer":"[ae]' "$dest/ours/guest.out" "$dest/reference/guest.out" |
	sed 's/,"min_ns.*//; s/"layer"://; s/"workload"://; s/"mem"://' || true
"$ROOT/bench/profile/tbreport.py" --top "$top" "$dest/ours" "$dest/reference" |
	tee "$dest/report.txt"
