#!/usr/bin/env python3
"""Integration tests of load balancing across equivalent deployments (issue
16 part 4): a tier's chain entry `- any: [...]` through the real daemon and
the simulated provider (tests/sim/simprovider.py: `delay_ms=N` makes a
member slow, `status=503` makes it fail, `flaky=NAME` + POST /_sim/flaky
breaks it on demand).

    python3 tests/integration/test_lb.py [-k SUBSTRING]...

Covers: the weighted split over 2,000 requests is within 4 binomial
standard deviations of the weights; least_outstanding shifts traffic away
from a slow member under concurrency; latency prefers the fast member after
warm-up; a failing member fails over to another member before the next
chain entry, then its circuit opens and it gets no traffic; sticky: user
keeps each user on one member and moves only the users of a member that
became unhealthy; the explain output shows the group's order and pick;
llmrouter_group_picks_total; configuration errors with file:line:column.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Python 3 standard library only.
"""
import json
import math
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

TESTS = []
E = None
S = {}

WEIGHTS = {"w1": 1, "w2": 3, "w3": 6}


def test(fn):
    TESTS.append(fn)
    return fn


def config_text(access_log):
    t = "server:\n  threads: 2\n  log_level: info\n\n"
    t += ("providers:\n"
          "  a: {type: openai, base_url: \"${SIM_URL}/v1\"}\n"
          "  slow: {type: openai, base_url: \"${SIM_URL}/sim/delay_ms=250/v1\"}\n"
          "  p503: {type: openai, base_url: \"${SIM_URL}/sim/status=503/v1\"}\n")
    for i in (1, 2, 3):
        t += f"  fl{i}: {{type: openai, base_url: \"${{SIM_URL}}/sim/flaky=lb{i}/v1\"}}\n"
    t += "\nmodels:\n"
    for m in ("w1", "w2", "w3", "lo-fast", "lat-fast", "ok1", "ok2", "after"):
        t += f"  {m}: {{provider: a, model: sim-{m}}}\n"
    for m in ("lo-slow", "lat-slow"):
        t += f"  {m}: {{provider: slow, model: sim-{m}}}\n"
    t += "  bad: {provider: p503, model: sim-bad}\n"
    for i in (1, 2, 3):
        t += f"  s{i}: {{provider: fl{i}, model: sim-s{i}}}\n"
    t += "\ntiers:\n"
    t += ("  split:\n    - any: [" +
          ", ".join(f"{{model: {m}, weight: {w}}}" for m, w in WEIGHTS.items()) + "]\n")
    t += "  lo:\n    - any: [lo-fast, lo-slow]\n      strategy: least_outstanding\n"
    t += "  lat:\n    - any: [lat-fast, lat-slow]\n      strategy: latency\n"
    t += "  fo:\n    - any: [bad, ok1, ok2]\n    - after\n"
    t += "  sticky:\n    - any: [s1, s2, s3]\n      sticky: user\n"
    t += ("\nrouting:\n  default_tier: split\n"
          "  circuit: {failures: 3, cooldown_ms: 600000, max_cooldown_ms: 600000}\n")
    t += "\ncache:\n  backend: off\n"
    t += f"\nobservability:\n  access_log: \"{access_log}\"\n"
    return t


def setup():
    S["log"] = os.path.join(E.tmp, "lb-access.log")
    path = os.path.join(E.tmp, "lb.yaml")
    with open(path, "w") as f:
        f.write(config_text(S["log"]))
    S["path"] = path
    S["d"] = E.new_daemon(tag="lb", config=path).start()


def teardown():
    d = S.get("d")
    if d is not None:
        ok, msg = d.stop()
        if not ok:
            print(f"not ok - daemon stop: {msg}", flush=True)
        d.kill()


def post(body, headers=None, path="/v1/chat/completions"):
    return R.http_request(S["d"].port, "POST", path, json.dumps(body).encode(),
                          headers=headers or {})


