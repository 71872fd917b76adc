#!/bin/sh
# Restore drill: point-in-time recovery of the switch's database from a base
# backup and the WAL archive, into a fresh directory, then `softatm admin
# check` on the result. Run it regularly: a backup never restored is a hope.
#
#   scripts/restore-drill.sh BASE_BACKUP WAL_ARCHIVE TARGET_TIME NEW_DIR [PORT]
#
#   BASE_BACKUP  a plain-format base backup (pg_basebackup -D DIR -Fp -X none)
#   WAL_ARCHIVE  the directory archive_command copies WAL segments into
#   TARGET_TIME  recover up to this instant, e.g. '2026-11-27 10:15:00+07'
#   NEW_DIR      must not exist: the restored data directory goes there
#   PORT         loopback port of the restored server (default 25432)
#
# Environment: SOFTATM (path to the softatm binary, default `softatm`),
# PGBIN (PostgreSQL's programs, default the newest /usr/lib/postgresql/*/bin),
# KEEP=1 leaves the restored server running (else it is stopped after the
# check). As root, the server runs as the `postgres` user (PostgreSQL
# refuses root). Prints the restored server's URL; exits non-zero if the
# recovery or the check fails.
set -eu
[ $# -ge 4 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
base=$1 archive=$2 target=$3 dir=$4 port=${5:-25432}
softatm=${SOFTATM:-softatm}
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
# recoveryWaitS bounds the wait for the recovery to reach its target.
recoveryWaitS=${RECOVERY_WAIT_S:-120}

[ -e "$dir" ] && { echo "restore-drill: $dir exists; give a fresh directory" >&2; exit 2; }
[ -f "$base/PG_VERSION" ] || { echo "restore-drill: $base is not a plain base backup" >&2; exit 2; }
archive=$(cd "$archive" && pwd)

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

mkdir -p "$dir"
cp -a "$base/." "$dir/"
rm -f "$dir/postmaster.pid" "$dir/standby.signal"
# The recovery: WAL from the archive, up to the target, then a new
# timeline that accepts writes. Appended last, so it wins over the backup's
# own settings; archiving stays off (this copy must not write into the
# production archive).
cat >> "$dir/postgresql.auto.conf" <<CONF
restore_command = 'cp $archive/%f %p'
recovery_target_time = '$target'
recovery_target_action = 'promote'
archive_mode = 'off'
CONF
touch "$dir/recovery.signal"
chmod 700 "$dir"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"

as_pg "$pgbin/pg_ctl" -D "$dir" -l "$dir/restore.log" -w -t 60 \
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c synchronous_standby_names='' -c hot_standby=off" start >/dev/null
stop() { [ "${KEEP:-0}" = 1 ] || as_pg "$pgbin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null; }
trap stop EXIT

url="postgres://${PGUSER:-softatm}@127.0.0.1:$port/${PGDATABASE:-softatm}?sslmode=disable"
i=0
until [ "$("$pgbin/psql" "$url" -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  i=$((i + 1))
  if [ $i -gt "$recoveryWaitS" ]; then
    echo "restore-drill: still recovering after ${recoveryWaitS}s; see $dir/restore.log" >&2
    exit 1
  fi
  sleep 1
done
echo "restored to $target: $url"
DATABASE_URL=$url "$softatm" admin check
