#!/usr/bin/env bash
# The story of a CA's OCSP responder going dark, told on the lab fleet: `make demo` runs it.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tools/lib.sh"
require_venv

lab() { "$PY" "$REPO_ROOT/tests/lab/lab.py" "$@"; }
step() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }
pause() {
    if [[ -t 0 && "${DEMO_NO_PAUSE:-0}" != 1 ]]; then
        read -r -p "(press Enter to go on) " _reply
    fi
}

collections_root="$(mktemp -d "${TMPDIR:-/tmp}/fleet-stapling-demo.XXXXXX")"
trap 'rm -rf "$collections_root"' EXIT
mkdir -p "$collections_root/ansible_collections/$COLLECTION_NAMESPACE"
ln -s "$REPO_ROOT" "$collections_root/ansible_collections/$COLLECTION_NAMESPACE/$COLLECTION_NAME"
# The lab's inventory reaches every host over SSH; the modules run there under the system Python.
export ANSIBLE_COLLECTIONS_PATH="$collections_root"
unset ANSIBLE_PYTHON_INTERPRETER
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-0}" ANSIBLE_DISPLAY_SKIPPED_HOSTS=false
playbook() {
    local name="$1"
    shift
    "$VENV/bin/ansible-playbook" -i "$inventory" "$REPO_ROOT/playbooks/$name.yml" -e stapling_report_dir="$reports" "$@"
}
summary() { sed -n '/^| Host/,$p' "$reports/$1.md"; }
reports="${FLEET_DEMO_REPORTS:-/tmp/fleet-stapling-reports}"

step "1. Bring up the lab: 3 Apache hosts (Debian, RHEL and cPanel layouts) and 2 CAs with OCSP responders"
lab up --reset
inventory="$(lab inventory)"
pause

step "2. What a browser is stapled by each vhost now (openssl s_client -status)"
lab staples
pause

step "3. Check every responder from every host (probe_responders.yml: nothing changes)"
playbook probe_responders >/dev/null || true
summary probe_responders
pause

step "4. 03:00: CA alpha's OCSP responder goes dark, and the probe turns red on every host"
lab fault alpha down
playbook probe_responders >/dev/null || true
summary probe_responders
pause

step "5. The incident command for CA alpha's sites: disable_stapling.yml, validated, reloaded, checked"
echo "web1 serves an OCSP Must-Staple certificate from CA alpha: the role refuses to break it for Firefox"
echo "and puts web1's files back as they were; pass stapling_force=true to override."
playbook disable_stapling -e '{"stapling_ocsp_hosts": ["127.0.0.1"]}' >/dev/null || true
summary disable_stapling
lab staples
pause

step "6. The responder is back: enable_stapling.yml probes first, then switches on where it answers properly"
lab fault alpha ok
playbook enable_stapling >/dev/null || true
summary enable_stapling
lab staples
pause

step "7. Tear the lab down (make lab-up brings it back to explore)"
lab down
echo "The fleet reports of each step, as JSON and Markdown: $reports"
