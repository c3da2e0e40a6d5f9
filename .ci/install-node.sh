#!/usr/bin/env bash
# Make a Node.js 24 LTS available for the tests, and print its bin dir on stdout:
#
#   PATH="$(bash .ci/install-node.sh):$PATH"
#
# A node on PATH of major 24 or later is used as it is. Otherwise (CI machines come with an old
# Node) the Node of .node-version is unpacked once from the npm registry, the only download
# source CI reaches besides Debian's archive: package node-linux-<arch> (bin/node only) plus a
# pinned npm, into $P2P_NODE_HOME (/opt/p2p-registry/node-<version> for root, else
# ~/.cache/p2p-registry/node-<version>). A second run finds it there and downloads nothing. The
# Makefile picks up the same dir by itself when the node on PATH is too old.
# Needs: an npm on PATH (any version that can run `npm pack`), tar. Progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE_VERSION=${NODE_VERSION:-$(cat "$root/.node-version")}
NPM_VERSION=${NPM_VERSION:-11.21.2}   # same npm as the node stand-in image (test/images/build-standins.sh)
# Root's copy goes outside /root (mode 0700): as root, the tests also run node as user nobody.
if [ "$(id -u)" = 0 ]; then default_home=/opt/p2p-registry/node-$NODE_VERSION
else default_home=${XDG_CACHE_HOME:-$HOME/.cache}/p2p-registry/node-$NODE_VERSION; fi
P2P_NODE_HOME=${P2P_NODE_HOME:-$default_home}
MIN_MAJOR=24

say() { printf '[install-node] %s\n' "$*" >&2; }
die() { printf '[install-node] error: %s\n' "$*" >&2; exit 1; }

# major_of NODE: the major version of that node binary, 0 when it does not run.
major_of() {
  local v
  v=$("$1" --version 2>/dev/null) || { echo 0; return; }
  v=${v#v}
  echo "${v%%.*}"
}

[ "${NODE_VERSION%%.*}" = 24 ] || die "NODE_VERSION=$NODE_VERSION is not a Node 24 release (see .node-version)"

if command -v node >/dev/null 2>&1 && [ "$(major_of node)" -ge "$MIN_MAJOR" ]; then
  say "node $(node --version) on PATH is new enough"
  dirname "$(command -v node)"
  exit 0
fi

if [ "$(major_of "$P2P_NODE_HOME/bin/node")" -ge "$MIN_MAJOR" ] && [ -x "$P2P_NODE_HOME/bin/npm" ]; then
  say "node $("$P2P_NODE_HOME/bin/node" --version) already in $P2P_NODE_HOME"
  echo "$P2P_NODE_HOME/bin"
  exit 0
fi

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "no node-linux package for $(uname -m): install Node.js $MIN_MAJOR LTS yourself and put it first on PATH" ;;
esac
command -v npm >/dev/null 2>&1 || die "npm not found: it downloads Node $NODE_VERSION from the npm registry (apt-get install npm, or install Node.js $MIN_MAJOR LTS yourself)"

found=$(command -v node >/dev/null 2>&1 && node --version || echo "no node")
say "node on PATH: $found; fetching node-linux-$arch@$NODE_VERSION and npm@$NPM_VERSION from the npm registry"
parent=$(dirname "$P2P_NODE_HOME")
mkdir -p "$parent"
# Unpack next to the target and rename at the end: an interrupted run leaves no half install behind.
work=$(mktemp -d "$parent/.node-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent --no-fund --no-audit "node-linux-$arch@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) \
  || die "npm pack failed: check that the npm registry is reachable (npm config get registry)"
home=$work/home
mkdir -p "$home/bin" "$home/lib/node_modules/npm" "$work/node"
tar -xzf "$work/node-linux-$arch-$NODE_VERSION.tgz" -C "$work/node" --strip-components=1
tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$home/lib/node_modules/npm" --strip-components=1
[ -x "$work/node/bin/node" ] || die "node-linux-$arch@$NODE_VERSION has no bin/node"
mv "$work/node/bin/node" "$home/bin/node"
# Relative links, like an official Node tarball: npm finds its own files through them.
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$home/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$home/bin/npx"

got=$("$home/bin/node" --version) || die "the unpacked node does not run on this machine"
[ "$got" = "v$NODE_VERSION" ] || die "the unpacked node says $got, expected v$NODE_VERSION"
PATH="$home/bin:$PATH" npm --version >/dev/null || die "the unpacked npm@$NPM_VERSION does not run"

# Readable and runnable by every user, whatever the umask (see the root case above).
chmod -R a+rX "$home"
rm -rf "$P2P_NODE_HOME"
mv "$home" "$P2P_NODE_HOME"
say "installed node $got and npm $NPM_VERSION in $P2P_NODE_HOME"
echo "$P2P_NODE_HOME/bin"
