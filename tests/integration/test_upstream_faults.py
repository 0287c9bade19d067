#!/usr/bin/env python3
"""Integration tests of upstream faults: the real daemon over real sockets and
the simulated provider's model-name-triggered faults (the "upstream faults"
block of tests/sim/simprovider.py).

    python3 tests/integration/test_upstream_faults.py [-k SUBSTRING]... [-v]

Covers (issue 10):
- a provider that reads the request and closes a pooled keep-alive
  connection without answering gets the prompt exactly as many times as
  x-router-attempts, the 502's attempts list, the access log and the metrics
  say (libcurl's silent re-sends are refused; llmrouter's own retry of a
  stale connection, on a new one, is a counted attempt) — plain, streamed
  and alone;
- a chain that fails only with 429s answers 429 (rate_limit_error,
  all_upstreams_rate_limited) with retry-after / retry-after-ms (the smallest
  of the chain, from retry-after-ms, retry-after seconds or an HTTP-date; 1 s
  when the provider gives none; capped at 60 s) and no x-should-retry: false;
  a chain with a real failure keeps its 502; streams get the plain 429;
- a stream that ends cleanly without [DONE] gets a synthesised [DONE] only
  when every choice it showed had a finish_reason (chat, legacy completions,
  n = 2, chunked and connection-close framing); otherwise it ends with the
  error event, is logged as failed and is not cached.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import re
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
  unsetkey:  {type: openai, base_url: "${SIM_URL}/v1", api_key_env: UPSTREAM_FAULTS_UNSET_KEY}
"""
# The 429 models count attempts per request: their cooldown (a 429 cools a
# model down for its Retry-After) is off here; test_health.py tests it.
EXTRA_MODELS = """\
  munset:      {provider: unsetkey, model: sim-unset}
  mdrop:       {provider: good, model: sim-drop-after-read, circuit: false}
  m429ms:      {provider: good, model: sim-429-ms-1500, circuit: false}
  m429ms2500:  {provider: good, model: sim-429-ms-2500, circuit: false}
  m429s30:     {provider: good, model: sim-429-s-30, circuit: false}
  m429s600:    {provider: good, model: sim-429-s-600, circuit: false}
  m429date:    {provider: good, model: sim-429-date-20, circuit: false}
  m429none:    {provider: good, model: sim-429-none, circuit: false}
  snofin:      {provider: good, model: sim-stream-nofinish-nodone}
  sclosecut:   {provider: good, model: sim-stream-close-nofinish-nodone}
  snodone:     {provider: good, model: sim-stream-nodone}
  sclosenodone: {provider: good, model: sim-stream-close-nodone}
  sn2half:     {provider: good, model: sim-stream-n2-halffinish-nodone}
  sn2nodone:   {provider: good, model: sim-stream-n2-nodone}
  sdone:       {provider: good, model: sim-stream-nofinish}
"""
EXTRA_TIERS = """\
  fdrop:       [mdrop, good-mini]
  droponly:    [mdrop]
  r429ms:      [m429ms]
  r429chain:   [m429s30, m429ms2500, m429date]
  r429date:    [m429date]
  r429none:    [m429none]
  r429cap:     [m429s600]
  r429skip:    [munset, m429ms]
  r429p:       [m429]
  r429mixed:   [m429s30, m500]
  tnofin:      [snofin, good-mini]
  tclosecut:   [sclosecut]
  tnodone:     [snodone]
  tclosenodone: [sclosenodone]
  tn2half:     [sn2half]
  tn2nodone:   [sn2nodone]
  tdone:       [sdone]
"""


def test(fn):
    TESTS.append(fn)
    return fn


def write_config():
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    head = head.replace("\nproviders:\n", "\nproviders:\n" + EXTRA_PROVIDERS, 1)
    head = head.replace("\nmodels:\n", "\nmodels:\n" + EXTRA_MODELS, 1)
    head = head.replace("\ntiers:\n", "\ntiers:\n" + EXTRA_TIERS, 1)
    out = head + "\ncache:\n  backend: memory\n  ttl_s: 300\n"
    out += f"\nobservability:\n  access_log: \"{S['access_log']}\"\n"
    path = os.path.join(E.tmp, "upstream-faults.yaml")
    with open(path, "w") as f:
        f.write(out)
    return path


