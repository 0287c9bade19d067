#!/usr/bin/env python3
"""Readiness notifications of the real daemon, the way systemd's Type=notify
sees them (part of tests/deploy/run.sh). Standard library only.

    notify_check.py LLMROUTER_BINARY [--abstract] [--strace]

Listens on an AF_UNIX datagram socket (a path, or with --abstract an
abstract name), starts the daemon with NOTIFY_SOCKET pointing at it, the
simulated provider behind it, and checks, like systemd would:
  - the first message is READY=1 (with STATUS=), sent by the daemon's pid,
    and /readyz answers 200 when it arrives;
  - SIGHUP gives RELOADING=1 (with MONOTONIC_USEC=) then READY=1; a reload
    of a broken file the same, with a STATUS that says it failed, and the
    daemon keeps serving;
  - SIGTERM gives STOPPING=1 and the daemon exits 0.
With --strace the daemon runs under strace -f, and every system call it made
(start, requests, reloads, stop) must be allowed by the unit's filter:
SystemCallFilter=@system-service minus @privileged, as systemd-analyze
expands them. Prints "ok -"/"not ok -" lines."""
import array
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
failures = 0

CONFIG = """server: {listen: "127.0.0.1:9", threads: 2, log_level: info, shutdown_grace_ms: 1000}
providers:
  sim: {type: openai, base_url: "${SIM_URL}/v1", api_key_env: SIM_KEY}
models:
  m: {provider: sim, model: sim-mini}
tiers:
  t: [m]
routing: {default_tier: t}
"""


def result(cond, desc, detail=""):
    global failures
    print(("ok - " if cond else "not ok - ") + desc, flush=True)
    if not cond:
        failures += 1
        for line in str(detail).splitlines()[-25:]:
            print("#   " + line)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receive(sock, seconds):
    """One datagram as (dict of its assignments, raw text, sender pid), or None."""
    sock.settimeout(seconds)
    try:
        data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    except socket.timeout:
        return None
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    text = data.decode()
    fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
    return fields, text, pid


def http(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return None, str(e).encode()


def expand_filter(group):
    """The system calls a systemd filter group allows, nested groups expanded."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.split()[0], [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    seen, result_set = set(), set()

    def walk(g):
        if g in seen:
            return
        seen.add(g)
        for item in groups.get(g, []):
            walk(item) if item.startswith("@") else result_set.add(item)
    walk(group)
    return result_set


def main():
    binary = os.path.abspath(sys.argv[1])
    abstract = "--abstract" in sys.argv
    use_strace = "--strace" in sys.argv
    tmp = tempfile.mkdtemp(prefix="llmrouter-notify-")
    cfg = os.path.join(tmp, "llmrouter.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    if abstract:
        name = f"@llmrouter-deploy-test-{os.getpid()}"
        sock.bind("\0" + name[1:])
    else:
        name = os.path.join(tmp, "notify.sock")
        sock.bind(name)
    what = "abstract socket" if abstract else "socket path"

    sim = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/sim/simprovider.py"), "--port", "0"],
                           stdout=subprocess.PIPE, text=True)
    sim_port = int(sim.stdout.readline().split()[1])
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=name, SIM_URL=f"http://127.0.0.1:{sim_port}", SIM_KEY="k")
    cmd = [binary, "-c", cfg, "--listen", f"127.0.0.1:{port}"]
    trace = os.path.join(tmp, "strace.out")
    if use_strace:
        cmd = ["strace", "-f", "-qq", "-o", trace] + cmd
    log = open(os.path.join(tmp, "daemon.log"), "w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    daemon_pid = proc.pid
    rc = None

    def daemon_log():
        log.flush()
        log.seek(0)
        return log.read()

    try:
        m = receive(sock, 20)
        if not result(m is not None and m[0].get("READY") == "1",
                      f"READY=1 arrives on the {what} once the daemon listens",
                      m[1] if m else "nothing within 20 s\n" + daemon_log()):
            return
        fields, text, pid = m
        if use_strace:
            daemon_pid = pid  # strace's child; systemd would know it as MAINPID
        else:
            result(pid == proc.pid, "it is sent by the daemon's own pid (NotifyAccess=main)", f"{pid} != {proc.pid}")
        result(f":{port}" in fields.get("STATUS", ""), "with a STATUS naming the listen address", text)
        status, _ = http(port, "GET", "/readyz")
        result(status == 200, "/readyz answers 200 when READY=1 arrives", status)
        body = b'{"model":"auto","messages":[{"role":"user","content":"Hello"}]}'
        status, _ = http(port, "POST", "/v1/chat/completions", body)
        status2, _ = http(port, "POST", "/v1/chat/completions",
                          b'{"model":"auto","stream":true,"messages":[{"role":"user","content":"Hi"}]}')
        result(status == 200 and status2 == 200, "it serves (plain and streamed requests through the simulated provider)",
               f"{status} {status2}\n" + daemon_log())

        os.kill(daemon_pid, signal.SIGHUP)
        m1, m2 = receive(sock, 10), receive(sock, 10)
        result(m1 is not None and m1[0].get("RELOADING") == "1" and m1[0].get("MONOTONIC_USEC", "").isdigit(),
               "SIGHUP: RELOADING=1 with MONOTONIC_USEC first", m1 and m1[1])
        result(m2 is not None and m2[0].get("READY") == "1", "then READY=1 once reloaded", m2 and m2[1])

        with open(cfg, "w") as f:
            f.write("server: [this is not the configuration\n")
        os.kill(daemon_pid, signal.SIGHUP)
        m1, m2 = receive(sock, 10), receive(sock, 10)
        result(m1 is not None and m1[0].get("RELOADING") == "1" and m2 is not None and m2[0].get("READY") == "1"
               and "fail" in m2[0].get("STATUS", ""),
               "a broken file: RELOADING=1, then READY=1 with STATUS saying the reload failed",
               f"{m1 and m1[1]!r} {m2 and m2[1]!r}")
        status, _ = http(port, "GET", "/healthz")
        result(status == 200, "and the daemon keeps serving", status)

        os.kill(daemon_pid, signal.SIGTERM)
        m = receive(sock, 10)
        result(m is not None and m[0].get("STOPPING") == "1", "SIGTERM: STOPPING=1", m and m[1])
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        result(rc == 0, "the daemon exits 0", f"exit {rc}\n" + daemon_log())
        result(receive(sock, 0.2) is None, "and sends nothing after STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sim.terminate()
        sim.wait(timeout=5)
        sock.close()

    if use_strace and os.path.exists(trace):
        used = set()
        with open(trace) as f:
            for line in f:
                m = re.match(r"^\d+\s+([a-z_][a-z0-9_]*)\(", line)
                if m:
                    used.add(m.group(1))
        allowed = expand_filter("@system-service") - expand_filter("@privileged")
        denied = sorted(used - allowed)
        result(used and not denied,
               f"all {len(used)} system calls it made are allowed by SystemCallFilter=@system-service ~@privileged",
               "not allowed: " + " ".join(denied))
    log.close()
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
