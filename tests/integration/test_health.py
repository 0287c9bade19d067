#!/usr/bin/env python3
"""Integration tests of circuit breaking, cooldowns and concurrency limits
(issue 14, task C): the real daemon over real sockets and the simulated
provider (its "circuit breaking and concurrency limits" block: requests per
model, peak concurrency, flaky switches).

    python3 tests/integration/test_health.py [-k SUBSTRING]... [-v]

Covers:
- a first model that always answers 503 is tried by the first 5 requests
  (the default threshold) and skipped by the rest, which its
  x-router-skipped / x-router-attempts, /metrics, /readyz, the stats and
  the access log show (streams too);
- after the cooldown one probe goes through: success closes the circuit,
  failure opens it again for twice as long;
- a 429 cools its model down for its Retry-After (1 s without one) without
  counting as a breaker failure;
- a chain whose models all cool down still tries the one whose cooldown
  ends first (and /readyz answers 503 naming it); a reload keeps the state;
- max_inflight 2 over 10 concurrent slow requests: never more than 2 at the
  provider, everyone answered (a slot freed on one shard wakes the other);
  a queue timeout fails over, or answers 503 with Retry-After in the door's
  shape when no model is left; a full queue fails over at once; a client
  that leaves while queued leaves the queue and no slot leaks.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import re
import signal
import socket
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
S = {}

EXTRA_PROVIDERS = """\
  hflaky:   {type: openai, base_url: "${SIM_URL}/sim/flaky=f1/v1"}
  h429:     {type: openai, base_url: "${SIM_URL}/sim/status=429,retry_after=5/v1"}
  hslow:    {type: openai, base_url: "${SIM_URL}/sim/delay_ms=600/v1", max_inflight: 2, max_queue: 20, queue_timeout_ms: 10000}
  hq:       {type: openai, base_url: "${SIM_URL}/sim/delay_ms=3000/v1", max_inflight: 1, max_queue: 5, queue_timeout_ms: 300}
  hnoq:     {type: openai, base_url: "${SIM_URL}/sim/delay_ms=3000/v1", max_inflight: 1, max_queue: 0}
  hlong:    {type: openai, base_url: "${SIM_URL}/sim/delay_ms=5000/v1", max_inflight: 1, queue_timeout_ms: 20000}
"""
EXTRA_MODELS = """\
  c503:     {provider: p503, model: sim-c503}
  cflaky:   {provider: hflaky, model: sim-flaky, circuit: {failures: 2, cooldown_ms: 1000, window_ms: 60000}}
  c429:     {provider: h429, model: sim-c429}
  c429none: {provider: good, model: sim-429-none}
  call1:    {provider: p500, model: sim-all1, circuit: {failures: 1, cooldown_ms: 60000, max_cooldown_ms: 600000}}
  call2:    {provider: p503, model: sim-all2, circuit: {failures: 1, cooldown_ms: 60000, max_cooldown_ms: 600000}}
  cslow:    {provider: hslow, model: sim-cslow}
  cq:       {provider: hq, model: sim-cq}
  cnoq:     {provider: hnoq, model: sim-cnoq}
  clong:    {provider: hlong, model: sim-clong}
"""
EXTRA_TIERS = """\
  h503:     [c503, good-mini]
  hflaky:   [cflaky, good-mini]
  h429:     [c429, good-mini]
  h429none: [c429none, good-mini]
  hall:     [call1, call2]
  hslow:    [cslow]
  hq:       [cq, good-mini]
  hqonly:   [cq]
  hnoq:     [cnoq]
  hlong:    [clong]