def setup():
    S["access_log"] = os.path.join(E.tmp, "access.log")
    os.environ.pop("UPSTREAM_FAULTS_UNSET_KEY", None)  # munset is skipped, never called
    S["d"] = E.new_daemon(tag="upstream-faults", config=write_config()).start()


def teardown():
    d = S.get("d")
    if d is not None:
        d.kill()


def post(path, body, headers=None, timeout=20):
    return R.http_request(S["d"].port, "POST", path, json.dumps(body).encode(),
                          headers=headers, timeout=timeout)


def raw(path, body):
    return R.RawHTTP(S["d"].port, "POST", path, json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})


def sim_bodies(model):
    """Request bodies the simulator recorded for an upstream model."""
    return [q.get("body") for q in E.sim_requests()
            if isinstance(q.get("body"), dict) and q["body"].get("model") == model]


def prompt_count(model, prompt):
    n = 0
    for b in sim_bodies(model):
        for m in b.get("messages") or []:
            if isinstance(m, dict) and m.get("content") == prompt:
                n += 1
                break
    return n


def access_entry(rid, timeout=3.0):
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


def metric(name, **labels):
    text = R.http_request(S["d"].port, "GET", "/metrics").body.decode()
    total = 0.0
    for ln in text.splitlines():
        if not ln.startswith(name + "{"):
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', ln.split("}", 1)[0]))
        if all(lab.get(k) == v for k, v in labels.items()):
            total += float(ln.rsplit(" ", 1)[1])
    return total


def warm_pool(n=8):
    """Several concurrent good requests, so that each shard keeps several
    idle keep-alive connections to the simulator."""
    errs = []

    def one(i):
        try:
            r = post("/v1/chat/completions", chat_body("good-mini", f"warm {i}"))
            if r.status != 200:
                errs.append(r.status)
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))
    for _ in range(2):
        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    check(not errs, f"warm-up requests failed: {errs}")


# ------------------------------------------------------------ 1: re-sends

def _drop(streamed, tag):
    warm_pool()
    E.sim_reset()
    prompt = f"drop me once ({tag} {time.monotonic()})"
    rid = f"drop-{tag}-{int(time.time() * 1000)}"
    before = metric("llmrouter_upstream_attempts_total", model="mdrop")
    body = chat_body("fdrop", prompt, stream=streamed, temperature=0.3)
    if streamed:
        s = R.RawHTTP(S["d"].port, "POST", "/v1/chat/completions", json.dumps(body).encode(),
                      headers={"Content-Type": "application/json", "x-request-id": rid}).read_head()
        try:
            eq(s.status, 200, "status")
            attempts = s.h("x-router-attempts")
            model = s.h("x-router-model")
            datas, _ = R.read_stream(s)
        finally:
            s.close()
        check(datas and datas[-1] == "[DONE]", f"stream does not end with [DONE]: {datas[-2:]!r}")
    else:
        r = post("/v1/chat/completions", body, headers={"x-request-id": rid})
        eq(r.status, 200, f"status (body {R.short(r.body)})")
        attempts = r.h("x-router-attempts")
        model = r.h("x-router-model")
    eq(model, "good-mini", "answered by the next model of the chain")
    # 2: mdrop once, then good-mini; 3: mdrop on a reused connection (stale,
    # retried once on a new one), mdrop again, then good-mini
    check(attempts in ("2", "3"), f"x-router-attempts: {attempts!r}")
    n = int(attempts)
    got = prompt_count("sim-drop-after-read", prompt)
    eq(got, n - 1, "times the dropping provider received the prompt (each attempt sent once)")
    eq(prompt_count("sim-mini", prompt), 1, "times the next model received the prompt")
    j = access_entry(rid)
    eq(j.get("attempts"), n, "access log attempts")
    after = metric("llmrouter_upstream_attempts_total", model="mdrop")
    eq(after - before, float(n - 1), "llmrouter_upstream_attempts_total{model=mdrop} increase")


@test
def test_drop_after_read_not_resent():
    _drop(False, "plain")


@test
def test_drop_after_read_stream_not_resent():
    _drop(True, "stream")


