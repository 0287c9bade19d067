#!/bin/sh
# The build stage of the Dockerfile, in one script:
#
#     config/docker/build.sh SRC OUT
#
# The Dockerfile runs it on debian:bookworm, and tests/deploy/run.sh runs it
# on the host (Debian 12 too), so that what the image builds is tested even
# where no Docker engine runs. It builds llmrouter from a copy of the source
# tree SRC (SRC is only read) and leaves in OUT:
#
#   rootfs/usr/bin/llmrouter             the daemon; its default configuration
#                                        is /etc/llmrouter/llmrouter.yaml
#   rootfs/etc/llmrouter/llmrouter.yaml  config/docker/llmrouter.yaml
#   rootfs/etc/llmrouter/catalog.yaml    config/catalog.yaml (the price table)
#   runtime-packages.txt                 the Debian packages the runtime stage
#                                        installs, one a line: those holding the
#                                        libraries the binary links (readelf,
#                                        ldd, dpkg -S), ca-certificates (TLS to
#                                        providers) and curl (the HEALTHCHECK)
#   build/                               the copied tree and its objects
#
# Missing build packages are installed with apt-get when running as root
# (the image's build stage); on a machine that has them it installs nothing.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 SRC OUT" >&2
    exit 2
fi
SRC=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)

BUILD_PKGS="gcc make pkg-config binutils libc6-dev libmicrohttpd-dev libcurl4-openssl-dev
libcjson-dev libyaml-dev libpcre2-dev libssl-dev libhiredis-dev libmimalloc-dev"
# Not found through the libraries: TLS roots for https:// providers, and the
# HEALTHCHECK's client (libcurl is there anyway, so curl adds ~0.5 MB).
EXTRA_RUNTIME_PKGS="ca-certificates curl"

missing=""
for p in $BUILD_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "build.sh: missing build packages:$missing (run as root to install them)" >&2
        exit 1
    fi
    echo "build.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# A clean copy: no objects or dependency files from the source tree.
rm -rf "$OUT/build" "$OUT/rootfs"
mkdir -p "$OUT/build"
cp -R "$SRC/Makefile" "$SRC/src" "$SRC/include" "$OUT/build/"
make -C "$OUT/build" --no-print-directory -j"$(nproc)" PREFIX=/usr build/installed/llmrouter

bin="$OUT/rootfs/usr/bin/llmrouter"
install -D -m 0755 "$OUT/build/build/installed/llmrouter" "$bin"
strip --strip-debug "$bin"
install -D -m 0644 "$SRC/config/docker/llmrouter.yaml" "$OUT/rootfs/etc/llmrouter/llmrouter.yaml"
install -D -m 0644 "$SRC/config/catalog.yaml" "$OUT/rootfs/etc/llmrouter/catalog.yaml"

# The package of every library the binary names (DT_NEEDED); apt brings
# their own dependencies. ldd gives the path; dpkg -S wants the path the
# package registered, which on merged-/usr systems may differ by /usr.
pkgs=""
for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(ldd "$bin" | awk -v l="$lib" '$1 == l && $2 == "=>" { print $3 }')
    if [ -z "$path" ] || [ "$path" = "not" ]; then
        echo "build.sh: $lib: not found by ldd" >&2
        exit 1
    fi
    pkg=""
    for p in "$path" "/usr$path" "${path#/usr}" "$(readlink -f "$path")"; do
        pkg=$(dpkg -S "$p" 2>/dev/null | sed -n '1s/^\([^:]*\):.*/\1/p') || true
        [ -n "$pkg" ] && break
    done
    if [ -z "$pkg" ]; then
        echo "build.sh: $lib ($path): no Debian package holds it" >&2
        exit 1
    fi
    pkgs="$pkgs $pkg"
done
# shellcheck disable=SC2086
printf '%s\n' $pkgs $EXTRA_RUNTIME_PKGS | sort -u > "$OUT/runtime-packages.txt"
echo "build.sh: built $bin; runtime packages: $(tr '\n' ' ' < "$OUT/runtime-packages.txt")"
