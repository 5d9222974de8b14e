#!/usr/bin/env bash
# The main job (README): a local default stack, then the collection's status playbooks.
#   bash scripts/demo.sh          start the stack if needed (re-runnable) and show its status
#   bash scripts/demo.sh status   only show the status
#   bash scripts/demo.sh stop     stop the stack (keeps its files)
#   bash scripts/demo.sh clean    stop it and delete .work/stack
# The stack lives in .work/stack (git-ignored): redis-server on 127.0.0.1 with a generated
# password, two Celery workers of tests/sample_app (queues quality and stats), celery beat,
# a PostgreSQL 15 cluster with a gzip'ed pg_dump backup, Flower with basic auth, and the
# application stand-in of tests/fake_app.py (the one part of the platform not in this repo).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK="$WORK/stack"
REDIS_PORT="${DEMO_REDIS_PORT:-16379}"
PG_PORT="${DEMO_PG_PORT:-15432}"
FLOWER_PORT="${DEMO_FLOWER_PORT:-15555}"
APP_PORT="${DEMO_APP_PORT:-18080}"
PG_BIN=/usr/lib/postgresql/15/bin
APP_DIR="$REPO/tests/sample_app"

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

broker_url() { echo "redis://:$(cat "$STACK/redis.pass")@127.0.0.1:$REDIS_PORT/0"; }

start_stack() {
    mkdir -p "$STACK"
    chmod 711 "$STACK"  # the postgres user must reach $STACK/pg; the secrets inside are 0600
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
    if ! pid_alive "$STACK/flower.pid"; then
        log "starting Flower on 127.0.0.1:$FLOWER_PORT (user ops, password in $STACK/flower.pass)"
        [ -s "$STACK/flower.pass" ] || (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))' > "$STACK/flower.pass")
        (cd "$STACK"; FLOWER_BASIC_AUTH="ops:$(cat "$STACK/flower.pass")" FLOWER_PORT="$FLOWER_PORT" FLOWER_ADDRESS=127.0.0.1 \
            nohup "$VENV/bin/celery" flower > "$STACK/flower.log" 2>&1 & echo $! > "$STACK/flower.pid")
    fi
    if ! pid_alive "$STACK/app.pid"; then
        log "starting the application stand-in on 127.0.0.1:$APP_PORT"
        nohup "$VENV/bin/python" "$REPO/tests/fake_app.py" "$APP_PORT" > "$STACK/app.log" 2>&1 & echo $! > "$STACK/app.pid"
    fi
    start_postgres
    if ! pid_alive "$STACK/beat.pid"; then
        log "starting celery beat (last_daily_stats every ${SAMPLE_BEAT_INTERVAL:-5}s)"
        (cd "$APP_DIR" && "$VENV/bin/celery" -A callcenter_sample beat --detach -s "$STACK/celerybeat-schedule" \
            -l info --pidfile "$STACK/beat.pid" --logfile "$STACK/beat.log")
    fi
    # Wait until both workers answer and beat has written its file, so the first status is meaningful.
    # (The broker URL in the environment, not on the command line.)
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

start_postgres() {
    local as=()
    [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
    [ -s "$STACK/pg.pass" ] || (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))' > "$STACK/pg.pass")
    if [ ! -d "$STACK/pg/data" ]; then
        log "creating a PostgreSQL 15 cluster in $STACK/pg"
        mkdir -p "$STACK/pg" && cp "$STACK/pg.pass" "$STACK/pg/pw"
        [ "$(id -u)" = 0 ] && chown -R postgres "$STACK/pg"
        "${as[@]}" "$PG_BIN/initdb" -D "$STACK/pg/data" -U postgres --auth=scram-sha-256 --pwfile "$STACK/pg/pw" \
            -E UTF8 --locale=C >/dev/null
    fi
    if ! "${as[@]}" "$PG_BIN/pg_ctl" -D "$STACK/pg/data" status >/dev/null 2>&1; then
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        "${as[@]}" "$PG_BIN/pg_ctl" -D "$STACK/pg/data" -l "$STACK/pg/log" -w \
            -o "-p $PG_PORT -k $STACK/pg -c listen_addresses=127.0.0.1" start >/dev/null
    fi
    export PGPASSWORD
    PGPASSWORD="$(cat "$STACK/pg.pass")"
    if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname='callcenter'" | grep -q 1; then
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE callcenter"
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d callcenter -qc \
            "CREATE TABLE calls (id serial PRIMARY KEY, transcript text); INSERT INTO calls (transcript) SELECT md5(i::text) FROM generate_series(1, 5000) i;"
    fi
    mkdir -p "$STACK/backups" "$STACK/metrics"
    if [ -z "$(ls "$STACK"/backups/*.dump.gz 2>/dev/null)" ]; then
        log "making tonight's backup: pg_dump -Fc | gzip > $STACK/backups/"
        "$PG_BIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Fc -Z0 callcenter | gzip > "$STACK/backups/callcenter-$(date +%F).dump.gz"
    fi
}

