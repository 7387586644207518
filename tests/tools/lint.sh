#!/usr/bin/env bash
# Lint the collection: ansible-lint (production profile, offline) and the
# changelog fragments (antsibull-changelog).
# Usage: lint.sh [all|ansible|changelog]   (default: all)
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_venv

what="${1:-all}"
case "$what" in
    all | ansible | changelog) ;;
    *) die "usage: $0 [all|ansible|changelog]" ;;
esac

stage_collection
failed=()
lint_args=(--offline)
[[ -t 1 ]] || lint_args+=(--nocolor)

if [[ "$what" == all || "$what" == ansible ]]; then
    say "ansible-lint (profile and exclusions from .ansible-lint)"
    # ansible-lint does not put the collection under test on the collections
    # path by itself; without this, fleet.stapling.* modules are unknown.
    (cd "$STAGE_DIR" && ANSIBLE_COLLECTIONS_PATH="$STAGE_ROOT" ansible-lint "${lint_args[@]}") || failed+=(ansible-lint)
fi

if [[ "$what" == all || "$what" == changelog ]]; then
    say "antsibull-changelog lint"
    (cd "$STAGE_DIR" && antsibull-changelog lint &&
        antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml) || failed+=(antsibull-changelog)
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    die "lint failed: ${failed[*]}"
fi
say "lint passed"
