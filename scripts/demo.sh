#!/usr/bin/env bash
# The main job (README): a local default stack, then the collection's status playbooks.
#   bash scripts/demo.sh          start the stack if needed (re-runnable) and show its status
#   bash scripts/demo.sh status   only show the status
#   bash scripts/demo.sh stop     stop the stack (keeps its files)
#   bash scripts/demo.sh clean    stop it and delete .work/stack
# The stack lives in .work/stack (git-ignored): redis-server on 127.0.0.1 with a generated
# password, two Celery workers of tests/sample_app (queues quality and stats) and celery beat.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK="$WORK/stack"
REDIS_PORT="${DEMO_REDIS_PORT:-16379}"
APP_DIR="$REPO/tests/sample_app"

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

broker_url() { echo "redis://:$(cat "$STACK/redis.pass")@127.0.0.1:$REDIS_PORT/0"; }

start_stack() {
    mkdir -p "$STACK"
    chmod 700 "$STACK"
    [ -s "$STACK/redis.pass" ] || (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))' > "$STACK/redis.pass")
    if ! pid_alive "$STACK/redis.pid"; then
        log "starting redis-server on 127.0.0.1:$REDIS_PORT"
        (umask 077; printf 'port %s\nbind 127.0.0.1\ndir %s\nsave ""\nappendonly no\ndaemonize yes\npidfile %s\nlogfile %s\nrequirepass %s\n' \
            "$REDIS_PORT" "$STACK" "$STACK/redis.pid" "$STACK/redis.log" "$(cat "$STACK/redis.pass")" > "$STACK/redis.conf")
        redis-server "$STACK/redis.conf"
        for _ in $(seq 50); do pid_alive "$STACK/redis.pid" && break; sleep 0.1; done
    fi
    export CELERY_BROKER_URL
    CELERY_BROKER_URL="$(broker_url)"
    for w in w1 w2; do
        if ! pid_alive "$STACK/$w.pid"; then
            log "starting Celery worker $w@demo (queues quality, stats)"
            (cd "$APP_DIR" && "$VENV/bin/celery" -A callcenter_sample worker --detach -n "$w@demo" -Q quality,stats \
                -c 1 -l info --pidfile "$STACK/$w.pid" --logfile "$STACK/$w.log" --without-gossip --without-mingle)
        fi
    done
    if ! pid_alive "$STACK/beat.pid"; then
        log "starting celery beat (last_daily_stats every ${SAMPLE_BEAT_INTERVAL:-5}s)"
        (cd "$APP_DIR" && "$VENV/bin/celery" -A callcenter_sample beat --detach -s "$STACK/celerybeat-schedule" \
            -l info --pidfile "$STACK/beat.pid" --logfile "$STACK/beat.log")
    fi
    # Wait until both workers answer and beat has written its file, so the first status is meaningful.
    for _ in $(seq 60); do
        if "$VENV/bin/python" - <<'PY' 2>/dev/null; then break; fi
import os, sys
from celery import Celery
app = Celery(broker=os.environ["CELERY_BROKER_URL"], set_as_current=False)
r = app.control.ping(destination=["w1@demo", "w2@demo"], timeout=0.5, limit=2)
sys.exit(0 if len(r) == 2 and os.path.exists(os.path.join(os.environ.get("STACK", ""), "celerybeat-schedule")) else 1)
PY
        sleep 0.5
    done
}

stop_stack() {
    for p in beat w1 w2; do
        if pid_alive "$STACK/$p.pid"; then log "stopping $p"; kill "$(cat "$STACK/$p.pid")" || true; fi
    done
    for _ in $(seq 100); do
        pid_alive "$STACK/w1.pid" || pid_alive "$STACK/w2.pid" || pid_alive "$STACK/beat.pid" || break
        sleep 0.1
    done
    if pid_alive "$STACK/redis.pid"; then log "stopping redis-server"; kill "$(cat "$STACK/redis.pid")" || true; fi
}

show_status() {
    export CELERY_BROKER_URL
    CELERY_BROKER_URL="$(broker_url)"
    log "ansible-playbook callcenter.ops.celery_status (broker password kept in the environment)"
    ansible-playbook -i localhost, -c local callcenter.ops.celery_status \
        -e '{"celery_expected_workers": ["w1@demo", "w2@demo"], "celery_queues": ["quality", "stats"],
             "celery_max_queue_length": 100, "celery_beat_entries": ["last_daily_stats"], "celery_max_beat_age": 300}' \
        -e "celery_beat_schedule_file=$STACK/celerybeat-schedule"
}

cmd="${1:-up}"
case "$cmd" in
    up|status)
        ensure_apt
        ensure_venv "$VENV" /usr/bin/python3 "$REPO/requirements/test.txt"
        build_collection "$VENV" "$COLLECTIONS"
        ansible_env "$VENV" "$COLLECTIONS"
        export STACK
        if [ "$cmd" = up ]; then start_stack; fi
        [ -f "$STACK/redis.pass" ] || { echo "no stack in $STACK: run 'bash scripts/demo.sh' first" >&2; exit 1; }
        show_status
        log "stack in $STACK; stop it with: bash scripts/demo.sh stop   (or clean)"
        ;;
    stop) stop_stack ;;
    clean) stop_stack; rm -rf "$STACK"; log "removed $STACK" ;;
    *) echo "usage: $0 [up|status|stop|clean]" >&2; exit 2 ;;
esac
