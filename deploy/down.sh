#!/usr/bin/env bash
# Stops and removes everything compose.yaml started for the project (COMPOSE_PROJECT_NAME,
# default epicme): its containers with their anonymous volumes, and its network; with
# --volumes, its named volumes too (the database). podman-compose 1.0 leaves the network and
# anonymous volumes behind, so this asks podman directly, by the project's label.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/containers.conf}"
project="${COMPOSE_PROJECT_NAME:-epicme}"
label="label=io.podman.compose.project=$project"
# Podman without systemd has no health check timers to remove, and says so for each container.
quiet() {
  local said status=0
  said=$(mktemp)
  "$@" >/dev/null 2>"$said" || status=$?
  grep -v 'unable to get systemd connection' "$said" >&2 || true
  rm -f "$said"
  return $status
}

containers=$(podman ps --all --quiet --filter "$label")
if [ -n "$containers" ]; then
  # shellcheck disable=SC2086 # one ID per word
  quiet podman rm --force --volumes --time 10 $containers
fi
networks=$(podman network ls --quiet --filter "$label")
if [ -n "$networks" ]; then
  # shellcheck disable=SC2086
  podman network rm $networks >/dev/null
fi
if [ "${1:-}" = --volumes ]; then
  volumes=$(podman volume ls --quiet --filter "$label")
  if [ -n "$volumes" ]; then
    # shellcheck disable=SC2086
    podman volume rm $volumes >/dev/null
  fi
fi
echo "stopped $project"
