#!/usr/bin/env bash
# Turns TLS on in the local PostgreSQL with a self-signed certificate made
# here (idempotent), so the fault tests can connect with sslmode=require.
# Plain TCP connections keep working (pg_hba's "host" lines take both).
set -euo pipefail
admin_url="${1:?usage: postgres-tls.sh <admin database url>}"

if [ "$(psql "$admin_url" -tAc 'SHOW ssl')" = "on" ]; then
  echo "PostgreSQL TLS: already on"
  exit 0
fi

data_dir="$(psql "$admin_url" -tAc 'SHOW data_directory')"
cert="$data_dir/ci-tls.crt"
key="$data_dir/ci-tls.key"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
  -keyout "$key" -out "$cert" 2>/dev/null
chown postgres:postgres "$cert" "$key"
chmod 600 "$key"

psql "$admin_url" -q -c "ALTER SYSTEM SET ssl_cert_file = '$cert'" \
  -c "ALTER SYSTEM SET ssl_key_file = '$key'" \
  -c "ALTER SYSTEM SET ssl = on" \
  -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 20); do
  [ "$(psql "$admin_url" -tAc 'SHOW ssl')" = "on" ] && break
  sleep 0.25
done
[ "$(psql "$admin_url" -tAc 'SHOW ssl')" = "on" ]
psql "${admin_url}?sslmode=require" -tAc "SELECT 'PostgreSQL TLS: on, ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
