#!/usr/bin/env bash
# The main job (README): the whole platform on this machine, then what an operator sees.
#   bash scripts/demo.sh                    start what is not running (re-runnable), show the status
#   bash scripts/demo.sh status             only the status (celery_status, verify_backup, system_status)
#   bash scripts/demo.sh incident KIND      worker-down | backlog | backup-corrupt: inject it, wait until
#                                           its alert has reached Telegram (the stand-in), print the message
#   bash scripts/demo.sh heal               undo the incidents; the alerts resolve
#   bash scripts/demo.sh stop               stop the stack (keeps its files)
#   bash scripts/demo.sh clean              stop it and delete .work/stack
# The stack itself is tests/harness.py (the one stack the tests and benchmarks use too), under
# .work/stack: redis with a password, two Celery workers and beat of tests/sample_app, PostgreSQL 15
# with tonight's backup, Flower with auth, the application stand-in, and the monitoring half —
# Prometheus, Alertmanager (to a Telegram Bot API stand-in) and node-exporter — configured by the
# collection's own roles. Fixed demo ports (see the README); DEMO_FREE_PORTS=1 picks free ones.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK="$WORK/stack"
harness() {
    local ports=(--demo-ports)
    [ -z "${DEMO_FREE_PORTS:-}" ] || ports=()
    "$VENV/bin/python" "$REPO/tests/harness.py" "$@" --dir "$STACK" "${ports[@]}"
}

cmd="${1:-up}"
case "$cmd" in
    up|status|incident|heal)
        ensure_apt
        ensure_venv "$VENV" /usr/bin/python3 "$REPO/requirements/test.txt"
        build_collection "$VENV" "$COLLECTIONS"
        ansible_env "$VENV" "$COLLECTIONS"
        if [ "$cmd" != up ] && [ ! -f "$STACK/stack.json" ]; then
            echo "no stack in $STACK: run 'bash scripts/demo.sh' first" >&2; exit 1
        fi
        mkdir -p "$STACK"
        if [ "$cmd" = incident ]; then
            [ -n "${2:-}" ] || { echo "usage: $0 incident worker-down|backlog|backup-corrupt" >&2; exit 2; }
            harness incident "$2"
        else
            eda=(--eda); [ "${DEMO_EDA:-1}" = 1 ] || eda=()  # DEMO_EDA=0: no Event-Driven Ansible
            harness "$cmd" "${eda[@]}"
        fi
        ;;
    stop) [ -f "$STACK/stack.json" ] && harness stop; true ;;
    clean) [ -f "$STACK/stack.json" ] && harness stop; rm -rf "$STACK"; log "removed $STACK" ;;
    *) echo "usage: $0 [up|status|incident KIND|heal|stop|clean]" >&2; exit 2 ;;
esac
