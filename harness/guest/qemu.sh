#!/bin/bash
# Boot a kernel + HMMCI initramfs in QEMU (TCG) and save the serial console.
#
# Exit status: 0 if the guest printed "HMMCI: DONE"; 124 if it timed out;
# 3 if it stopped before finishing (crash, panic, failed to start); 2 on bad
# usage.
set -euo pipefail

prog=${0##*/}

usage() {
	cat <<EOF
usage: $prog --kernel BZIMAGE --initrd FILE --log FILE [--append "EXTRA CMDLINE"]
       [--timeout SECONDS] [--mem MB] [--smp N] [--icount SHIFT]

  --kernel F   kernel image (bzImage)
  --initrd F   initramfs (from mkinitramfs.sh)
  --log F      serial console log, saved whole
  --append S   extra kernel command line, after the base
               "console=ttyS0 panic=-1 loglevel=5 log_buf_len=8M"
  --timeout S  wall-clock limit for the whole boot (default 900)
  --mem MB     guest memory (default 2048)
  --smp N      guest CPUs (default 2)
  --icount S   TCG instruction counting (-icount shift=S,sleep=off): the
               guest clock advances 2^S ns per instruction, so guest timings
               count instructions and no longer depend on the host's load;
               with -seed 1 and an RTC that starts on 2026-01-01 and follows
               the guest clock, the guest draws the same random numbers
               (KASLR, mmap bases, RDRAND) at every boot, so a run repeats

Environment: HMMCI_ACCEL=kvm uses KVM instead of TCG; HMMCI_VERBOSE=1 also
streams the console to stdout.
Exit status: 0 guest printed "HMMCI: DONE"; 124 timed out; 3 stopped early.
EOF
}

die() {
	echo "$prog: error: $*" >&2
	exit 2
}

need_arg() {
	[ "$2" -ge 2 ] || die "$1 needs an argument (see --help)"
}

kernel='' initrd='' log='' append='' timeout_s=900 mem=2048 smp=2 icount=''
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) need_arg "$1" $#; kernel=$2; shift 2 ;;
	--initrd) need_arg "$1" $#; initrd=$2; shift 2 ;;
	--log) need_arg "$1" $#; log=$2; shift 2 ;;
	--append) need_arg "$1" $#; append=$2; shift 2 ;;
	--timeout) need_arg "$1" $#; timeout_s=$2; shift 2 ;;
	--mem) need_arg "$1" $#; mem=$2; shift 2 ;;
	--smp) need_arg "$1" $#; smp=$2; shift 2 ;;
	--icount) need_arg "$1" $#; icount=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

[ -n "$kernel" ] || die "--kernel is required (see --help)"
[ -n "$initrd" ] || die "--initrd is required (see --help)"
[ -n "$log" ] || die "--log is required (see --help)"
[ -f "$kernel" ] || die "kernel '$kernel' does not exist"
[ -f "$initrd" ] || die "initrd '$initrd' does not exist"
[ -d "$(dirname "$log")" ] || die "log directory '$(dirname "$log")' does not exist"
for v in timeout_s mem smp; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v%_s} must be a positive integer, not '${!v}'"
done
[ -z "$icount" ] || [[ $icount =~ ^[0-9]$ ]] || die "--icount must be a shift from 0 to 9, not '$icount'"
command -v qemu-system-x86_64 >/dev/null ||
	die "qemu-system-x86_64 not found (install qemu-system-x86)"
command -v timeout >/dev/null || die "timeout not found (install coreutils)"

accel=tcg
if [ "${HMMCI_ACCEL:-}" = kvm ]; then
	accel=kvm
fi

cmdline="console=ttyS0 panic=-1 loglevel=5 log_buf_len=8M${append:+ $append}"

: >"$log"
# In -chardev options a literal comma is written as two.
chardev="file,id=ser0,path=${log//,/,,}"

qemu=(qemu-system-x86_64
	-accel "$accel" -cpu max -m "$mem" -smp "$smp"
	-nographic -display none -vga none -no-reboot
	-monitor none -parallel none -net none
	-chardev "$chardev" -serial chardev:ser0
	-kernel "$kernel" -initrd "$initrd" -append "$cmdline")
if [ -n "$icount" ]; then
	[ "$accel" = tcg ] || die "--icount needs TCG, not HMMCI_ACCEL=$accel"
	# No input from the host's clock or entropy: see --icount above.
	qemu+=(-icount "shift=$icount,sleep=off" -seed 1
		-rtc "base=2026-01-01T00:00:00,clock=vm")
fi

tail_pid=''
if [ "${HMMCI_VERBOSE:-}" = 1 ]; then
	tail -n +1 -f "$log" &
	tail_pid=$!
fi

rc=0
start=$SECONDS
timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null || rc=$?

if [ -n "$tail_pid" ]; then
	sleep 0.5
	kill "$tail_pid" 2>/dev/null || true
	wait "$tail_pid" 2>/dev/null || true
fi

if grep -qE $'^HMMCI: DONE\r?$' "$log"; then
	exit 0
fi

show_tail() {
	echo "--- last 30 lines of $log ---" >&2
	tail -n 30 "$log" | tr -d '\r' >&2
	echo "---" >&2
}

if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ $((SECONDS - start)) -ge "$timeout_s" ]; }; then
	show_tail
	echo "$prog: guest timed out after $timeout_s s (log: $log)" >&2
	exit 124
fi
show_tail
echo "$prog: guest stopped before finishing (crash or panic?) (log: $log)" >&2
exit 3
