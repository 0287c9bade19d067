#!/usr/bin/env python3
"""Cache latency, end to end: client -> llmrouter -> answer, for a memory
hit, a Redis hit, and a miss through the simulated provider (the request
carries `x-router-cache: bypass`, so every one goes upstream).

Starts the simulator, a redis-server on a free port, and two daemons (memory
and redis backends, one thread each, pinned to CPU 0); the C client
(tests/bench/latency_client.c, pinned to CPU 1) sends sequential requests on
one keep-alive connection. Three alternating runs of 2,000 requests each;
prints the median and range of the runs' p50/p99. Not part of `make test`.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT = os.path.join(ROOT, "build", "bench", "latency_client")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port):
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("daemon not ready")


def main():
    tmp = tempfile.mkdtemp(prefix="llmrouter-bench-")
    procs = []
    try:
        sim = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/sim/simprovider.py"), "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
        procs.append(sim)
        sim_port = int(sim.stdout.readline().split()[1])
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL))
        time.sleep(0.3)
        with open(os.path.join(ROOT, "tests/integration/llmrouter-test.yaml")) as f:
            base = f.read().partition("\ncache:\n")[0].replace("log_level: warn", "log_level: error")
        ports = {}
        for name, cache in (("memory", "  backend: memory\n"),
                            ("redis", f"  backend: redis\n  redis_url: \"redis://127.0.0.1:{rport}/0\"\n")):
            cfg = os.path.join(tmp, f"{name}.yaml")
            with open(cfg, "w") as f:
                f.write(base + "\ncache:\n" + cache)
            ports[name] = free_port()
            env = dict(os.environ, SIM_URL=f"http://127.0.0.1:{sim_port}", SIM_KEY_GOOD="k")
            procs.append(subprocess.Popen(["taskset", "-c", "0", os.path.join(ROOT, "build/llmrouter"), "-c", cfg,
                                           "--threads", "1", "--listen", f"127.0.0.1:{ports[name]}"], env=env))
            wait_http(ports[name])
        body = os.path.join(tmp, "body.json")
        with open(body, "w") as f:
            json.dump({"model": "auto", "temperature": 0, "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France? " * 10}]}, f)
        # floor: an answer that needs no work (404 for an unknown path)
        cases = [("floor: 404, no work", ports["memory"], "/v1/nope", [], 404),
                 ("memory hit", ports["memory"], "/v1/chat/completions", [], 200),
                 ("redis hit", ports["redis"], "/v1/chat/completions", [], 200),
                 ("miss (simulated provider)", ports["memory"], "/v1/chat/completions",
                  ["x-router-cache: bypass"], 200)]
        for cpu, where in (("1", "client on the other core (CPU 1)"), ("0", "client on the daemon's core (CPU 0)")):
            results = {c[0]: [] for c in cases}
            for run in range(3):
                for name, port, path, hdrs, want in cases:
                    n = 2000 if "miss" not in name else 500
                    out = subprocess.run(["taskset", "-c", cpu, CLIENT, str(port), path, body, str(n), "20"] + hdrs,
                                         capture_output=True, text=True, check=True).stdout
                    m = re.search(r"status (\d+).*p50 ([\d.]+) us.*p99 ([\d.]+) us", out)
                    if int(m.group(1)) != want:
                        raise RuntimeError(f"{name}: status {m.group(1)}")
                    results[name].append((float(m.group(2)), float(m.group(3))))
            print(f"cache latency, end to end, {where}")
            print("  (3 runs of 2,000 sequential requests, 500 for the miss; median [range] of each run's p50"
                  " and p99, microseconds)")
            for name, *_ in cases:
                p50 = [r[0] for r in results[name]]
                p99 = [r[1] for r in results[name]]
                print(f"  {name:28s} p50 {statistics.median(p50):8.1f} [{min(p50):.1f}-{max(p50):.1f}]"
                      f"   p99 {statistics.median(p99):8.1f} [{min(p99):.1f}-{max(p99):.1f}]")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
