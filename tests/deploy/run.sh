#!/usr/bin/env bash
# Deployment tests (make deploy, part of make check): the systemd unit, make
# install/uninstall, the man page, the Docker build script (and the image
# where a Docker engine runs), the compose example and the readiness
# notifications. Prints "ok -"/"not ok -" lines, "# skip -" for what cannot
# run here (never counted as passed), and "deploy: N passed, M failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
BIN=${LLMROUTER_BIN:-build/llmrouter}
PYTHON=${PYTHON:-python3}
pass=0
fail=0
tmp=$(mktemp -d /tmp/llmrouter-deploy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok - $*"; pass=$((pass + 1)); }
notok() { echo "not ok - $*"; fail=$((fail + 1)); }
skip() { echo "# skip - $*"; }
# check DESCRIPTION COMMAND...: ok when the command succeeds; its output is
# shown only on failure.
check() {
    local desc=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        ok "$desc"
    else
        notok "$desc"
        tail -n 25 "$tmp/out" | sed 's/^/#   /'
    fi
}
# tap COMMAND...: a checker that prints its own ok/not ok lines.
tap() {
    local out rc p f
    out=$("$@" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    p=$(grep -c '^ok - ' <<<"$out")
    f=$(grep -c '^not ok - ' <<<"$out")
    pass=$((pass + p))
    fail=$((fail + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        notok "$* exited with status $rc"
    fi
}
mode() { stat -c %a "$1"; }

# ---- make install / uninstall (PREFIX=/usr, into a DESTDIR) ----
echo "# make install DESTDIR=$tmp/root PREFIX=/usr"
dest=$tmp/root
check "make install DESTDIR=... PREFIX=/usr" make --no-print-directory install DESTDIR="$dest" PREFIX=/usr
inst_bin=$dest/usr/bin/llmrouter
inst_unit=$dest/usr/lib/systemd/system/llmrouter.service
inst_man=$dest/usr/share/man/man8/llmrouter.8
inst_cfg=$dest/etc/llmrouter/llmrouter.yaml
inst_env=$dest/etc/llmrouter/llmrouter.env
inst_cat=$dest/etc/llmrouter/catalog.yaml
for f in "$inst_bin:755" "$inst_unit:644" "$inst_man:644" "$inst_cfg:644" "$inst_env:600" "$inst_cat:644"; do
    path=${f%:*}
    want=${f##*:}
    check "installed ${path#"$dest"} with mode $want" test -f "$path" -a "$(mode "$path" 2>/dev/null)" = "$want"
done
check "the installed binary reads the price table /etc/llmrouter/catalog.yaml by default" \
    grep -q '/etc/llmrouter/catalog.yaml' < <("$inst_bin" models --help)
check "the installed binary reads /etc/llmrouter/llmrouter.yaml by default" \
    grep -q 'default: /etc/llmrouter/llmrouter.yaml' < <("$inst_bin" --help)
check "the installed unit is config/systemd/llmrouter.service as is (PREFIX=/usr)" \
    cmp "$inst_unit" config/systemd/llmrouter.service
# no provider keys in the environment: warnings, not errors
check_keyless() {
    env -u OPENAI_API_KEY -u DEEPSEEK_API_KEY -u GROQ_API_KEY -u GEMINI_API_KEY \
        "$inst_bin" -c "$inst_cfg" --check-config >"$tmp/cc.out" 2>"$tmp/cc.err" &&
        grep -q 'NOT SET' "$tmp/cc.out" && grep -q 'warning' "$tmp/cc.err"
}
check "the installed binary passes --check-config on the installed config without keys (warnings only)" check_keyless
man_renders() {
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$inst_man" >"$tmp/man.txt" 2>"$tmp/man.err" || return 1
    [ ! -s "$tmp/man.err" ] || { cat "$tmp/man.err"; return 1; }
    local s
    for s in NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS FILES ENVIRONMENT 'EXIT STATUS' 'SEE ALSO'; do
        grep -q "^$s" "$tmp/man.txt" || { echo "no section $s"; return 1; }
    done
    # every option of --help is documented
    for o in $({ "$inst_bin" --help; "$inst_bin" report --help; } | grep -oE -- '--[a-z-]+' | sort -u); do
        grep -q -- "$o" "$tmp/man.txt" || { echo "option $o is not in the man page"; return 1; }
    done
}
check "man -l renders the installed man page without warnings, with every section and option" man_renders

# ---- systemd unit ----
# systemd-analyze verify needs ExecStart's binary to exist: verify a copy of
# the installed unit whose binary path points into the DESTDIR (nothing else
# differs), with MANPATH so that Documentation=man:llmrouter(8) resolves to
# the installed page.
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$tmp/verify"
    sed "s|/usr/bin/llmrouter|$inst_bin|g" "$inst_unit" >"$tmp/verify/llmrouter.service"
    verify() {
        local out
        out=$(MANPATH=$dest/usr/share/man systemd-analyze verify "$1" 2>&1) || { echo "$out"; return 1; }
        [ -z "$out" ] || { echo "$out"; return 1; }
    }
    check "systemd-analyze verify llmrouter.service (binary and man page from the DESTDIR install)" \
        verify "$tmp/verify/llmrouter.service"
    exposure() {
        local out level
        out=$(systemd-analyze security --offline=yes "$tmp/verify/llmrouter.service" 2>&1)
        level=$(sed -n 's/.*Overall exposure level for llmrouter.service: \([0-9.]*\).*/\1/p' <<<"$out")
        echo "exposure: $level"
        [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'
    }
    check "systemd-analyze security: exposure level at most 2.0" exposure
    # shellcheck disable=SC2016 # $MAINPID is the unit's, not ours
    unit_has() {
        local u=config/systemd/llmrouter.service d
        for d in '^Type=notify$' '^DynamicUser=yes$' '^ExecStart=/usr/bin/llmrouter -c /etc/llmrouter/llmrouter.yaml$' \
            '^ExecReload=/bin/kill -HUP \$MAINPID$' '^Restart=on-failure$' '^EnvironmentFile=-/etc/llmrouter/llmrouter.env$' \
            '^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^ProtectHome=yes$' '^PrivateTmp=yes$' \
            '^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX$' '^CapabilityBoundingSet=$' \
            '^SystemCallFilter=@system-service$' '^LimitNOFILE=[0-9]+$'; do
            grep -qE "$d" "$u" || { echo "missing: $d"; return 1; }
        done
        [ "$(sed -n 's/^LimitNOFILE=//p' "$u")" -ge 65536 ] || { echo "LimitNOFILE below 65536"; return 1; }
        ! grep -q '^StandardOutput=\|^StandardError=' "$u" || { echo "logs must go to the journal"; return 1; }
    }
    check "the unit has the required settings (notify, dynamic user, hardening, reload, restart, keys)" unit_has
else
    notok "systemd-analyze is missing (config/install-deps.sh installs systemd)"
fi

check "make uninstall DESTDIR=... PREFIX=/usr" make --no-print-directory uninstall DESTDIR="$dest" PREFIX=/usr
check "uninstall removed the binary, unit, man page and price table" test ! -e "$inst_bin" -a ! -e "$inst_unit" -a ! -e "$inst_man" -a ! -e "$inst_cat"
check "uninstall kept the configuration and the key file" test -f "$inst_cfg" -a -f "$inst_env"

# Another prefix: the paths in the unit and the binary's default follow it.
dest2=$tmp/root-local
check "make install DESTDIR=... PREFIX=/usr/local" make --no-print-directory install DESTDIR="$dest2" PREFIX=/usr/local
local_paths() {
    local u=$dest2/usr/local/lib/systemd/system/llmrouter.service
    grep -q '^ExecStart=/usr/local/bin/llmrouter -c /usr/local/etc/llmrouter/llmrouter.yaml$' "$u" &&
        grep -q '^EnvironmentFile=-/usr/local/etc/llmrouter/llmrouter.env$' "$u" &&
        ! grep -q '/etc/llmrouter/\|/usr/bin/llmrouter' <(grep -v '/usr/local/' "$u") &&
        "$dest2/usr/local/bin/llmrouter" --help | grep -q 'default: /usr/local/etc/llmrouter/llmrouter.yaml' &&
        test -f "$dest2/usr/local/etc/llmrouter/llmrouter.yaml" -a -f "$dest2/usr/local/share/man/man8/llmrouter.8"
}
check "PREFIX=/usr/local: unit, man page and default config path under /usr/local" local_paths

# ---- Docker: the build stage's script, on the host ----
out=$tmp/docker
echo "# config/docker/build.sh $ROOT $out"
check "config/docker/build.sh builds llmrouter from a copy of the source" sh config/docker/build.sh "$ROOT" "$out"
img_bin=$out/rootfs/usr/bin/llmrouter
check "the image's binary runs: --version" "$img_bin" --version
check "the image's binary reads /etc/llmrouter/llmrouter.yaml by default" \
    grep -q 'default: /etc/llmrouter/llmrouter.yaml' < <("$img_bin" --help)
runtime_pkgs() {
    local p
    cat "$out/runtime-packages.txt"
    for p in libmicrohttpd12 libcurl4 libcjson1 libyaml-0-2 libpcre2-8-0 libssl3 libhiredis0.14 ca-certificates curl; do
        grep -qx "$p" "$out/runtime-packages.txt" || { echo "missing $p"; return 1; }
    done
    # only real, installable package names (the runtime stage apt-gets them)
    while read -r p; do
        dpkg-query -W -f='${Status}\n' "$p" | grep -q 'install ok installed' || { echo "not a package here: $p"; return 1; }
    done <"$out/runtime-packages.txt"
    ! ldd "$img_bin" | grep 'not found'
}
check "runtime-packages.txt: the runtime libraries, ca-certificates and curl" runtime_pkgs
check "the image's configuration passes --check-config" \
    env -u OPENAI_API_KEY -u DEEPSEEK_API_KEY -u GROQ_API_KEY -u GEMINI_API_KEY \
    "$img_bin" -c "$out/rootfs/etc/llmrouter/llmrouter.yaml" --check-config
refuses_public_without_keys() {
    local port log
    port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # it exits at once; a daemon that started anyway is stopped by timeout
    if log=$(env -i PATH="$PATH" LLMROUTER_THREADS=1 timeout 10 "$img_bin" \
        -c "$out/rootfs/etc/llmrouter/llmrouter.yaml" --listen "0.0.0.0:$port" 2>&1); then
        echo "it started and exited 0: $log"
        return 1
    fi
    echo "$log"
    grep -q 'allow_unauthenticated_public' <<<"$log"
}
check "without keys nor LLMROUTER_ALLOW_UNAUTHENTICATED=true it refuses to serve on 0.0.0.0" \
    refuses_public_without_keys
check "with LLMROUTER_ALLOW_UNAUTHENTICATED=true it serves on 0.0.0.0 and the Dockerfile's HEALTHCHECK passes" \
    "$PYTHON" tests/deploy/daemon_probe.py "$img_bin" "$out/rootfs/etc/llmrouter/llmrouter.yaml" Dockerfile \
    LLMROUTER_ALLOW_UNAUTHENTICATED=true LLMROUTER_THREADS=1
dockerfile_uses_script() {
    # what the test ran is what the image runs
    grep -qx 'RUN sh /src/config/docker/build.sh /src /out' Dockerfile &&
        grep -q '^COPY --from=build /out/rootfs/ /$' Dockerfile &&
        grep -q 'runtime-packages.txt' Dockerfile &&
        grep -q '^FROM debian:bookworm AS build$' Dockerfile &&
        grep -q '^FROM debian:bookworm-slim$' Dockerfile &&
        grep -qE '^USER [a-z]' Dockerfile && ! grep -qE '^USER (root|0)' Dockerfile &&
        grep -q '^HEALTHCHECK' Dockerfile && grep -q '127.0.0.1:8080/healthz' Dockerfile &&
        grep -q '^  listen: "0.0.0.0:8080"$' config/docker/llmrouter.yaml
}
check "the Dockerfile runs build.sh and installs its output (non-root, HEALTHCHECK on /healthz, 0.0.0.0:8080)" \
    dockerfile_uses_script

# ---- Docker: the image itself, where an engine runs ----
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    img=llmrouter:deploy-test-$$
    check "docker build" docker build -q -t "$img" .
    check "docker run IMAGE --check-config" docker run --rm "$img" --check-config
    check "the container runs as a non-root user" test "$(docker run --rm --entrypoint id "$img" -u)" != 0
    check "the compose configuration passes --check-config in the image" \
        docker run --rm -v "$ROOT/config/docker/llmrouter.yaml:/etc/llmrouter/llmrouter.yaml:ro" \
        -e LLMROUTER_CACHE_BACKEND=redis -e LLMROUTER_REDIS_URL=redis://172.28.80.10:6379/0 "$img" --check-config
    healthy() {
        local id s _
        id=$(docker run -d --rm -e LLMROUTER_ALLOW_UNAUTHENTICATED=true "$img") || return 1
        for _ in $(seq 1 30); do
            s=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)
            [ "$s" = healthy ] && break
            sleep 1
        done
        echo "health: $s"
        docker stop -t 10 "$id" >/dev/null
        [ "$s" = healthy ]
    }
    check "the container becomes healthy (HEALTHCHECK /healthz)" healthy
    docker rmi -f "$img" >/dev/null 2>&1
else
    skip "docker build and run: no Docker engine here (docker info failed); build.sh was checked above"
fi

# ---- compose example ----
ypy=$PYTHON
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    ypy=/usr/bin/python3 # Debian's python3-yaml
fi
if "$ypy" -c 'import yaml' 2>/dev/null; then
    tap "$ypy" tests/deploy/compose_check.py config/docker/compose.yaml "$BIN"
else
    notok "PyYAML is missing (config/install-deps.sh installs python3-yaml)"
fi

# ---- readiness (Type=notify) ----
tap "$PYTHON" tests/deploy/notify_check.py "$BIN"
if command -v strace >/dev/null 2>&1 && command -v systemd-analyze >/dev/null 2>&1; then
    tap "$PYTHON" tests/deploy/notify_check.py "$BIN" --abstract --strace
else
    skip "system calls against the unit's filter: strace or systemd-analyze missing"
    tap "$PYTHON" tests/deploy/notify_check.py "$BIN" --abstract
fi

echo "deploy: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
