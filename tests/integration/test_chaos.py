#!/usr/bin/env python3
"""The fault-injection ("chaos") suite (issue 14, "the project's own proof"):
every provider fault at every position of a three-model chain, under at
least 200 concurrent clients mixing plain and streamed requests, against
the real daemon over real sockets and the simulated provider.

    python3 tests/integration/test_chaos.py [--long] [-k SUBSTRING]... [-v]

Faults (one provider each, chosen by the simulator's /sim/<opts> prefix):
refused (a port nobody listens on), HTTP 500, 429 with Retry-After, timeout
before the headers, stall after the headers, stream cut (FIN), clean close
without [DONE], reset mid-stream (RST), invalid JSON, slow trickle. Each
fault F is placed in four chains, each chain in two variants:

  p1   [F, ok, ok]       p2  [G, F, ok]      p3  [G, G', F]      all [F, F, F]

(G, G' are other faults that always fail over, so that F is reached);
"bare" models have no breaker and no retries, "armed" models have a circuit
breaker with a short cooldown and `retries: 1`, and their requests carry an
x-router-deadline-ms. Clients pick the 160 (chain, variant, plain/stream)
combinations round robin.

Asserts, for every request: it succeeds through a healthy model of its chain
(the healthy model's complete answer: finish_reason, and [DONE] for a
stream) or gets a well-formed error (status, OpenAI's JSON error shape, or
for a committed stream a final error event); it ends within a bound derived
from the configured timeouts; the simulator never received it more often
than the router says it sent it (x-router-attempts minus x-router-skipped;
exactly, for the 502s' attempt lists). Over the run: the counters of
/metrics add up with what the clients saw, the simulator's count per model
with the attempts /metrics reports, and the daemon's VmRSS returns near its
baseline after a warm-up; the daemon still serves and exits 0 (no ASan
report).

--long (make chaos): several rounds, RSS checked after each.
Environment: CHAOS_CLIENTS (default 200), CHAOS_SECONDS (load per round,
default 12; 45 with --long), CHAOS_ROUNDS (1; 4 with --long),
CHAOS_THINK_MS (a client's pause between requests, 0..N, default 300).

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import collections
import itertools
import json
import os
import random
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq  # noqa: E402

TESTS = []
E = None
S = {}

LONG = "--long" in sys.argv
if LONG:
    sys.argv.remove("--long")  # run_suite parses the rest


def _env_int(name, default):
    v = os.environ.get(name)
    try:
        return int(v) if v else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {v!r}")


CLIENTS = _env_int("CHAOS_CLIENTS", 200)
SECONDS = _env_int("CHAOS_SECONDS", 45 if LONG else 12)
ROUNDS = _env_int("CHAOS_ROUNDS", 4 if LONG else 1)
THINK_MS = _env_int("CHAOS_THINK_MS", 300)
WARMUP_SECONDS = 4

# ==========================================================================
# The daemon's configuration: everything about timeouts, retries, the
# deadline and the breakers is in this section (the bounds the assertions
# use are derived from it).
# ==========================================================================

# Fault providers: short timers, so that every fault costs at most ~2 s.
FAULT_TIMEOUTS = {"connect_timeout_ms": 800, "first_byte_timeout_ms": 800,
                  "idle_timeout_ms": 800, "timeout_ms": 2000}
# The healthy provider: generous (the machine is shared and the simulator is
# Python), so that a healthy answer never times out under load.
HEALTHY_TIMEOUTS = {"connect_timeout_ms": 2000, "first_byte_timeout_ms": 5000,
                    "idle_timeout_ms": 5000, "timeout_ms": 8000}
# Per variant: what each model of the variant's chains gets, and the
# request deadline its clients send (x-router-deadline-ms; 0 = none).
VARIANTS = {
    "bare": {"model_extra": "circuit: false", "retries": 0, "deadline_ms": 0},
    "armed": {"model_extra": "retries: 1, circuit: {failures: 3, cooldown_ms: 1500, max_cooldown_ms: 3000}",
              "retries": 1, "deadline_ms": 3000},
}
# The most a retry waits (retry_backoff_max_ms and retry_after_max_ms are
# both 2000 by default).
RETRY_WAIT_MAX_MS = 2000
ROUTING_EXTRA = ""  # e.g. "  deadline_ms: 5000\n" (then also set DEADLINE_MS)
DEADLINE_MS = 0     # routing.deadline_ms, if ROUTING_EXTRA sets one
# Statuses a request may end with when no model answered; the error codes
# that go with them.
ERROR_CODES = {429: {"all_upstreams_rate_limited"}, 502: {"all_upstreams_failed"},
               503: {"all_upstreams_busy"}, 504: {"deadline_exceeded"}}
# Error statuses allowed per variant (bare: no deadline, no max_inflight).
ALLOWED_ERRORS = {"bare": {429, 502}, "armed": {429, 502, 504}}
# Slack added to every bound: scheduling on a loaded 2-core machine, the
# Python clients and simulator, the sanitizer build.
SLACK_S = 6.0

# The faults. "url": the base_url (DEAD is a port bound and never listened
# on); "commits": a stream can commit before the fault shows (the router
# then ends it with an error event instead of failing over); "never": it
# never gives a usable answer within its timers.
FAULTS = collections.OrderedDict([
    ("refused", {"url": "http://127.0.0.1:{DEAD}/v1"}),
    ("s500", {"url": "${SIM_URL}/sim/status=500/v1"}),
    ("s429", {"url": "${SIM_URL}/sim/status=429,retry_after=1/v1"}),
    # before the headers: past first_byte_timeout_ms and timeout_ms
    ("timeout", {"url": "${SIM_URL}/sim/delay_ms=3000/v1"}),
    # headers, then 3 s of silence: a plain body's idle_timeout_ms, a
    # stream's first_byte_timeout_ms
    ("stall", {"url": "${SIM_URL}/sim/stall_after_headers_ms=3000/v1"}),
    ("cut", {"url": "${SIM_URL}/sim/cut_after=2/v1", "commits": True}),
    ("nodone", {"url": "${SIM_URL}/sim/close_nodone=1/v1", "commits": True}),
    ("reset", {"url": "${SIM_URL}/sim/reset_after=2,interval_ms=20/v1", "commits": True}),
    ("badjson", {"url": "${SIM_URL}/sim/invalid_json=1/v1"}),
    # a byte every 50 ms: a plain answer (~340 bytes) outlasts timeout_ms, a
    # stream's first event (~230 bytes) first_byte_timeout_ms; never idle
    ("trickle", {"url": "${SIM_URL}/sim/trickle_ms=50/v1"}),
])
# faults that always fail over, plain or streamed: the G and G' of p2/p3
FAILOVER_FAULTS = [f for f, d in FAULTS.items() if not d.get("commits")]
POSITIONS = ("p1", "p2", "p3", "all")


def _timers(d):
    return ", ".join(f"{k}: {v}" for k, v in d.items())


def build_chains():
    """{tier: chain info} for every (variant, fault, position)."""
    chains = {}
    names = list(FAULTS)
    for v in VARIANTS:
        for i, f in enumerate(names):
            others = [g for g in FAILOVER_FAULTS if g != f]
            g1, g2 = others[i % len(others)], others[(i + 1) % len(others)]
            kinds = {"p1": [f, "ok", "ok"], "p2": [g1, f, "ok"],
                     "p3": [g1, g2, f], "all": [f, f, f]}
            for pos in POSITIONS:
                tier = f"t_{v}_{f}_{pos}"
                models = []
                for k, kind in enumerate(kinds[pos], 1):
                    name = f"{v[0]}_{f}_{pos}_{k}"
                    models.append({"name": name, "kind": kind,
                                   "upstream": "chaos-" + name.replace("_", "-"),
                                   "provider": "ok" if kind == "ok" else "f_" + kind})
                chains[tier] = {"tier": tier, "variant": v, "fault": f, "pos": pos,
                                "models": models}
    return chains


def build_config(dead_port, access_log):
    lines = ["server:",
             '  listen: "127.0.0.1:18080"',
             "  threads: 2",
             "  max_body_bytes: 65536",
             "  log_level: warn",
             "  shutdown_grace_ms: 2000",
             "",
             "providers:",
             f'  ok: {{type: openai, base_url: "${{SIM_URL}}/v1", {_timers(HEALTHY_TIMEOUTS)}}}']
    for f, d in FAULTS.items():
        url = d["url"].replace("{DEAD}", str(dead_port))
        lines.append(f'  f_{f}: {{type: openai, base_url: "{url}", {_timers(FAULT_TIMEOUTS)}}}')
    lines += ["", "models:"]
    for c in S["chains"].values():
        extra = VARIANTS[c["variant"]]["model_extra"]
        for m in c["models"]:
            lines.append(f'  {m["name"]}: {{provider: {m["provider"]}, model: {m["upstream"]}'
                         f'{", " + extra if extra else ""}}}')
    lines += ["", "tiers:"]
    for c in S["chains"].values():
        lines.append(f'  {c["tier"]}: [{", ".join(m["name"] for m in c["models"])}]')
    first = next(iter(S["chains"]))
    lines += ["", "routing:", f"  default_tier: {first}", "  allow_client_tier: true"]
    out = "\n".join(lines) + "\n" + ROUTING_EXTRA
    out += "\ncache:\n  backend: off\n"
    out += f'\nobservability:\n  access_log: "{access_log}"\n'
    return out


def _model_timeouts(m):
    return HEALTHY_TIMEOUTS if m["kind"] == "ok" else FAULT_TIMEOUTS


def bound_s(chain):
    """How long a request on this chain may take: each model's whole-request
    timer (connect included) for each of its tries, plus the retry waits,
    cut by the deadline (a committed stream then still has its model's
    timeout_ms), plus the slack."""
    v = VARIANTS[chain["variant"]]
    tries = 1 + v["retries"]
    total = 0.0
    for m in chain["models"]:
        t = _model_timeouts(m)
        total += tries * (t["timeout_ms"] + t["connect_timeout_ms"]) + v["retries"] * RETRY_WAIT_MAX_MS
    deadlines = [d for d in (v["deadline_ms"], DEADLINE_MS) if d]
    if deadlines:
        tail = max(_model_timeouts(m)["timeout_ms"] for m in chain["models"])
        total = min(total, min(deadlines) + tail)
    return total / 1000.0 + SLACK_S


# ==========================================================================
# helpers
# ==========================================================================

def test(fn):
    TESTS.append(fn)
    return fn


def scrape():
    """/metrics as {(name, frozenset(labels)): value}."""
    r = R.http_request(S["d"].port, "GET", "/metrics", timeout=20)
    check(r.status == 200, f"/metrics -> {r.status}")
    out = {}
    for ln in r.body.decode().splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", ln)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def mdelta(before, after, name, pred=None):
    """Sum over the series of `name` (whose labels satisfy pred) of after -
    before."""
    total = 0.0
    for (n, labels), v in after.items():
        if n != name:
            continue
        lab = dict(labels)
        if pred is not None and not pred(lab):
            continue
        total += v - before.get((n, labels), 0.0)
    return total


def sim_json(path):
    r = E.sim("GET", path)
    check(r.status == 200, f"{path} -> {r.status}")
    return r.json


def split_skipped(value):
    """x-router-skipped "m1 (reason (x)), m2 (reason)" -> [m1, m2]."""
    if not value:
        return []
    names, depth, cur = [], 0, ""
    for ch in value:
        if ch == "(":
            if depth == 0:
                names.append(cur.strip().lstrip(",").strip())
            depth += 1
        elif ch == ")":
            depth -= 1
            cur = ""
        elif depth == 0:
            cur += ch
    return names


def expected_text(upstream, prompt):
    return f"Simulated reply from {upstream}: {prompt[:60]}"


# ==========================================================================
# one request
# ==========================================================================

class Result:
    __slots__ = ("n", "tier", "stream", "status", "headers", "elapsed", "kind", "model",
                 "attempts", "skipped", "detail", "error", "events", "phase")


SEQ = itertools.count(1)


def one_request(chain, stream, phase):
    n = next(SEQ)
    prompt = f"chaos-{n} {chain['fault']} {chain['pos']}"
    body = {"model": chain["tier"], "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    headers = {"Content-Type": "application/json", "x-request-id": f"chaos-{n}"}
    dl = VARIANTS[chain["variant"]]["deadline_ms"]
    if dl:
        headers["x-router-deadline-ms"] = str(dl)
    res = Result()
    res.n, res.tier, res.stream, res.phase = n, chain["tier"], stream, phase
    res.status, res.headers, res.kind, res.model = None, {}, None, None
    res.attempts, res.skipped, res.detail, res.error, res.events = None, [], "", None, None
    limit = bound_s(chain) + 10  # the client's own give-up, past the bound
    t0 = time.monotonic()
    s = None
    try:
        s = R.RawHTTP(S["d"].port, "POST", "/v1/chat/completions", json.dumps(body).encode(),
                      headers=headers, timeout=limit)
        s.read_head()
        res.status, res.headers = s.status, dict(s.headers)
        if stream and s.status == 200:
            datas, _ = R.read_stream(s)
            res.events = datas
        else:
            res.detail = s.read_all()
    except socket.timeout:
        res.kind = "hang"
        res.error = f"no complete answer within {limit:.0f} s"
    except (Fail, OSError, ValueError) as e:
        res.kind = "transport"
        res.error = f"{type(e).__name__}: {e}"
    finally:
        if s is not None:
            s.close()
    res.elapsed = time.monotonic() - t0
    if res.kind is None:
        classify(res, chain, prompt)
    return res


def classify(res, chain, prompt):
    """Sets res.kind to success / error / stream_error, or to "bad" with
    res.error saying why the answer is not well-formed or not allowed."""
    h = res.headers
    res.model = h.get("x-router-model")
    try:
        res.attempts = int(h.get("x-router-attempts", ""))
    except ValueError:
        res.attempts = None
    res.skipped = split_skipped(h.get("x-router-skipped"))
    by_name = {m["name"]: m for m in chain["models"]}
    try:
        if res.attempts is None or res.attempts < 1:
            raise Fail(f"x-router-attempts {h.get('x-router-attempts')!r}")
        if res.status == 200 and not res.stream:
            ct = (h.get("content-type") or "").split(";")[0].strip()
            check(ct == "application/json", f"content-type {ct!r}")
            j = json.loads(res.detail)
            m = by_name.get(res.model)
            check(m is not None and m["kind"] == "ok",
                  f"200 from {res.model!r}, not a healthy model of {chain['tier']}")
            ch = j["choices"][0]
            eq(ch["message"]["content"], expected_text(m["upstream"], prompt), "answer")
            eq(ch.get("finish_reason"), "stop", "finish_reason")
            res.kind = "success"
        elif res.status == 200:
            datas = res.events
            check(datas, "a stream without events")
            m = by_name.get(res.model)
            check(m is not None, f"stream from {res.model!r}, not a model of {chain['tier']}")
            if datas[-1] == "[DONE]":
                eq(datas.count("[DONE]"), 1, "[DONE] count")
                check(m["kind"] == "ok", f"complete stream from {res.model} ({m['kind']}), not a healthy model")
                finished = False
                for d in datas[:-1]:
                    o = json.loads(d)
                    check("error" not in o, f"error event inside a complete stream: {d[:200]}")
                    for c in o.get("choices") or []:
                        finished = finished or c.get("finish_reason") == "stop"
                check(finished, "no finish_reason in the stream")
                eq(R.stream_text(datas), expected_text(m["upstream"], prompt), "streamed answer")
                res.kind = "success"
            else:
                check("[DONE]" not in datas, "[DONE] before the end")
                for d in datas[:-1]:
                    o = json.loads(d)
                    check("error" not in o, f"an error event before the last: {d[:200]}")
                last = json.loads(datas[-1])
                err = last.get("error") if isinstance(last, dict) else None
                check(isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"],
                      f"the stream ends neither with [DONE] nor an error event: {datas[-1][:200]}")
                eq(err.get("code"), "upstream_stream_interrupted", "error event code")
                check(m["kind"] != "ok", f"the healthy model {res.model} broke its stream")
                check(FAULTS[m["kind"]].get("commits"),
                      f"a {m['kind']} fault committed a stream (it should have failed over)")
                res.kind = "stream_error"
        else:
            allowed = ALLOWED_ERRORS[chain["variant"]]
            check(res.status in allowed, f"status {res.status} (allowed {sorted(allowed)}): {R.short(res.detail)}")
            ct = (h.get("content-type") or "").split(";")[0].strip()
            check(ct == "application/json", f"content-type {ct!r} on a {res.status}")
            j = json.loads(res.detail)
            err = j.get("error") if isinstance(j, dict) else None
            check(isinstance(err, dict), f"no error object: {R.short(res.detail)}")
            for k in ("message", "type", "param", "code"):
                check(k in err, f"error lacks {k!r}: {R.short(res.detail)}")
            check(isinstance(err["message"], str) and err["message"], "empty error.message")
            check(err["code"] in ERROR_CODES[res.status], f"error.code {err['code']!r} on a {res.status}")
            if res.status == 429:
                ra = h.get("retry-after") or ""
                check(ra.isdigit(), f"429 without a retry-after: {ra!r}")
            if res.status in (502, 504):
                check(isinstance(err.get("attempts"), list) and err["attempts"], "no error.attempts")
                eq(len(err["attempts"]), res.attempts, "error.attempts vs x-router-attempts")
            res.detail = err
            res.kind = "error"
    except Fail as e:
        res.kind, res.error = "bad", str(e)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        res.kind, res.error = "bad", f"{type(e).__name__}: {e}"


def healthy_reachable(chain, stream):
    """True when, in the bare variant, the request must be answered by a
    healthy model: one is in the chain and no fault before it can commit a
    stream."""
    for m in chain["models"]:
        if m["kind"] == "ok":
            return True
        if stream and FAULTS[m["kind"]].get("commits"):
            return False
    return False


# ==========================================================================
# load
# ==========================================================================

def run_load(seconds, phase):
    """CLIENTS threads send requests for `seconds`, then finish the ones in
    flight. Returns the list of Results."""
    combos = [(c, st) for c in S["chains"].values() for st in (False, True)]
    random.Random(14).shuffle(combos)
    it = itertools.cycle(combos)
    lock = threading.Lock()
    results = []
    stop_at = time.monotonic() + seconds
    rng_seed = itertools.count(1000)

    def client():
        rng = random.Random(next(rng_seed))
        mine = []
        while time.monotonic() < stop_at:
            with lock:
                chain, st = next(it)
            mine.append(one_request(chain, st, phase))
            if THINK_MS:
                time.sleep(rng.uniform(0, THINK_MS / 1000.0))
        with lock:
            results.extend(mine)

    ts = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 120)
    check(not any(t.is_alive() for t in ts), "clients still running long after the load ended")
    return results


def settle():
    """Waits until the simulator has read every request the daemon sent (its
    count stops moving) and the daemon's metrics are complete; at most 15 s."""
    deadline = time.monotonic() + 15
    last = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        st = sim_json("/_sim/stats")
        cur = (st.get("requests"), st.get("inflight"))
        if cur != last:
            last, stable_since = cur, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            return
        time.sleep(0.2)


