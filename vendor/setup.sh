#!/bin/sh
# Installs, from Debian's packages, what zkutil's build, the tool and its tests need.
# Idempotent and quiet when everything is present already.
set -eu

pkgs="libzookeeper-mt-dev libclang-dev zookeeper default-jre-headless netcat-openbsd redis-server redis-tools pkg-config tmux"
# Apache Curator (5.4 in bookworm) and a JDK, for the Curator interop tests (tests/java,
# compiled with plain javac against /usr/share/java); they skip without them.
pkgs="$pkgs default-jdk-headless libcurator-recipes-java libcurator-discovery-java libslf4j-java"

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# kazoo (PyPI), for the lease and partition interop tests; they skip without it.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import kazoo' 2>/dev/null; then
    python3 -m pip install -q kazoo >/dev/null 2>&1 || echo "vendor/setup.sh: kazoo not installed (its interop tests will skip)" >&2
fi

[ -z "$missing" ] && exit 0

echo "vendor/setup.sh: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian enables a redis-server service on install; zkutil starts its own on a free port.
if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
exit 0