stop_stack() {
    for p in beat w1 w2 flower app; do
        if pid_alive "$STACK/$p.pid"; then log "stopping $p"; kill "$(cat "$STACK/$p.pid")" || true; fi
    done
    for _ in $(seq 100); do
        pid_alive "$STACK/w1.pid" || pid_alive "$STACK/w2.pid" || pid_alive "$STACK/beat.pid" || break
        sleep 0.1
    done
    if pid_alive "$STACK/redis.pid"; then log "stopping redis-server"; kill "$(cat "$STACK/redis.pid")" || true; fi
    if [ -f "$STACK/pg/data/postmaster.pid" ]; then
        log "stopping PostgreSQL"
        if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STACK/pg/data" -m fast stop >/dev/null || true
        else "$PG_BIN/pg_ctl" -D "$STACK/pg/data" -m fast stop >/dev/null || true; fi
    fi
}

# During an incident every check still runs and the page is always rewritten: a failing
# playbook is remembered, not fatal, and the exit status is the worst of them.
WORST=0
check() {
    local rc=0
    "$@" || rc=$?
    if [ "$rc" != 0 ]; then log "FAILED (rc $rc): ${*:1:2}"; [ "$rc" -gt "$WORST" ] && WORST=$rc; fi
    return 0
}

show_status() {
    export CELERY_BROKER_URL
    CELERY_BROKER_URL="$(broker_url)"
    log "ansible-playbook callcenter.ops.celery_status (broker password kept in the environment)"
    check ansible-playbook -i localhost, -c local callcenter.ops.celery_status \
        -e '{"celery_expected_workers": ["w1@demo", "w2@demo"], "celery_queues": ["quality", "stats"],
             "celery_max_queue_length": 100, "celery_beat_entries": ["last_daily_stats"], "celery_max_beat_age": 300}' \
        -e "celery_beat_schedule_file=$STACK/celerybeat-schedule"
    log "ansible-playbook callcenter.ops.verify_backup (writes the metrics the status page shows)"
    check ansible-playbook -i localhost, -c local callcenter.ops.verify_backup \
        -e "backup_path=$STACK/backups" -e "backup_metrics_file=$STACK/metrics/callcenter_backup.prom"
    log "ansible-playbook callcenter.ops.system_status (table, and the HTML page $STACK/status.html)"
    PGPASSWORD="$(cat "$STACK/pg.pass")" CALLCENTER_ADMIN_TOKEN="$("$VENV/bin/python" -c 'import sys; sys.path.insert(0, "'"$REPO"'/tests"); from fake_app import ADMIN_TOKEN; print(ADMIN_TOKEN)')" \
    check ansible-playbook -i localhost, -c local callcenter.ops.system_status -e system_status_fail_on=degraded \
        -e "system_status_app_url=http://127.0.0.1:$APP_PORT" \
        -e '{"system_status_expected_workers": ["w1@demo", "w2@demo"]}' \
        -e "system_status_pg_host=127.0.0.1" -e "system_status_pg_port=$PG_PORT" -e "system_status_pg_database=callcenter" \
        -e "system_status_backup_dir=$STACK/backups" -e "system_status_backup_metrics_file=$STACK/metrics/callcenter_backup.prom" \
        -e "system_status_flower_url=http://127.0.0.1:$FLOWER_PORT/" -e "system_status_html_path=$STACK/status.html" \
        -e "system_status_grafana_url=http://127.0.0.1:3000" -e "system_status_prometheus_url=http://127.0.0.1:9090"
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
        log "status page: $STACK/status.html"
        log "stack in $STACK; stop it with: bash scripts/demo.sh stop   (or clean)"
        if [ "$WORST" != 0 ]; then log "the platform is NOT healthy (see the FAILED checks above)"; exit "$WORST"; fi
        ;;
    stop) stop_stack ;;
    clean) stop_stack; rm -rf "$STACK"; log "removed $STACK" ;;
    *) echo "usage: $0 [up|status|stop|clean]" >&2; exit 2 ;;
esac
