#!/usr/bin/env python3
"""Instructions per routed request: callgrind's count of llmrouter's user
space (one loop thread, tests/bench/bench-router.yaml in front of
tests/bench/upstream.c, access log off) over N sequential non-streamed
requests on one keep-alive connection (tests/bench/latency_client.c). The
count does not depend on the machine's load, so a change to the request path
is measured by it before any timing.

    make build/llmrouter build/bench/upstream build/bench/latency_client
    python3 tests/bench/bench_instr.py [--n N] [--body BYTES] [--rules R]
                                       [--door D] [--keep DIR] [--top K]
    python3 tests/bench/bench_instr.py --table [--n N]
    python3 tests/bench/bench_instr.py --doors [--n N] [--body BYTES]

--body   size of the chat request (the bench_proxy body is ~2.3 KB)
--rules  number of routing rules: the bench configuration's 25 (24 + the
         complexity scorer), or more (keyword rules added before the last)
--table  the body-size and rule-count table of docs/performance.md
--door   which API the request comes through, the same prompt in each
         shape (body_json(size, door)):
           chat          POST /v1/chat/completions (pass-through to an
                         OpenAI-type provider; the default)
           messages      POST /v1/messages, an Anthropic Messages body
                         (system, messages, max_tokens), translated to chat
                         for the OpenAI-type provider and the answer back
           responses     POST /v1/responses, a Responses body
                         (instructions, input), translated likewise
           anthropic-up  POST /v1/chat/completions, the standard tier's
                         first model swapped for `claude` (a `type:
                         anthropic` provider): chat -> Messages upstream
                         and the Messages answer -> chat
         Each run first sends one request outside the count and checks
         that it answers 200; it prints the rule, tier and model chosen, so
         that a door routed differently is seen.
--doors  the four doors in one table (same body size and rules), each with
         its difference to chat. Issue #17's target is in CPU time (<= 15 us
         per request over pass-through); these are user-space instructions,
         machine-independent; bench_proxy.py --doors measures the CPU time.
--keep   keep the callgrind file of the measured requests there
--top    print the K functions with the highest inclusive cost per request
"""
import argparse
import json
import urllib.request
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


DOOR_PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages",
              "responses": "/v1/responses", "anthropic-up": "/v1/chat/completions"}
SYSTEM = "You are a helpful assistant."


def config_text(rules, door="chat"):
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
    if door == "anthropic-up":
        tier = "  standard: [mini, mini-b]\n"
        if tier not in text:
            raise RuntimeError("bench-router.yaml: no standard tier to point at claude")
        text = text.replace(tier, "  standard: [claude, mini-b]\n", 1)
    return text


def body_json(size, door="chat"):
    """The bench request of about `size` bytes: a system prompt and one user
    message of `word<N>` words, in the shape of `door`'s API."""
    words = []
    i = 0
    prefix = "Please answer the following carefully. "
    while len(prefix) + sum(len(w) + 1 for w in words) < size - 160:
        words.append(f"word{(i * 7) % 97}")
        i += 1
    user = prefix + " ".join(words)
    if door == "messages":
        return json.dumps({"model": "auto", "max_tokens": 1024, "temperature": 0, "system": SYSTEM,
                           "messages": [{"role": "user", "content": user}]})
    if door == "responses":
        return json.dumps({"model": "auto", "temperature": 0, "instructions": SYSTEM, "input": user})
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    return json.dumps({"model": "auto", "temperature": 0, "messages": msgs})


def preflight(port, door, body_path):
    """One request outside the count: must answer 200; returns the routing
    headers (rule, tier, model, provider)."""
    with open(body_path, "rb") as f:
        data = f.read()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{DOOR_PATHS[door]}", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            h = r.headers
            return {k: h.get(f"x-router-{k}") for k in ("rule", "tier", "model", "provider")}
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"door {door}: {DOOR_PATHS[door]} answered {e.code}: {e.read()[:300]!r}")


def totals(path):
    total = 0
    with open(path) as f:
        for ln in f:
            m = re.match(r"^(summary|totals):\s+(\d+)", ln)
            if m:
                total = max(total, int(m.group(2)))
    return total


def measure(n, body_size, rules, keep=None, top=0, up_port=None, door="chat", route=None):
    """Instructions per request of llmrouter; `route`, a dict, is given the
    preflight's routing headers."""
    tmp = tempfile.mkdtemp(prefix="bench-instr-")
    cfg = os.path.join(tmp, "b.yaml")
    with open(cfg, "w") as f:
        f.write(config_text(rules, door))
    body = os.path.join(tmp, "body.json")
    with open(body, "w") as f:
        f.write(body_json(body_size, door))
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
        got = preflight(port, door, body)
        if route is not None:
            route.update(got)
        client = os.path.join(ROOT, "build/bench/latency_client")
        per = 0
        for k in (100, n):  # the first dump holds start-up and a warm-up
            r = subprocess.run([client, str(port), DOOR_PATHS[door], body, str(k), "0"],
                               check=True, capture_output=True, text=True)
            if not r.stdout.startswith("status 200 "):
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
            os.replace(last, os.path.join(keep, f"cg.b{body_size}.r{rules}.{door}"))
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
    ap.add_argument("--door", choices=list(DOOR_PATHS), default="chat")
    ap.add_argument("--doors", action="store_true")
    a = ap.parse_args()
    if a.doors:
        doors_table(a)
        return
    if not a.table:
        route = {}
        per = measure(a.n, a.body, a.rules, a.keep, a.top, door=a.door, route=route)
        print(f"{per:,.0f} instructions per request (callgrind, {a.n} requests, "
              f"body {a.body} B, {a.rules} rules, door {a.door} {DOOR_PATHS[a.door]}: "
              f"rule {route.get('rule')}, tier {route.get('tier')}, model {route.get('model')})")
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


def doors_table(a):
    up = subprocess.Popen([os.path.join(ROOT, "build/bench/upstream")], stdout=subprocess.PIPE)
    up_port = int(up.stdout.readline().split()[1])
    try:
        print(f"doors: {a.n} requests each, body ~{a.body} B (chat shape), {a.rules} rules")
        print("| door | path | body bytes | rule / tier / model | instructions per request | minus chat |")
        print("|---|---|---|---|---|---|")
        chat = None
        for door in DOOR_PATHS:
            route = {}
            per = measure(a.n, a.body, a.rules, up_port=up_port, door=door, route=route, keep=a.keep)
            if door == "chat":
                chat = per
            diff = f"{per - chat:+,.0f}" if door != "chat" else ""
            print(f"| {door} | {DOOR_PATHS[door]} | {len(body_json(a.body, door)):,} | {route.get('rule')} / "
                  f"{route.get('tier')} / {route.get('model')} | {per:,.0f} | {diff} |", flush=True)
    finally:
        up.terminate()


if __name__ == "__main__":
    main()
