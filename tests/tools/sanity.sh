#!/usr/bin/env bash
# ansible-test sanity on a staged copy of the collection, with the venv's
# Python 3.11 (--local: no Docker here; --venv cannot bootstrap pip offline).
# Extra arguments go to ansible-test, e.g. `sanity.sh --test validate-modules`.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_venv
stage_collection

# Sanity tests that cannot run on these machines are skipped here, each with
# its reason. (None so far: every test ansible-test 2.19 runs for a collection
# works offline once bootstrap.sh has put the get-pip stand-in in place; pslint
# skips itself without PowerShell and we ship no PowerShell.)
SKIPPED_TESTS=()

skip_args=()
for test_name in "${SKIPPED_TESTS[@]}"; do
    skip_args+=(--skip-test "$test_name")
done

say "ansible-test sanity --local --python $TEST_PYTHON_VERSION"
status=0
(cd "$STAGE_DIR" && ansible-test sanity --local --python "$TEST_PYTHON_VERSION" "${skip_args[@]}" "$@") || status=$?
copy_test_output_back
exit "$status"
