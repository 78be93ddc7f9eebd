#!/usr/bin/env bash
# Starts Debian's PgBouncer on 127.0.0.1:6432 in transaction pooling mode, in
# front of the local PostgreSQL (every database, trust auth), for the suite run
# through it. Prints the URL to use.
set -euo pipefail
url="postgres://postgres@127.0.0.1:6432/postgres"
if pg_isready -h 127.0.0.1 -p 6432 -q; then
  echo "$url"
  exit 0
fi
if ! command -v pgbouncer >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
dir="$(mktemp -d)"
cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
echo '"postgres" ""' > "$dir/userlist.txt"
chown -R postgres "$dir"
# PgBouncer refuses to run as root
su postgres -s /bin/sh -c "pgbouncer -d '$dir/pgbouncer.ini'"
for _ in $(seq 1 20); do pg_isready -h 127.0.0.1 -p 6432 -q && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p 6432 >&2
echo "$url"
