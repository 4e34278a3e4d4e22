#!/bin/bash
# export-series.sh [--check]: write the series as a `git am`-able mail series
# under build/series/: a cover letter (base version, one line per patch,
# the diffstat and the latest test results) and one numbered patch per
# commit of build/tree, project-owned files included.  Generated, never
# edited by hand.
#
# --check: also apply it with `git am` to the stripped base in a scratch
# worktree and prove the result is exactly the tree `make` builds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tree=$BUILD/tree
out=$BUILD/series
[[ -d $tree/.git ]] || die "no build tree (run: make assemble)"
n=$(git -C "$tree" rev-list --count base..HEAD)
((n > 0)) || die "the series is empty"

stage "export the series ($n patches)"
rm -rf "$out.tmp"
git -C "$tree" format-patch -q -o "$out.tmp" --cover-letter --numbered --zero-commit \
	--no-signature --full-index --subject-prefix="PATCH 6.12" base..HEAD
cover=$(ls "$out.tmp"/0000-cover-letter.patch)
version=$(cat "$BUILD/base/DEBIAN_VERSION" 2>/dev/null || base_version)
results=$BUILD/results/summary.txt
python3 - "$cover" "$version" "$results" <<'EOF'
import os, sys
cover, version, results = sys.argv[1:4]
text = open(cover).read()
blurb = [
    "This series adds HMM (heterogeneous memory management) to Linux 6.12,",
    "written anew: device-private memory and its swap entries, migration",
    "between system and device memory (migrate_vma_*, migrate_device_*),",
    "hmm_range_fault() for mirroring a process in a device page table, the",
    "test_hmm dummy device with its selftests, and KUnit suites.  It keeps",
    "the 6.12 API and the test_hmm ioctl ABI, so in-tree drivers and",
    "existing user space work unchanged.",
    "",
    "Base: Debian linux-source-6.12 %s with the base's own HMM" % version,
    "removed by the project's strip step (harness/strip/); the series applies",
    "with `git am` on that stripped tree.",
]
if os.path.exists(results):
    blurb += ["", "Test results of the latest `make test` (QEMU, TCG):", ""]
    blurb += ["  " + line.rstrip() for line in open(results) if line.strip()]
# one paragraph per patch: its subject and the first paragraph of its message
import glob, re
outdir = os.path.dirname(cover)
blurb += ["", "The patches:"]
for mail in sorted(glob.glob(os.path.join(outdir, "*.patch"))):
    if mail == cover:
        continue
    body = open(mail).read()
    subject = re.search(r"^Subject: \[PATCH[^\]]*\] (.*(?:\n .*)*)", body, re.M).group(1)
    subject = " ".join(subject.split())
    message = body.split("\n\n", 1)[1].split("\n---\n", 1)[0].strip()
    paragraphs = message.split("\n\n")
    first = paragraphs[0]
    if first.endswith(":") and len(paragraphs) > 1:
        first += "\n\n" + paragraphs[1]   # the list the paragraph introduces
    blurb += ["", "* " + subject, ""] + [("  " + line).rstrip() for line in first.splitlines()]
text = text.replace("*** SUBJECT HERE ***", "HMM for Linux 6.12, written anew")
text = text.replace("*** BLURB HERE ***", "\n".join(blurb))
open(cover, "w").write(text)
EOF
rm -rf "$out"
mv "$out.tmp" "$out"
stage_done "$out"

if [[ ${1:-} == --check ]]; then
	stage "check: git am of the series onto the stripped base"
	scratch=$(mktemp -d "$BUILD/am-check.XXXXXX")
	trap 'git -C "$tree" worktree remove --force "$scratch" >/dev/null 2>&1; rm -rf "$scratch"' EXIT
	rmdir "$scratch"
	git -C "$tree" worktree add -q --detach "$scratch" base
	mapfile -t mails < <(ls "$out"/*.patch | grep -v '/0000-cover-letter\.patch$')
	git -C "$scratch" -c user.name="HMM series project" -c user.email=hmm-series@localhost \
		am -q "${mails[@]}" ||
		die "git am of build/series does not apply to the stripped base"
	want=$(git -C "$tree" rev-parse 'HEAD^{tree}')
	got=$(git -C "$scratch" rev-parse 'HEAD^{tree}')
	[[ $want == "$got" ]] || die "git am gives tree $got, make builds $want"
	stage_done "identical tree ($got)"
fi
