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
export ANSIBLE_COLLECTIONS_PATH="$collections_root" ANSIBLE_PYTHON_INTERPRETER="$PY"
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-0}" ANSIBLE_DISPLAY_SKIPPED_HOSTS=false
playbook() { "$VENV/bin/ansible-playbook" -i "$inventory" "$REPO_ROOT/tests/lab/demo/switch_stapling.yml" "$@"; }

step "1. Bring up the lab: 3 Apache hosts (Debian, RHEL and cPanel layouts) and 2 CAs with OCSP responders"
lab up --reset
inventory="$(lab inventory)"
pause

step "2. What a browser is stapled by each vhost now (openssl s_client -status)"
lab staples
pause

step "3. 03:00: CA alpha's OCSP responder goes dark"
lab fault alpha down
lab status | grep responder
pause

step "4. Preview the change for CA alpha's sites on every host (check mode, diff: nothing is written)"
playbook -e '{"demo_state": "disabled", "demo_ocsp_hosts": ["127.0.0.1"]}' --check --diff || true
pause

step "5. Switch stapling off for CA alpha's sites, validate with apachectl -t, reload"
echo "web1 serves an OCSP Must-Staple certificate from CA alpha: the module refuses to break it for Firefox."
playbook -e '{"demo_state": "disabled", "demo_ocsp_hosts": ["127.0.0.1"]}' ||
    echo "(web1 refused, as it should; the other hosts changed)"
sleep 2
lab staples
pause

step "6. The responder is back: switch stapling on again for CA alpha's sites"
lab fault alpha ok
playbook -e '{"demo_state": "enabled", "demo_ocsp_hosts": ["127.0.0.1"]}'
sleep 2
lab staples
pause

step "7. Tear the lab down (make lab-up brings it back to explore)"
lab down
