#!/usr/bin/env python3
"""Redis faults under load: the daemon (cache backend redis and budgets in
Redis, with a proxy key that has limits, so every request does a budget
check and a cache lookup in Redis) keeps answering while its redis-server —
a real one, started here on a free loopback port — is frozen (SIGSTOP),
thawed (SIGCONT), killed and restarted, under a few concurrent client
threads.

    python3 tests/integration/test_redis_faults.py [-k SUBSTRING]... [-v] [--keep-logs]
    LLMROUTER_BIN=build/asan/llmrouter python3 tests/integration/test_redis_faults.py

Asserts: no request fails; a request never waits much longer than
redis.request_budget_ms for Redis (the per-command timeouts are set far
above it, so a daemon that waits for the budget check and then for the
cache lookup, each up to its own timeout, fails); after a few timeouts the
client cools down (llmrouter_redis_cooldowns_total, llmrouter_redis_state,
/readyz's body) and stops reconnecting in a loop (connect attempts counted
in /metrics stay low; no connection counts as up while Redis is frozen);
hits resume after a thaw and after a restart. Prints the p50/p99 latency of
the healthy and the frozen phases as "# ..." lines.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None

PROXY_KEY = "sk-redis-faults-load-key-1"
ADMIN_KEY = "sk-redis-faults-admin-2"
REQUEST_BUDGET_MS = 100   # redis.request_budget_ms
COMMAND_TIMEOUT_MS = 400  # cache.redis_timeout_ms and budgets.redis_timeout_ms
THREADS = 3               # client threads of the load loop


def test(fn):
    TESTS.append(fn)
    return fn


class Redis:
    """A throw-away redis-server on a free loopback port that can be
    frozen, thawed, killed and restarted on the same port."""

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
                if self.ping():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def ping(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process dies as well, but say it
            self.proc.kill()
            self.proc.wait()


def config(rd, name):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    url = f"redis://127.0.0.1:{rd.port}/0"
    text = (head + "\ncache:\n"
            "  backend: redis\n  ttl_s: 300\n"
            f"  redis_url: \"{url}\"\n  redis_timeout_ms: {COMMAND_TIMEOUT_MS}\n"
            "  key_prefix: \"rf:cache:\"\n"
            "\nbudgets:\n"
            f"  redis_url: \"{url}\"\n  redis_timeout_ms: {COMMAND_TIMEOUT_MS}\n"
            "  key_prefix: \"rf:budget:\"\n"
            "\nredis:\n"
            f"  request_budget_ms: {REQUEST_BUDGET_MS}\n"
            "  cooldown_after_timeouts: 3\n  cooldown_ms: 2000\n  reconnect_max_ms: 5000\n"
            "\nkeys:\n"
            "  load: {key_env: TEST_RF_KEY, rpm: 1000000, daily_usd: 1000}\n"
            "\nobservability:\n  admin_key_env: TEST_RF_ADMIN\n  access_log: \"off\"\n")
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def auth():
    return {"Authorization": f"Bearer {PROXY_KEY}"}


def post(d, body, timeout=20):
    return R.http_request(d.port, "POST", "/v1/chat/completions", json.dumps(body).encode(),
                          headers=auth(), timeout=timeout)


def metrics(d):
    r = R.http_request(d.port, "GET", "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    eq(r.status, 200, "/metrics")
    out = {}
    for ln in r.body.decode().splitlines():
        if ln.startswith("#") or not ln.strip():
            continue
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", ln)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def mval(m, name, client):
    return m.get(f'{name}{{client="{client}"}}', 0.0)


def readyz_redis(d):
    r = R.http_request(d.port, "GET", "/readyz")
    eq(r.status, 200, "/readyz status (Redis does not change it)")
    return r.json.get("redis", {})


class Load:
    """THREADS client threads posting chat requests until stop(). unique:
    every prompt is new (always a cache miss, so that the phases compare
    the same work); else a few prompts repeat (hits when Redis works)."""

    def __init__(self, d, tag, unique=True):
        self.d, self.tag, self.unique = d, tag, unique
        self.results = []  # (elapsed s, status, x-cache, error)
        self.lock = threading.Lock()
        self.stop_flag = False
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(THREADS)]

    def run(self, i):
        n = 0
        while not self.stop_flag:
            n += 1
            content = f"{self.tag} t{i} n{n}" if self.unique else f"{self.tag} repeat {n % 4}"
            t0 = time.monotonic()
            try:
                r = post(self.d, chat_body("auto", content, temperature=0), timeout=15)
                res = (time.monotonic() - t0, r.status, r.h("x-cache"), None)
            except OSError as e:
                res = (time.monotonic() - t0, 0, None, repr(e))
            with self.lock:
                self.results.append(res)
            time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag = True
        for t in self.threads:
            t.join(20)
        return False

    def failures(self):
        return [r for r in self.results if r[1] != 200]

    def pct(self, p):
        xs = sorted(r[0] for r in self.results)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def no_failures(load, what):
    check(len(load.results) > 20, f"{what}: only {len(load.results)} requests were made")
    bad = load.failures()
    check(not bad, f"{what}: {len(bad)} of {len(load.results)} requests failed, e.g. {bad[:3]}")


def wait_hits(d, tag, timeout=15):
    """Hits resume: the same deterministic request, twice, until the second
    is a HIT."""
    body = chat_body("auto", f"{tag} hits resume", temperature=0)
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        eq(post(d, body).status, 200, "request while waiting for hits")
        time.sleep(0.1)  # the store is fire-and-forget
        state = post(d, body).h("x-cache")
        if state == "HIT":
            return time.monotonic() - (deadline - timeout)
        time.sleep(0.2)
    raise Fail(f"{tag}: no cache hit within {timeout} s (last x-cache {state})")


STATE = {}


def setup():
    os.environ["TEST_RF_KEY"] = PROXY_KEY
    os.environ["TEST_RF_ADMIN"] = ADMIN_KEY
    STATE["redis"] = Redis(E.tmp).start()
    STATE["d"] = E.new_daemon(tag="redis-faults", config=config(STATE["redis"], "rf.yaml")).start()


def teardown():
    d, rd = STATE.get("d"), STATE.get("redis")
    if d is not None:
        d.kill()
    if rd is not None:
        rd.kill()


@test
def test_healthy_baseline():
    d = STATE["d"]
    wait_hits(d, "baseline", timeout=10)
    with Load(d, "healthy") as load:
        time.sleep(3)
    no_failures(load, "healthy")
    STATE["healthy"] = (load.pct(50), load.pct(99), len(load.results))
    print(f"# healthy Redis: {len(load.results)} requests, p50 {load.pct(50) * 1000:.1f} ms, "
          f"p99 {load.pct(99) * 1000:.1f} ms, max {load.pct(100) * 1000:.1f} ms", flush=True)
    st = readyz_redis(d)
    eq(st.get("cache"), "up", "/readyz redis.cache")
    eq(st.get("budgets"), "up", "/readyz redis.budgets")


@test
def test_frozen_under_load():
    d, rd = STATE["d"], STATE["redis"]
    m0 = metrics(d)
    rd.freeze()
    try:
        with Load(d, "frozen") as load:
            time.sleep(6)
        m1 = metrics(d)
        seen = readyz_redis(d)
    finally:
        rd.thaw()
    no_failures(load, "Redis frozen")
    worst = load.pct(100)
    print(f"# frozen Redis: {len(load.results)} requests, p50 {load.pct(50) * 1000:.1f} ms, "
          f"p99 {load.pct(99) * 1000:.1f} ms, max {worst * 1000:.1f} ms "
          f"(request_budget_ms {REQUEST_BUDGET_MS}, per-command timeouts {COMMAND_TIMEOUT_MS})",
          flush=True)
    if "healthy" in STATE:
        h50, h99, _ = STATE["healthy"]
        print(f"# added by the frozen Redis: p50 {(load.pct(50) - h50) * 1000:+.1f} ms, "
              f"p99 {(load.pct(99) - h99) * 1000:+.1f} ms", flush=True)
    # One budget for both lookups: well under budget check + cache lookup at
    # their own timeouts (2 x 400 ms). Generous for a loaded 2-core machine.
    check(worst < 0.6, f"slowest request while Redis was frozen: {worst:.3f} s "
                       f"(expected about {REQUEST_BUDGET_MS} ms of Redis wait at most)")
    for client in ("cache", "budgets"):
        cool = mval(m1, "llmrouter_redis_cooldowns_total", client) - \
            mval(m0, "llmrouter_redis_cooldowns_total", client)
        check(cool >= 1, f"{client}: no cooldown started while Redis was frozen")
        ups = mval(m1, "llmrouter_redis_reconnects_total", client) - \
            mval(m0, "llmrouter_redis_reconnects_total", client)
        eq(ups, 0, f"{client}: connections counted as up while Redis was frozen")
        tries = mval(m1, "llmrouter_redis_connect_attempts_total", client) - \
            mval(m0, "llmrouter_redis_connect_attempts_total", client)
        # 2 threads, a 2 s cooldown, then 100 ms doubling: a handful each
        check(tries <= 20, f"{client}: {tries:.0f} connect attempts in 6 s while frozen")
        check(mval(m1, "llmrouter_redis_timeouts_total", client) >
              mval(m0, "llmrouter_redis_timeouts_total", client), f"{client}: no timeout counted")
        up_now = m1.get(f'llmrouter_redis_state{{client="{client}",state="up"}}', -1)
        eq(up_now, 0, f"{client}: threads whose client is up while Redis is frozen")
        check(seen.get(client) in ("cooling", "down"),
              f"/readyz redis.{client} while frozen: {seen.get(client)!r}")
    # after the first few, requests did not wait at all
    fast = sum(1 for r in load.results if r[0] < REQUEST_BUDGET_MS / 1000)
    check(fast >= len(load.results) * 0.8,
          f"only {fast} of {len(load.results)} requests took less than {REQUEST_BUDGET_MS} ms")


@test
def test_hits_resume_after_thaw():
    d = STATE["d"]
    took = wait_hits(d, "thawed", timeout=15)
    print(f"# hits resumed {took:.1f} s after the thaw", flush=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and readyz_redis(d) != {"cache": "up", "budgets": "up"}:
        time.sleep(0.2)
    eq(readyz_redis(d), {"cache": "up", "budgets": "up"}, "/readyz redis after the thaw")


@test
def test_killed_and_restarted_under_load():
    d, rd = STATE["d"], STATE["redis"]
    with Load(d, "killed", unique=False) as load:
        time.sleep(1)
        rd.kill()
        time.sleep(4)
        rd.start()  # same port
        time.sleep(1)
    no_failures(load, "Redis killed and restarted")
    worst = load.pct(100)
    check(worst < 0.6, f"slowest request around the kill: {worst:.3f} s")
    took = wait_hits(d, "restarted", timeout=15)
    print(f"# hits resumed {took:.1f} s after the restart was complete", flush=True)


@test
def test_clean_shutdown():
    """Runs last, whatever -k says: the daemon is alive and exits 0 on
    SIGTERM (under ASan: no leak, no error)."""
    d = STATE["d"]
    check(d.alive(), f"daemon died\n{d.stderr_tail()}")
    ok, msg = d.stop()
    text = d.stderr_text()
    check(ok, f"{msg}\n{d.stderr_tail()}")
    check("AddressSanitizer" not in text and "runtime error" not in text,
          f"sanitizer report:\n{d.stderr_tail()}")


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), setup=setup, teardown=teardown,
                       always=("clean_shutdown",))


if __name__ == "__main__":
    sys.exit(main())
