#!/usr/bin/env python3
"""Instructions per routed request: callgrind's count of llmrouter's user
space (one loop thread, tests/bench/bench-router.yaml in front of
tests/bench/upstream.c, access log off) over N sequential non-streamed
requests on one keep-alive connection (tests/bench/latency_client.c). The
count does not depend on the machine's load, so a change to the request path
is measured by it before any timing.

    make build/llmrouter build/bench/upstream build/bench/latency_client
    python3 tests/bench/bench_instr.py [--n N] [--body BYTES] [--rules R]
                                       [--keep DIR] [--top K]

--body   size of the chat request (the bench_proxy body is ~2.3 KB)
--rules  number of routing rules: the bench configuration's 25 (24 + the
         complexity scorer), or more (keyword rules added before the last)
--table  the body-size and rule-count table of docs/performance.md
--keep   keep the callgrind file of the measured requests there
--top    print the K functions with the highest inclusive cost per request
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def config_text(rules):
    with open(os.path.join(ROOT, "tests/bench/bench-router.yaml")) as f:
        text = f.read()
    text += "\nobservability:\n  access_log: \"off\"\n"
    base = 25  # bench-router.yaml's 24 rules + its complexity rule
    extra = max(0, rules - base)
    if extra:
        lines = []
        for i in range(extra):
            kws = ", ".join(f"kw{i}x{j}" for j in range(5))
            lines.append(f"    - {{name: extra{i}, when: {{keywords: [{kws}]}}, tier: premium}}\n")
        marker = "    - {name: not-latin,"
        text = text.replace(marker, "".join(lines) + marker, 1)
    return text


def body_json(size):
    words = []
    i = 0
    prefix = "Please answer the following carefully. "
    while len(prefix) + sum(len(w) + 1 for w in words) < size - 160:
        words.append(f"word{(i * 7) % 97}")
        i += 1
    msgs = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": prefix + " ".join(words)}]
    return json.dumps({"model": "auto", "temperature": 0, "messages": msgs})


def totals(path):
    total = 0
    with open(path) as f:
        for ln in f:
            m = re.match(r"^(summary|totals):\s+(\d+)", ln)
            if m:
                total = max(total, int(m.group(2)))
    return total


def measure(n, body_size, rules, keep=None, top=0, up_port=None):
    tmp = tempfile.mkdtemp(prefix="bench-instr-")
    cfg = os.path.join(tmp, "b.yaml")
    with open(cfg, "w") as f:
        f.write(config_text(rules))
    body = os.path.join(tmp, "body.json")
    with open(body, "w") as f:
        f.write(body_json(body_size))
    own_up = None
    if up_port is None:
        own_up = subprocess.Popen([os.path.join(ROOT, "build/bench/upstream")], stdout=subprocess.PIPE)
        up_port = int(own_up.stdout.readline().split()[1])
    port = free_port()
    out = os.path.join(tmp, "cg.out")
    env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{up_port}", BENCH_CACHE="off")
    d = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          os.path.join(ROOT, "build/llmrouter"), "-c", cfg, "--listen",
                          f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.2)
        client = os.path.join(ROOT, "build/bench/latency_client")
        per = 0
        for k in (100, n):  # the first dump holds start-up and a warm-up
            r = subprocess.run([client, str(port), "/v1/chat/completions", body, str(k), "0"],
                               check=True, capture_output=True, text=True)
            if "status 200" not in r.stdout and " 200" not in r.stdout:
                raise RuntimeError(f"latency_client: {r.stdout.strip()} {r.stderr.strip()}")
            time.sleep(0.3)
            subprocess.run(["callgrind_control", "-d", str(d.pid)], capture_output=True)
            time.sleep(0.5)
            files = sorted(fn for fn in os.listdir(tmp) if fn.startswith("cg.out"))
            last = None
            for fn in files:
                if k == n:
                    last = os.path.join(tmp, fn)
                    per = totals(last) / n
                else:
                    os.unlink(os.path.join(tmp, fn))
        if top and last:
            ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", last],
                                 capture_output=True, text=True).stdout
            shown = 0
            for ln in ann.splitlines():
                m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S+)", ln)
                if not m:
                    continue
                print(f"  {int(m.group(1).replace(',', '')) / n:12,.0f}  {m.group(2)}")
                shown += 1
                if shown >= top:
                    break
        if keep and last:
            os.makedirs(keep, exist_ok=True)
            os.replace(last, os.path.join(keep, f"cg.b{body_size}.r{rules}"))
        return per
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(60)
        except subprocess.TimeoutExpired:
            d.kill()
        if own_up:
            own_up.terminate()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--body", type=int, default=2300)
    ap.add_argument("--rules", type=int, default=25)
    ap.add_argument("--keep")
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if not a.table:
        per = measure(a.n, a.body, a.rules, a.keep, a.top)
        print(f"{per:,.0f} instructions per request (callgrind, {a.n} requests, "
              f"body {a.body} B, {a.rules} rules)")
        return
    up = subprocess.Popen([os.path.join(ROOT, "build/bench/upstream")], stdout=subprocess.PIPE)
    up_port = int(up.stdout.readline().split()[1])
    try:
        print("| body | rules | instructions per request | per extra byte | per extra rule |")
        print("|---|---|---|---|---|")
        prev = None
        for size in (2000, 20000, 200000):
            per = measure(max(200, a.n // (size // 2000)), size, 25, up_port=up_port)
            slope = f"{(per - prev[1]) / (size - prev[0]):.1f}" if prev else ""
            print(f"| {size:,} B | 25 | {per:,.0f} | {slope} | |")
            prev = (size, per)
            sys.stdout.flush()
        prev = None
        for rules in (25, 200, 2000):
            per = measure(max(200, a.n // (rules // 25 if rules > 200 else 1)), 2300, rules, up_port=up_port)
            slope = f"{(per - prev[1]) / (rules - prev[0]):.0f}" if prev else ""
            print(f"| 2,300 B | {rules:,} | {per:,.0f} | | {slope} |")
            prev = (rules, per)
            sys.stdout.flush()
    finally:
        up.terminate()


if __name__ == "__main__":
    main()
