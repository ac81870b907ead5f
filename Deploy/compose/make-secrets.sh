#!/usr/bin/env bash
# Creates everything docker-compose.yml reads from ./secrets (run once, from anywhere):
#   secrets/keys/NAME.key       CURVE key of each node and tool (0600; `churngrid cluster keys`)
#   secrets/public/             authorized_keys and every NAME.pub (mounted read-only as a folder,
#                               so an edited authorized_keys is seen by `kill -HUP`; see below)
#   secrets/postgres_password   the database password (random), and secrets/pgpass for libpq
#   secrets/tls/coordinator.crt + .key   a self-signed certificate for the coordinator's HTTPS
#   secrets/tokens/             HTTP API bearer tokens, created AFTER the cluster is up:
#       docker-compose --profile tools run --rm cli tokens create --role reader --name crm \
#         | tail -1 > secrets/tokens/crm.token
# Files belong to the user who runs this; the containers run as that uid (CHURNGRID_UID in .env)
# so they can read them. Existing files are kept: delete one to make it again.
# Needs churngrid (CHURNGRID_BIN, .build/release/churngrid, or the churngrid:dev image), openssl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/secrets"
umask 077
mkdir -p "$out/keys" "$out/public" "$out/tls" "$out/tokens"
# The nightly service's CSV drop and export folders (owned by the containers' uid).
(umask 022; mkdir -p "$here/import" "$here/export")

keys() {  # keys NAME: writes secrets/keys/NAME.key and secrets/public/NAME.pub
  local name=$1
  [ -f "$out/keys/$name.key" ] && return 0
  if [ -n "${CHURNGRID_BIN:-}" ] || [ -x "$root/.build/release/churngrid" ]; then
    "${CHURNGRID_BIN:-$root/.build/release/churngrid}" cluster keys --out "$out/keys" --name "$name" >/dev/null
  else
    docker run --rm --user "$(id -u):$(id -g)" -v "$out/keys:/out" churngrid:dev cluster keys --out /out --name "$name" >/dev/null
  fi
  mv "$out/keys/$name.pub" "$out/public/$name.pub"
  chmod 0644 "$out/public/$name.pub"
}

for n in coordinator worker-1 worker-2 worker-3 admin nightly; do keys "$n"; done

pub() { head -n1 "$out/public/$1.pub"; }  # the file holds the Z85 key alone (it may start with '#')
{
  echo "# ROLE PUBLIC_KEY NAME — who may connect (docs/security.md). After editing:"
  echo "#   docker-compose kill -s HUP coordinator worker-1 worker-2 worker-3"
  echo "coordinator $(pub coordinator) coordinator"
  for w in worker-1 worker-2 worker-3; do echo "worker $(pub "$w") $w"; done
  echo "admin $(pub admin) admin"
  echo "operator $(pub nightly) nightly"
} >"$out/public/authorized_keys.new"
chmod 0644 "$out/public/authorized_keys.new"
[ -f "$out/public/authorized_keys" ] || mv "$out/public/authorized_keys.new" "$out/public/authorized_keys"
rm -f "$out/public/authorized_keys.new"

if [ ! -f "$out/postgres_password" ]; then
  openssl rand -hex 24 >"$out/postgres_password"
fi
# host:port:database:user:password — libpq ignores the file unless it is 0600.
printf 'postgres:5432:churngrid:churngrid:%s\n' "$(cat "$out/postgres_password")" >"$out/pgpass"
chmod 0600 "$out/pgpass" "$out/postgres_password"

if [ ! -f "$out/tls/coordinator.key" ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=coordinator" \
    -addext "subjectAltName=DNS:coordinator,DNS:localhost,IP:127.0.0.1" \
    -keyout "$out/tls/coordinator.key" -out "$out/tls/coordinator.crt" 2>/dev/null
  chmod 0644 "$out/tls/coordinator.crt"
fi

# The containers run as this user, so the 0600 files stay readable to them only.
printf 'CHURNGRID_UID=%s\nCHURNGRID_GID=%s\n' "$(id -u)" "$(id -g)" >"$here/.env"
echo "secrets ready in $out; containers will run as uid $(id -u) (.env)"
