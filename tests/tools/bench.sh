#!/usr/bin/env bash
# The benchmarks (bench/*.py), each a ratio against a baseline measured in the same run.
#   bench.sh           every bench at full size; the figures replace their sections of docs/benchmarks.md
#   bench.sh --smoke   every bench at its smallest size, nothing written: only that they still run (CI)
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_venv
cd "$REPO_ROOT"

if [[ "${1:-}" == "--smoke" ]]; then
    say "bench smoke: every bench at its smallest size, docs/benchmarks.md untouched"
    "$PY" bench/apache_config_bench.py --vhosts 50
    "$PY" bench/large_host_bench.py --sizes 50 --repeat 1
    "$PY" bench/fleet_flip_bench.py --hosts 2 --forks 2
    "$PY" bench/mitigation_bench.py --hosts 2 --forks 2
    "$PY" bench/probe_fanout_bench.py --certificates 20 --repeat 1
    "$PY" bench/md_engine_bench.py --samples 1
else
    say "benchmarks at full size, written to docs/benchmarks.md"
    "$PY" bench/large_host_bench.py --sizes 500,2000,5000 --repeat 3 --write
    "$PY" bench/fleet_flip_bench.py --hosts 20 --forks 5 --repeat 2 --write
    "$PY" bench/mitigation_bench.py --hosts 20 --forks 5 --repeat 3 --write
    "$PY" bench/probe_fanout_bench.py --certificates 200 --timeout 3 --repeat 3 --write
    "$PY" bench/md_engine_bench.py --samples 5 --write
fi
