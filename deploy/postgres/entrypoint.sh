#!/bin/sh
# PostgreSQL for EpicMe, as the `postgres` user: on first start, a cluster in $PGDATA with a
# database `epicme` owned by the role `epicme`, whose password is $PGPASSWORD; then the
# server, listening on every address of the container with password (SCRAM) authentication.
set -eu
bin=$(echo /usr/lib/postgresql/*/bin)
: "${PGDATA:?}" "${PGPASSWORD:?set PGPASSWORD (the password of the role epicme)}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "epicme-postgres: creating the cluster in $PGDATA"
  "$bin/initdb" --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Single-user mode reads SQL on standard input; the password never appears on a command line.
  quoted=$(printf '%s' "$PGPASSWORD" | sed "s/'/''/g")
  printf "CREATE ROLE epicme LOGIN PASSWORD '%s';\nCREATE DATABASE epicme OWNER epicme;\n" "$quoted" \
    | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
