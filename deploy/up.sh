#!/usr/bin/env bash
# Starts compose.yaml and waits until both replicas answer through the proxy. The project is
# named by COMPOSE_PROJECT_NAME (default: epicme), so several stacks can run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/containers.conf}"
project="${COMPOSE_PROJECT_NAME:-epicme}"

# The secrets come from .env alone (compose.yaml says why); refuse to start without them.
[ -f .env ] || { echo "up.sh: no .env here; copy .env.example to .env and fill it in" >&2; exit 1; }
for name in PGPASSWORD EPICME_SESSION_SECRET EPICME_KEY_ENCRYPTION_KEY; do
  grep -Eq "^$name=.+" .env || { echo "up.sh: .env has no value for $name (see .env.example)" >&2; exit 1; }
done
setting() { sed -n "s/^$1=//p" .env; }

# Podman without systemd (a container, CI) cannot schedule health checks and says so on every
# start (`podman healthcheck run` still runs them), nor reach a syslog; podman-compose looks for
# each volume before creating it, with an "Error" when it is new. All else they say is shown.
# (Through a file: a pipe would be held open by the container monitors podman leaves running.)
quiet() {
  local said status=0
  said=$(mktemp)
  "$@" >/dev/null 2>"$said" || status=$?
  grep -Ev 'unable to get systemd connection|no such volume|failed to connect to syslog' "$said" >&2 || true
  rm -f "$said"
  return $status
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND each second until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "up.sh: $what not ready; the container's log:" >&2
      podman logs --tail 20 "${what%% *}" >&2
      return 1
    fi
    sleep 1
  done
  echo "  ready: $what"
}

echo "starting $project: postgres, epicme-1, epicme-2, proxy"
# Created together (network, volumes, containers; podman-compose echoes each podman command it
# runs, hence the silence), then started in order: PostgreSQL before the replicas, which migrate
# the store as they start, and one replica first, so that it alone creates the schema and the
# first signing key.
quiet podman-compose --no-ansi -p "$project" up --no-start
for service in postgres epicme-1 epicme-2 proxy; do
  podman container exists "${project}_${service}_1" || { echo "up.sh: podman-compose did not create $service" >&2; exit 1; }
done
quiet podman start "${project}_postgres_1"
wait_for 60 "${project}_postgres_1" podman healthcheck run "${project}_postgres_1"
quiet podman start "${project}_epicme-1_1"
wait_for 60 "${project}_epicme-1_1" podman healthcheck run "${project}_epicme-1_1"
quiet podman start "${project}_epicme-2_1"
wait_for 60 "${project}_epicme-2_1" podman healthcheck run "${project}_epicme-2_1"
# A new process in a replica (`epicme users add`, say) reaches the store too: just after the
# network is made, looking up `postgres` from one was seen to stall for tens of seconds.
wait_for 90 "${project}_epicme-1_1 (a new process reaches the store)" podman exec "${project}_epicme-1_1" epicme users list
quiet podman start "${project}_proxy_1"
ready() { python3 - "$@" <<'PY'
import sys, urllib.request
for port in sys.argv[1:]:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).read()
PY
}
wait_for 30 "${project}_proxy_1" ready "$(setting EPICME_AS_PORT)" "$(setting EPICME_RS_PORT)"
echo "EpicMe is up:"
echo "  authorization server  $(setting EPICME_ISSUER)"
echo "  MCP server            $(setting EPICME_RESOURCE_URL)/mcp"
