#!/bin/bash
# Assemble build/tree: the stripped base plus patches/series (series.py).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
stage "assemble the series"
python3 "$HARNESS/series.py" assemble ${FORCE:+--force} || exit 1
stage_done
