# shellcheck shell=bash disable=SC2034
# Shared helpers for the scripts in tests/tools/. Source it, do not run it.
# (SC2034: the variables set here are used by the scripts that source it.)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"
PY="$VENV/bin/python"
# The Python version ansible-test runs sanity and unit tests with (--local).
TEST_PYTHON_VERSION=3.11
COLLECTION_NAMESPACE=fleet
COLLECTION_NAME=stapling

# Put the test venv first so that ansible-test's `--python 3.11` finds the
# venv's python3.11 (and with it pytest, ansible-core, ...).
export PATH="$VENV/bin:$PATH"

say() { printf '==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# A virtualenv at $1 with the exact pins of the requirements file $2: made with $PYTHON (python3.11 unless
# set) when there is no working one, and installed into again only when that file changes (its hash is kept
# beside, as .<file name without .txt>.sha256).
pinned_venv() {
    local venv="$1" requirements="$2" python="${PYTHON:-python$TEST_PYTHON_VERSION}" name stamp wanted
    name="$(basename "$requirements" .txt)"
    stamp="$venv/.$name.sha256"
    if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' 2>/dev/null; }; then
        command -v "$python" >/dev/null || die "$python not found (set PYTHON=/path/to/python3.11)"
        say "creating $venv with $python"
        "$python" -m venv "$venv"
        rm -f "$stamp"
    fi
    wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
        say "$name up to date in $venv"
        return 0
    fi
    say "installing ${requirements#"$REPO_ROOT"/} into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
}

require_venv() {
    [[ -x "$PY" ]] || die "no test virtualenv at $VENV: run 'make deps' (tests/tools/bootstrap.sh) first"
}

# List the collection's files the way git sees the working tree: tracked and
# untracked files, minus anything .gitignore excludes and minus deleted files.
# Outside a git checkout, fall back to every file except well-known junk.
list_collection_files() {
    if git -C "$REPO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        local path
        git -C "$REPO_ROOT" ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' path; do
                if [[ -e "$REPO_ROOT/$path" || -L "$REPO_ROOT/$path" ]]; then
                    printf '%s\0' "$path"
                fi
            done
    else
        (cd "$REPO_ROOT" && find . \( -name .git -o -name .venv -o -name __pycache__ \
            -o -name .pytest_cache -o -path ./tests/output -o -path ./build \) -prune \
            -o \( -type f -o -type l \) -printf '%P\0')
    fi
}

# Copy the collection into $STAGE_ROOT/ansible_collections/fleet/stapling
# ($STAGE_DIR). ansible-test and ansible-lint need that layout; copying (rather
# than linking the repo) keeps ignored junk out and makes untracked new files
# count. The stage has no .git, so ansible-test looks at every staged file.
# The stage is deleted on exit unless KEEP_STAGE=1.
stage_collection() {
    STAGE_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/fleet-stapling-stage.XXXXXX")"
    STAGE_DIR="$STAGE_ROOT/ansible_collections/$COLLECTION_NAMESPACE/$COLLECTION_NAME"
    mkdir -p "$STAGE_DIR"
    list_collection_files | tar -C "$REPO_ROOT" --null -T - -cf - | tar -C "$STAGE_DIR" -xf -
    if [[ "${KEEP_STAGE:-0}" == 1 ]]; then
        say "staged collection kept at $STAGE_DIR"
    else
        trap 'rm -rf "$STAGE_ROOT"' EXIT
    fi
}

# Copy ansible-test's results (junit XML, logs) back into the repo for reading.
copy_test_output_back() {
    if [[ -d "$STAGE_DIR/tests/output" ]]; then
        mkdir -p "$REPO_ROOT/tests/output"
        cp -a "$STAGE_DIR/tests/output/." "$REPO_ROOT/tests/output/"
    fi
}
