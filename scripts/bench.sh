#!/usr/bin/env bash
# Benchmarks (not tests): print ratios against baselines measured in the same run.
#   bash scripts/bench.sh            all
#   bash scripts/bench.sh celery     only bench_celery_health.py
#   bash scripts/bench.sh system_status --fleet   only system_status over 1, 5 and 20 app hosts
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_apt
ensure_venv "$VENV" /usr/bin/python3 "$REPO/requirements/test.txt"
# Its own install: a test run in progress reads .work/collections, and reinstalling it there under
# that run makes its playbooks "could not be found" for a moment.
build_collection "$VENV" "$WORK/collections-bench"
ansible_env "$VENV" "$WORK/collections-bench"
# Measured as on users' hosts: every module run compiles its payload (no scripts/startup_cache.py),
# and Ansible's own defaults (no scripts/ansible.cfg).
unset CCOPS_STARTUP_CACHE ANSIBLE_CONFIG
for b in "$REPO"/tests/bench/bench_*.py; do
    if [ $# -gt 0 ] && [[ "$(basename "$b")" != *"$1"* ]]; then continue; fi
    log "$(basename "$b")"
    "$VENV/bin/python" "$b" "${@:2}"
done
