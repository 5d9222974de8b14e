#!/usr/bin/env bash
# CHANGELOG.md from changelogs/fragments/ with antsibull-changelog (in its own small virtualenv,
# .work/venv-changelog: its pins are apart from the test venv's).
#   bash scripts/changelog.sh          lint the fragments and regenerate CHANGELOG.md
#   bash scripts/changelog.sh lint     only lint
#   CHANGELOG_OUT=FILE bash scripts/changelog.sh   write it there instead (the tests do)
# The release (the version in galaxy.yml) is made in a temporary copy of the checkout, so
# changelogs/changelog.yaml never has to be merged and the fragments stay; new modules are found
# by ansible-doc, new roles, playbooks and filters come from add_object/add_plugin fragments.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CHANGELOG_TOOLS=(antsibull-changelog==0.36.0 ansible-core==2.19.14)  # ansible-core: it lists new filters by it
ensure_venv "$VENV" /usr/bin/python3 "$REPO/requirements/test.txt"
tools="$WORK/venv-changelog"
req="$WORK/changelog-requirements.txt"
printf '%s\n' "${CHANGELOG_TOOLS[@]}" > "$req.new"
cmp -s "$req.new" "$req" 2>/dev/null || mv "$req.new" "$req"
rm -f "$req.new"
ensure_venv "$tools" /usr/bin/python3 "$req" "$VENV"  # installed by the main venv's pip
export PATH="$tools/bin:$PATH"

(cd "$REPO" && antsibull-changelog lint)
[ "${1:-}" = lint ] && exit 0

copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT
dest="$copy/ansible_collections/callcenter/ops"
mkdir -p "$dest"
(cd "$REPO" && tar -c --exclude=./.work --exclude=./.git --exclude=./tests/output . ) | tar -x -C "$dest"
rm -f "$dest/changelogs/changelog.yaml" "$dest/CHANGELOG.md"
# ansible-doc finds the new modules in the copy itself: never in .work/collections, which a test
# run in progress reads (reinstalling it there made a parallel test's playbook "could not be found").
ansible_env "$VENV" "$copy"
version="$(sed -n 's/^version: *//p' "$REPO/galaxy.yml" | tr -d "\"'")"
(cd "$dest" && antsibull-changelog release --version "$version" --date "${CHANGELOG_DATE:-$(date -u +%F)}" >/dev/null)
cp "$dest/CHANGELOG.md" "${CHANGELOG_OUT:-$REPO/CHANGELOG.md}"
log "${CHANGELOG_OUT:-CHANGELOG.md} regenerated for $version from $(find "$REPO/changelogs/fragments" -name '*.yml' | wc -l) fragments"
