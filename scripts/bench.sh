#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/bench/ from scratch (scripts/bench.py): builds
# the load generator, the QuickFIX C++ and fixer peers, runs every scenario in one go and
# plots the latency distributions. Needs Debian's libquickfix-dev (installed when run as
# root) and QuickFIX's FIX44.xml (from scripts/quickfix.sh, as the tests use it). Never
# part of .ci/run.
#   scripts/bench.sh [--repeats N] [--quick]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/venv.sh"
. "$root/scripts/quickfix.sh"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fix-engine
mkdir -p "$cache"
quickfix_venv "$cache"
export FIX_QUICKFIX_DICTIONARIES=$quickfix_venv_dir/share/quickfix
venv=$cache/venv-bench-matplotlib-3.10
cached_venv "$venv" "matplotlib==3.10.*"
exec "$venv/bin/python" "$root/scripts/bench.py" "$@"
