#!/usr/bin/env python3
"""Runs a command against a live llmrouter and simulated provider.

    python3 tests/with_daemon.py [--config FILE] -- COMMAND [ARGS...]

Starts tests/sim/simprovider.py and the daemon ($LLMROUTER_BIN, default
build/llmrouter) on free loopback ports, waits for /readyz, then runs COMMAND
with LLMROUTER_URL (…/v1), LLMROUTER_URL_NOV1, SIM_URL, SIM_STATS_URL and
SIM_KEY_GOOD in its environment. Afterwards it stops the daemon with SIGTERM
and fails if the daemon does not exit 0 (a sanitizer report, a leak or a crash
makes it exit non-zero). Exit status: the command's, or 1 if the daemon
misbehaved. Python standard library only.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim():
    # sys.executable, not "python3": a pyenv shim would fork and SIGTERM
    # would then miss the real server.
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/sim/simprovider.py"), "--port", "0"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if len(line) != 2 or line[0] != "LISTENING":
        p.kill()
        sys.exit("with_daemon: the simulated provider did not start")
    return p, int(line[1])


def wait_ready(port, proc, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=os.path.join(ROOT, "tests/integration/llmrouter-test.yaml"))
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        ap.error("no command given")
    binary = os.environ.get("LLMROUTER_BIN", os.path.join(ROOT, "build/llmrouter"))
    sim, sim_port = start_sim()
    port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = dict(os.environ, SIM_URL=sim_url, SIM_KEY_GOOD="sim-key-good-123")
    log = tempfile.NamedTemporaryFile(prefix="llmrouter-", suffix=".log", delete=False)
    try:
        daemon = subprocess.Popen([binary, "-c", args.config, "--listen", f"127.0.0.1:{port}"],
                                  env=env, stdout=log, stderr=log)
    except OSError as e:
        # stop the simulator too: left running it would hold the caller's
        # stderr open (a pipe reader would wait forever)
        print(f"with_daemon: cannot start {binary}: {e}", file=sys.stderr)
        sim.terminate()
        sim.wait(timeout=5)
        log.close()
        os.unlink(log.name)
        return 1
    rc = 1
    try:
        if not wait_ready(port, daemon):
            print("with_daemon: llmrouter did not become ready", file=sys.stderr)
        else:
            cenv = dict(env, LLMROUTER_URL=f"http://127.0.0.1:{port}/v1",
                        LLMROUTER_URL_NOV1=f"http://127.0.0.1:{port}",
                        SIM_STATS_URL=f"{sim_url}/_sim/stats")
            rc = subprocess.call(cmd, env=cenv, cwd=ROOT)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            drc = daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            drc = "timeout"
        sim.terminate()
        sim.wait(timeout=5)
        log.close()
        if drc != 0:
            print(f"with_daemon: llmrouter exited with {drc}; its log:", file=sys.stderr)
            with open(log.name, errors="replace") as f:
                sys.stderr.write(f.read()[-20000:])
            rc = rc or 1
        os.unlink(log.name)
    return rc


if __name__ == "__main__":
    sys.exit(main())
