#!/usr/bin/env bash
# Make (or reuse) a small virtualenv for the compatibility matrix (compat.sh):
# one Python, one cryptography release, pytest and, when asked, a pyOpenSSL
# that goes with that cryptography. Prints the path of the venv's python on
# stdout; everything else goes to stderr.
#
# Usage: compat_venv.sh PYVER CRYPTO [pyopenssl|no-pyopenssl]
#   e.g. compat_venv.sh 3.8 3.4.8 pyopenssl
#
# The venv lives in .venv-compat/py<PYVER>-cryptography<CRYPTO>[-pyopenssl]/
# and is reused when a previous run finished it (it holds a .complete stamp
# with what was installed). Only wheels are installed (no compiler needed).
# The interpreter is python<PYVER> from PATH, else pyenv's
# $HOME/.pyenv/versions/<PYVER>.*/bin/python<PYVER>.
# No ansible-core: module_utils and their unit tests do not import Ansible;
# compat.sh makes the collection importable through a staged
# ansible_collections/ tree on PYTHONPATH, as units.sh stages it.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Messages go to stderr: stdout carries only the python path.
note() { say "$@" >&2; }

usage() {
    echo "usage: $0 PYVER CRYPTO [pyopenssl|no-pyopenssl]" >&2
    exit 2
}

[[ $# -ge 2 && $# -le 3 ]] || usage
pyver="$1"
crypto="$2"
openssl_choice="${3:-no-pyopenssl}"
[[ "$pyver" =~ ^3\.[0-9]+$ ]] || die "PYVER must look like 3.8, not '$pyver'"
[[ "$crypto" =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "CRYPTO must be a cryptography release such as 3.4.8, not '$crypto'"
case "$openssl_choice" in
    pyopenssl | no-pyopenssl) ;;
    *) usage ;;
esac

COMPAT_ROOT="${COMPAT_ROOT:-$REPO_ROOT/.venv-compat}"
name="py$pyver-cryptography$crypto"
[[ "$openssl_choice" == pyopenssl ]] && name="$name-pyopenssl"
target="$COMPAT_ROOT/$name"

# pytest: the newest line that still supports the Python (8.3 is the last for
# 3.8, 8.4 the last for 3.9); newer Pythons get the main venv's pin.
pytest_for() {
    case "$1" in
        3.8) echo "pytest==8.3.5" ;;
        3.9) echo "pytest==8.4.2" ;;
        *) echo "pytest==9.2.0" ;;
    esac
}

# pyOpenSSL pins a narrow cryptography range per release; these releases
# accept the cryptography line they are listed with (checked with pip).
# Unknown (newer) lines let pip choose the newest pyOpenSSL that fits.
pyopenssl_for() {
    local major="${1%%.*}"
    case "$major" in
        3) echo "pyOpenSSL==21.0.0" ;;              # cryptography >= 3.3
        35 | 36 | 37) echo "pyOpenSSL==22.0.0" ;;   # cryptography >= 35
        38) echo "pyOpenSSL==22.1.0" ;;             # cryptography 38.x
        39 | 40) echo "pyOpenSSL==23.1.1" ;;        # cryptography 38 - 40
        41) echo "pyOpenSSL==23.3.0" ;;             # cryptography 41.0.5 - 41.x
        *) echo "pyOpenSSL" ;;
    esac
}

# A python<PYVER> that really runs that version and is not itself a venv
# (pyenv shims exist for every installed version but refuse to run one that is
# not selected; a venv's python would give the new venv the wrong base).
usable_python() {
    local candidate="$1"
    [[ -x "$candidate" ]] || return 1
    "$candidate" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$pyver' and sys.prefix == getattr(sys, 'base_prefix', sys.prefix) else 1)" \
        >/dev/null 2>&1
}

find_python() {
    local candidate
    while IFS= read -r candidate; do
        if usable_python "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done < <(type -ap "python$pyver" 2>/dev/null || true)
    for candidate in "$HOME"/.pyenv/versions/"$pyver".*/bin/"python$pyver"; do
        if usable_python "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

requirements=("cryptography==$crypto" "$(pytest_for "$pyver")")
[[ "$openssl_choice" == pyopenssl ]] && requirements+=("$(pyopenssl_for "$crypto")")
stamp="$target/.complete"
wanted="${requirements[*]}"

if [[ -f "$stamp" && -x "$target/bin/python" ]] && [[ "$(cat "$stamp")" == "$wanted" ]] &&
    "$target/bin/python" -c "import cryptography, pytest" >/dev/null 2>&1; then
    note "reusing $target"
    echo "$target/bin/python"
    exit 0
fi

base_python="$(find_python)" || die "no Python $pyver found: put python$pyver on PATH or install it with pyenv \
(pyenv install $pyver), or install the distribution's python$pyver and python$pyver-venv packages"

note "creating $target with $base_python ($wanted)"
rm -rf "$target"
mkdir -p "$COMPAT_ROOT"
"$base_python" -m venv "$target" >&2 || die "python$pyver -m venv failed (is the venv module installed for $base_python?)"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$target/bin/python" -m pip install --quiet --only-binary=:all: "${requirements[@]}" >&2; then
    rm -rf "$target"
    die "installing ${requirements[*]} for Python $pyver failed (wheels only)"
fi
"$target/bin/python" -m pip check >&2 || {
    rm -rf "$target"
    die "pip check failed for $name"
}
printf '%s\n' "$wanted" >"$stamp"
note "ready: $target ($("$target/bin/python" -c 'import cryptography, sys; print("Python %d.%d.%d" % sys.version_info[:3], "cryptography", cryptography.__version__)'))"
echo "$target/bin/python"
