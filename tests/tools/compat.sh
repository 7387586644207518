#!/usr/bin/env bash
# The compatibility matrix: the modules run on managed hosts with the system
# Python and the distribution's cryptography, from Python 3.8 and cryptography
# 3.4.8 (Ubuntu 22.04) up, with or without pyOpenSSL. Rows:
#   - vermin: nothing in plugins/modules or plugins/module_utils needs Python > 3.8
#   - the module_utils unit tests (tests/unit/plugins/module_utils) in one
#     small venv per Python/cryptography/pyOpenSSL combination (compat_venv.sh)
#   - below the floor: with cryptography 3.3.2, every module_utils file still
#     imports, every plugin compiles on Python 3.8, and
#     certificates.cryptography_problem() names the version found and the floor
# Prints a table (result, venv setup time, test time) and fails if a row fails.
# The venvs are kept in .venv-compat/ and reused; the first run needs PyPI.
# Each row's output is in tests/output/compat/<row>.log.
# Extra arguments go to pytest in every unit-test row, e.g. `compat.sh -k pss`.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_venv

tools_dir="$REPO_ROOT/tests/tools"
newest="$(sed -n 's/^cryptography==//p' "$REPO_ROOT/tests/requirements-test.txt")"
[[ -n "$newest" ]] || die "no cryptography pin in tests/requirements-test.txt"

# PYVER CRYPTO PYOPENSSL: the floor (Ubuntu 22.04), RHEL 9's line (36 with
# Python 3.9), Debian 12's 38.0.4, Ubuntu 24.04's 41.0.7 (the last before 42's
# UTC datetime API) and the newest (the main venv's pin).
ROWS=(
    "3.8 3.4.8 no-pyopenssl"
    "3.8 3.4.8 pyopenssl"
    "3.9 36.0.2 no-pyopenssl"
    "3.9 36.0.2 pyopenssl"
    "3.11 38.0.4 no-pyopenssl"
    "3.11 38.0.4 pyopenssl"
    "3.11 41.0.7 no-pyopenssl"
    "3.11 41.0.7 pyopenssl"
    "3.11 $newest no-pyopenssl"
    "3.11 $newest pyopenssl"
)
BELOW_FLOOR="3.8 3.3.2"
FLOOR=3.4.8

log_dir="$REPO_ROOT/tests/output/compat"
rm -rf "$log_dir"
mkdir -p "$log_dir"
stage_collection

table=()
failed=0

now_ms() { date +%s%3N; }
seconds_since() { # milliseconds at the start -> "12.3s"
    local elapsed=$(($(now_ms) - $1))
    printf '%d.%ds' $((elapsed / 1000)) $((elapsed % 1000 / 100))
}

# record LABEL RESULT SETUP TESTS LOG
record() {
    table+=("$(printf '%-52s %-6s %7s %7s' "$1" "$2" "$3" "$4")")
    if [[ "$2" != PASS ]]; then
        failed=$((failed + 1))
        printf -- '---- %s failed; the end of %s:\n' "$1" "${5#"$REPO_ROOT"/}"
        tail -n 40 "$5"
        printf -- '----\n'
    fi
}

# Make (or reuse) a venv; sets venv_python and setup_time. False on failure.
make_venv() {
    local log="$1"
    shift
    local started
    started="$(now_ms)"
    venv_python=""
    if venv_python="$("$tools_dir/compat_venv.sh" "$@" 2>>"$log")"; then
        setup_time="$(seconds_since "$started")"
        return 0
    fi
    setup_time="$(seconds_since "$started")"
    return 1
}

# ---- Python 3.8 syntax and standard library: vermin
vermin_log="$log_dir/vermin.log"
say "vermin --target=3.8- plugins/modules plugins/module_utils"
started="$(now_ms)"
[[ -x "$VENV/bin/vermin" ]] || die "vermin is not in $VENV: run 'make deps' (it is pinned in tests/requirements-test.txt)"
if (cd "$STAGE_DIR" && "$VENV/bin/vermin" --target=3.8- --violations --no-tips --no-config-file \
    plugins/modules plugins/module_utils) >"$vermin_log" 2>&1; then
    result=PASS
