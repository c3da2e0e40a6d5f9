# The cluster's frontend (compose.cluster.yaml): Debian's tor and onionbalance (0.2.2, onion
# services v3), plus psql to learn the backends from the shared PostgreSQL. The same Debian base
# and the same debian-tor uid/gid as tor/Dockerfile. Build from the repository root:
#   docker build -f tor/frontend.Dockerfile .
# Backends use this image too, for one thing only: the one-shot that waits for the frontend's
# master address before their tor's first start (tor/cluster.sh join).
# BASE_IMAGE is a build arg only so offline machines can use a local stand-in
# (test/images/build-standins.sh); everyone else gets the official image.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Empty = the current versions of the base image's Debian release. Set them to pin one build.
ARG TOR_VERSION=
ARG ONIONBALANCE_VERSION=

# As in tor/Dockerfile: a fixed uid/gid for debian-tor, so volumes keep their owner across rebuilds.
ARG TOR_UID=10001
ARG TOR_GID=10001

RUN set -eu; \
    groupadd --system --gid "${TOR_GID}" debian-tor; \
    useradd --system --uid "${TOR_UID}" --gid debian-tor --home-dir /var/lib/tor \
        --no-create-home --shell /usr/sbin/nologin debian-tor; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "tor${TOR_VERSION:+=${TOR_VERSION}}" \
        "onionbalance${ONIONBALANCE_VERSION:+=${ONIONBALANCE_VERSION}}" \
        postgresql-client; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /usr/share/doc/onionbalance; \
    tor --version; onionbalance --version; psql --version

# Mount points, created so fresh named volumes start with these owners and modes:
#   /var/lib/tor           the frontend tor's state (frontend-tor volume; 0700)
#   /var/lib/onionbalance  the master onion key (frontend-master-key volume): THE backup of a cluster
#   /run/frontend          rendered torrc, control cookie, onionbalance's config and status socket
#                          (a tmpfs in compose.cluster.yaml)
#   /run/cluster           a backend's cluster.env, written by `cluster.sh join` (backendN-cluster volume)
#   /etc/tor/torrc.d       extra *.conf files for the frontend tor (may stay empty)
RUN set -eu; \
    install -d -o debian-tor -g debian-tor -m 0700 /var/lib/tor /var/lib/onionbalance /run/frontend; \
    install -d -o debian-tor -g debian-tor -m 0755 /run/cluster; \
    install -d -m 0755 /etc/tor/torrc.d; \
    rm -f /etc/tor/torrc

COPY tor/cluster.sh /usr/local/bin/cluster
COPY tor/onionbalance-frontend /usr/local/bin/onionbalance-frontend
RUN chmod 0755 /usr/local/bin/cluster /usr/local/bin/onionbalance-frontend

USER debian-tor
WORKDIR /var/lib/tor
VOLUME ["/var/lib/tor", "/var/lib/onionbalance"]

# Healthy = onionbalance runs with at least one backend's descriptor and has published the
# frontend's descriptor (asked over its status socket): see `cluster health` in tor/cluster.sh.
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 CMD ["/usr/local/bin/cluster", "health"]

ENTRYPOINT ["/usr/local/bin/cluster"]
CMD ["frontend"]
