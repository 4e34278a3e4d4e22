#!/bin/bash
# run.sh VARIANT THP: boot a built variant in QEMU with transparent_hugepage=THP,
# run the suites of harness/suites that apply to it, and parse the results.
#
# Output: build/results/VARIANT-THP.{log,json}; exit 0 only for a clean run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

variant=${1:-}
thp=${2:-}
case $variant in default | debug | reference | stripped) ;;
*) die "unknown variant '${variant}': choose default, debug, reference or stripped" ;;
esac
case $thp in always | madvise | never) ;;
*) die "unknown THP mode '${thp}': choose always, madvise or never" ;;
esac
out=$BUILD/out/$variant
kernel=$out/arch/x86/boot/bzImage
[[ -f $kernel ]] || die "variant $variant is not built (run: make build VARIANT=$variant)"
krel=$(cat "$out/include/config/kernel.release")
mods=$out/mods/lib/modules/$krel
work=$BUILD/guest/$variant
res=$BUILD/results
mkdir -p "$work" "$res"
rm -rf "$work/tests" "$work/modules" "$work/kselftest"
mkdir -p "$work/tests" "$work/modules"

stage "prepare the $variant guest (THP $thp)"
plan=$work/plan.sh
expect=()
files=()
modprobe_options=()
: >"$plan"
while read -r kind name what rest; do
	[[ -z $kind || $kind == \#* ]] && continue
	# the last fields name the variants; the command of `cmd` is in between
	read -ra fields <<<"$what $rest"
	variants=() cmd=()
	for f in "${fields[@]}"; do
		case $f in default | debug | reference | stripped) variants+=("$f") ;; *) cmd+=("$f") ;; esac
	done
	[[ " ${variants[*]} " == *" $variant "* ]] || continue
	case $kind in
	module | kunit)
		ko=$(find "$mods" -name "$what" -print -quit 2>/dev/null || true)
		[[ -n $ko ]] || die "the $variant build has no $what (is its Kconfig symbol enabled?)"
		cp "$ko" "$work/modules/"
		if [[ $kind == module ]]; then
			# the fields after the .ko are module parameters
			echo "load_module /lib/modules/$what ${cmd[*]:1}" >>"$plan"
			((${#cmd[@]} < 2)) || modprobe_options+=("options ${what%.ko} ${cmd[*]:1}")
		else
			echo "run_kunit $name /lib/modules/$what" >>"$plan"
			expect+=(--expect "$name")
		fi
		;;
	kselftest)
		# a source of the build tree; base:PATH, the unmodified file of the
		# base kernel (6.12's own hmm-tests); or project:PATH, a program of
		# this repository (stress/).  All are built against the build
		# tree's headers (lib/test_hmm_uapi.h: the same ABI).  The fields
		# after the source are the program's arguments.
		src=$BUILD/tree
		if [[ $what == base:* ]]; then
			what=${what#base:}
			[[ -f $(base_tree)/$what ]] || die "no $what in the base kernel $(base_tree)"
			file=$(base_tree)/$what
		elif [[ $what == project:* ]]; then
			what=${what#project:}
			[[ -f $ROOT/$what ]] || die "no $what in the project"
			file=$ROOT/$what
		else
			[[ -f $src/$what ]] || die "no $what in the build tree"
			file=$src/$what
		fi
		run_logged "$LOGS/selftest-$name-$variant.log" gcc -static -O2 -Wall -pthread \
			-isystem "$out/hdr/include" -I "$src" -I "$src/tools/testing/selftests" \
			-I "$src/tools/testing/selftests/mm" "$file" -o "$work/tests/$name" -lrt
		echo "run_kselftest $name /tests/$name ${cmd[*]:1}" >>"$plan"
		expect+=(--expect "$name")
		;;
	bench)
		# the benchmark module and program, built for this variant
		run_logged "$LOGS/bench-build-$variant.log" "$HARNESS/bench-build.sh" "$variant"
		cp "$BUILD/bench/$variant/hmm_bench.ko" "$BUILD/bench/$variant/hmm-bench" "$work/tests/"
		printf 'run_cmd %s sh -c %q\n' "$name" \
			"insmod /tests/hmm_bench.ko || exit 1; /tests/hmm-bench ${cmd[*]}; rc=\$?; rmmod hmm_bench || rc=1; exit \$rc" >>"$plan"
		expect+=(--expect "$name")
		;;
	vmtests)
		# run_vmtests.sh -t WHAT from a `make kselftest-install` tree, as
		# kernel CI fleets run it.  Modules are installed where modprobe
		# looks, with the parameters of their `module` lines as modprobe.d
		# options.  -n turns off run_vmtests.sh's "# " prefix on the tests'
		# output, so that hmm-tests' own TAP lines are counted one by one.
		# (-DKSFT_SKIP: 6.12.117's khugepaged.c uses it without including
		# kselftest.h and does not build otherwise.)
		run_logged "$LOGS/kselftest-install-$variant.log" make -C "$BUILD/tree" O="$out" \
			-j"$(nproc)" kselftest-install TARGETS=mm INSTALL_PATH="$work/kselftest" \
			EXTRA_CFLAGS="-static -DKSFT_SKIP=4"
		files+=(--file "$work/kselftest:/kselftest" --file /bin/bash-static:/bin/bash)
		{
			echo "mkdir -p /lib/modules/$krel/extra /etc/modprobe.d"
			echo "cp /lib/modules/*.ko /lib/modules/$krel/extra/ && depmod"
			for o in "${modprobe_options[@]}"; do
				printf 'echo %q >>/etc/modprobe.d/hmmci.conf\n' "$o"
			done
			echo "run_kselftest $name /kselftest/mm/run_vmtests.sh -n -t ${cmd[*]}"
		} >>"$plan"
		expect+=(--expect "$name")
		;;
	cmd)
		printf 'run_cmd %s' "$name" >>"$plan"
		printf ' %q' "${cmd[@]}" >>"$plan"
		echo >>"$plan"
		expect+=(--expect "$name")
		;;
	*) die "harness/suites: unknown kind '$kind'" ;;
	esac
