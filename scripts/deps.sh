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
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  # Debian starts the packaged servers; softatm runs its own private ones.
  (service redis-server stop || true) >/dev/null 2>&1
  (service postgresql stop || true) >/dev/null 2>&1
else
  echo "missing:$missing"
  echo "install them with: sudo apt-get install -y$missing"
  exit 1
fi