else
    result=FAIL
fi
record "vermin: Python 3.8 suffices" "$result" "-" "$(seconds_since "$started")" "$vermin_log"

# ---- the module_utils unit tests, one row per venv
for row in "${ROWS[@]}"; do
    read -r pyver crypto openssl_choice <<<"$row"
    name="py$pyver-cryptography$crypto"
    [[ "$openssl_choice" == pyopenssl ]] && name="$name-pyopenssl"
    log="$log_dir/$name.log"
    say "unit tests with Python $pyver, cryptography $crypto, $openssl_choice"
    label="Python $pyver, cryptography $crypto"
    if ! make_venv "$log" "$pyver" "$crypto" "$openssl_choice"; then
        [[ "$openssl_choice" == pyopenssl ]] && label="$label, pyOpenSSL"
        record "$label" FAIL "$setup_time" "-" "$log"
        continue
    fi
    if [[ "$openssl_choice" == pyopenssl ]]; then
        label="$label, pyOpenSSL $("$venv_python" -c 'import OpenSSL; print(OpenSSL.__version__)')"
    fi
    started="$(now_ms)"
    if (cd "$STAGE_DIR" && PYTHONPATH="$STAGE_ROOT" PYTHONDONTWRITEBYTECODE=1 \
        "$venv_python" -m pytest -q -p no:cacheprovider tests/unit/plugins/module_utils "$@") >>"$log" 2>&1; then
        result=PASS
    else
        result=FAIL
    fi
    record "$label" "$result" "$setup_time" "$(seconds_since "$started")" "$log"
done

# ---- below the floor: the modules must say why, not crash on import
read -r pyver crypto <<<"$BELOW_FLOOR"
log="$log_dir/py$pyver-cryptography$crypto.log"
label="Python $pyver, cryptography $crypto: refused"
say "below the floor: Python $pyver, cryptography $crypto"
below_floor_check='
import importlib, os, sys
from ansible_collections.fleet.stapling.plugins.module_utils import certificates
package = "ansible_collections.fleet.stapling.plugins.module_utils"
here = os.path.dirname(certificates.__file__)
for name in sorted(os.listdir(here)):
    if name.endswith(".py") and name != "__init__.py":
        importlib.import_module("%s.%s" % (package, name[:-3]))
plugins = os.path.dirname(here)
for folder, _, files in os.walk(plugins):
    for name in sorted(files):
        if name.endswith(".py"):
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                compile(handle.read(), path, "exec")
problem = certificates.cryptography_problem()
print("cryptography_problem(): %s" % problem)
missing = [word for word in sys.argv[1:] if word not in (problem or "")]
if missing:
    sys.exit("the message does not name %s" % ", ".join(missing))
'
if make_venv "$log" "$pyver" "$crypto" no-pyopenssl; then
    started="$(now_ms)"
    if (cd "$STAGE_DIR" && PYTHONPATH="$STAGE_ROOT" PYTHONDONTWRITEBYTECODE=1 \
        "$venv_python" -c "$below_floor_check" cryptography "$crypto" "$FLOOR") >>"$log" 2>&1; then
        result=PASS
    else
        result=FAIL
    fi
    record "$label" "$result" "$setup_time" "$(seconds_since "$started")" "$log"
else
    record "$label" FAIL "$setup_time" "-" "$log"
fi

printf '\n%-52s %-6s %7s %7s\n' "compatibility row" result setup tests
printf '%s\n' "${table[@]}"
echo "rows: $((${#table[@]} - failed)) passed, $failed failed (logs in ${log_dir#"$REPO_ROOT"/}/)"
[[ "$failed" -eq 0 ]]