"""


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(extra_comment=""):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    head = head.replace("\nproviders:\n", "\nproviders:\n" + EXTRA_PROVIDERS, 1)
    head = head.replace("\nmodels:\n", "\nmodels:\n" + EXTRA_MODELS, 1)
    head = head.replace("\ntiers:\n", "\ntiers:\n" + EXTRA_TIERS, 1)
    out = head + "\ncache:\n  backend: off\n"
    out += f"\nobservability:\n  access_log: \"{S['access_log']}\"\n"
    out += extra_comment
    path = os.path.join(E.tmp, "health.yaml")
    with open(path, "w") as f:
        f.write(out)
    return path


def setup():
    S["access_log"] = os.path.join(E.tmp, "access.log")
    S["d"] = E.new_daemon(tag="health", config=write_config()).start()


def teardown():
    d = S.get("d")
    if d is not None:
        d.kill()


def post(body, path="/v1/chat/completions", headers=None, timeout=30):
    return R.http_request(S["d"].port, "POST", path, json.dumps(body).encode(),
                          headers=headers, timeout=timeout)


def get(path):
    return R.http_request(S["d"].port, "GET", path)


def sim_count(model):
    return E.sim_stats().get("by_model", {}).get(model, 0)


def metric(name, **labels):
    text = get("/metrics").body.decode()
    found = None
    for ln in text.splitlines():
        if not ln.startswith(name + "{") and not ln.startswith(name + " "):
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', ln.split("}", 1)[0])) if "{" in ln else {}
        if all(lab.get(k) == v for k, v in labels.items()):
            found = (found or 0.0) + float(ln.rsplit(" ", 1)[1])
    if found is None:
        raise Fail(f"no {name}{labels} in /metrics")
    return found


def health_of(model):
    j = get("/v1/router/stats").json
    check("health" in j, f"no health in the stats: {list(j)}")
    for m in j["health"]["models"]:
        if m["model"] == model:
            return m
    raise Fail(f"{model} not in the stats' health.models")


def provider_of(name):
    for p in get("/v1/router/stats").json["health"]["providers"]:
        if p["provider"] == name:
            return p
    raise Fail(f"{name} not in the stats' health.providers")


def access_entry(rid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(S["access_log"]):
            with open(S["access_log"], encoding="utf-8") as f:
                for ln in f:
                    try:
                        j = json.loads(ln)
                    except ValueError:
                        continue
                    if j.get("request_id") == rid:
                        return j
        if time.monotonic() > deadline:
            raise Fail(f"no access log line for {rid}")
        time.sleep(0.05)


def flaky(name, status):
    r = E.sim("POST", f"/_sim/flaky?name={name}&status={status}")
    eq(r.status, 200, "/_sim/flaky")


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------ the breaker

@test
def test_always_503_is_skipped_after_the_threshold():
    E.sim_reset()
    n = 40
    skipped_headers = []
    for i in range(n):
        r = post(chat_body("h503", f"breaker {i}"), headers={"x-request-id": f"h503-{i}"})
        eq(r.status, 200, f"request {i} status ({R.short(r.body)})")
        R.check_routed(r, model="good-mini", attempts=2, what=f"request {i}: ")
        if r.h("x-router-skipped"):
            skipped_headers.append(r.h("x-router-skipped"))
    tried = sim_count("sim-c503")
    S["h503_measure"] = (n, tried)
    print(f"#   {n} requests to a chain whose first model always answers 503: "
          f"{tried} reached it, {n - tried} skipped it", flush=True)
    eq(tried, 5, "requests that reached the always-503 model (default failures: 5)")
    eq(len(skipped_headers), n - 5, "answers with x-router-skipped")
    check(re.fullmatch(r"c503 \(cooling down \(\d+ s left\)\)", skipped_headers[-1]),
          f"x-router-skipped: {skipped_headers[-1]!r}")
    # the skip in the access log: a failover with reason cooling_down
    e = access_entry(f"h503-{n - 1}")
    eq(e.get("attempts"), 2, "access log attempts")
    eq([f.get("reason") for f in e.get("failovers", [])], ["cooling_down"], "access log failovers")
    e = access_entry("h503-0")
    eq([f.get("reason") for f in e.get("failovers", [])], ["status_5xx"], "first request's failover")
    # a stream skips it too
    s = R.RawHTTP(S["d"].port, "POST", "/v1/chat/completions",
                  chat_body("h503", "breaker stream", stream=True),
                  headers={"Content-Type": "application/json"}).read_head()
    try:
        eq(s.status, 200, "stream status")
        check((s.h("x-router-skipped") or "").startswith("c503 (cooling down"),
              f"stream x-router-skipped {s.h('x-router-skipped')!r}")
        datas, _ = R.read_stream(s)
    finally:
        s.close()
    eq(datas[-1], "[DONE]", "stream end")
    eq(sim_count("sim-c503"), 5, "the stream did not reach it")


@test
def test_breaker_in_metrics_stats_and_readyz():
    eq(metric("llmrouter_circuit_state", model="c503"), 1.0, "state gauge (open)")
    eq(metric("llmrouter_circuit_state", model="good-mini"), 0.0, "state gauge (closed)")
    check(metric("llmrouter_circuit_cooldown_seconds", model="c503") > 0, "cooldown gauge")
    eq(metric("llmrouter_circuit_trips_total", model="c503"), 1.0, "trips")
    check(metric("llmrouter_circuit_skips_total", model="c503") >= 36, "skips")
    check(metric("llmrouter_failovers_total", reason="cooling_down") >= 36,
          "failovers with reason cooling_down")
    h = health_of("c503")
    eq(h["state"], "open", "stats state")
    eq(h["cooling"], True, "stats cooling")
    eq(h["trips"], 1, "stats trips")
    eq(h["last_failure"], "status_5xx", "stats last_failure")
    check(0 < h["cooldown_left_s"] <= 30, f"cooldown_left_s {h['cooldown_left_s']}")
    r = get("/readyz")
    eq(r.status, 200, "readyz: tier h503 still has good-mini")
    cool = {c["model"]: c for c in r.json.get("cooling_down", [])}
    check("c503" in cool, f"readyz cooling_down: {r.json.get('cooling_down')}")
    eq(cool["c503"]["reason"], "circuit", "readyz reason")
    check(cool["c503"]["seconds_left"] >= 1, "readyz seconds_left")
    check(GOOD_KEY_ABSENT(r.body), "no key in /readyz")
    # the dashboard has its tables
    page = get("/dashboard").body.decode()
    check('id="health"' in page and 'id="providers"' in page, "dashboard tables")


def GOOD_KEY_ABSENT(body):
    return R.GOOD_KEY.encode() not in body


@test
def test_half_open_probe_closes_or_reopens_longer():
    E.sim_reset()
    flaky("f1", 503)
    for i in range(2):  # failures: 2
        r = post(chat_body("hflaky", f"flaky {i}"))
        R.check_routed(r, model="good-mini", attempts=2, what=f"flaky {i}: ")
    eq(sim_count("sim-flaky"), 2, "both reached it")
    r = post(chat_body("hflaky", "flaky skipped"))
    check((r.h("x-router-skipped") or "").startswith("cflaky (cooling down"), "skipped while open")
    eq(sim_count("sim-flaky"), 2, "the open circuit kept it away")
    eq(health_of("cflaky")["cooldown_s"], 1.0, "first open period")
    # the cooldown (1 s) passes; the provider is well again: one probe closes it
    flaky("f1", 0)
    wait_for(lambda: health_of("cflaky")["state"] == "half_open", "half-open", timeout=10)
    r = post(chat_body("hflaky", "probe"))
    R.check_routed(r, model="cflaky", attempts=1, what="probe: ")
    eq(health_of("cflaky")["state"], "closed", "closed after the probe")
    eq(health_of("cflaky")["probes"], 1, "one probe")
    r = post(chat_body("hflaky", "closed again"))
    R.check_routed(r, model="cflaky", attempts=1, what="after close: ")
    # it fails again soon after: open for twice as long; a failed probe doubles again
    flaky("f1", 503)
    for i in range(2):
        post(chat_body("hflaky", f"again {i}"))
    h = health_of("cflaky")
    eq(h["state"], "open", "open again")
    eq(h["cooldown_s"], 2.0, "a trip soon after the close waits twice as long")
    wait_for(lambda: health_of("cflaky")["state"] == "half_open", "half-open again", timeout=15)
    before = sim_count("sim-flaky")
    r = post(chat_body("hflaky", "failed probe"))
    R.check_routed(r, model="good-mini", attempts=2, what="failed probe: ")
    eq(sim_count("sim-flaky"), before + 1, "the probe reached it")
    h = health_of("cflaky")
    eq(h["state"], "open", "a failed probe opens it")
    eq(h["cooldown_s"], 4.0, "and doubles the cooldown")
    eq(h["trips"], 3, "trips")
    flaky("f1", 0)


@test
def test_429_cools_down_for_its_retry_after():
    E.sim_reset()
    r = post(chat_body("h429", "rate limited"))
    R.check_routed(r, model="good-mini", attempts=2, what="first: ")
    eq(sim_count("sim-c429"), 1, "the first request reached it")
    t_429 = time.monotonic()
    r = post(chat_body("h429", "rate limited again"))
    R.check_routed(r, model="good-mini", attempts=2, what="second: ")
    sk = r.h("x-router-skipped") or ""
    check(re.fullmatch(r"c429 \(cooling down after a 429 \([1-5] s left\)\)", sk),
          f"x-router-skipped {sk!r}")
    eq(sim_count("sim-c429"), 1, "the second request skipped it")
    h = health_of("c429")
    eq(h["state"], "closed", "a 429 is no breaker failure")
    eq(h["consecutive_failures"], 0, "no failure counted")
    eq(h["trips"], 0, "no trip")
    check(0 < h["rate_limited_left_s"] <= 5, f"rate_limited_left_s {h['rate_limited_left_s']}")
    # Retry-After: 5: tried again once it passed
    time.sleep(max(0.0, t_429 + 5.3 - time.monotonic()))
    post(chat_body("h429", "after the cooldown"))
    eq(sim_count("sim-c429"), 2, "tried again after Retry-After")
    # no retry-after: one second
    r = post(chat_body("h429none", "no retry header"))
    R.check_routed(r, model="good-mini", attempts=2, what="429 without retry-after: ")
    r = post(chat_body("h429none", "no retry header again"))
    eq(r.h("x-router-skipped"), "c429none (cooling down after a 429 (1 s left))",
       "a 429 without retry headers cools down for 1 s")


@test
def test_chain_all_cooling_still_tries_the_soonest():
    E.sim_reset()
    r = post(chat_body("hall", "all bad"))
    R.check_error(r, 502, "all_upstreams_failed")
    eq((sim_count("sim-all1"), sim_count("sim-all2")), (1, 1), "first request tried both")
    # both open now (failures: 1): not failed on breaker state alone — the
    # one whose cooldown ends first (call1, opened first) is tried anyway
    r = post(chat_body("hall", "all cooling"))
    R.check_error(r, 502, "all_upstreams_failed")
    eq(r.h("x-router-attempts"), "3", "two skips and the last resort")
    att = r.json["error"]["attempts"]
    eq([a["model"] for a in att], ["call1", "call2", "call1"], "attempts")
    check(att[0]["error"].startswith("skipped: cooling down") and att[2]["status"] == 500,
          f"attempts {att}")
    eq((sim_count("sim-all1"), sim_count("sim-all2")), (2, 1), "call1 tried as the last resort")
    # its failed probe doubled its cooldown: now call2's ends first
    r = post(chat_body("hall", "all cooling again", stream=True))
    R.check_error(r, 502, "all_upstreams_failed")
    eq((sim_count("sim-all1"), sim_count("sim-all2")), (2, 2), "then call2")
    eq(health_of("call1")["cooldown_s"], 120.0, "call1's cooldown after its failed probe")
    # /readyz: tier hall has no model that is not cooling down
    r = get("/readyz")
    eq(r.status, 503, f"readyz ({R.short(r.body)})")
    eq(r.json["status"], "not_ready", "readyz status")
    eq(r.json["error"]["code"], "cooling_down", "readyz error code")
    check("tier hall" in r.json["error"]["message"], f"readyz message {r.json['error']['message']!r}")
    tiers = {t["name"]: t for t in r.json["tiers"]}
    eq(tiers["hall"]["ready"], False, "tier hall not ready")
    eq(tiers["h503"]["ready"], True, "tier h503 still ready")


@test
def test_reload_keeps_the_state():
    trips = metric("llmrouter_circuit_trips_total", model="call1")
    gen = metric("llmrouter_config_generation")
    write_config("# reloaded\n")
    S["d"].proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metric("llmrouter_config_generation") > gen, "the reload")
    eq(metric("llmrouter_circuit_trips_total", model="call1"), trips, "trips after the reload")
    eq(health_of("call1")["state"], "open", "still open after the reload")
    eq(get("/readyz").status, 503, "still not ready after the reload")
    before = sim_count("sim-c503")
    r = post(chat_body("h503", "after reload"))
    check((r.h("x-router-skipped") or "").startswith("c503 (cooling down"), "still skipped")
    eq(sim_count("sim-c503"), before, "the reload did not reset the breaker")


# ------------------------------------------------------------ max_inflight

@test
def test_max_inflight_bounds_concurrency_across_shards():
    E.sim_reset()
    results, samples = [], []
    done = threading.Event()

    def one(i):
        try:
            r = post(chat_body("hslow", f"slow {i}"), timeout=60)
            results.append((r.status, r.h("x-router-model")))
        except Exception as e:  # noqa: BLE001
            results.append((repr(e), None))

    def sample():
        while not done.is_set():
            try:
                samples.append((metric("llmrouter_provider_inflight", provider="hslow"),
                                metric("llmrouter_provider_queued", provider="hslow")))
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.05)

    sm = threading.Thread(target=sample)
    sm.start()
    t0 = time.monotonic()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    done.set()
    sm.join()
    eq(sorted(results), [(200, "cslow")] * 10, "every request answered by cslow")
    st = E.sim_stats()
    eq(st["by_model"].get("sim-cslow"), 10, "requests at the provider")
    eq(st["peak_inflight"], 2, "peak concurrency at the provider (max_inflight 2)")
    check(max(s[0] for s in samples) <= 2, f"in-flight gauge over 2: {max(samples)}")
    check(max(s[1] for s in samples) >= 1, "the queued gauge never showed a waiter")
    # 10 x 600 ms through 2 slots is 3 s; a waiter that no release woke
    # would time out at 10 s and get a 503
    check(elapsed < 9.5, f"took {elapsed:.1f} s")
    p = provider_of("hslow")
    eq((p["inflight"], p["queued"], p["max_inflight"]), (0, 0, 2), "slots after")
    print(f"#   10 concurrent requests through max_inflight 2 (600 ms each): {elapsed:.2f} s, "
          f"peak {st['peak_inflight']} at the provider", flush=True)


def hold_slot(tier, model, prompt="hold"):
    """Starts a request that holds its provider's only slot; returns its thread."""
    out = {}

    def run():
        out["r"] = post(chat_body(tier, prompt), timeout=60)

    before = sim_count(model)
    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: sim_count(model) > before, f"{model} to hold its slot")
    return t, out


