#!/usr/bin/env python3
"""Integration tests of the response cache: the real daemon over real
sockets, the simulated provider, a real redis-server started here on a free
loopback port, and the official openai npm SDK for a streamed hit.

    python3 tests/integration/test_cache.py [-k SUBSTRING]...

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses the helpers of tests/integration/run.py.
Python 3 standard library only.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body, short  # noqa: E402

ROOT = R.ROOT
BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ------------------------------------------------------------------ fixtures

class Redis:
    """A throw-away redis-server on a free loopback port."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = R.free_port()
        self.proc = None

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (config/install-deps.sh installs it)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.tmp, "--logfile", os.path.join(self.tmp, f"redis-{self.port}.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.cmd("PING") == "+PONG":
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cmd(self, *args):
        """One command in RESP; returns the raw first reply line (bulk: the value)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            req = f"*{len(args)}\r\n".encode()
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                req += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(req)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            line, _, rest = data.partition(b"\r\n")
            if line.startswith(b"$"):
                n = int(line[1:])
                if n < 0:
                    return None
                while len(rest) < n + 2:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                return rest[:n].decode("utf-8", "replace")
            if line.startswith(b"*"):
                # array of bulk strings (KEYS): parse roughly
                items, buf = [], rest
                for _ in range(int(line[1:])):
                    while b"\r\n" not in buf:
                        buf += s.recv(65536)
                    hdr, _, buf = buf.partition(b"\r\n")
                    n = int(hdr[1:])
                    while len(buf) < n + 2:
                        buf += s.recv(65536)
                    items.append(buf[:n].decode())
                    buf = buf[n + 2:]
                return items
            return line.decode()


def write_config(name, cache_yaml, extra_rules=""):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    if extra_rules:
        head = head.replace("  rules:\n", "  rules:\n" + extra_rules, 1)
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(head + "\ncache:\n" + cache_yaml)
    return path


def daemon(config, tag):
    return E.new_daemon(tag=tag, config=config).start()


def post(d, body, headers=None, path="/v1/chat/completions"):
    return R.http_request(d.port, "POST", path, json.dumps(body).encode(), headers=headers)


def stop(d):
    ok, msg = d.stop()
    check(ok, f"{d.tag}: {msg}")


def sim_count():
    return E.sim_stats()["requests"]


def sse_datas(body):
    out = []
    for block in body.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                out.append(line[6:])
    return out


def sse_text(datas):
    text = ""
    for d in datas:
        if d == "[DONE]":
            continue
        j = json.loads(d)
        check("error" not in j, f"error event: {d}")
        for c in j.get("choices", []):
            text += (c.get("delta") or {}).get("content") or ""
    return text


def check_replay_invariants(datas):
    check(datas and datas[-1] == "[DONE]", f"stream does not end with [DONE]: {datas[-2:]}")
    ids = {json.loads(d)["id"] for d in datas[:-1]}
    eq(len(ids), 1, "one id across chunks")
    roles = [c["delta"].get("role") for d in datas[:-1] for c in json.loads(d)["choices"]]
    eq(roles.count("assistant"), 1, "role once")
    finals = [c["finish_reason"] for d in datas[:-1] for c in json.loads(d)["choices"] if c.get("finish_reason")]
    eq(finals, ["stop"], "one finish_reason")


# ------------------------------------------------------------------ memory backend

MEM = "  backend: memory\n  ttl_s: 60\n"


@test
def test_memory_miss_then_hit():
    d = daemon(write_config("mem.yaml", MEM), "cache-mem")
    try:
        body = chat_body("auto", "cache me please", temperature=0)
        n0 = sim_count()
        r1 = post(d, body)
        eq(r1.status, 200, "first status")
        eq(r1.h("x-cache"), "MISS", "first x-cache")
        r2 = post(d, body)
        eq(r2.status, 200, "second status")
        eq(r2.h("x-cache"), "HIT", "second x-cache")
        check(r2.h("age") is not None and int(r2.h("age")) >= 0, "Age on a hit")
        eq(r2.body, r1.body, "the hit returns the stored answer byte for byte")
        eq(sim_count() - n0, 1, "one upstream call for two requests")
        eq(r2.h("x-router-model"), "good-mini", "model that made the stored answer")
        eq(r2.h("x-router-attempts"), "0", "no upstream attempt on a hit")
        eq(float(r2.h("x-router-cost-usd")), 0.0, "a hit costs nothing")
        # "auto" and the routable name "gpt-4o" land on the same tier: same entry
        r3 = post(d, dict(body, model="gpt-4o"))
        eq(r3.h("x-cache"), "HIT", "same route, other client model name")
        # key order, whitespace and stream do not change the key
        raw = ('{ "temperature" : 0 ,\n "messages":[{"content":"cache me please","role":"user"}],'
               '  "model":"auto"}').encode()
        r4 = R.http_request(d.port, "POST", "/v1/chat/completions", raw)
        eq(r4.h("x-cache"), "HIT", "reordered keys and whitespace")
        r5 = post(d, dict(body, stream=True))
        eq(r5.h("x-cache"), "HIT", "stream: true hits the same entry")
        check((r5.h("content-type") or "").startswith("text/event-stream"), "replay is SSE")
        datas = sse_datas(r5.body)
        check_replay_invariants(datas)
        eq(sse_text(datas), r1.json["choices"][0]["message"]["content"], "replayed text")
        r6 = post(d, dict(body, stream=True, stream_options={"include_usage": True}))
        datas = sse_datas(r6.body)
        last = json.loads(datas[-2])
        check(last["choices"] == [] and last["usage"]["total_tokens"] > 0, f"usage chunk: {datas[-2]}")
        eq(sim_count() - n0, 1, "still one upstream call")
        stop(d)
    finally:
        d.kill()


@test
def test_memory_output_fields_split_entries():
    d = daemon(write_config("mem2.yaml", MEM), "cache-mem2")
    try:
        base = chat_body("auto", "split entries", temperature=0)
        post(d, base)
        eq(post(d, base).h("x-cache"), "HIT", "baseline hit")
        for what, variant in [("max_tokens", dict(base, max_tokens=5)), ("seed", dict(base, seed=7)),
                              ("stop", dict(base, stop=["x"])), ("unknown field", dict(base, x_vendor={"a": 1})),
                              ("tools", dict(base, tools=[{"type": "function", "function": {"name": "f"}}])),
                              ("response_format", dict(base, response_format={"type": "json_object"})),
                              ("another tier", dict(base, model="premium")),
                              ("message text", chat_body("auto", "split entries!", temperature=0))]:
            r = post(d, variant)
            eq(r.h("x-cache"), "MISS", f"{what} changes the key")
        stop(d)
    finally:
        d.kill()


@test
def test_memory_policy_and_client_control():
    d = daemon(write_config("mem3.yaml", MEM), "cache-mem3")
    try:
        hot = chat_body("auto", "not deterministic", temperature=0.7)
        eq(post(d, hot).h("x-cache"), "BYPASS", "temperature 0.7 is not cached")
        eq(post(d, hot).h("x-cache"), "BYPASS", "and never hits")
        eq(post(d, chat_body("auto", "two answers", n=2)).h("x-cache"), "BYPASS", "n=2 at temperature 1")
        two = chat_body("auto", "two greedy answers", n=2, temperature=0)
        eq(post(d, two).h("x-cache"), "MISS", "n=2 at temperature 0 is cached")
        eq(post(d, two).h("x-cache"), "HIT", "n=2 at temperature 0 hits")
        # OpenAI's default temperature is 1: no temperature is not deterministic
        absent = chat_body("auto", "no temperature given")
        eq(post(d, absent).h("x-cache"), "BYPASS", "temperature absent is not cached")
        eq(post(d, absent).h("x-cache"), "BYPASS", "temperature absent never hits")
        seeded = chat_body("auto", "seeded", seed=42)
        eq(post(d, seeded).h("x-cache"), "MISS", "a seed is deterministic")
        eq(post(d, seeded).h("x-cache"), "HIT", "a seeded request hits")
        greedy = chat_body("auto", "greedy", temperature=0)
        post(d, greedy)
        n0 = sim_count()
        eq(post(d, greedy, {"x-router-cache": "bypass"}).h("x-cache"), "BYPASS", "x-router-cache: bypass")
        eq(post(d, greedy, {"Cache-Control": "no-cache"}).h("x-cache"), "BYPASS", "Cache-Control: no-cache")
        eq(sim_count() - n0, 2, "bypassed requests go upstream")
        fresh = chat_body("auto", "refresh me", temperature=0)
        eq(post(d, fresh, {"x-router-cache": "refresh"}).h("x-cache"), "BYPASS", "refresh skips the lookup")
        eq(post(d, fresh).h("x-cache"), "HIT", "refresh stored the fresh answer")
        nostore = chat_body("auto", "do not store", temperature=0)
        post(d, nostore, {"x-router-cache": "bypass"})
        eq(post(d, nostore).h("x-cache"), "MISS", "bypass does not store")
        # errors and failovers: only complete successful answers are stored
        err = chat_body("f400", "client error", temperature=0)
        eq(post(d, err).status, 400, "upstream 400 passed through")
        n0 = sim_count()
        eq(post(d, err).status, 400, "still 400")
        check(sim_count() - n0 >= 1, "a 400 is never stored")
        stop(d)
    finally:
        d.kill()


@test
def test_memory_streams_stored_only_when_complete():
    d = daemon(write_config("mem4.yaml", MEM), "cache-mem4")
    try:
        body = chat_body("auto", "stream then plain", temperature=0, stream=True)
        r1 = post(d, body)
        eq(r1.h("x-cache"), "MISS", "streamed miss")
        streamed = sse_text(sse_datas(r1.body))
        r2 = post(d, dict(body, stream=False))
        eq(r2.h("x-cache"), "HIT", "the assembled stream was stored")
        eq(r2.json["choices"][0]["message"]["content"], streamed, "stored text = streamed text")
        eq(r2.json["object"], "chat.completion", "stored as a completion object")
        cut = chat_body("fcut", "cut me", temperature=0, stream=True)
        r3 = post(d, cut)
        check(b'"error"' in r3.body, "the cut stream ends with an error event")
        r4 = post(d, cut)
        eq(r4.h("x-cache"), "MISS", "a cut stream is never stored")
        stop(d)
    finally:
        d.kill()


@test
def test_memory_ttl_rule_and_embeddings():
    rules = ("    - name: short-lived\n      when: {keywords: [ephemeral]}\n      tier: standard\n"
             "      cache: {ttl_s: 1}\n"
             "    - name: never-cache\n      when: {keywords: [secretive]}\n      tier: standard\n"
             "      cache: false\n")
    d = daemon(write_config("mem5.yaml", MEM, rules), "cache-mem5")
    try:
        body = chat_body("auto", "an ephemeral answer", temperature=0)
        eq(post(d, body).h("x-cache"), "MISS", "ttl miss")
        eq(post(d, body).h("x-cache"), "HIT", "ttl hit")
        time.sleep(1.3)
        eq(post(d, body).h("x-cache"), "MISS", "expired after the rule's ttl_s")
        sec = chat_body("auto", "a secretive answer", temperature=0)
        post(d, sec)
        eq(post(d, sec).h("x-cache"), "BYPASS", "cache: false in the rule")
        emb = {"model": "embed-small", "input": ["cache", "me"], "encoding_format": "base64"}
        e1 = post(d, emb, path="/v1/embeddings")
        e2 = post(d, emb, path="/v1/embeddings")
        eq((e1.h("x-cache"), e2.h("x-cache")), ("MISS", "HIT"), "embeddings are cached")
        eq(e2.body, e1.body, "same vectors")
        stop(d)
    finally:
        d.kill()


@test
def test_memory_eviction_under_byte_bound():
    d = daemon(write_config("mem6.yaml", "  backend: memory\n  ttl_s: 600\n  max_bytes: 65536\n"), "cache-mem6")
    try:
        bodies = [chat_body("auto", f"entry number {i} " + "x" * 300, temperature=0) for i in range(400)]
        for b in bodies:
            eq(post(d, b).h("x-cache"), "MISS", "fill")
        # look up without storing (no-store), so checking does not evict
        look = {"Cache-Control": "no-store"}
        last = sum(post(d, b, look).h("x-cache") == "HIT" for b in bodies[-20:])
        hits = sum(post(d, b, look).h("x-cache") == "HIT" for b in bodies[:100])
        check(hits < 50, f"{hits} of the 100 oldest entries survived 400 inserts into 64 KiB")
        check(last >= 10, f"only {last} of the 20 newest entries were kept")
        rss = d.rss_kb()
        check(rss < 200 * 1024, f"RSS {rss} kB")
        stop(d)
    finally:
        d.kill()


@test
def test_memory_per_key_scope():
    d = daemon(write_config("mem7.yaml", MEM + "  per_key: true\n"), "cache-mem7")
    try:
        body = chat_body("auto", "tenant data", temperature=0)
        a = {"Authorization": "Bearer tenant-a"}
        b = {"Authorization": "Bearer tenant-b"}
        eq(post(d, body, a).h("x-cache"), "MISS", "tenant a miss")
        eq(post(d, body, a).h("x-cache"), "HIT", "tenant a hit")
        eq(post(d, body, b).h("x-cache"), "MISS", "tenant b never sees tenant a's answer")
        stop(d)
    finally:
        d.kill()


@test
def test_sdk_streamed_hit():
    """The official openai npm SDK parses a streamed cache hit."""
    d = daemon(write_config("mem8.yaml", MEM), "cache-sdk")
    try:
        env = dict(os.environ, LLMROUTER_URL=f"http://127.0.0.1:{d.port}/v1")
        sdk = os.path.join(ROOT, "tests", "sdk")
        if not os.path.exists(os.path.join(sdk, "node_modules", "openai")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=sdk, check=True,
                           stdout=subprocess.DEVNULL)
        p = subprocess.run(["node", "cache.test.mjs"], cwd=sdk, env=env, capture_output=True, text=True,
                           timeout=60)
        sys.stdout.write("".join("#   " + ln + "\n" for ln in p.stdout.splitlines()))
        eq(p.returncode, 0, f"SDK cache test ({p.stderr[-400:]})")
        stop(d)
    finally:
        d.kill()


# ------------------------------------------------------------------ redis backend

def redis_cache(redis, timeout_ms=50):
    return (f"  backend: redis\n  ttl_s: 60\n  redis_url: \"redis://127.0.0.1:{redis.port}/0\"\n"
            f"  redis_timeout_ms: {timeout_ms}\n  key_prefix: \"test:\"\n")


@test
def test_redis_hit_miss_ttl_and_format():
    rd = Redis(E.tmp).start()
    d = daemon(write_config("redis1.yaml", redis_cache(rd)), "cache-redis1")
    try:
        body = chat_body("auto", "through redis", temperature=0)
        eq(post(d, body).h("x-cache"), "MISS", "miss")
        time.sleep(0.1)  # the store is fire-and-forget
        r = post(d, body)
        eq(r.h("x-cache"), "HIT", "hit")
        keys = rd.cmd("KEYS", "test:*")
        eq(len(keys), 1, f"one key with the prefix: {keys}")
        ttl = int(rd.cmd("TTL", keys[0])[1:])
        check(0 < ttl <= 60, f"TTL {ttl}")
        value = rd.cmd("GET", keys[0])
        meta, _, stored = value.partition("\n")
        check(json.loads(meta)["model"] == "good-mini", f"metadata line: {meta}")
        compact = json.dumps(json.loads(stored), separators=(",", ":"), ensure_ascii=False)
        eq(len(stored), len(compact), "stored compact (no whitespace between tokens)")
        eq(json.loads(stored)["choices"][0]["message"]["content"], r.json["choices"][0]["message"]["content"],
           "stored answer")
        stop(d)
    finally:
        d.kill()
        rd.kill()


@test
def test_redis_two_daemons_share_entries():
    rd = Redis(E.tmp).start()
    cfg = write_config("redis2.yaml", redis_cache(rd))
    a = daemon(cfg, "cache-redis-a")
    b = daemon(cfg, "cache-redis-b")
    try:
        body = chat_body("auto", "shared between instances", temperature=0)
        eq(post(a, body).h("x-cache"), "MISS", "miss on A")
        time.sleep(0.1)
        eq(post(b, body).h("x-cache"), "HIT", "hit on B")
        stop(a)
        stop(b)
    finally:
        a.kill()
        b.kill()
        rd.kill()


@test
def test_redis_down_and_restarted():
    rd = Redis(E.tmp).start()
    d = daemon(write_config("redis3.yaml", redis_cache(rd)), "cache-redis3")
    try:
        warm = chat_body("auto", "before the crash", temperature=0)
        post(d, warm)
        time.sleep(0.1)
        eq(post(d, warm).h("x-cache"), "HIT", "hit before")
        rd.kill()
        worst = 0.0
        for i in range(20):
            r = post(d, chat_body("auto", f"while redis is down {i}", temperature=0))
            eq(r.status, 200, "no request fails because Redis is down")
            eq(r.h("x-cache"), "MISS", "a failed lookup is a miss")
            worst = max(worst, r.elapsed)
        check(worst < 1.0, f"slowest request while Redis was down: {worst:.3f} s")
        rd.start()  # same port
        deadline = time.monotonic() + 10
        state = None
        body = chat_body("auto", "after the restart", temperature=0)
        while time.monotonic() < deadline:
            post(d, body)
            time.sleep(0.2)
            state = post(d, body).h("x-cache")
            if state == "HIT":
                break
        eq(state, "HIT", "hits resume after Redis comes back")
        stop(d)
    finally:
        d.kill()
        rd.kill()


# ------------------------------------------------------------------ main

def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]))


if __name__ == "__main__":
    sys.exit(main())
