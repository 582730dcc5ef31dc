# EpicMe: the authorization server and the MCP server in one small image, run as a non-root user.
#
#   deploy/build-images.sh          builds BASE from Debian's packages, then this image
#   podman build --format docker --secret id=pip-cert,src=/path/to/ca-bundle.pem -t epicme .
#
# BASE is any Debian-like image with python3 (3.11 or newer), its venv module and CA certificates
# (EpicMe fetches client metadata documents over https): the default is
# made by deploy/build-images.sh with mmdebstrap; `--build-arg BASE=python:3.12-slim` works too.
# The optional `pip-cert` secret is a CA bundle pip trusts while installing (a TLS-inspecting
# proxy, a private mirror); it is mounted for that one step and never stored in the image.
# `--format docker` keeps the HEALTHCHECK (OCI images have no field for it).
ARG BASE=localhost/epicme-base:bookworm

FROM ${BASE} AS builder
ARG PIP_INDEX_URL=""
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# One virtual environment holds EpicMe and everything it needs; the runtime stage copies only it.
RUN --mount=type=secret,id=pip-cert \
    python3 -m venv /opt/epicme \
    && if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && /opt/epicme/bin/pip install --no-cache-dir --disable-pip-version-check --quiet \
       ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} /src \
    && /opt/epicme/bin/pip uninstall --yes --quiet pip
COPY --chmod=755 deploy/healthcheck.py /opt/epicme/bin/epicme-healthcheck

FROM ${BASE}
# A system account owns the data folder and runs the servers; root is needed only to create it.
RUN useradd --no-log-init --uid 10001 --user-group --home-dir /var/lib/epicme --shell /usr/sbin/nologin epicme \
    && install -d -m 0700 -o epicme -g epicme /var/lib/epicme
COPY --from=builder /opt/epicme /opt/epicme
ENV PATH=/opt/epicme/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EPICME_HOST=0.0.0.0 \
    EPICME_DATABASE_URL=sqlite:////var/lib/epicme/epicme.db
# The SQLite store (signing keys, accounts, the journal) when no PostgreSQL URL is given.
VOLUME ["/var/lib/epicme"]
WORKDIR /var/lib/epicme
USER 10001:10001
EXPOSE 7788 8787
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["epicme-healthcheck"]
ENTRYPOINT ["epicme"]
CMD ["serve"]
