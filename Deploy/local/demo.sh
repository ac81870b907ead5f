#!/usr/bin/env bash
# The main job on one machine (what `make demo` runs): a private PostgreSQL, a synthetic base, a
# coordinator and two workers as separate processes on 127.0.0.1, a full rescoring with its
# progress bar, the summary, the ten highest-risk subscribers with their reasons and a few live
# queries; then everything it started is stopped.
#   SUBSCRIBERS=N   base size (default 1000000)
#   WORKERS=W       worker processes (default 2)
#   KEEP_RUNNING=1  leave the cluster and PostgreSQL up and print how to query them
#   POSTGRES=URL    use this PostgreSQL instead of the private one (handed over in the environment,
#                   CHURNGRID_POSTGRES_URL, not on the command line; its password still belongs in
#                   PGPASSWORD or PGPASSFILE)
set -euo pipefail
cd "$(dirname "$0")/../.."
args=(--subscribers "${SUBSCRIBERS:-1000000}" --workers "${WORKERS:-2}")
[ "${KEEP_RUNNING:-0}" = 1 ] && args+=(--keep-running)
if [ -n "${POSTGRES:-}" ]; then export CHURNGRID_POSTGRES_URL="$POSTGRES"; args+=(--postgres-from-environment); fi
exec .build/release/churngrid demo "${args[@]}" "$@"
