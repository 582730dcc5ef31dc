#!/usr/bin/env bash
# Builds the images compose.yaml runs, from Debian's packages alone (no container registry):
#
#   localhost/epicme-base:bookworm      Python 3, venv, CA certificates: the Dockerfile's BASE
#   localhost/epicme-postgres:bookworm  PostgreSQL, started by deploy/postgres/entrypoint.sh
#   localhost/epicme-haproxy:bookworm    HAProxy, configured by deploy/proxy/haproxy.cfg
#   localhost/epicme:latest             EpicMe, from the Dockerfile
#
# The three Debian images are made once with mmdebstrap (from this machine's apt sources) and
# loaded with `podman import`; delete one (`podman rmi`) to make it again. EpicMe's image is
# built every time; podman's layer cache makes that quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# Podman settings that work in sandboxes too (see the file); yours are used if you name them.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/containers.conf}"

SUITE=bookworm
# This machine's Debian sources (a mirror it is set up for), else mmdebstrap's default.
SOURCES=()
if [ -f /etc/apt/sources.list.d/debian.sources ]; then SOURCES=(/etc/apt/sources.list.d/debian.sources); fi
# No documentation, manual pages or translations: a smaller image.
SLIM=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
      --dpkgopt='path-exclude=/usr/share/info/*')

# debian_image NAME PACKAGES [mmdebstrap options...] -- [podman import --change options...]
debian_image() {
  local name=$1 packages=$2; shift 2
  local hooks=() changes=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do hooks+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  changes=("$@")
  if podman image exists "$name"; then return; fi
  echo "building $name from Debian's packages ($packages)"
  mmdebstrap --quiet --variant=minbase --include="$packages" "${SLIM[@]}" "${hooks[@]}" \
      "$SUITE" - "${SOURCES[@]}" | podman import --quiet "${changes[@]}" - "$name" >/dev/null
}

debian_image localhost/epicme-base:$SUITE python3,python3-venv,ca-certificates -- \
  --change 'CMD ["python3"]'

# The package's own cluster is dropped: the entrypoint makes one in the volume on first start.
# SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
debian_image localhost/epicme-postgres:$SUITE postgresql \
  --customize-hook='rm -rf "$1"/var/lib/postgresql/* "$1"/etc/postgresql/*' \
  --customize-hook='upload deploy/postgres/entrypoint.sh /usr/local/bin/epicme-postgres' \
  --customize-hook='chmod 755 "$1"/usr/local/bin/epicme-postgres' -- \
  --change 'USER postgres' --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'STOPSIGNAL SIGINT' \
  --change 'VOLUME /var/lib/postgresql' --change 'EXPOSE 5432' \
  --change 'ENTRYPOINT ["/usr/local/bin/epicme-postgres"]'

# compose.yaml mounts the configuration at /etc/epicme-proxy/haproxy.cfg. HAProxy in the
# foreground stops on SIGUSR1 (finishing the requests under way); SIGTERM left it running.
debian_image localhost/epicme-haproxy:$SUITE haproxy -- \
  --change 'USER haproxy' --change 'STOPSIGNAL SIGUSR1' \
  --change 'ENTRYPOINT ["/usr/sbin/haproxy", "-db", "-f", "/etc/epicme-proxy/haproxy.cfg"]'

# pip in the build trusts the CA bundle this machine's pip trusts (a TLS-inspecting proxy or a
# private index may need it); it is mounted as a build secret for the install step only.
CERT="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
SECRET=()
if [ -s "$CERT" ]; then SECRET=(--secret "id=pip-cert,src=$CERT"); fi
INDEX=()
if [ -n "${PIP_INDEX_URL:-}" ]; then INDEX=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL"); fi
echo "building localhost/epicme:latest"
podman build --quiet --format docker "${SECRET[@]}" "${INDEX[@]}" \
  --build-arg BASE=localhost/epicme-base:$SUITE -t localhost/epicme:latest . >/dev/null
