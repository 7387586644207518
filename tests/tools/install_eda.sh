#!/usr/bin/env bash
# Prepare this machine to run the collection's rulebook (extensions/eda) with
# ansible-rulebook, for tests/integration/pytest/test_eda_rulebook.py. Safe to
# run again: each step checks first and does nothing when it is already done.
#
#  1. A JDK 17 or newer (ansible-rulebook's rules engine, Drools, runs in
#     Java): Debian's openjdk-17-jdk-headless, when no java 17+ is on PATH
#     (root only; apt-get).
#  2. The virtualenv .venv-eda/ (or $EDA_VENV) with the pins from
#     tests/requirements-eda.txt, reinstalled only when that file changes. It
#     is separate from .venv/ because ansible-rulebook's pins are not ours.
#  3. A check that ansible-rulebook starts and finds Java.
#
# A first run takes about 15 s with Java already there (pip, from wheels) and
# about a minute more when the JDK has to be installed; a run with nothing to
# do takes about 2 s (the start-up check).
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EDA_VENV="${EDA_VENV:-$REPO_ROOT/.venv-eda}"
EDA_REQUIREMENTS="$REPO_ROOT/tests/requirements-eda.txt"
JDK_PACKAGE=openjdk-17-jdk-headless
JAVA_MIN_MAJOR=17

# The major version of the java on PATH ("17" for 17.0.15, "8" for 1.8.0), or nothing.
java_major() {
    command -v java >/dev/null || return 0
    java -version 2>&1 | sed -n 's/.*version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' | head -n 1
}

install_java() {
    local major
    major="$(java_major)"
    if [[ -n "$major" && "$major" -ge "$JAVA_MIN_MAJOR" ]]; then
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        die "ansible-rulebook needs Java $JAVA_MIN_MAJOR+ (found: ${major:-none}). Run this as root, or first:
    apt-get install -y --no-install-recommends $JDK_PACKAGE"
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "installing $JDK_PACKAGE (ansible-rulebook's rules engine runs in Java)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$JDK_PACKAGE"
}

# Git, and with it ansible-test and the build, must never see the venv's
# thousands of files, whatever the checkout's .gitignore says.
hide_venv_from_git() {
    [[ -f "$EDA_VENV/.gitignore" ]] || printf '*\n' >"$EDA_VENV/.gitignore"
}

check_rulebook_starts() {
    local version
    version="$("$EDA_VENV/bin/ansible-rulebook" --version 2>&1)" ||
        die "ansible-rulebook does not start:
$version"
    grep -q 'Java version' <<<"$version" || die "ansible-rulebook does not find Java:
$version"
    say "ansible-rulebook ready in $EDA_VENV: $(head -n 1 <<<"$version"), $(grep 'Java version' <<<"$version" | xargs)"
}

install_java
pinned_venv "$EDA_VENV" "$EDA_REQUIREMENTS"
hide_venv_from_git
check_rulebook_starts