@test
def test_queue_timeout_fails_over():
    E.sim_reset()
    t, out = hold_slot("hqonly", "sim-cq")
    timeouts = metric("llmrouter_provider_queue_timeouts_total", provider="hq")
    r = post(chat_body("hq", "queued then over"), headers={"x-request-id": "queued-over"})
    R.check_routed(r, model="good-mini", attempts=2, what="queue timeout: ")
    q = access_entry("queued-over").get("queue_ms")
    check(q is not None and q >= 300, f"access log queue_ms {q!r}")
    eq(r.h("x-router-skipped"), "cq (provider hq is at max_inflight (1): no slot within 300 ms)",
       "x-router-skipped")
    eq(metric("llmrouter_provider_queue_timeouts_total", provider="hq"), timeouts + 1, "timeouts")
    eq(metric("llmrouter_failovers_total", reason="busy", **{"from": "cq"}) >= 1, True,
       "failover reason busy")
    t.join()
    eq(out["r"].status, 200, "the slot holder")
    eq(sim_count("sim-cq"), 1, "the queued request never reached cq")


@test
def test_queue_timeout_without_a_model_left_is_503():
    E.sim_reset()
    t, _ = hold_slot("hqonly", "sim-cq")
    r = post(chat_body("hqonly", "nothing left"))
    err = R.check_error(r, 503, "all_upstreams_busy")
    eq(r.h("retry-after"), "1", "retry-after")
    eq(r.h("retry-after-ms"), "1000", "retry-after-ms")
    check("max_inflight" in err["message"], f"message {err['message']!r}")
    eq(r.json["error"]["attempts"][0]["model"], "cq", "attempts")
    # the Messages door answers in Anthropic's shape
    r = post({"model": "hqonly", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
             path="/v1/messages")
    eq(r.status, 503, f"messages door status ({R.short(r.body)})")
    eq(r.json.get("type"), "error", "Anthropic error shape")
    check(isinstance(r.json.get("error"), dict) and r.json["error"].get("message"), "error.message")
    eq(r.h("retry-after"), "1", "retry-after on the messages door")
    t.join()


@test
def test_the_deadline_bounds_the_wait_for_a_slot():
    """A request queued for a slot (queue_timeout_ms 20 s) whose deadline
    (x-router-deadline-ms: 800) passes first gets the deadline's 504."""
    E.sim_reset()
    t, _ = hold_slot("hlong", "sim-clong")
    t0 = time.monotonic()
    r = post(chat_body("hlong", "in a hurry"), headers={"x-router-deadline-ms": "800"})
    took = time.monotonic() - t0
    R.check_error(r, 504, "deadline_exceeded")
    check(took < 4.0, f"answered after {took:.2f} s, not at the deadline (queue_timeout_ms is 20 s)")
    t.join()


@test
def test_full_queue_fails_over_at_once():
    E.sim_reset()
    t, _ = hold_slot("hnoq", "sim-cnoq")
    full = metric("llmrouter_provider_queue_full_total", provider="hnoq")
    r = post(chat_body("hnoq", "no room"))
    R.check_error(r, 503, "all_upstreams_busy")
    check("queue is full" in r.json["error"]["attempts"][0]["error"],
          f"attempt {r.json['error']['attempts'][0]}")
    eq(metric("llmrouter_provider_queue_full_total", provider="hnoq"), full + 1, "queue_full")
    t.join()


@test
def test_disconnect_while_queued_leaves_the_queue():
    E.sim_reset()
    t, out = hold_slot("hlong", "sim-clong")
    body = json.dumps(chat_body("hlong", "I will leave")).encode()
    sk = socket.create_connection(("127.0.0.1", S["d"].port), timeout=10)
    sk.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    wait_for(lambda: metric("llmrouter_provider_queued", provider="hlong") == 1, "the waiter")
    sk.close()
    wait_for(lambda: metric("llmrouter_provider_queued", provider="hlong") == 0,
             "the waiter to leave the queue", timeout=5)
    t.join()
    eq(out["r"].status, 200, "the slot holder")
    eq(provider_of("hlong")["inflight"], 0, "no slot leaked")
    r = post(chat_body("hlong", "after"))
    R.check_routed(r, model="clong", attempts=1, what="the next request: ")
    eq(sim_count("sim-clong"), 2, "the one that left never reached the provider")


@test
def test_no_slot_leaks():
    for p in ("hslow", "hq", "hnoq", "hlong", "good", "p503"):
        eq((provider_of(p)["inflight"], provider_of(p)["queued"]), (0, 0), f"{p} slots")


@test
def test_daemon_clean_exit():
    ok, msg = S["d"].stop()
    check(ok, msg)
    err = S["d"].stderr_text()
    check(R.GOOD_KEY not in err, "provider key in the daemon's stderr")


def main():
    return R.run_suite(TESTS, modules=[sys.modules[__name__]], setup=setup, teardown=teardown,
                       always=("daemon_clean_exit",))


if __name__ == "__main__":
    sys.exit(main())
