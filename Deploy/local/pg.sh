#!/usr/bin/env bash
# A private PostgreSQL for development, tests and the demo.
#   pg.sh start [DIR]   initialise (first time) and start; prints the URL
#   pg.sh url [DIR]     prints the URL of the running server
#   pg.sh status [DIR]  exit 0 when running
#   pg.sh stop [DIR]    stops it (data is kept)
#   pg.sh restart [DIR] stops it and starts it again on the same port (fault tests)
# DIR defaults to .churngrid/pg in the project. The cluster belongs to the `postgres` user when
# run as root (initdb refuses root), listens on 127.0.0.1 only, on a free port, trust auth.
# It is tuned for disposable data (fsync off): never point it at data you need to keep.
set -euo pipefail
cmd=${1:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mkdir -p "${2:-$root/.churngrid/pg}" && cd "${2:-$root/.churngrid/pg}" && pwd)
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/postgres"; }

running() { [ -f "$dir/port" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case "$cmd" in
  start)
    if running; then url; exit 0; fi
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
        || { echo "pg.sh: initdb failed, see $dir/initdb.log" >&2; cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if [ "${PG_SAME_PORT:-0}" = 1 ] && [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); fi
    echo "$port" >"$dir/port"
    mkdir -p "$dir/sock"; [ "$(id -u)" = 0 ] && chown postgres "$dir/sock" "$dir/port"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
      "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
       -c max_wal_size=8GB -c maintenance_work_mem=1GB -c shared_buffers=512MB -c max_connections=500" >/dev/null \
      || { echo "pg.sh: server did not start, see $dir/server.log" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
    url
    ;;
  url) running || { echo "pg.sh: not running ($dir)" >&2; exit 1; }; url ;;
  status) running ;;
  stop) if running; then as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi ;;
  restart) if running; then as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
    PG_SAME_PORT=1 exec "$0" start "$dir" ;;
  *) echo "usage: pg.sh start|url|status|stop [DIR]" >&2; exit 2 ;;
esac
