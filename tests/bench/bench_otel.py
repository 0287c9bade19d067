#!/usr/bin/env python3
"""What the OpenTelemetry export costs per request: callgrind's instruction
count of llmrouter (one loop thread, tests/bench/bench-router.yaml in front
of tests/bench/upstream.c) over N sequential requests on one keep-alive
connection (tests/bench/latency_client.c), with observability.otlp off and
on (a local receiver that answers 200 at once; batch_max_spans 256,
flush_interval_ms 1000). Prints instructions per request for both and the
difference. Not part of `make test`:

    make build/llmrouter build/bench/upstream build/bench/latency_client
    python3 tests/bench/bench_otel.py [N]
"""
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
KEEP = os.environ.get("BENCH_OTEL_KEEP")  # a directory: keep the callgrind files there
KEEP_NAME = ["off"]


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    posts = [0]

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        H.posts[0] += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(tmp, up_port, otlp_url):
    with open(os.path.join(ROOT, "tests/bench/bench-router.yaml")) as f:
        text = f.read()
    text += "\nobservability:\n  access_log: \"off\"\n"
    if otlp_url:
        text += f"  otlp:\n    endpoint: \"{otlp_url}\"\n"
    cfg = os.path.join(tmp, "b.yaml")
    with open(cfg, "w") as f:
        f.write(text)
    port = free_port()
    out = os.path.join(tmp, "cg.out")
    env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{up_port}", BENCH_CACHE="off")
    d = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          os.path.join(ROOT, "build/llmrouter"), "-c", cfg, "--listen",
                          f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    body = os.path.join(tmp, "body.json")
    with open(body, "w") as f:
        json.dump({"model": "auto", "temperature": 0, "max_tokens": 64,
                   "messages": [{"role": "user", "content": "What is the capital of France?"}]}, f)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.2)
    client = os.path.join(ROOT, "build/bench/latency_client")
    runs = {}
    # callgrind's dumps are incremental: the first holds start-up and a
    # warm-up, the second exactly N requests (and their batches)
    for n in (100, N):
        subprocess.run([client, str(port), "/v1/chat/completions", body, str(n), "0"],
                       check=True, capture_output=True)
        time.sleep(1.5)  # the last partial batch leaves (flush_interval_ms 1000)
        subprocess.run(["callgrind_control", "-d", str(d.pid)], capture_output=True)
        time.sleep(0.5)
        total = 0
        for fn in os.listdir(tmp):
            if fn.startswith("cg.out") and n == N and KEEP:
                os.replace(os.path.join(tmp, fn), os.path.join(KEEP, f"{KEEP_NAME[0]}.{fn}"))
                fn = f"{KEEP_NAME[0]}.{fn}"
                path = os.path.join(KEEP, fn)
                with open(path) as f:
                    for ln in f:
                        m = re.match(r"^(summary|totals):\s+(\d+)", ln)
                        if m:
                            total = max(total, int(m.group(2)))
                continue
            if fn.startswith("cg.out"):
                with open(os.path.join(tmp, fn)) as f:
                    for ln in f:
                        m = re.match(r"^(summary|totals):\s+(\d+)", ln)
                        if m:
                            total = max(total, int(m.group(2)))
                os.unlink(os.path.join(tmp, fn))
        runs[n] = total
    d.send_signal(signal.SIGTERM)
    d.wait(60)
    return runs


def main():
    tmp = tempfile.mkdtemp(prefix="bench-otel-")
    up = subprocess.Popen([os.path.join(ROOT, "build/bench/upstream")], stdout=subprocess.PIPE)
    up_port = int(up.stdout.readline().split()[1])
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res = {}
        for name, url in (("off", None), ("on", f"http://127.0.0.1:{srv.server_address[1]}/v1/traces")):
            KEEP_NAME[0] = name
            r = run(tmp, up_port, url)
            res[name] = r[N] / N
            print(f"otlp {name}: {res[name]:,.0f} instructions per request (callgrind, {N} requests)")
        print(f"export adds {res['on'] - res['off']:,.0f} instructions per request "
              f"({(res['on'] / res['off'] - 1) * 100:.1f}%); collector POSTs: {H.posts[0]}")
    finally:
        up.terminate()
        srv.shutdown()


if __name__ == "__main__":
    main()
