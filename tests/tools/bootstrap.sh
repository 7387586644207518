#!/usr/bin/env bash
# Prepare this machine for `make test`. Safe to run again: each step checks
# first and does nothing when it is already done.
#
#  1. Debian packages the lab and the tests need (root only; apt-get). The lab
#     reaches its hosts over SSH and runs the modules with the system python3
#     and Debian's python3-cryptography, as a real Debian 12 host would; we
#     never install pyOpenSSL into that Python (the lab hides Debian's if some
#     other package pulled it in).
#  2. The test virtualenv .venv/ with the pins from tests/requirements-test.txt,
#     reinstalled only when that file changes.
#  3. An offline stand-in for the get-pip script that ansible-test sanity
#     downloads on first use (the download cannot work here).
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PYTHON="${PYTHON:-python$TEST_PYTHON_VERSION}"
REQUIREMENTS="$REPO_ROOT/tests/requirements-test.txt"
# Written once the libssl3 upgrade below has been done for this checkout.
SYSTEM_STAMP="$VENV/.system-packages-done"
DEBIAN_PACKAGES=(apache2 openssl ssl-cert python3 python3-venv python3-cryptography
                 openssh-server shellcheck)

missing_system_tools() {
    local missing=()
    [[ -x /usr/sbin/apache2 ]] || missing+=(apache2)
    command -v openssl >/dev/null || missing+=(openssl)
    [[ -x /usr/sbin/make-ssl-cert ]] || missing+=(ssl-cert)
    if ! command -v "$PYTHON" >/dev/null; then
        missing+=(python3)
    elif ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    /usr/bin/python3 -c 'import cryptography' 2>/dev/null || missing+=(python3-cryptography)
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    command -v shellcheck >/dev/null || missing+=(shellcheck)
    printf '%s\n' "${missing[@]}"
}

# The Debian package may start the system Apache on port 80; the lab runs its
# own instances and never needs that one.
stop_system_apache() {
    if [[ -f /var/run/apache2/apache2.pid ]]; then
        say "stopping the system apache2 instance started by the package"
        apache2ctl stop >/dev/null 2>&1 || true
    fi
}

# The package starts the system sshd on port 22; the lab starts its own on
# loopback and leaves the machine's remote access as it found it otherwise.
stop_system_sshd() {
    if [[ -f /run/sshd.pid && -z "${SSH_CONNECTION:-}" ]]; then
        say "stopping the system sshd started by the package"
        kill "$(cat /run/sshd.pid)" 2>/dev/null || true
    fi
}

install_system_packages() {
    local missing
    missing="$(missing_system_tools)"
    if [[ -z "$missing" && -f "$SYSTEM_STAMP" ]]; then
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        if [[ -n "$missing" ]]; then
            die "missing: ${missing//$'\n'/ }. Run this as root, or install them first:
    apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES[*]}"
        fi
        say "not root: skipping the libssl3 upgrade (Apache may log AH01882, which is harmless)"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    apt-get update -qq
    if [[ -n "$missing" ]]; then
        say "installing Debian packages: ${DEBIAN_PACKAGES[*]}"
        apt-get install -y -qq --no-install-recommends "${DEBIAN_PACKAGES[@]}"
        stop_system_apache
        stop_system_sshd
    fi
    # Debian's apache2 is built against a newer OpenSSL than an older libssl3
    # provides and logs AH01882 at every start until libssl3 is upgraded.
    say "upgrading libssl3/openssl if Debian has newer ones"
    apt-get install -y -qq --only-upgrade libssl3 openssl
    mkdir -p "$VENV"
    touch "$SYSTEM_STAMP"
}

# ansible-test sanity builds a virtualenv per test and bootstraps pip in it
# with ~/.ansible/test/cache/get_pip_<version>.py, downloading that script on
# first use. Our stand-in does the same job offline: ensurepip from the
# standard library, then the pip version ansible-test asked for, from PyPI.
write_get_pip_shim() {
    local pip_version shim
    pip_version="$("$PY" - <<'EOF'
import pathlib
import re

import ansible_test

source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
match = re.search(r"""\bpip=['"]([0-9.]+)['"]""", source.read_text())
print(match.group(1) if match else "")
EOF
)"
    [[ -n "$pip_version" ]] || die "could not find ansible-test's pinned pip version in python_requirements.py"
    shim="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    mkdir -p "$(dirname "$shim")"
    local content
    content="$(cat <<EOF
"""Offline replacement for get-pip.py, written by fleet.stapling's tests/tools/bootstrap.sh.

ansible-test runs this inside a new virtualenv as: get_pip.py pip==VERSION [options].
"""
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}


def main():
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    if not any(arg.startswith("pip") for arg in pip_args):
        pip_args.append("pip==$pip_version")
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
                   check=True, stdout=subprocess.DEVNULL)
    completed = subprocess.run([sys.executable, "-m", "pip", "install", *pip_args])
    sys.exit(completed.returncode)


if __name__ == "__main__":
    main()
EOF
)"
    if [[ -f "$shim" && "$(cat "$shim")" == "$content" ]]; then
        return 0
    fi
    say "writing ansible-test pip bootstrap stand-in $shim"
    printf '%s\n' "$content" >"$shim"
}

install_system_packages
pinned_venv "$VENV" "$REQUIREMENTS"
write_get_pip_shim
# ansible-rulebook (its own venv, .venv-eda/, and Debian's JDK) for the event-driven rulebook's tests
"$REPO_ROOT/tests/tools/install_eda.sh" \
    || say "ansible-rulebook not installed: test_eda_rulebook.py skips its ansible-rulebook tests (CI fails them)"
say "toolchain ready in $VENV: ansible-core $("$PY" -c 'from ansible.release import __version__; print(__version__)')"
