# The HMM series: build, boot and test it.  `make` runs the main job,
# `make test` everything CI checks.  See README.md.

SHELL := /bin/bash
H := harness
VARIANT ?= default
THP ?= always

.PHONY: all test bench profile stress fuzz deps base strip assemble export series apply bisect-build build run guest host-check clean help

all:
	@$(H)/pipeline.sh main

test:
	@$(H)/pipeline.sh test

# Ours against the base's own HMM under QEMU -icount, one boot each; table,
# JSON and chart under build/bench.  TCG rounds too: BENCH_ROUNDS=5
# (BENCH_ICOUNT_ROUNDS, BENCH_ICOUNT_ARGS, BENCH_ARGS: harness/bench.sh)
bench:
	@$(H)/bench.sh

# Where the bench's instructions go, per function, ours against reference
# (a QEMU TCG plugin; harness/profile.sh): PROFILE_ARGS='--only to-sys ...'
profile:
	@$(H)/profile.sh

# The long forms of the stress and fuzz tests (make test runs short ones), in
# VARIANT=debug unless given: STRESS_SECONDS=600, FUZZ_CALLS=1000000 ...
stress:
	@$(H)/stress.sh stress $(if $(filter command line,$(origin VARIANT)),$(VARIANT),debug)

fuzz:
	@$(H)/stress.sh fuzz $(if $(filter command line,$(origin VARIANT)),$(VARIANT),debug)

deps:
	@$(H)/deps.sh

base: deps
	@$(H)/fetch-base.sh

strip: base
	@$(H)/strip.sh

assemble: strip
	@FORCE=$(FORCE) $(H)/assemble.sh

export:
	@python3 $(H)/series.py export

# The series as git-am-able mails with a cover letter, under build/series
series: assemble
	@$(H)/export-series.sh --check

# Strip and patch your own 6.12 tree: make apply LINUX=/path/to/linux-6.12
apply: assemble
	@test -n "$(LINUX)" || { echo "usage: make apply LINUX=/path/to/linux-6.12"; exit 2; }
	@$(H)/apply.sh "$(LINUX)"

# Build `default` after every patch; names the first one that breaks
bisect-build: assemble
	@$(H)/bisect-build.sh

build: assemble
	@$(H)/build.sh $(VARIANT)

# One variant, one THP mode: make run VARIANT=debug THP=madvise
run:
	@$(H)/run.sh $(VARIANT) $(THP)

# Run anything in a built guest: make guest CMD='cat /proc/meminfo' FILES='a.out'
guest:
	@test -n "$(CMD)" || { echo "usage: make guest CMD='command' [FILES='file...'] [VARIANT=...]"; exit 2; }
	@$(H)/guest-run.sh $(VARIANT) "$(FILES)" "$(CMD)"

host-check:
	@python3 $(H)/hostcheck.py --json build/results/host.json

clean:
	rm -rf build/out build/guest build/results build/logs

help:
	@sed -n 's/^# \{0,1\}//p' README.md | head -40
