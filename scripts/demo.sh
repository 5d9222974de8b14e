#!/usr/bin/env bash
# The main job (README): the whole platform on this machine, then what an operator sees.
#   bash scripts/demo.sh                    start what is not running (re-runnable), show the status
#   bash scripts/demo.sh status             only the status (celery_status, verify_backup, system_status)
#   bash scripts/demo.sh incident KIND      worker-down | backlog | backup-corrupt: inject it, wait until
#                                           its alert has reached Telegram (the stand-in), print the message
#   bash scripts/demo.sh heal               undo the incidents; the alerts resolve
#   bash scripts/demo.sh stop               stop the stack (keeps its files)
#   bash scripts/demo.sh clean              stop it and delete .work/stack
#   bash scripts/demo.sh shell [CMD...]     a bash where the README's examples run against the stack
#                                           (with CMD: run it there and exit with its status)
#   bash scripts/demo.sh env                write that environment to a file and print its path
#                                           (`source "$(bash scripts/demo.sh env)"`)
# The stack itself is tests/harness.py (the one stack the tests and benchmarks use too), under
# .work/stack: redis with a password, two Celery workers and beat of tests/sample_app, PostgreSQL 15
# with tonight's backup, Flower with auth, the application stand-in, and the monitoring half —
# Prometheus, Alertmanager (to a Telegram Bot API stand-in) and node-exporter — configured by the
# collection's own roles. Fixed demo ports (see the README); DEMO_FREE_PORTS=1 picks free ones.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK="$WORK/stack"
# Its own install of the collection: the test suite reads .work/collections while it runs, and
# the demo (re)installing there under it would make the suite's playbooks vanish for a moment.
DEMO_COLLECTIONS="$WORK/collections-demo"
# demo_collection: the demo's copy of the collection, rebuilt only when the checkout changed since
# the last build (a fingerprint of every file's path, size and mtime, as the build reads them, in
# $DEMO_COLLECTIONS/.checkout-stamp): `status`, `incident`, `heal`, `shell` and `env` take a second
# or two instead of a build each, and still never run an older copy than the checkout.
demo_collection() {
    local stamp="$DEMO_COLLECTIONS/.checkout-stamp" now
    now="$("$VENV/bin/python" - "$REPO" "$WORK" <<'PY'
import hashlib, os, sys
repo, work = (os.path.realpath(p) for p in sys.argv[1:3])
skip = {".work", ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".tox", ".cache", ".venv", "venv"}
h = hashlib.sha256()
for top, dirs, files in os.walk(repo):
    dirs[:] = sorted(d for d in dirs if d not in skip and os.path.realpath(os.path.join(top, d)) != work
                     and os.path.relpath(os.path.join(top, d), repo) != "tests/output")  # galaxy.yml's build_ignore
    for name in sorted(files):
        path = os.path.join(top, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        h.update(("%s %d %d\n" % (os.path.relpath(path, repo), st.st_size, st.st_mtime_ns)).encode())
print(h.hexdigest())
PY
)"
    if [ -d "$DEMO_COLLECTIONS/ansible_collections/callcenter/ops" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$now" ]; then
        return 0
    fi
    rm -f "$stamp"
    build_collection "$VENV" "$DEMO_COLLECTIONS"
    printf '%s\n' "$now" > "$stamp"
}
harness() {
    local ports=(--demo-ports)
    [ -z "${DEMO_FREE_PORTS:-}" ] || ports=()
    "$VENV/bin/python" "$REPO/tests/harness.py" "$@" --dir "$STACK" "${ports[@]}"
}

# shell_env: write $STACK/shell.env (0600) with what the README's examples need, and the demo
# inventory $STACK/inventory.yml (groups app, workers, db, flower, prometheus: all this machine).
# The secrets go into the file only, never to the terminal.
shell_env() {
    [ -f "$STACK/stack.json" ] || { echo "no stack in $STACK: run 'bash scripts/demo.sh' first" >&2; exit 1; }
    demo_collection
    ansible_env "$VENV" "$DEMO_COLLECTIONS"
    "$VENV/bin/python" - "$STACK" "$REPO/tests" <<'PY'
import json, os, shlex, sys
from pathlib import Path
stack_dir, tests = Path(sys.argv[1]), sys.argv[2]
sys.path.insert(0, tests)
from harness import Stack
from fake_app import ADMIN_TOKEN
st = Stack(stack_dir)
py = os.environ["ANSIBLE_PYTHON_INTERPRETER"]
inventory = stack_dir / "inventory.yml"
here = {"localhost": None}
inventory.write_text(json.dumps({"all": {
    "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": py,
                            "config_reload_app_url": st.url("app"), "system_status_app_url": st.url("app")}},
    "children": dict((g, {"hosts": here}) for g in ("app", "workers", "db", "flower", "prometheus"))}}, indent=1) + "\n")
env = dict(
    PATH=os.environ["PATH"], ANSIBLE_COLLECTIONS_PATH=os.environ["ANSIBLE_COLLECTIONS_PATH"],
    ANSIBLE_HOME=os.environ["ANSIBLE_HOME"], ANSIBLE_PYTHON_INTERPRETER=py, ANSIBLE_INVENTORY=str(inventory),
    ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    CELERY_BROKER_URL=st.broker_url, PGHOST="127.0.0.1", PGPORT=str(st.ports["postgres"]), PGUSER="postgres",
    PGPASSWORD=st.secret("postgres"), CALLCENTER_ADMIN_TOKEN=ADMIN_TOKEN, CALLCENTER_APP_URL=st.url("app"),
    FLOWER_USER="ops", FLOWER_PASSWORD=st.secret("flower"), FLOWER_URL=st.url("flower", "/"),
    ALERTMANAGER_URL=st.url("alertmanager"), PROMETHEUS_URL=st.url("prometheus"),
    CALLCENTER_BACKUP_DIR=str(stack_dir / "backups"), CALLCENTER_STACK=str(stack_dir))
out = stack_dir / "shell.env"
with open(os.open(str(out), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
    fh.write("# callcenter.ops demo shell: written by scripts/demo.sh env (secrets inside: mode 0600)\n")
    for k, v in env.items():
        fh.write("export %s=%s\n" % (k, shlex.quote(v)))
PY
}

cmd="${1:-up}"
case "$cmd" in
    env)
        shell_env
        echo "$STACK/shell.env"
        ;;
    shell)
        shift
        shell_env
        if [ $# -gt 0 ]; then
            # shellcheck disable=SC1091  # written just above
            source "$STACK/shell.env"
            exec "$@"
        fi
        rc="$(mktemp)"
        # shellcheck disable=SC2016  # $PS1 is expanded by the new shell
        printf '[ -f ~/.bashrc ] && . ~/.bashrc\n. %q\nPS1="(callcenter-demo) $PS1"\nrm -f %q\n' \
            "$STACK/shell.env" "$rc" > "$rc"
        log "demo shell: ansible, ansible-playbook and the collection; the stack's secrets are in the environment (exit to leave)"
        exec bash --rcfile "$rc" -i
        ;;
    up|status|incident|heal)
        ensure_apt
        ensure_venv "$VENV" /usr/bin/python3 "$REPO/requirements/test.txt"
        demo_collection
        ansible_env "$VENV" "$DEMO_COLLECTIONS"
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
    *) echo "usage: $0 [up|status|incident KIND|heal|stop|clean|shell [CMD...]|env]" >&2; exit 2 ;;
esac
