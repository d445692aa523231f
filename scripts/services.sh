#!/usr/bin/env bash
# Makes sure the services cluster mode's tests use are running on this
# machine: PostgreSQL on 127.0.0.1:5432 (trust auth for local connections)
# and Redis on 127.0.0.1:6379. Starts whichever is not running (installing
# it from Debian's packages first if it is missing), then waits until both
# answer. The server's default (embedded store) needs neither.
set -euo pipefail

# Waits up to 30 s for `check` to succeed.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then
      echo "services: $what is up"
      return 0
    fi
    sleep 0.5
  done
  echo "services: $what did not come up" >&2
  return 1
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "services: please install $* first (as root)" >&2
    exit 1
  fi
  echo "services: installing $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

if ! command -v pg_isready >/dev/null || ! { pg_up || command -v pg_ctlcluster >/dev/null; }; then
  apt_install postgresql
fi
if ! pg_up; then
  echo "services: starting PostgreSQL"
  service postgresql start || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
wait_for PostgreSQL pg_up
# The tests connect as postgres over TCP without a password.
if ! psql -h 127.0.0.1 -U postgres -tAc 'select 1' >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -tAc 'show hba_file'")
  echo "services: allowing trust auth on 127.0.0.1 in $hba"
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  su postgres -c "psql -tAc 'select pg_reload_conf()'" >/dev/null
  wait_for "PostgreSQL (trust auth)" psql -h 127.0.0.1 -U postgres -tAc 'select 1'
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  apt_install redis-server
fi
if ! redis_up; then
  echo "services: starting Redis"
  service redis-server start || redis-server --bind 127.0.0.1 --port 6379 --save '' --daemonize yes
fi
wait_for Redis redis_up
