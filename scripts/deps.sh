#!/bin/sh
# Installs what `make run` and `make test` need from Debian's packages, when
# it is missing: PostgreSQL and Redis servers, Chromium for browser tests and
# ffmpeg for the fake camera. Without root it prints the command instead.
set -e
missing=""
have_pg() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
have_pg || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
# The HA cluster fixture (fixtures/hacluster, `make run-ha`): pg_auto_failover
# for PostgreSQL failover, Redis Sentinel, and promtool to check alert rules.
have_pgaf() { command -v pg_autoctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_autoctl >/dev/null 2>&1; }
have_pgaf || missing="$missing postgresql-15-auto-failover pg-auto-failover-cli"
command -v redis-sentinel >/dev/null 2>&1 || missing="$missing redis-sentinel"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing:$missing"
  # Several engineers' `make deps` may run at once: wait for dpkg's lock
  # instead of failing (lockWaitS 120).
  apt-get -o DPkg::Lock::Timeout=120 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq $missing >/dev/null
  # Debian starts the packaged servers; softatm runs its own private ones.
  (service redis-server stop || true) >/dev/null 2>&1
  (service postgresql stop || true) >/dev/null 2>&1
  (service redis-sentinel stop || true) >/dev/null 2>&1
  (service prometheus stop || true) >/dev/null 2>&1
  (service prometheus-node-exporter stop || true) >/dev/null 2>&1
else
  echo "missing:$missing"
  echo "install them with: sudo apt-get install -y$missing"
  exit 1
fi
