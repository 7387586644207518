#!/usr/bin/env bash
# The `make test` step for the benchmarks: each at its smallest size, to show it still runs (bench.sh --smoke).
exec "$(dirname "${BASH_SOURCE[0]}")/bench.sh" --smoke
