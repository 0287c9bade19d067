#!/usr/bin/env python3
"""Starts llmrouter as its container would and runs the container's health
check command against it (part of tests/deploy/run.sh; standard library).

    daemon_probe.py BINARY CONFIG DOCKERFILE [NAME=VALUE ...]

Runs BINARY -c CONFIG with only PATH and the NAME=VALUE assignments in its
environment, on 0.0.0.0 and a free port instead of 8080 (which the host may
be using), then the Dockerfile's HEALTHCHECK command with that port, until
it succeeds (10 s at most); then SIGTERM, which must end the daemon with
status 0. compose_check.py uses serve_and_probe the same way."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dockerfile_healthcheck(path):
    """The exec-form command of the Dockerfile's HEALTHCHECK ... CMD [...]."""
    text = open(path).read().replace("\\\n", " ")
    m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
    return json.loads(m.group(1)) if m else None


def serve_and_probe(binary, config, env, health_cmd):
    """Returns (ok, detail). health_cmd is a list naming port 8080."""
    port = free_port()
    cmd = [c.replace(":8080", f":{port}") for c in health_cmd]
    full_env = dict(env, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([binary, "-c", config, "--listen", f"0.0.0.0:{port}"],
                            env=full_env, stdout=log, stderr=log)
    healthy = False
    try:
        deadline = time.time() + 10
        while time.time() < deadline and proc.poll() is None:
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                healthy = True
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timeout"
        log.seek(0)
        out = log.read()
        log.close()
    return healthy and rc == 0, f"health check {'passed' if healthy else 'failed'}: {' '.join(cmd)}\n" \
                                f"daemon exit status {rc}\n{out}"


def main():
    binary, config, dockerfile = sys.argv[1:4]
    env = dict(a.split("=", 1) for a in sys.argv[4:])
    hc = dockerfile_healthcheck(dockerfile)
    if hc is None:
        print("no HEALTHCHECK ... CMD [...] in " + dockerfile)
        return 1
    ok, detail = serve_and_probe(binary, config, env, hc)
    print(detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
