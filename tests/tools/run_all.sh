#!/usr/bin/env bash
# Run every test step, even after one fails, then print a summary with each
# step's time and exit non-zero if any step failed. `make test` calls this
# after `make deps`.
# Usage: run_all.sh [STEP ...]   (default: sanity units compat lint build integration)
set -uo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tools_dir="$REPO_ROOT/tests/tools"
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(sanity units compat lint build integration)

summary=()
passed=0
failed=0
for step in "${steps[@]}"; do
    script="$tools_dir/$step.sh"
    [[ -x "$script" ]] || die "unknown step '$step' (no $script)"
    printf '\n######## %s ########\n' "$step"
    started=$SECONDS
    if "$script"; then
        result=PASSED
        passed=$((passed + 1))
    else
        result=FAILED
        failed=$((failed + 1))
    fi
    summary+=("$(printf '%-12s %-7s %5ss' "$step" "$result" $((SECONDS - started)))")
done

printf '\n######## summary ########\n'
printf '%s\n' "${summary[@]}"
echo "steps: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
