#!/usr/bin/env bash
# Makes sure PostgreSQL and nats-server (with JetStream) answer on 127.0.0.1, starting them, or on a
# fresh Debian machine installing them from Debian's packages, when they do not. Sourced by
# scripts/test.sh and scripts/run.sh; says plainly what is missing when it cannot help.

PG_PORT="${QUESTLOG_PG_PORT:-5432}"
NATS_PORT="${QUESTLOG_NATS_PORT:-4222}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "error: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  echo "installing $* from Debian's packages" >&2
  if [ -z "${QUESTLOG_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && export QUESTLOG_APT_UPDATED=1
  fi
  # apt's progress goes to a log shown only when the install fails.
  local log status=0
  log=$(mktemp)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$log" 2>&1 || status=$?
  [ "$status" -eq 0 ] || tail -n 30 "$log" >&2
  rm -f "$log"
  return "$status"
}

ensure_postgres() {
  port_open "$PG_PORT" && return 0
  local fresh=""
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if ! can_install; then
      echo "error: PostgreSQL is not running on 127.0.0.1:$PG_PORT and is not installed." >&2
      echo "       Install it (Debian: apt-get install postgresql) and start it, or run as root to let this script do it." >&2
      return 1
    fi
    apt_install postgresql
    fresh=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    echo "error: no PostgreSQL cluster under /etc/postgresql" >&2
    return 1
  fi
  if [ -n "$fresh" ]; then
    # A cluster this script just installed serves tests only: trust local connections.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' >"$hba"
  fi
  echo "starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  wait_port "$PG_PORT" PostgreSQL
}

ensure_nats() {
  port_open "$NATS_PORT" && return 0
  if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    if ! can_install; then
      echo "error: nats-server is not running on 127.0.0.1:$NATS_PORT and is not installed." >&2
      echo "       Install it (Debian: apt-get install nats-server) and start it with -js, or run as root to let this script do it." >&2
      return 1
    fi
    apt_install nats-server
  fi
  local bin
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  mkdir -p /var/lib/nats-server
  echo "starting nats-server with JetStream" >&2
  if command -v start-stop-daemon >/dev/null 2>&1; then
    start-stop-daemon --start --oknodo --background --exec "$bin" -- \
      -a 127.0.0.1 -p "$NATS_PORT" -js -sd /var/lib/nats-server >&2
  else
    nohup "$bin" -a 127.0.0.1 -p "$NATS_PORT" -js -sd /var/lib/nats-server >/dev/null 2>&1 &
  fi
  wait_port "$NATS_PORT" nats-server
}

ensure_services() {
  ensure_postgres && ensure_nats
}

# Debian's Chromium, for the browser test (tests/it/browser.rs): installed when missing and
# possible; otherwise that test says it is skipped.
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  if can_install; then
    apt_install chromium || echo "warning: Chromium could not be installed; the browser test will be skipped" >&2
  else
    echo "warning: Chromium is not installed (Debian: apt-get install chromium); the browser test will be skipped" >&2
  fi
  return 0
}