done <"$HARNESS/suites"
initrd=$work/initramfs.cpio.gz
run_logged "$LOGS/initramfs-$variant.log" "$HARNESS/guest/mkinitramfs.sh" --out "$initrd" \
	--plan "$plan" --modules "$work/modules" --tests "$work/tests" "${files[@]}"
stage_done "$(grep -c . "$plan") plan steps"

timeout=${HMMCI_TIMEOUT:-900}
[[ $variant == debug ]] && timeout=${HMMCI_TIMEOUT:-2400}
stage "run $variant in QEMU (THP $thp, timeout ${timeout}s)"
log=$res/$variant-$thp.log
set +e
# Four CPUs (on a 2-core host, under TCG): the concurrency tests (32
# threads faulting one device page, evictions racing them) want more CPUs
# than the host has, as a real machine would give them.
#
# Device-coherent memory: 4 GiB of guest RAM, of which QEMU puts 1 GiB
# above 4 GiB; memmap= retypes the first 512 MiB of that to
# specific-purpose memory (type 0xefffffff, "soft reserved"), which the
# kernel leaves alone and test_hmm takes in two 256 MiB halves for its
# device-coherent hmm_dmirror2/3 (spm_addr_dev0/1 in harness/suites).
# 3.5 GiB stay for the guest.
"$HARNESS/guest/qemu.sh" --kernel "$kernel" --initrd "$initrd" --log "$log" \
	--timeout "$timeout" --smp "${HMMCI_SMP:-4}" --mem 4096 \
	--append "transparent_hugepage=$thp hugepages=64 $GUEST_MEMMAP" \
	>"$LOGS/qemu-$variant-$thp.log" 2>&1
qrc=$?
# harness/expected: the counts, skips and test names each run must report
python3 "$HARNESS/results.py" parse --log "$log" --run "$variant/$thp" "${expect[@]}" \
	--expected "$HARNESS/expected" --json "$res/$variant-$thp.json"
prc=$?
set -e
((qrc == 0)) || cat "$LOGS/qemu-$variant-$thp.log" >&2
stage_done "console log: $log"
((qrc == 0 && prc == 0))
