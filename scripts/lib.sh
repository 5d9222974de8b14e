# shellcheck shell=bash
# Shared bootstrap for scripts/test.sh and scripts/demo.sh: apt packages, a pinned
# virtualenv, and the collection built from this checkout and installed into a
# private collections path (never into ~/.ansible, so nothing shadows the checkout).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${CALLCENTER_OPS_WORK:-$REPO/.work}"
VENV="${CALLCENTER_OPS_VENV:-$WORK/venv}"
# shellcheck disable=SC2034  # used by the scripts that source this file
COLLECTIONS="$WORK/collections"
# openssh-server: tests/sshhost.py, a worker host reached over SSH in the runbook commands test;
# openjdk-17-jre-headless: ansible-rulebook runs its rules engine in a JVM (Event-Driven Ansible).
APT_PACKAGES=(redis-server postgresql-15 postgresql-client-15 prometheus prometheus-alertmanager
              prometheus-node-exporter docker-compose
              chromium chromium-driver gzip pigz util-linux procps git python3-venv python3-gdbm shellcheck
              openssh-server openjdk-17-jre-headless)

# Bold on a terminal only: CI logs and files get plain text.
log() { if [ -t 2 ]; then printf '\033[1m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi; }

ensure_apt() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing apt packages: ${missing[*]}"
        [ "$(id -u)" = 0 ] || { echo "need root to apt-get install ${missing[*]}" >&2; exit 1; }
        export DEBIAN_FRONTEND=noninteractive
        # The tests and the demo run their own servers on free ports: keep Debian from starting
        # the packaged services on install (policy-rc.d 101 = "not allowed"), and never stop a
        # service we did not start. A policy-rc.d the machine already has is left as it is.
        local policy=/usr/sbin/policy-rc.d ours=""
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\n# callcenter.ops bootstrap: no service starts during apt-get install\nexit 101\n' > "$policy"
            chmod 755 "$policy"; ours=1
        fi
        local rc=0
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
        [ -z "$ours" ] || rm -f "$policy"
        [ "$rc" = 0 ] || { echo "apt-get install ${missing[*]} failed (rc $rc)" >&2; exit 1; }
    fi
}

# ensure_venv DIR PYTHON REQUIREMENTS [PIP_VENV]
# With PIP_VENV (a ready virtualenv, e.g. the main one): DIR gets no pip of its own; PIP_VENV's pip
# installs into it (`pip --python`). A pip of its own costs ~8 CPU-s per virtualenv (ensurepip with
# setuptools, then the pip upgrade), half of what the EDA one costs in all.
ensure_venv() {
    local dir="$1" py="$2" req="$3" pipvenv="${4:-}" stamp
    stamp="$dir/.requirements.sha256"
    # One creator at a time (a demo and a test run may start together): the second waits, up to
    # 15 min, then finds the virtualenv made; never removes one that another run is filling.
    mkdir -p "$(dirname "$dir")"
    exec {venv_lock}>"$dir.lock"
    if ! flock -w 900 "$venv_lock"; then
        echo "another run has been creating $dir for 15 minutes; stop it or remove $dir.lock's holder" >&2
        exit 1
    fi
    if venv_current "$dir"; then
        install_startup_cache "$dir"
        exec {venv_lock}>&-
        return 0
    fi
    log "creating virtualenv $dir ($py, $req)"
    rm -rf "$dir"
    local pip_log pip=()
    pip_log="$WORK/pip-$(basename "$dir").log"
    mkdir -p "$WORK"
    : > "$pip_log"
    if [ -n "$pipvenv" ] && [ "$pipvenv" != "$dir" ] && venv_ready "$pipvenv"; then
        "$py" -m venv --without-pip "$dir"
        pip=("$pipvenv/bin/python" -m pip --python "$dir/bin/python")
    else
        "$py" -m venv "$dir"
        pip=("$dir/bin/python" -m pip)
        if ! "${pip[@]}" install --disable-pip-version-check --upgrade pip >>"$pip_log" 2>&1; then
            tail -30 "$pip_log" >&2; echo "pip install failed; full log in $pip_log" >&2; exit 1
        fi
    fi
    if ! "${pip[@]}" install --disable-pip-version-check -r "$req" >>"$pip_log" 2>&1; then
        tail -30 "$pip_log" >&2
        echo "pip install failed; full log in $pip_log" >&2
        exit 1
    fi
    (cd "$(dirname "$req")" && sha256sum "$(pwd)/$(basename "$req")") > "$stamp"
    install_startup_cache "$dir"
    exec {venv_lock}>&-
}

# venv_current DIR: DIR is a virtualenv made from the requirements its stamp names, unchanged since.
venv_current() {
    [ -x "$1/bin/python" ] && [ -f "$1/.requirements.sha256" ] && sha256sum -c --status "$1/.requirements.sha256" 2>/dev/null
}

# venv_ready DIR: DIR is current with a pip of its own; waits (up to 15 min) while another run makes it.
venv_ready() {
    local fd ok=1
    [ -e "$1.lock" ] || return 1
    exec {fd}<"$1.lock"
    if flock -w 900 "$fd" && venv_current "$1" && [ -x "$1/bin/pip" ]; then ok=0; fi
    exec {fd}<&-
    return $ok
}