# ==========================================================================
# setup
# ==========================================================================

def setup():
    S["chains"] = build_chains()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    S["dead"] = dead
    S["access_log"] = os.path.join(E.tmp, "access.log")
    path = os.path.join(E.tmp, "chaos.yaml")
    with open(path, "w") as f:
        f.write(build_config(dead.getsockname()[1], S["access_log"]))
    # ASan keeps freed memory in a quarantine (256 MB by default) that would
    # hide the RSS check; 16 MB still holds the frees of the last seconds
    # (ignored by the normal build)
    asan = os.environ.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in asan:
        os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
    S["d"] = E.new_daemon(tag="chaos", config=path).start()
    S["results"] = []
    S["rss"] = []


def teardown():
    d = S.get("d")
    if d is not None:
        d.kill()
    if S.get("dead") is not None:
        S["dead"].close()


def need_run():
    """The tests after load_matrix look at its results; with -k they run it
    first (once)."""
    if "ran" not in S and not S.get("load_tried"):
        test_load_matrix()
    if "ran" not in S:
        raise Fail("the load did not run (see load_matrix)")


# ==========================================================================
# the simulator's new faults, directly
# ==========================================================================

def _sim_raw(opts, stream, timeout=10):
    body = {"model": "chaos-selfcheck", "messages": [{"role": "user", "content": "hello chaos-0"}]}
    if stream:
        body["stream"] = True
    return R.RawHTTP(E.sim_port, "POST", f"/sim/{opts}/v1/chat/completions", json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"}, timeout=timeout)


@test
def test_sim_trickle():
    s = _sim_raw("trickle_ms=5", False)
    try:
        t0 = time.monotonic()
        s.read_head()
        head = time.monotonic() - t0
        body = s.read_all()
        took = time.monotonic() - t0
    finally:
        s.close()
    check(head < 0.5, f"headers after {head:.2f} s (only the body trickles)")
    j = json.loads(body)
    check(j["choices"][0]["message"]["content"].startswith("Simulated reply"), "a whole answer")
    check(took >= 0.005 * (len(body) - 1) * 0.9, f"{len(body)} bytes in {took:.2f} s: not trickled")


@test
def test_sim_reset_after_stream():
    s = _sim_raw("reset_after=2", True)
    datas = []
    try:
        s.read_head()
        eq(s.status, 200, "status")
        try:
            while True:
                ev = s.next_event()
                if ev is None:
                    raise Fail(f"the stream ended cleanly: {datas}")
                datas.append(R.event_data(ev))
        except ConnectionResetError:
            pass
    finally:
        s.close()
    eq(len(datas), 3, "events before the reset (role chunk + 2)")
    check("[DONE]" not in datas, "no [DONE]")


@test
def test_sim_reset_after_plain():
    s = _sim_raw("reset_after=2", False)
    try:
        s.read_head()
        cl = int(s.h("content-length"))
        got = b""
        try:
            got = s.read_all()
            raise Fail("the body ended without an error")
        except ConnectionResetError:
            pass
        except Fail as e:
            check("missing" in str(e), f"not a short body: {e}")
    finally:
        s.close()
    check(len(got) < cl, "short body")


@test
def test_sim_close_nodone():
    s = _sim_raw("close_nodone=1", True)
    try:
        s.read_head()
        datas, _ = R.read_stream(s)
        check(s.done, "the chunked terminator came")
    finally:
        s.close()
    check(datas and "[DONE]" not in datas, f"no [DONE]: {datas[-1:]}")
    text = R.stream_text(datas)
    eq(text, "Simulated reply from chaos-selfcheck: hello chaos-0", "every content chunk")
    for d in datas:
        for c in json.loads(d)["choices"]:
            check(c.get("finish_reason") is None, "no finish_reason")
    s = _sim_raw("close_nodone=1", False)
    try:
        s.read_head()
        check(s.h("content-length") is None, "no Content-Length")
        eq((s.h("connection") or "").lower(), "close", "Connection")
        body = s.read_all()  # ends at the FIN
    finally:
        s.close()
    try:
        json.loads(body)
        raise Fail("a whole JSON body")
    except ValueError:
        pass
    check(body.startswith(b'{"id"'), f"half an answer: {body[:40]!r}")


@test
def test_sim_stall_after_headers():
    for stream in (False, True):
        s = _sim_raw("stall_after_headers_ms=600", stream)
        try:
            t0 = time.monotonic()
            s.read_head()
            head = time.monotonic() - t0
            s.read_some(1 << 16)
            body = time.monotonic() - t0
        finally:
            s.close()
        check(head < 0.5, f"headers after {head:.2f} s")
        check(body - head >= 0.5, f"body {body - head:.2f} s after the headers")


@test
def test_sim_markers_counted():
    E.sim_reset()
    r = E.sim("POST", "/v1/chat/completions",
              {"model": "x", "messages": [{"role": "user", "content": "hi chaos-42 there"}]})
    eq(r.status, 200, "status")
    eq(sim_json("/_sim/chaos")["by_marker"].get("42"), 1, "requests with chaos-42")
    E.sim_reset()
    eq(sim_json("/_sim/chaos")["by_marker"], {}, "after a reset")


# ==========================================================================
# the load
# ==========================================================================

@test
def test_load_matrix():
    """Warm-up (the RSS baseline), then ROUNDS rounds of SECONDS seconds,
    CLIENTS concurrent clients; every later test looks at what it saw."""
    d = S["d"]
    S["load_tried"] = True
    E.sim_reset()
    S["sim0"] = sim_json("/_sim/stats")
    S["m0"] = scrape()
    S["rss"].append(("start", d.rss_kb()))
    t0 = time.monotonic()
    S["results"] += run_load(WARMUP_SECONDS, "warmup")
    settle()
    S["rss"].append(("after warm-up", d.rss_kb()))
    for k in range(ROUNDS):
        S["results"] += run_load(SECONDS, f"round{k + 1}")
        settle()
        time.sleep(0.5)
        S["rss"].append((f"after round {k + 1}", d.rss_kb()))
    S["wall"] = time.monotonic() - t0
    S["sim1"] = sim_json("/_sim/stats")
    S["markers"] = sim_json("/_sim/chaos")["by_marker"]
    S["m1"] = scrape()
    S["ran"] = True
    res = S["results"]
    streams = sum(1 for r in res if r.stream)
    by_kind = collections.Counter(r.kind for r in res)
    maxlat = max((r.elapsed for r in res), default=0)
    print(f"# {len(res)} requests ({streams} streamed) by {CLIENTS} clients in {S['wall']:.1f} s: "
          f"{dict(by_kind)}; max latency {maxlat:.2f} s; RSS {S['rss']}", flush=True)
    check(len(res) >= len(S["chains"]) * 2, f"only {len(res)} requests")
    check(d.alive(), "the daemon died under load")


@test
def test_every_combination_covered():
    need_run()
    seen = collections.Counter((r.tier, r.stream) for r in S["results"])
    missing = [(c["tier"], st) for c in S["chains"].values() for st in (False, True)
               if not seen[(c["tier"], st)]]
    check(not missing, f"{len(missing)} combinations got no request: {missing[:5]}")


def _report_bad(rows, what, n=5):
    out = []
    for r in rows[:n]:
        out.append(f"[{r.tier} {'stream' if r.stream else 'plain'} #{r.n} {r.status} "
                   f"model={r.model} attempts={r.attempts} {r.elapsed:.1f}s] {r.error}")
    return f"{len(rows)} {what}: " + " | ".join(out)


@test
def test_every_request_answered_well_formed():
    need_run()
    bad = [r for r in S["results"] if r.kind in ("bad", "transport", "hang")]
    check(not bad, _report_bad(bad, "requests without a well-formed answer"))


@test
def test_no_request_past_its_bound():
    need_run()
    late = []
    for r in S["results"]:
        b = bound_s(S["chains"][r.tier])
        if r.elapsed > b:
            r.error = f"took {r.elapsed:.1f} s, bound {b:.1f} s"
            late.append(r)
    check(not late, _report_bad(late, "requests past their bound"))


@test
def test_bare_chains_with_a_healthy_model_succeed():
    """Without breaker, retries or deadline, a healthy model that the chain
    reaches must answer: plain requests on p1/p2 chains, and streams unless a
    fault before the healthy model can commit them."""
    need_run()
    bad = []
    for r in S["results"]:
        c = S["chains"][r.tier]
        if c["variant"] != "bare" or r.kind in ("bad", "transport", "hang"):
            continue
        if healthy_reachable(c, r.stream) and r.kind != "success":
            r.error = f"{r.kind}: {R.short(json.dumps(r.detail) if isinstance(r.detail, dict) else r.detail)}"
            bad.append(r)
        if r.stream and r.kind == "stream_error":
            first_commit = next((m for m in c["models"]
                                 if m["kind"] == "ok" or FAULTS[m["kind"]].get("commits")), None)
            if first_commit is None or first_commit["name"] != r.model:
                r.error = f"stream broken by {r.model}, expected the first committing model"
                bad.append(r)
    check(not bad, _report_bad(bad, "bare requests not answered as the chain says"))


@test
def test_chains_without_healthy_model_never_succeed():
    need_run()
    bad = []
    for r in S["results"]:
        c = S["chains"][r.tier]
        if all(m["kind"] != "ok" for m in c["models"]) and r.kind == "success":
            r.error = f"a success from {r.model}"
            bad.append(r)
    check(not bad, _report_bad(bad, "successes on chains of faults only"))


@test
def test_no_silent_resend_per_request():
    """The simulator saw each request's marker at most as often as the router
    says it sent the request (attempts minus skips); for a 502/504 whose
    error lists the attempts, exactly as often as the listed attempts that
    reached the simulator (a stale pooled connection may not have)."""
    need_run()
    markers = S["markers"]
    bad = []
    for r in S["results"]:
        if r.attempts is None:
            continue
        got = markers.get(str(r.n), 0)
        sent = r.attempts - len(r.skipped)
        if got > sent:
            r.error = f"the simulator got it {got} times; attempts {r.attempts}, skipped {len(r.skipped)}"
            bad.append(r)
            continue
        if r.kind == "error" and isinstance(r.detail, dict) and r.detail.get("attempts"):
            c = S["chains"][r.tier]
            by_name = {m["name"]: m for m in c["models"]}
            lo = hi = 0
            for a in r.detail["attempts"]:
                e = str(a.get("error") or "")
                m = by_name.get(a.get("model"))
                if e.startswith("skipped") or m is None or m["kind"] == "refused":
                    continue
                hi += 1
                # a stale pooled connection, or a connection the simulator
                # never accepted, may not have reached it
                el = e.lower()
                if not any(x in el for x in ("reused connection", "before any response", "couldn't connect",
                                             "failed to connect", "connection timed out",
                                             "connection refused")):
                    lo += 1
            if not lo <= got <= hi:
                r.error = f"the simulator got it {got} times; its attempts list says {lo}..{hi}"
                bad.append(r)
    check(not bad, _report_bad(bad, "requests received more often than sent"))


@test
def test_sim_count_matches_reported_attempts():
    """Per model: the attempts /metrics reports (skips excluded) against the
    requests the simulator received for its upstream model name; and the
    x-router-attempts of every request summed against /metrics."""
    need_run()
    m0, m1 = S["m0"], S["m1"]
    by0 = S["sim0"].get("by_model") or {}
    by1 = S["sim1"].get("by_model") or {}
    problems = []
    total_sent = total_sim = 0
    for c in S["chains"].values():
        for m in c["models"]:
            name = m["name"]

            def of(result_pred, _name=name):
                return mdelta(m0, m1, "llmrouter_upstream_attempts_total",
                              lambda lab: lab.get("model") == _name and result_pred(lab.get("result")))
            sent = of(lambda res: res not in ("cooling_down", "busy"))
            # sent, maybe never received: a stale pooled connection, or a
            # connection the simulator did not accept in time
            stale = of(lambda res: res in ("stale_connection", "connect"))
            got = by1.get(m["upstream"], 0) - by0.get(m["upstream"], 0)
            if m["kind"] == "refused":
                if got:
                    problems.append(f"{name}: the simulator got {got} requests for a refused model")
                continue
            total_sent += sent
            total_sim += got
            if not sent - stale <= got <= sent:
                problems.append(f"{name}: /metrics {sent:.0f} sent ({stale:.0f} stale or connect), "
                                f"the simulator got {got}")
    header_total = sum(r.attempts for r in S["results"] if r.attempts is not None)
    metric_total = mdelta(m0, m1, "llmrouter_upstream_attempts_total")
    if header_total != metric_total:
        problems.append(f"x-router-attempts sum {header_total} != llmrouter_upstream_attempts_total {metric_total:.0f}")
    S["attempt_totals"] = (header_total, total_sent, total_sim)
    check(not problems, f"{len(problems)} mismatches: " + "; ".join(problems[:6]))


@test
def test_metrics_add_up():
    need_run()
    m0, m1 = S["m0"], S["m1"]
    res = S["results"]
    answered = [r for r in res if r.status is not None]
    problems = []

    def expect(what, got, want):
        if abs(got - want) > 1e-6:
            problems.append(f"{what}: /metrics {got:.0f}, clients {want}")

    expect("requests_total", mdelta(m0, m1, "llmrouter_requests_total"), len(answered))
    # a committed stream that broke is counted as a 502
    want_status = collections.Counter(
        502 if r.kind == "stream_error" else r.status for r in answered)
    for st, n in want_status.items():
        expect(f"requests_total{{status={st}}}",
               mdelta(m0, m1, "llmrouter_requests_total", lambda lab, s=str(st): lab.get("status") == s), n)
    expect("errors_total", mdelta(m0, m1, "llmrouter_errors_total"),
           sum(n for st, n in want_status.items() if st >= 400))
    expect("streams_total", mdelta(m0, m1, "llmrouter_streams_total"), sum(1 for r in answered if r.stream))
    expect("upstream_attempts_total{result=ok}",
           mdelta(m0, m1, "llmrouter_upstream_attempts_total", lambda lab: lab.get("result") == "ok"),
           sum(1 for r in res if r.kind == "success"))
    moves = mdelta(m0, m1, "llmrouter_failovers_total") + mdelta(m0, m1, "llmrouter_upstream_retries_total")
    expect("failovers_total + upstream_retries_total", moves,
           sum(r.attempts - 1 for r in res if r.attempts is not None))
    # requests per tier
    per_tier = collections.Counter(r.tier for r in answered)
    wrong = 0
    for tier, n in per_tier.items():
        got = mdelta(m0, m1, "llmrouter_requests_total", lambda lab, t=tier: lab.get("tier") == t)
        wrong += got != n
    if wrong:
        problems.append(f"{wrong} tiers whose requests_total differs from the clients' count")
    check(not problems, "; ".join(problems[:8]))


@test
def test_rss_returns_near_baseline():
    """VmRSS after the run against VmRSS after the warm-up (the warm-up ran
    the same mix at the same concurrency, so thread arenas, connection pools
    and metric series already exist). Allowed growth: 16 MB plus 10 % of the
    baseline (allocator fragmentation); a leak of 1 KB per request over the
    run's thousands of requests would exceed it. Under ASan, 16 MB more for
    its quarantine of freed memory (cut to 16 MB in setup()); there
    LeakSanitizer's report at exit (daemon_clean_exit) checks leaks too."""
    need_run()
    rss = dict(S["rss"])
    base = rss["after warm-up"]
    allow = (32 if _is_asan() else 16) * 1024 + base // 10
    grown = [(k, v) for k, v in S["rss"] if k.startswith("after round") and v - base > allow]
    check(not grown, f"VmRSS grew past {base} + {allow} kB: {grown} (all: {S['rss']})")


def _is_asan():
    try:
        with open(f"/proc/{S['d'].proc.pid}/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


@test
def test_daemon_serves_after_chaos():
    need_run()
    for p in ("/healthz",):
        r = R.http_request(S["d"].port, "GET", p)
        eq(r.status, 200, p)
    c = S["chains"]["t_bare_s500_p1"]
    r = one_request(c, False, "after")
    eq(r.kind, "success", f"a request after the run ({r.error})")
    r = one_request(c, True, "after")
    eq(r.kind, "success", f"a stream after the run ({r.error})")


@test
def test_summary():
    """Prints the fault matrix's figures (never fails once the load ran):
    per fault and position, for each variant, plain "successes/errors" and
    streamed "successes/error events/errors", the errors by status, the
    skipped models (x-router-skipped) and the slowest request."""
    need_run()
    res = S["results"]
    cells = collections.defaultdict(collections.Counter)
    lat = collections.defaultdict(float)
    for r in res:
        c = S["chains"][r.tier]
        key = (c["fault"], c["pos"])
        cells[key][(c["variant"], r.stream, r.kind)] += 1
        if r.kind == "error":
            cells[key][f"status {r.status}"] += 1
        cells[key]["skipped"] += len(r.skipped)
        lat[key] = max(lat[key], r.elapsed)

    def cell(row, v):
        p = "/".join(str(row[(v, False, k)]) for k in ("success", "error"))
        st = "/".join(str(row[(v, True, k)]) for k in ("success", "stream_error", "error"))
        return f"{p:>9} {st:>11}"
    print("# (plain: ok/error, stream: ok/error event/error)     bare                 armed", flush=True)
    print("# fault    pos     plain      stream      plain      stream   errors by status    skips max_s",
          flush=True)
    for f in FAULTS:
        for pos in POSITIONS:
            k = (f, pos)
            row = cells[k]
            errs = " ".join(f"{x[7:]}:{row[x]}" for x in sorted(x for x in row if isinstance(x, str)
                                                                   and x.startswith("status ")))
            print(f"# {f:8} {pos:4} {cell(row, 'bare')} {cell(row, 'armed')}   {errs or '-':18} "
                  f"{row['skipped']:5} {lat[k]:5.1f}", flush=True)
    kinds = collections.Counter(r.kind for r in res)
    statuses = collections.Counter(r.status for r in res if r.kind == "error")
    print(f"# {len(res)} requests ({sum(1 for r in res if r.stream)} streamed): {dict(kinds)}; "
          f"errors by status {dict(sorted(statuses.items()))}; "
          f"max latency {max((r.elapsed for r in res), default=0):.2f} s; VmRSS kB {S['rss']}", flush=True)
    kind_of = {m["name"]: m["kind"] for c in S["chains"].values() for m in c["models"]}
    results = collections.defaultdict(collections.Counter)
    for (n, labels), v in S["m1"].items():
        lab = dict(labels)
        if n == "llmrouter_upstream_attempts_total" and lab.get("model") in kind_of:
            d = v - S["m0"].get((n, labels), 0.0)
            if d:
                results[kind_of[lab["model"]]][lab.get("result")] += int(d)
    for k in list(FAULTS) + ["ok"]:
        print(f"# attempts on {k} models by result: {dict(results[k].most_common())}", flush=True)
    ht, ts, sm = S.get("attempt_totals", (0, 0, 0))
    print(f"# attempts: x-router-attempts summed {ht}; sent to the simulator's models {ts:.0f}; "
          f"received by the simulator {sm}", flush=True)


# ------------------------------------------------------------------ last

@test
def test_daemon_clean_exit():
    """Runs last, whatever -k says: the daemon exits 0 on SIGTERM (under ASan
    a leak or an error report makes it exit non-zero) and logged no
    sanitizer report."""
    d = S["d"]
    ok, msg = d.stop()
    err = d.stderr_text()
    check("AddressSanitizer" not in err and "runtime error" not in err and "LeakSanitizer" not in err,
          f"sanitizer report in the daemon's stderr: {err[-1500:]}")
    check(ok, f"daemon stop: {msg}")


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), setup=setup, teardown=teardown,
                       always=("daemon_clean_exit",))


if __name__ == "__main__":
    sys.exit(main())