@test
def test_drop_after_read_alone_502():
    warm_pool()
    for i in range(3):
        E.sim_reset()
        prompt = f"drop alone {i} {time.monotonic()}"
        r = post("/v1/chat/completions", chat_body("droponly", prompt))
        err = R.check_error(r, 502, "all_upstreams_failed")
        n = int(r.h("x-router-attempts"))
        # a reused connection: "the reused connection closed before any
        # response (not re-sent)", retried once on a new connection; a new
        # one: curl's "Server returned nothing"
        check(n in (1, 2), f"x-router-attempts {n}")
        eq(len(err.get("attempts") or []), n, "error.attempts")
        e0 = err["attempts"][0]["error"]
        check("closed" in e0 or "nothing" in e0, f"the attempt says the connection closed: {e0}")
        if n == 2:
            check("reused" in e0, f"a second attempt only after a stale connection: {e0}")
            eq(err["attempts"][1].get("retry"), 1, "the second attempt is a retry")
        eq(prompt_count("sim-drop-after-read", prompt), n,
           "times the provider received the prompt for one client request")


# ------------------------------------------------------------ 3: 429s

def _check_429(r, retry_s, retry_ms, what, attempts=None):
    err = R.check_error(r, 429, "all_upstreams_rate_limited", what)
    eq(err.get("type"), "rate_limit_error", f"{what}: error.type")
    check(err.get("param", "missing") is None, f"{what}: error.param must be null")
    check(isinstance(err.get("attempts"), list) and err["attempts"], f"{what}: error.attempts")
    for a in err["attempts"]:
        check(a.get("status") in (429, None), f"{what}: attempt {a}")
    if attempts is not None:
        eq(len(err["attempts"]), attempts, f"{what}: attempts listed")
    ra, ram = r.h("retry-after"), r.h("retry-after-ms")
    check(ra is not None and ra.isdigit(), f"{what}: retry-after {ra!r}")
    check(ram is not None and ram.isdigit(), f"{what}: retry-after-ms {ram!r}")
    if isinstance(retry_s, tuple):
        check(retry_s[0] <= int(ra) <= retry_s[1], f"{what}: retry-after {ra} not in {retry_s}")
    else:
        eq(int(ra), retry_s, f"{what}: retry-after")
    if isinstance(retry_ms, tuple):
        check(retry_ms[0] <= int(ram) <= retry_ms[1], f"{what}: retry-after-ms {ram} not in {retry_ms}")
    else:
        eq(int(ram), retry_ms, f"{what}: retry-after-ms")
    check((r.h("x-should-retry") or "").lower() != "false", f"{what}: x-should-retry: false on a 429")
    return err


@test
def test_429_only_provider_retry_after_ms():
    r = post("/v1/chat/completions", chat_body("r429ms", "rate limited ms"))
    _check_429(r, 2, 1500, "retry-after-ms: 1500", attempts=1)
    R.check_json_ct(r)


@test
def test_429_chain_smallest_retry():
    r = post("/v1/chat/completions", chat_body("r429chain", "rate limited chain"))
    _check_429(r, 3, 2500, "chain of 30 s, 2500 ms, HTTP-date +20 s", attempts=3)


@test
def test_429_http_date():
    r = post("/v1/chat/completions", chat_body("r429date", "rate limited date"))
    _check_429(r, (17, 21), (17000, 21000), "Retry-After as an HTTP-date")


@test
def test_429_without_header_default_1s():
    r = post("/v1/chat/completions", chat_body("r429none", "rate limited none"))
    _check_429(r, 1, 1000, "no retry header")


@test
def test_429_capped_60s():
    r = post("/v1/chat/completions", chat_body("r429cap", "rate limited long"))
    _check_429(r, 60, 60000, "Retry-After: 600")


@test
def test_429_existing_p429_both_headers():
    # the simulator's status=429,retry_after=1 sends both headers
    r = post("/v1/chat/completions", chat_body("r429p", "rate limited p429"))
    _check_429(r, 1, 1000, "p429 (Retry-After: 1, retry-after-ms: 1000)")