# install_startup_cache VENV: scripts/startup_cache.py into the virtualenv, loaded at every start
# of its Python by a .pth file; in $CCOPS_STARTUP_CACHE (set by ansible_env) it keeps the bytecode
# of AnsiballZ payloads (each module run compiled ansible.module_utils again) and ansible-core's
# parsed YAML data files (each Ansible start parsed them again). A copy is replaced only when it
# differs (other processes may be importing it).
install_startup_cache() {
    local site
    site="$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    if ! cmp -s "$REPO/scripts/startup_cache.py" "$site/ccops_startup_cache.py"; then
        install -m 0644 "$REPO/scripts/startup_cache.py" "$site/.ccops_startup_cache.py.$$"
        mv -f "$site/.ccops_startup_cache.py.$$" "$site/ccops_startup_cache.py"  # atomic for a Python starting now
    fi
    [ -f "$site/ccops-startup-cache.pth" ] || echo "import ccops_startup_cache" > "$site/ccops-startup-cache.pth"
    rm -f "$site/ccops-zipimport-cache.pth" "$site/ccops_zipimport_cache.py"  # its name until 2026-11
}

# lock_checkout: one test or molecule run per checkout at a time (they rebuild .work/collections,
# which a running one reads); a second one stops at once and says why. The run's PID is kept in
# .work/tests.pid (not a lock file descriptor: the servers a run starts would inherit it). The PID
# read there is only looked up in /proc, never signalled.
lock_checkout() {
    local pidf="$WORK/tests.pid" other=""
    mkdir -p "$WORK"
    other="$(cat "$pidf" 2>/dev/null || true)"
    if [[ "$other" =~ ^[0-9]+$ ]] && [ "$other" != "$$" ] && [ -r "/proc/$other/cmdline" ] &&
       tr '\0' ' ' < "/proc/$other/cmdline" | grep -q -e "scripts/test.sh" -e "scripts/molecule.sh" -e "\.ci/run"; then
        echo "another scripts/test.sh or scripts/molecule.sh (PID $other) is running in this checkout ($WORK):" \
             "wait for it to end, or run from another clone (each clone has its own .work)" >&2
        exit 1
    fi
    echo "$$" > "$pidf"
}

# build_collection VENV DEST: build the collection from this checkout and install it into DEST.
build_collection() {
    local venv="$1" dest="$2" out
    out="$(mktemp -d)"
    log "building callcenter.ops from $REPO into $dest"
    (cd "$REPO" && "$venv/bin/ansible-galaxy" collection build --force --output-path "$out" . >/dev/null)
    rm -rf "$dest/ansible_collections/callcenter/ops"
    mkdir -p "$dest"
    ANSIBLE_HOME="$WORK/ansible-home" ANSIBLE_COLLECTIONS_PATH="$dest" \
        "$venv/bin/ansible-galaxy" collection install --offline --force \
        -p "$dest" "$out"/callcenter-ops-*.tar.gz >/dev/null
    rm -rf "$out"
}

# free_ports N: N TCP ports free on 127.0.0.1 right now, on one line. Taken below the kernel's
# ephemeral range (ip_local_port_range), where neither outgoing connections nor bind(0) (every
# test server's free port) land: a molecule scenario binds its ports up to a minute after this,
# and a test beside it once took the Flower port first (Flower could not listen).
free_ports() {
    "$VENV/bin/python" - "$1" <<'PY'
import random, socket, sys
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
        low = int(fh.read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
low = low if low > 12000 else 32768
socks, ports = [], []
while len(ports) < int(sys.argv[1]):
    port = random.randint(10000, low - 1)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
    ports.append(port)
print(" ".join(map(str, ports)))
PY
}

# Environment every Ansible run of ours uses: the private collection path, a private
# ANSIBLE_HOME, and the venv's interpreter (pyenv shims break interpreter discovery).
ansible_env() {
    local venv="$1" dest="$2"
    export PATH="$venv/bin:$PATH"
    export ANSIBLE_COLLECTIONS_PATH="$dest"
    export ANSIBLE_HOME="$WORK/ansible-home"
    export ANSIBLE_PYTHON_INTERPRETER="$venv/bin/python"
    export ANSIBLE_LOCALHOST_WARNING=false
    export ANSIBLE_INVENTORY_UNPARSED_WARNING=false
    # This checkout's settings (scripts/ansible.cfg), never the machine's ansible.cfg.
    export ANSIBLE_CONFIG="$REPO/scripts/ansible.cfg"
    # Module payloads' bytecode and ansible-core's parsed data files, kept between runs
    # (scripts/startup_cache.py).
    export CCOPS_STARTUP_CACHE="$WORK/startup-cache"
    mkdir -p "$CCOPS_STARTUP_CACHE" && chmod 0700 "$CCOPS_STARTUP_CACHE"
    export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-${CI:+1}}"
    [ -n "$ANSIBLE_NOCOLOR" ] || unset ANSIBLE_NOCOLOR
}

# Event-Driven Ansible: ansible-rulebook in a venv of its own (requirements/eda.txt), with a
# Java 17 runtime. Prints nothing when it is already there; the tests call it too.
# Next to the main venv, so a run with its own work dir but the shared venv reuses it too.
EDA_VENV="${CALLCENTER_OPS_EDA_VENV:-$(dirname "$VENV")/venv-eda}"
# (ensure_venv takes the virtualenv's own lock: a demo and a test run starting together wait for each other.)
ensure_eda_venv() {
    ensure_venv "$EDA_VENV" /usr/bin/python3 "$REPO/requirements/eda.txt" "$VENV"
}
