#!/usr/bin/env bash
# Molecule as users run it, one command from a clean checkout:
#   bash scripts/molecule.sh flower              one scenario (molecule test -s flower)
#   bash scripts/molecule.sh flower runbooks     several, in turn
#   bash scripts/molecule.sh                     every scenario under molecule/
# It installs what it needs (apt packages, the pinned .work/venv), builds the collection from
# this checkout into .work/collections (never ~/.ansible), and gives every scenario its own
# temp dir, free ports and a private ANSIBLE_HOME. scripts/test.sh's molecule stage runs this.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${VENV:?}" "${REPO:?}"  # set by lib.sh

# molecule_scenarios [SCENARIO...]: `molecule test` for each (all when none given); non-zero if one failed.
molecule_scenarios() {
    local scenarios=("$@") s
    if [ ${#scenarios[@]} -eq 0 ]; then
        for s in "$REPO"/molecule/*/molecule.yml; do [ -f "$s" ] && scenarios+=("$(basename "$(dirname "$s")")"); done
    fi
    if [ ${#scenarios[@]} -eq 0 ]; then log "no molecule scenarios yet"; return 0; fi
    for s in "${scenarios[@]}"; do
        [ -f "$REPO/molecule/$s/molecule.yml" ] || { echo "no molecule scenario '$s' (have: $(molecule_names))" >&2; return 2; }
    done
    local home rc=0 jobs="${CCOPS_MOLECULE_JOBS:-2}" logs
    home="$(mktemp -d /tmp/ccops-molecule-home.XXXXXX)"
    logs="$(mktemp -d /tmp/ccops-molecule-logs.XXXXXX)"
    # Molecule runs `ansible-playbook --version` before every playbook it runs, only to log the
    # version: ~0.5 CPU-s each, 4-6 per scenario. A stand-in first on the scenarios' PATH answers
    # that from one run of the real one and hands every other call to the real ansible-playbook.
    mkdir -p "$home/bin"
    "$VENV/bin/ansible-playbook" --version > "$home/ansible-playbook.version"
    printf '#!/bin/sh\n[ "$*" = --version ] && exec cat %q\nexec %q "$@"\n' \
        "$home/ansible-playbook.version" "$VENV/bin/ansible-playbook" > "$home/bin/ansible-playbook"
    chmod 755 "$home/bin/ansible-playbook"
    # Scenarios run $jobs at a time (each waits on its servers for much of its time); every
    # scenario's output goes to its own log, printed whole when it ends, so logs never interleave.
    for s in "${scenarios[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
        log "molecule scenario $s"
        { if molecule_one "$s" "$home" > "$logs/$s.log" 2>&1; then echo 0; else echo 1; fi > "$logs/$s.rc"; } &
    done
    wait
    # Each scenario's log starts with molecule's "CRITICAL 'molecule/default/molecule.yml' glob
    # failed.  Exiting.": molecule looks for a default scenario (shared state), finds none, and goes on.
    log "molecule's CRITICAL 'molecule/default/molecule.yml' line below only means: no default scenario (one per role)"
    for s in "${scenarios[@]}"; do
        log "molecule scenario $s: its output"
        cat "$logs/$s.log"
        if [ "$(cat "$logs/$s.rc" 2>/dev/null)" != 0 ]; then rc=1; log "molecule scenario $s FAILED"; fi
    done
    rm -rf "$home" "$logs"
    return $rc
}

# molecule_one SCENARIO HOME: `molecule test -s SCENARIO` with its own root dir and free ports.
molecule_one() {
    local s="$1" home="$2" root p1 p2 p3 p4 rc=0
    # Every path and port of the scenario is this run's own (vars/main.yml reads these).
    root="$(mktemp -d /tmp/ccops-molecule-"$s".XXXXXX)"
    chmod 755 "$root"
    read -r p1 p2 p3 p4 < <(free_ports 4)
    (cd "$REPO" && PATH="$home/bin:$PATH" ANSIBLE_HOME="$home/$s" XDG_CACHE_HOME="$home/$s/cache" MOLECULE_GLOB='molecule/*/molecule.yml' \
        CCOPS_MOLECULE_ROOT="$root" CCOPS_MOLECULE_REDIS_PORT="$p1" CCOPS_MOLECULE_FLOWER_PORT="$p2" \
        CCOPS_MOLECULE_PROMETHEUS_PORT="$p3" CCOPS_MOLECULE_ALERTMANAGER_PORT="$p4" "$VENV/bin/molecule" test -s "$s") || rc=1
    rm -rf "$root"
    return $rc
}

# molecule_names: the scenarios under molecule/, space-separated.
molecule_names() {
    local s names=()
    for s in "$REPO"/molecule/*/molecule.yml; do [ -f "$s" ] && names+=("$(basename "$(dirname "$s")")"); done
    echo "${names[*]}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    for a in "$@"; do
        case "$a" in
            -h|--help) sed -n '2,8p' "$0"; echo "scenarios: $(molecule_names)"; exit 0 ;;
            *) [ -f "$REPO/molecule/$a/molecule.yml" ] || { echo "no molecule scenario '$a' (have: $(molecule_names))" >&2; exit 2; } ;;
        esac
    done
    lock_checkout
    ensure_apt
    ensure_venv "$VENV" /usr/bin/python3 "$REPO/requirements/test.txt"
    build_collection "$VENV" "$COLLECTIONS"
    ansible_env "$VENV" "$COLLECTIONS"
    molecule_scenarios "$@"
fi