@test
def test_429_skipped_model_does_not_count():
    # munset is skipped (its key variable is unset) without a call: the only
    # provider called rate-limited us, so the answer is still the 429
    E.sim_reset()
    r = post("/v1/chat/completions", chat_body("r429skip", "skipped then 429"))
    err = _check_429(r, 2, 1500, "skipped model + 429", attempts=2)
    check("skipped" in err["attempts"][0]["error"], f"first attempt skipped: {err['attempts'][0]}")
    eq(len(sim_bodies("sim-unset")), 0, "the skipped model was not called")


@test
def test_429_mixed_with_500_stays_502():
    r = post("/v1/chat/completions", chat_body("r429mixed", "429 then 500"))
    R.check_error(r, 502, "all_upstreams_failed")
    eq((r.h("x-should-retry") or "").lower(), "false", "x-should-retry on the 502")
    check(r.h("retry-after") is None, f"no retry-after on the 502: {r.h('retry-after')!r}")


@test
def test_429_stream_plain_error():
    s = raw("/v1/chat/completions", chat_body("r429ms", "rate limited stream", stream=True)).read_head()
    try:
        body = s.read_all()
        status, ctype = s.status, s.h("content-type") or ""
        ra, ram, xsr = s.h("retry-after"), s.h("retry-after-ms"), s.h("x-should-retry")
    finally:
        s.close()
    eq(status, 429, f"status (body {R.short(body)})")
    check(ctype.startswith("application/json"), f"content-type {ctype!r}")
    j = json.loads(body)
    eq(j["error"]["code"], "all_upstreams_rate_limited", "error.code")
    eq(ra, "2", "retry-after")
    eq(ram, "1500", "retry-after-ms")
    check((xsr or "").lower() != "false", "x-should-retry: false on a 429")


# ------------------------------------------------------------ 7: [DONE]

def _stream(path, body, rid):
    s = R.RawHTTP(S["d"].port, "POST", path, json.dumps(body).encode(),
                  headers={"Content-Type": "application/json", "x-request-id": rid}).read_head()
    try:
        eq(s.status, 200, "status")
        datas, _ = R.read_stream(s)
        return datas, s.h("x-cache"), s.h("x-router-model")
    finally:
        s.close()


def _expect_error_end(datas, what):
    check("[DONE]" not in datas, f"{what}: synthesised [DONE] on an unfinished stream: {datas[-3:]!r}")
    check(datas, f"{what}: no events")
    last = json.loads(datas[-1])
    check(isinstance(last.get("error"), dict) and last["error"].get("message"),
          f"{what}: the last event is not an error event: {datas[-1]}")
    eq(last["error"].get("code"), "upstream_stream_interrupted", f"{what}: error.code")
    for d in datas[:-1]:
        json.loads(d)  # every event before the error is whole JSON (nothing glued)


def _expect_done_end(datas, what, text="Shaped stream text."):
    check(datas and datas[-1] == "[DONE]", f"{what}: no [DONE] at the end: {datas[-3:]!r}")
    eq(datas.count("[DONE]"), 1, f"{what}: [DONE] count")
    for d in datas[:-1]:
        check("error" not in json.loads(d), f"{what}: error event in a complete stream: {d}")
    if text is not None:
        got = R.stream_text(datas)
        check(got.startswith(text), f"{what}: text {got!r}")


def _uniq(tag):
    return f"{tag}-{int(time.time() * 1000)}"


@test
def test_stream_nofinish_clean_end_is_error_not_cached():
    prompt = f"no finish {time.monotonic()}"
    body = chat_body("tnofin", prompt, stream=True, temperature=0)
    rid = _uniq("nofin")
    datas, xc, model = _stream("/v1/chat/completions", body, rid)
    eq(model, "snofin", "no failover once committed")
    _expect_error_end(datas, "chunked stream without finish_reason and [DONE]")
    j = access_entry(rid)
    eq(j.get("status"), 502, "access log status of a stream that ended with an error event")
    # not cached: the same request goes upstream again
    E.sim_reset()
    datas2, xc2, _ = _stream("/v1/chat/completions", body, _uniq("nofin2"))
    eq(xc2, "MISS", "x-cache of the repeated request")
    eq(len(sim_bodies("sim-stream-nofinish-nodone")), 1, "the repeat reached the provider")
    _expect_error_end(datas2, "repeat")


