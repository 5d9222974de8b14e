#!/usr/bin/env bash
# The test command (README): installs what it needs, then runs every test of the collection.
#   bash scripts/test.sh            everything
#   bash scripts/test.sh pytest     one stage: pytest | sanity | lint | molecule | latest
#   bash scripts/test.sh pytest lint                  several stages
#   bash scripts/test.sh molecule flower runbooks     only these molecule scenarios (names after
#                                                     `molecule`; scripts/molecule.sh runs them)
# Stages: pytest (unit + integration against real servers), ansible-test sanity, ansible-lint
# (production profile), molecule scenarios, and pytest again on the newest ansible-core when a
# Python >= 3.12 is present. With pytest and other stages, the others run beside pytest, in turn
# (output printed after pytest's; CCOPS_SERIAL_STAGES=1: all in turn). Non-zero exit if a stage failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/molecule.sh"
: "${VENV:?}" "${REPO:?}"  # set by lib.sh

ALL_STAGES=(pytest sanity lint molecule latest)
STAGES=()
MOLECULE_SCENARIOS=()
for arg in "$@"; do
    if [[ " ${ALL_STAGES[*]} " == *" $arg "* ]]; then
        STAGES+=("$arg")
    elif [ ${#STAGES[@]} -gt 0 ] && [ "${STAGES[-1]}" = molecule ] && [ -f "$REPO/molecule/$arg/molecule.yml" ]; then
        MOLECULE_SCENARIOS+=("$arg")
    else
        echo "unknown stage '$arg' (stages: ${ALL_STAGES[*]}; after 'molecule', scenarios: $(molecule_names))" >&2
        exit 2
    fi
done
[ ${#STAGES[@]} -gt 0 ] || STAGES=("${ALL_STAGES[@]}")
FAILED=()
PASSED=()

# Test files run on this many processes (pytest-xdist, one file per process at a time, so a
# module's stack stays in one process). Most of a test's time is spent waiting on real servers:
# on 2 cores, 2 processes kept the CPU 65 % busy. Since module runs stopped recompiling their
# payload (scripts/startup_cache.py) 3 processes left it ~150 % busy, waiting on servers: 4 fill
# it (186 % busy, the whole command 11:00; with 3: 13:19, another job beside it).
PYTEST_WORKERS="${CCOPS_PYTEST_WORKERS:-$(( $(nproc) < 2 ? 2 : 4 ))}"

stage_pytest() {
    CALLCENTER_OPS_COLLECTIONS="$COLLECTIONS" "$VENV/bin/python" -m pytest -p no:cacheprovider \
        -n "$PYTEST_WORKERS" --dist loadfile --no-loadscope-reorder --durations=15 "$REPO/tests/unit" "$REPO/tests/integration" -q -rfE
}

stage_sanity() {
    # ansible-test needs a real copy under ansible_collections/<ns>/<name> and a pip bootstrap it
    # can not download here: a stand-in uses ensurepip (see shared FACTS).
    # Outside this git checkout: inside it, ansible-test asks git and sees only ignored files.
    local root dest pipver cache rc
    root="$(mktemp -d /tmp/ccops-sanity.XXXXXX)"
    dest="$root/ansible_collections/callcenter/ops"
    mkdir -p "$dest"
    (cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$dest"
    pipver="$(grep -oP "pip='\K[0-9.]+" "$VENV"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)"
    cache="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
    mkdir -p "$(dirname "$cache")"
    # The test venv's pip installs what was asked into ansible-test's new virtualenv (pip
    # --python): ensurepip first (pip and setuptools) then that install cost ~6 CPU-s more for
    # each of its ~10 virtualenvs on a first run.
    { "$VENV/bin/python" -c 'import sys; print("PIP_PYTHON = %r" % sys.executable)'
      cat <<'PY'
# Stand-in for pip's get-pip.py (no download here): install what was asked (pip==<version>) into
# this Python with the test venv's pip, or with ensurepip's when that venv is gone.
import os
import subprocess
import sys
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if os.access(PIP_PYTHON, os.X_OK):
    subprocess.check_call([PIP_PYTHON, "-m", "pip", "--python", sys.executable, "install", "--disable-pip-version-check"] + args)
else:
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args)
PY
    } > "$cache.$$"
    mv -f "$cache.$$" "$cache"  # whole, for an ansible-test of another run reading it now
    (cd "$dest" && "$VENV/bin/ansible-test" sanity --python "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
        --color no 2>&1 | grep -v "^WARNING: Location 'file:")
    rc="${PIPESTATUS[0]}"
    rm -rf "$root"
    return "$rc"
}

stage_lint() {
    (cd "$REPO" && "$VENV/bin/ansible-lint" --offline -q)
}

stage_molecule() {
    molecule_scenarios ${MOLECULE_SCENARIOS[@]+"${MOLECULE_SCENARIOS[@]}"}
}

# latest_python: a Python >= 3.12 for the newest ansible-core (Debian 12 has 3.11, pyenv machines
# have more); prints nothing when there is none.
latest_python() {
    local cand
    for cand in /root/.pyenv/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.12*/bin/python3.12 \
                /usr/bin/python3.13 /usr/bin/python3.12; do
        [ -x "$cand" ] && "$cand" -c 'import venv, ensurepip' 2>/dev/null && { echo "$cand"; return 0; }
    done
    return 0
}

stage_latest() {
    local py="$LATEST_PYTHON"
    if [ -z "$py" ]; then log "no Python >= 3.12 here: skipping the ansible-core 2.21 run"; return 0; fi
    local venv="$WORK/venv-latest" dest="$WORK/collections-latest"
    ensure_venv "$venv" "$py" "$REPO/requirements/test-latest.txt"
    build_collection "$venv" "$dest"
    log "pytest on $("$venv/bin/ansible" --version | sed -n 1p) with $("$venv/bin/python" --version)"
    # The newest ansible-core runs what can differ there (module argument handling and no_log,
    # AnsiballZ on a new Python, templating of roles and pages, prompts on a terminal,
    # ansible-doc): the unit tests and the tests listed in tests/latest-selection.txt. The whole
    # suite runs on the supported ansible-core above; twice would double the time.
    local ids=() line
    while IFS= read -r line; do
        line="${line%%#*}"; line="${line//[[:space:]]/}"
        [ -n "$line" ] && ids+=("$REPO/tests/integration/$line")
    done < "$REPO/tests/latest-selection.txt"
    # Two processes, not PYTEST_WORKERS: each one imports and collects every test file, and the
    # selection's 7 integration files keep two busy; this stage runs beside pytest anyway.
    ( ansible_env "$venv" "$dest"
      CALLCENTER_OPS_COLLECTIONS="$dest" "$venv/bin/python" -m pytest -p no:cacheprovider \
        -n "$(( PYTEST_WORKERS < 2 ? PYTEST_WORKERS : 2 ))" --dist loadfile --no-loadscope-reorder "$REPO/tests/unit" "${ids[@]}" -q -rfE )
}

lock_checkout
ensure_apt
# The other virtualenvs a first run needs are made in the background, at a lower priority (the
# main one starts everything else): the newest ansible-core's beside the main one (made after it,
# it kept one core idle for half a minute on a fresh clone), ansible-rulebook's (the alert loop's
# tests) right after it, by its pip. Each is made under its own lock: the test or stage that
# needs one waits for it, or makes it and reports pip's error itself if this attempt failed (its
# output: .work/prepare-venvs.log).
has_stage() { [[ " ${STAGES[*]} " == *" $1 "* ]]; }
LATEST_PYTHON=""
if has_stage latest; then LATEST_PYTHON="$(latest_python)"; fi
PREPARE_LOG="$WORK/prepare-venvs.log"
mkdir -p "$WORK" && : > "$PREPARE_LOG"
if [ -n "$LATEST_PYTHON" ]; then
    (renice -n 10 -p "$BASHPID" >/dev/null
     ensure_venv "$WORK/venv-latest" "$LATEST_PYTHON" "$REPO/requirements/test-latest.txt" >> "$PREPARE_LOG" 2>&1 || true) &
fi
ensure_venv "$VENV" /usr/bin/python3 "$REPO/requirements/test.txt"
# (ansible-rulebook's after the main one: the main one's pip installs it, ~8 CPU-s less.)
if has_stage pytest; then (renice -n 10 -p "$BASHPID" >/dev/null; ensure_eda_venv >> "$PREPARE_LOG" 2>&1 || true) & fi
build_collection "$VENV" "$COLLECTIONS"
ansible_env "$VENV" "$COLLECTIONS"
# This checkout's own Python (the tests, the harness, the installed collection's plugins) keeps
# its bytecode between processes (__pycache__, git-ignored, never built into the tarball) even
# where the environment says not to (PYTHONDONTWRITEBYTECODE, set on some machines): each pytest
# process, harness start and Ansible run compiled them again (pytest's collection: 2.8 -> 1.7 CPU-s).
unset PYTHONDONTWRITEBYTECODE

# The stages after pytest run beside it, one after another, when pytest is one of several
# stages: pytest waits on its servers for part of its time (~180 % of 2 cores busy), and
# sanity, lint, molecule and the newest ansible-core fill that. Their output is kept and printed
# after pytest's, stage by stage. CCOPS_SERIAL_STAGES=1 runs every stage in turn instead.
LANE_DIR="$(mktemp -d /tmp/ccops-stages.XXXXXX)"
LANE_PID=""
stop_lane() {
    [ -n "$LANE_PID" ] && kill -TERM -- "-$LANE_PID" 2>/dev/null
    rm -rf "$LANE_DIR"
}
trap stop_lane EXIT
trap 'exit 130' INT TERM

# run_stages_to_files STAGE...: each stage in turn, its output, status and seconds in LANE_DIR.
run_stages_to_files() {
    local s start
    for s in "$@"; do
        start=$SECONDS
        if "stage_$s" > "$LANE_DIR/$s.log" 2>&1; then echo 0 > "$LANE_DIR/$s.rc"; else echo 1 > "$LANE_DIR/$s.rc"; fi
        echo "$((SECONDS - start))s from +${start}s" > "$LANE_DIR/$s.secs"
    done
}

# Each stage's seconds, and when it started (seconds since this script did): beside pytest,
# whether the lane or pytest ended last is what to shorten.
record() {  # record STAGE RC "SECONDS"
    if [ "$2" = 0 ]; then PASSED+=("$1 ($3)"); else FAILED+=("$1 ($3)"); fi
}

BESIDE=()
if [ "${CCOPS_SERIAL_STAGES:-}" != 1 ] && [ ${#STAGES[@]} -gt 1 ] && [[ " ${STAGES[*]} " == *" pytest "* ]]; then
    for s in "${STAGES[@]}"; do [ "$s" = pytest ] || BESIDE+=("$s"); done
fi

if [ ${#BESIDE[@]} -gt 0 ]; then
    log "stage: pytest; beside it: ${BESIDE[*]} (their output follows pytest's)"
    set -m  # the stages beside pytest in a process group of their own, stopped with this script
    run_stages_to_files "${BESIDE[@]}" &
    LANE_PID=$!
    set +m
    start=$SECONDS
    if stage_pytest; then rc=0; else rc=1; fi
    record pytest "$rc" "$((SECONDS - start))s from +${start}s"
    wait "$LANE_PID" || true
    LANE_PID=""
    for s in "${BESIDE[@]}"; do
        log "stage: $s (ran beside pytest)"
        cat "$LANE_DIR/$s.log" 2>/dev/null
        record "$s" "$(cat "$LANE_DIR/$s.rc" 2>/dev/null || echo 1)" "$(cat "$LANE_DIR/$s.secs" 2>/dev/null || echo 0s)"
    done
else
    for s in "${STAGES[@]}"; do
        log "stage: $s"
        start=$SECONDS
        if "stage_$s"; then rc=0; else rc=1; fi
        record "$s" "$rc" "$((SECONDS - start))s from +${start}s"
    done
fi

log "passed: ${PASSED[*]:-none}"
if [ ${#FAILED[@]} -gt 0 ]; then
    log "FAILED: ${FAILED[*]}"
    exit 1
fi
