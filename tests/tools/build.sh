#!/usr/bin/env bash
# Build the collection tarball into build/, install it into a scratch
# collections path (from the file: no Galaxy), and check that ansible-doc can
# render every module from the installed copy.
set -euo pipefail
# shellcheck source=tests/tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_venv
stage_collection

build_dir="$REPO_ROOT/build"
install_dir="$STAGE_ROOT/installed"
mkdir -p "$build_dir" "$install_dir"

say "ansible-galaxy collection build"
ansible-galaxy collection build "$STAGE_DIR" --output-path "$build_dir" --force
version="$(sed -n 's/^version:[[:space:]]*//p' "$STAGE_DIR/galaxy.yml" | tr -d "\"'")"
tarball="$build_dir/$COLLECTION_NAMESPACE-$COLLECTION_NAME-$version.tar.gz"
[[ -f "$tarball" ]] || die "expected $tarball after the build"

# Only the freshly installed copy may answer ansible-doc.
export ANSIBLE_COLLECTIONS_PATH="$install_dir"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false

say "ansible-galaxy collection install $(basename "$tarball") (offline)"
ansible-galaxy collection install --offline --force -p "$install_dir" "$tarball"

modules=()
for module_file in "$install_dir/ansible_collections/$COLLECTION_NAMESPACE/$COLLECTION_NAME"/plugins/modules/*.py; do
    [[ -e "$module_file" ]] || continue
    module="$(basename "$module_file" .py)"
    [[ "$module" == __init__ ]] || modules+=("$module")
done

if [[ ${#modules[@]} -eq 0 ]]; then
    say "no modules in plugins/modules/ yet: no ansible-doc check to run"
    exit 0
fi

failed=()
for module in "${modules[@]}"; do
    fqcn="$COLLECTION_NAMESPACE.$COLLECTION_NAME.$module"
    if (cd "$STAGE_ROOT" && ansible-doc -t module "$fqcn" >/dev/null); then
        say "ansible-doc $fqcn: ok"
    else
        failed+=("$fqcn")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    die "ansible-doc failed for: ${failed[*]}"
fi
say "build ok: $tarball, ansible-doc ok for ${#modules[@]} module(s)"
