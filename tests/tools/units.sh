#!/usr/bin/env bash
# ansible-test units on a staged copy of the collection, with the venv's
# Python 3.11. Unit tests live in tests/unit/ and mirror plugins/, e.g.
# tests/unit/plugins/module_utils/test_apache_config.py.
# Extra arguments go to ansible-test, e.g. `units.sh tests/unit/plugins/modules/`.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_venv

unit_test_count="$(find "$REPO_ROOT/tests/unit" -name 'test_*.py' -type f 2>/dev/null | wc -l)"
if [[ "$unit_test_count" -eq 0 ]]; then
    say "no unit tests yet (no tests/unit/**/test_*.py): nothing to run"
    exit 0
fi

stage_collection
say "ansible-test units --local --python $TEST_PYTHON_VERSION ($unit_test_count test files)"
status=0
(cd "$STAGE_DIR" && ansible-test units --local --python "$TEST_PYTHON_VERSION" "$@") || status=$?
copy_test_output_back
exit "$status"
