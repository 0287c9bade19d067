#!/usr/bin/env python3
"""Checks config/docker/compose.yaml without a Docker engine (part of
tests/deploy/run.sh). Needs PyYAML (Debian's python3-yaml).

    compose_check.py COMPOSE_FILE LLMROUTER_BINARY

Parses the file as YAML and checks the sidecar example's shape: the app,
llmrouter and redis services; the app's OPENAI_BASE_URL is
http://llmrouter:8080/v1; llmrouter has a /healthz health check and mounts
its configuration at /etc/llmrouter/llmrouter.yaml; its Redis URL is the
fixed IPv4 address the redis service has on a network with a fixed subnet
that all three share (the router's Redis client takes IP literals only).
Then runs `LLMROUTER_BINARY -c <that config> --check-config` with only the
environment compose would give the container, and checks the summary
(0.0.0.0:8080, redis cache); and starts it with that environment (on a free
port; Redis redirected to a closed local port, since the fixed address is
not on this machine) until compose's health check command passes.
Prints "ok -"/"not ok -" lines."""
import ipaddress
import os
import re
import subprocess
import sys
import urllib.parse

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_probe  # noqa: E402

failures = 0


def result(cond, desc, detail=""):
    global failures
    print(("ok - " if cond else "not ok - ") + desc)
    if not cond:
        failures += 1
        if detail:
            for line in str(detail).splitlines()[-20:]:
                print("#   " + line)
    return cond


def interpolate(value, host_env):
    """Compose's ${VAR}, ${VAR:-default} and $$ in a string."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(3)
        v = host_env.get(name)
        if (v is None or (v == "" and m.group(2) == ":-")) and default is not None:
            return default
        return v or ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", sub, str(value))


def env_of(service, host_env):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, host_env.get(e, "")) for e in env)
    return {k: interpolate("" if v is None else v, host_env) for k, v in env.items()}


def networks_of(service):
    n = service.get("networks") or {}
    return list(n) if isinstance(n, (list, dict)) else []


def main():
    compose_path, binary = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(compose_path))
    with open(compose_path) as f:
        doc = yaml.safe_load(f)
    result(isinstance(doc, dict), "compose.yaml parses as a YAML mapping")
    services = doc.get("services") or {}
    if not result(all(s in services for s in ("app", "llmrouter", "redis")),
                  "compose.yaml has the services app, llmrouter and redis", sorted(services)):
        return
    app, router, redis = services["app"], services["llmrouter"], services["redis"]
    # With no keys in the host environment, as in a fresh shell.
    host_env = {}

    app_env = env_of(app, host_env)
    result(app_env.get("OPENAI_BASE_URL") == "http://llmrouter:8080/v1",
           "the app reaches the router at OPENAI_BASE_URL=http://llmrouter:8080/v1", app_env)

    hc = router.get("healthcheck") or {}
    test = hc.get("test")
    test_s = " ".join(test) if isinstance(test, list) else str(test)
    result("/healthz" in test_s and ":8080" in test_s, "llmrouter has a health check on :8080/healthz", hc)
    deps = app.get("depends_on") or {}
    result(isinstance(deps, dict) and (deps.get("llmrouter") or {}).get("condition") == "service_healthy",
           "the app waits for a healthy llmrouter", deps)

    build = router.get("build") or {}
    ctx = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = os.path.join(here, ctx, "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
    result(os.path.isfile(dockerfile) and os.path.isfile(os.path.join(here, ctx, "config/docker/build.sh")),
           "llmrouter is built from this repository's Dockerfile", build)

    mounted = None
    for v in router.get("volumes") or []:
        src, _, rest = (v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}").partition(":")
        if rest.split(":")[0] == "/etc/llmrouter/llmrouter.yaml":
            mounted = os.path.normpath(os.path.join(here, src))
    result(mounted is not None and os.path.isfile(mounted),
           f"llmrouter mounts {os.path.relpath(mounted) if mounted else '?'} at /etc/llmrouter/llmrouter.yaml",
           router.get("volumes"))

    # Redis: a fixed address on a fixed subnet shared with the router.
    router_env = env_of(router, host_env)
    url = router_env.get("LLMROUTER_REDIS_URL", "")
    u = urllib.parse.urlsplit(url)
    redis_ip = None
    for name, cfg in (redis.get("networks") or {}).items() if isinstance(redis.get("networks"), dict) else []:
        if cfg and cfg.get("ipv4_address"):
            redis_ip, redis_net = cfg["ipv4_address"], name
    ok = redis_ip is not None
    result(ok, "redis has a fixed ipv4_address", redis.get("networks"))
    if ok:
        subnets = [c.get("subnet") for c in
                   (((doc.get("networks") or {}).get(redis_net) or {}).get("ipam") or {}).get("config") or []]
        result(any(ipaddress.ip_address(redis_ip) in ipaddress.ip_network(s) for s in subnets if s),
               f"{redis_ip} lies in the {redis_net} network's ipam subnet {subnets}")
        result(redis_net in networks_of(router) and redis_net in networks_of(app),
               f"app, llmrouter and redis share the {redis_net} network")
        result(u.scheme == "redis" and u.hostname == redis_ip and (u.port or 6379) == 6379,
               f"llmrouter's Redis URL {url} is redis's fixed address (an IP literal, no DNS)")

    # The configuration, with the environment compose gives the container.
    env = dict(router_env, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    if mounted:
        p = subprocess.run([binary, "-c", mounted, "--check-config"], env=env, capture_output=True, text=True)
        result(p.returncode == 0, "the compose configuration passes --check-config with compose's environment",
               p.stdout + p.stderr)
        result("listen 0.0.0.0:8080" in p.stdout, "it listens on 0.0.0.0:8080 in the container", p.stdout)
        result("cache: redis" in p.stdout, "it caches in Redis", p.stdout)
        result("NOT SET" in p.stdout and "warning" in p.stderr,
               "providers without keys are warnings, not errors", p.stdout + p.stderr)
        # It must also start (an unauthenticated 0.0.0.0 needs the explicit
        # allowance), and its health check pass. Redis is pointed at a closed
        # local port: its address is not on this machine, and a Redis that
        # does not answer only makes every lookup a miss.
        run_env = dict(router_env, LLMROUTER_REDIS_URL=f"redis://127.0.0.1:{daemon_probe.free_port()}/0")
        hc_cmd = test[1:] if isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL") else None
        if result(hc_cmd is not None and hc_cmd[0] == "curl", "the health check is an exec-form curl command", test):
            ok, detail = daemon_probe.serve_and_probe(binary, mounted, run_env, hc_cmd)
            result(ok, "with compose's environment the router starts on 0.0.0.0 and passes that health check",
                   detail)


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