def served(tier, n, threads=1, **extra):
    """Sends n requests for tier over `threads` connections; returns the
    count of answers per serving model (x-router-model)."""
    counts, lock, errors = {}, threading.Lock(), []
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def worker(k):
        for i in range(k):
            r = post(chat_body(tier, f"lb {i}", **extra))
            if r.status != 200:
                errors.append(f"{r.status} {R.short(r.body)}")
                return
            with lock:
                m = r.h("x-router-model")
                counts[m] = counts.get(m, 0) + 1

    ts = [threading.Thread(target=worker, args=(k,)) for k in per]
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    if errors:
        raise Fail(f"{tier}: {len(errors)} failed requests, first: {errors[0]}")
    return counts


def log_line(rid, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(S["log"]) as f:
                for ln in f:
                    j = json.loads(ln)
                    if j.get("request_id") == rid:
                        return j
        except OSError:
            pass
        time.sleep(0.05)
    raise Fail(f"no access log line for {rid}")


def metrics_text():
    r = R.http_request(S["d"].port, "GET", "/metrics")
    eq(r.status, 200, "metrics")
    return r.body.decode()


# ------------------------------------------------------------------ tests

@test
def test_weighted_split_within_4_sd():
    n = 2000
    counts = served("split", n, threads=4)
    total_w = sum(WEIGHTS.values())
    eq(sum(counts.values()), n, f"answers {counts}")
    for m, w in WEIGHTS.items():
        p = w / total_w
        sd = math.sqrt(n * p * (1 - p))
        got = counts.get(m, 0)
        check(abs(got - n * p) <= 4 * sd,
              f"{m}: {got} of {n}, expected {n * p:.0f} +- {4 * sd:.0f} (4 sd); all {counts}")
    text = metrics_text()
    for m in WEIGHTS:
        check(f'llmrouter_group_picks_total{{tier="split",model="{m}"}}' in text,
              f"no group picks series for {m}")


@test
def test_least_outstanding_shifts_away_from_slow_member():
    # 6 concurrent clients; the slow member (250 ms) holds its requests
    # longer, so it is rarely the one with the fewest outstanding
    counts = served("lo", 180, threads=6)
    slow = counts.get("lo-slow", 0)
    check(slow < 180 * 0.25, f"lo-slow got {slow} of 180 (weighted would give ~90): {counts}")
    check(slow > 0, f"lo-slow never picked (ties should reach it): {counts}")


@test
def test_latency_prefers_fast_member_after_warmup():
    served("lat", 4)  # warm-up: each member measured at least once
    counts = served("lat", 60)
    slow = counts.get("lat-slow", 0)
    check(slow <= 60 * 0.15, f"lat-slow got {slow} of 60 after warm-up: {counts}")


@test
def test_failing_member_fails_over_inside_group_then_circuit_opens():
    saw_inside = 0
    for i in range(40):
        r = post(chat_body("fo", f"fo {i}"))
        eq(r.status, 200, f"fo {i}: {R.short(r.body)}")
        check(r.h("x-router-model") in ("ok1", "ok2"),
              f"served by {r.h('x-router-model')}, not a healthy member")
        j = log_line(r.h("x-request-id"))
        fo = j.get("failovers") or []
        if fo:
            eq(fo[0]["from"], "bad", f"failover from {fo}")
            check(fo[0]["to"] in ("ok1", "ok2"), f"failed over out of the group first: {fo}")
            saw_inside += 1
    check(1 <= saw_inside <= 3, f"bad was tried {saw_inside} times (3 failures open it)")
    E.sim_reset()
    for i in range(30):
        r = post(chat_body("fo", f"open {i}"))
        eq(r.status, 200, f"open {i}: {R.short(r.body)}")
        check(r.h("x-router-model") in ("ok1", "ok2"), f"served by {r.h('x-router-model')}")
        # the open member is out of the choice: not even a skip is recorded
        eq(r.h("x-router-attempts"), "1", f"open {i}: attempts")
    bad_calls = [x for x in E.sim_requests()
                 if isinstance(x.get("body"), dict) and x["body"].get("model") == "sim-bad"]
    eq(len(bad_calls), 0, "requests to the open member")


def user_member(users):
    out = {}
    for u in users:
        r = post(chat_body("sticky", "hi", user=u))
        eq(r.status, 200, f"user {u}: {R.short(r.body)}")
        out[u] = r.h("x-router-model")
    return out


@test
def test_sticky_user_stays_and_moves_only_when_unhealthy():
    users = [f"user-{i}" for i in range(30)]
    first = user_member(users)
    for _ in range(2):
        eq(user_member(users), first, "members per user on a second pass")
    used = set(first.values())
    check(len(used) >= 2, f"30 users all on {used}")
    # break the member of user-0
    broken = first["user-0"]
    sw = "lb" + broken[1:]
    E.sim("POST", f"/_sim/flaky?name={sw}&status=503")
    try:
        for _ in range(4):  # the failures that open its circuit
            user_member(["user-0"])
        now = user_member(users)
    finally:
        E.sim("POST", f"/_sim/flaky?name={sw}&status=0")
    for u in users:
        if first[u] == broken:
            check(now[u] != broken, f"{u} still on the broken {broken}")
        else:
            eq(now[u], first[u], f"{u} (not on {broken}) moved")
    # each moved user moved to one member, the same on every request
    moved = [u for u in users if first[u] == broken]
    eq(user_member(moved), {u: now[u] for u in moved}, "moved users stay put")


@test
def test_explain_shows_the_group_choice():
    r = post(chat_body("split", "explain me"), path="/v1/router/explain")
    eq(r.status, 200, f"explain {R.short(r.body)}")
    d = r.json.get("decision", {})
    g = d.get("groups")
    check(isinstance(g, list) and len(g) == 1, f"groups in {d}")
    g = g[0]
    eq(g.get("strategy"), "weighted", "strategy")
    eq(sorted(g.get("order", [])), sorted(WEIGHTS), "order lists the members")
    eq(g.get("picked"), g["order"][0], "picked is the first")
    eq(d["chain"][0]["model"], g["picked"], "the chain starts with the pick")


# file lines: 7 "tiers:", 8 "  t:", 9 the group entry, 10 the next line
BAD = [
    ("unknown member", "    - any: [m1, nope]\n", 9, "no model named \"nope\""),
    ("one member", "    - any: [m1]\n", 9, "a group needs at least 2 models"),
    ("weight 0", "    - any: [{model: m1, weight: 0}, m2]\n", 9, "weight"),
    ("strategy", "    - any: [m1, m2]\n      strategy: fastest\n", 10,
     "expected weighted, least_outstanding or latency"),
    ("sticky", "    - any: [m1, m2]\n      sticky: cookie\n", 10,
     "expected key, user or header:NAME"),
    ("no any", "    - {strategy: latency}\n", 9, "give \"any\""),
    ("two groups", "    - any: [m1, m2]\n    - any: [m2, m3]\n", 10, "listed twice"),
    ("cascade", "    cascade: true\n    models:\n      - any: [m1, m2]\n      - m3\n", 9,
     "not cascades"),
]


@test
def test_config_errors_have_positions():
    for what, tier, line, msg in BAD:
        path = os.path.join(E.tmp, "bad-lb.yaml")
        with open(path, "w") as f:
            f.write("providers:\n  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
                    "models:\n  m1: {provider: p}\n  m2: {provider: p}\n  m3: {provider: p}\n"
                    "tiers:\n  t:\n" + tier + "routing: {default_tier: t}\n")
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True,
                             text=True, timeout=20)
        check(out.returncode != 0, f"{what}: accepted")
        want = f"{path}:{line}:"
        check(want in out.stderr and msg in out.stderr,
              f"{what}: expected {want}COL and {msg!r} in {out.stderr!r}")


@test
def test_good_config_checks():
    path = os.path.join(E.tmp, "good-lb.yaml")
    with open(path, "w") as f:
        f.write("providers:\n  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
                "models:\n  m1: {provider: p}\n  m2: {provider: p}\n  m3: {provider: p}\n"
                "tiers:\n  t:\n    - any: [{model: m1, weight: 2}, m2]\n"
                "      strategy: least_outstanding\n      sticky: header:X-Session\n"
                "    - m3\n"
                "routing: {default_tier: t}\n")
    out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True,
                         text=True, timeout=20)
    eq(out.returncode, 0, f"check-config: {out.stderr}")


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],), setup=setup,
                         teardown=teardown))