@test
def test_stream_finish_without_done_gets_done_and_is_cached():
    # the control for the test above: the same shape with a finish_reason
    prompt = f"finish no done {time.monotonic()}"
    body = chat_body("tnodone", prompt, stream=True, temperature=0)
    datas, _, _ = _stream("/v1/chat/completions", body, _uniq("nodone"))
    _expect_done_end(datas, "chunked, finish_reason, no [DONE]")
    E.sim_reset()
    datas2, xc2, _ = _stream("/v1/chat/completions", body, _uniq("nodone2"))
    eq(xc2, "HIT", "a complete stream is cached")
    eq(len(sim_bodies("sim-stream-nodone")), 0, "the repeat did not reach the provider")


@test
def test_stream_close_framed_cut_is_error():
    rid = _uniq("closecut")
    datas, _, _ = _stream("/v1/chat/completions", chat_body("tclosecut", "close cut", stream=True), rid)
    _expect_error_end(datas, "connection-close-framed stream cut before finish_reason")
    eq(access_entry(rid).get("status"), 502, "access log status")


@test
def test_stream_close_framed_finish_gets_done():
    datas, _, _ = _stream("/v1/chat/completions", chat_body("tclosenodone", "close ok", stream=True),
                          _uniq("closeok"))
    _expect_done_end(datas, "connection-close framing, finish_reason, no [DONE]")


@test
def test_stream_n2_one_unfinished_is_error():
    datas, _, _ = _stream("/v1/chat/completions",
                          chat_body("tn2half", "two choices", stream=True, n=2), _uniq("n2half"))
    _expect_error_end(datas, "n=2, only choice 0 finished")


@test
def test_stream_n2_finished_gets_done():
    datas, _, _ = _stream("/v1/chat/completions",
                          chat_body("tn2nodone", "two choices ok", stream=True, n=2), _uniq("n2ok"))
    _expect_done_end(datas, "n=2, both finished", text=None)


@test
def test_stream_with_done_but_no_finish_passes_as_is():
    # the provider's own [DONE] is its word: passed through (not synthesised)
    datas, _, _ = _stream("/v1/chat/completions", chat_body("tdone", "provider done", stream=True),
                          _uniq("pdone"))
    check(datas and datas[-1] == "[DONE]", f"provider's [DONE] kept: {datas[-3:]!r}")


@test
def test_stream_client_usage_finish_without_done():
    body = chat_body("tnodone", f"usage please {time.monotonic()}", stream=True,
                     stream_options={"include_usage": True})
    datas, _, _ = _stream("/v1/chat/completions", body, _uniq("usage"))
    _expect_done_end(datas, "include_usage, no [DONE]")
    u = json.loads(datas[-2])
    check(u.get("choices") == [] and isinstance(u.get("usage"), dict),
          f"usage chunk right before [DONE]: {datas[-2]}")


def _legacy(tier, prompt):
    return {"model": tier, "prompt": prompt, "stream": True}


@test
def test_legacy_completions_stream_nofinish_is_error():
    datas, _, _ = _stream("/v1/completions", _legacy("tclosecut", "legacy cut"), _uniq("lcut"))
    _expect_error_end(datas, "legacy completions without finish_reason")


@test
def test_legacy_completions_stream_finish_gets_done():
    datas, _, _ = _stream("/v1/completions", _legacy("tnodone", "legacy ok"), _uniq("lok"))
    _expect_done_end(datas, "legacy completions with finish_reason", text=None)


# ------------------------------------------------------------------ last

@test
def test_daemon_clean_exit():
    """Runs last, whatever -k says: the daemon exits 0 on SIGTERM (under ASan
    a leak or an error report makes it exit non-zero) and logged no
    sanitizer report."""
    d = S["d"]
    ok, msg = d.stop()
    err = d.stderr_text()
    check("AddressSanitizer" not in err and "runtime error" not in err,
          f"sanitizer report in the daemon's stderr: {err[-1500:]}")
    check(ok, f"daemon stop: {msg}")


# ------------------------------------------------------------------ main

def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), setup=setup, teardown=teardown,
                       always=("daemon_clean_exit",))


if __name__ == "__main__":
    sys.exit(main())
