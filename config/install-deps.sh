#!/bin/sh
# Installs the Debian/Ubuntu packages llmrouter needs — only the missing
# ones, with sudo when not root. Safe to re-run.
#   install-deps.sh          build and run (make, make demo, make run)
#   install-deps.sh test     + what the tests use (make test)
#   install-deps.sh bench    + what the benchmarks use (make bench)
set -eu
PKGS="gcc make pkg-config libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libyaml-dev
libpcre2-dev libhiredis-dev libssl-dev libmimalloc-dev python3 curl ca-certificates"
case "${1:-}" in
test | bench)
    PKGS="$PKGS libcmocka-dev redis-server nodejs npm systemd python3-yaml man-db groff-base
strace chromium prometheus clang libclang-rt-14-dev"
    ;;
esac
[ "${1:-}" = bench ] && PKGS="$PKGS nginx wrk"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# nodejs/npm may come from elsewhere (nvm, NodeSource): accept working binaries.
case "$missing" in *nodejs*|*npm*)
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        missing=$(echo "$missing" | sed 's/ nodejs//; s/ npm//')
    fi;;
esac
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
