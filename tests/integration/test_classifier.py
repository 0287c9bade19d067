#!/usr/bin/env python3
"""Integration tests of classifier routing (routing.classifier): the real
daemon over real sockets, the simulated provider's classifier models
(tests/sim/simprovider.py: sim-classify answers a label taken from "[[x]]"
in the prompt, sim-classify-garbage a sentence, sim-classify-slow-<ms>
answers late, sim-classify-500 fails).

    python3 tests/integration/test_classifier.py [-k SUBSTRING]...

Covers: a label routes to its tier (`classify: true` action and `classify:`
condition); garbage, a timeout and a 500 fall back to the rules without the
label (still 200), the timeout within about timeout_ms; the decision cache
(the simulator sees one call for two identical prompts, the header says
cached); a request decided by an earlier rule, or whose rule's other
conditions already fail, is not classified; the classifier's cost is in
x-router-cost-usd, the access log and /metrics; explain never calls the
classifier; a client that leaves during classification; configuration
errors with file:line:col.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None
S = {}

# Classifier models, priced high so that their cost is plain to see
# (100 USD per million tokens in and out).
CLS_MODELS = """\
  cls-ok:      {provider: good, model: sim-classify, input_per_mtok: 100, output_per_mtok: 100}
  cls-garbage: {provider: good, model: sim-classify-garbage, input_per_mtok: 100, output_per_mtok: 100}
  cls-slow:    {provider: good, model: sim-classify-slow-3000, input_per_mtok: 100, output_per_mtok: 100}
  cls-500:     {provider: good, model: sim-classify-500, input_per_mtok: 100, output_per_mtok: 100}
"""

# hinted-premium comes first and needs no label; `labelled` takes its tier
# from the label; `cond-code` needs both its keyword and the label.
RULES = """\
  rules:
    - name: hinted-premium
      when: {header: {x-router-hint: premium}}
      tier: premium
    - name: labelled
      when: {keywords: [classifyme]}
      classify: true
    - name: cond-code
      when: {keywords: [condtest], classify: [code, reasoning]}
      tier: premium
"""


def test(fn):
    TESTS.append(fn)
    return fn


def base_head():
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\nrouting:\n")
    head = head.replace("  threads: 2\n", "  threads: 1\n", 1)  # one decision cache
    return head.replace("\nmodels:\n", "\nmodels:\n" + CLS_MODELS, 1)


def write_config(name, model, timeout_ms=300, extra=""):
    text = base_head()
    text += ("\nrouting:\n  default_tier: standard\n  routable_models: [gpt-4o]\n"
             "  classifier:\n"
             f"    model: {model}\n"
             "    labels: {simple: budget, code: premium, reasoning: premium}\n"
             f"    timeout_ms: {timeout_ms}\n" + extra + RULES)
    text += "\ncache:\n  backend: off\n"
    S.setdefault("logs", {})[name] = os.path.join(E.tmp, f"{name}.access.log")
    text += f"\nobservability:\n  access_log: \"{S['logs'][name]}\"\n"
    path = os.path.join(E.tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def setup():
    for name, model in (("ok", "cls-ok"), ("garbage", "cls-garbage"), ("slow", "cls-slow"),
                        ("e500", "cls-500")):
        S[name] = E.new_daemon(tag=f"cls-{name}", config=write_config(name, model)).start()


def teardown():
    for name in ("ok", "garbage", "slow", "e500"):
        d = S.get(name)
        if d is not None:
            d.kill()


def nonce():
    return uuid.uuid4().hex[:12]


def post(d, content, headers=None, path="/v1/chat/completions"):
    return R.http_request(d.port, "POST", path, json.dumps(chat_body("auto", content)).encode(),
                          headers=headers or {})


def cls_stats():
    r = E.sim("GET", "/_sim/classifier")
    check(r.status == 200, f"/_sim/classifier -> {r.status}")
    return r.json


def calls_for(text):
    """How many classifier calls the simulator saw whose text contains text."""
    return sum(1 for t in cls_stats()["texts"] if text in t)


def routed(r, tier, rule, classifier, what):
    eq(r.status, 200, f"{what}: status ({R.short(r.body)})")
    eq(r.h("x-router-tier"), tier, f"{what}: x-router-tier")
    eq(r.h("x-router-rule"), rule, f"{what}: x-router-rule")
    eq(r.h("x-router-classifier"), classifier, f"{what}: x-router-classifier")


def log_line(name, rid, timeout=3.0):
    path = S["logs"][name]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for ln in f:
                    if ln.strip():
                        j = json.loads(ln)
                        if j.get("request_id") == rid:
                            return j
        time.sleep(0.05)
    raise Fail(f"no access log line for {rid} in {path}")


@test
def test_label_routes_to_its_tier():
    n = nonce()
    r = post(S["ok"], f"classifyme {n} [[code]] please")
    routed(r, "premium", "labelled", "code", "label code")
    eq(r.h("x-router-model"), "good-large", "premium's first model answered")
    r = post(S["ok"], f"classifyme {n} [[simple]] please")
    routed(r, "budget", "labelled", "simple", "label simple")
    eq(calls_for(n), 2, "one classifier call per distinct prompt")


@test
def test_classify_condition():
    n = nonce()
    r = post(S["ok"], f"condtest {n} [[reasoning]]")
    routed(r, "premium", "cond-code", "reasoning", "label in the condition's list")
    r = post(S["ok"], f"condtest {n} [[simple]]")
    routed(r, "standard", "default", "simple", "label not in the list: the default tier")


@test
def test_garbage_falls_back():
    n = nonce()
    r = post(S["garbage"], f"classifyme {n} [[code]]")
    # fallback: the classify action does not match, no later rule does
    routed(r, "standard", "default", "garbage", "garbage answer")
    eq(calls_for(n), 1, "the classifier was asked once")
    r = post(S["garbage"], f"classifyme {n} [[code]]")
    eq(r.h("x-router-classifier"), "garbage", "a garbage answer is not cached")
    eq(calls_for(n), 2, "asked again")


@test
def test_timeout_falls_back_in_time():
    n = nonce()
    t0 = time.monotonic()
    r = post(S["slow"], f"classifyme {n} [[code]]")
    took = time.monotonic() - t0
    routed(r, "standard", "default", "timeout", "slow classifier")
    # timeout_ms is 300 and the simulator answers after 3 s: the answer
    # must come long before the classifier's (generous bound)
    check(took < 2.5, f"answered after {took:.2f} s, expected about 0.3 s")
    j = log_line("slow", r.h("x-request-id"))
    eq(j["classifier"]["result"], "timeout", "access log classifier.result")
    check(j["classifier"]["error"], f"the log says why: {j['classifier']}")


@test
def test_500_falls_back():
    n = nonce()
    r = post(S["e500"], f"condtest {n} [[code]]")
    routed(r, "standard", "default", "error", "classifier 500")
    eq(R.reply_content(r) is not None, True, "a normal answer")


@test
def test_decision_cache():
    n = nonce()
    text = f"classifyme {n} [[reasoning]] cached?"
    r1 = post(S["ok"], text)
    routed(r1, "premium", "labelled", "reasoning", "first")
    r2 = post(S["ok"], text)
    routed(r2, "premium", "labelled", "cached:reasoning", "second, identical")
    eq(calls_for(n), 1, "the simulator saw one classifier call for two identical prompts")
    j = log_line("ok", r2.h("x-request-id"))
    eq(j["classifier"]["result"], "cache_hit", "access log classifier.result")
    eq(j["classifier"]["cost_usd"], None, "a cache hit costs nothing")


@test
def test_earlier_rule_is_not_classified():
    n = nonce()
    r = post(S["ok"], f"classifyme {n} [[code]]", headers={"x-router-hint": "premium"})
    eq(r.status, 200, "status")
    eq(r.h("x-router-rule"), "hinted-premium", "the earlier rule decided")
    eq(r.h("x-router-classifier"), None, "no x-router-classifier header")
    # no rule needs the label: labelled's keyword and cond-code's keyword
    # are both absent, so the classify condition is never reached
    r = post(S["ok"], f"plain question {n} [[code]]")
    routed(r, "standard", "default", None, "no rule needs the label")
    eq(calls_for(n), 0, "the simulator saw no classifier call")


@test
def test_cost_counts_the_classifier():
    n = nonce()
    text = f"classifyme {n} [[code]] " + "x" * 400
    r = post(S["ok"], text)
    routed(r, "premium", "labelled", "code", "classified")
    j = log_line("ok", r.h("x-request-id"))
    c = j["classifier"]
    eq(c["result"], "ok", "classifier.result")
    eq(c["label"], "code", "classifier.label")
    eq(c["model"], "cls-ok", "classifier.model")
    check(c["prompt_tokens"] > 100 and c["completion_tokens"] == 1, f"classifier tokens: {c}")
    check(c["cost_usd"] > 0.01, f"classifier cost (100 USD/Mtok, >100 tokens): {c}")
    total = float(r.h("x-router-cost-usd"))
    check(abs(total - j["cost_usd"]) < 1e-9, f"header {total} == access log cost_usd {j['cost_usd']}")
    check(total >= c["cost_usd"] + 1e-7, f"the request's cost {total} includes the classifier's "
                                          f"{c['cost_usd']} and the answer's")
    m = R.http_request(S["ok"].port, "GET", "/metrics").body.decode()
    check('llmrouter_classifier_requests_total{model="cls-ok",result="ok"}' in m,
          "llmrouter_classifier_requests_total{result=ok} in /metrics")
    check('llmrouter_classifier_cost_usd_total{model="cls-ok"}' in m,
          "llmrouter_classifier_cost_usd_total in /metrics")


@test
def test_explain_does_not_call():
    n = nonce()
    r = post(S["ok"], f"classifyme {n} [[code]]", path="/v1/router/explain")
    eq(r.status, 200, f"explain status ({R.short(r.body)})")
    j = r.json
    eq(j.get("classifier"), "would_classify", "explain says the classifier would be asked")
    eq(j["decision"]["rule"], "default", "the decision without a label")
    eq(calls_for(n), 0, "explain did not call the classifier")
    r = post(S["ok"], f"nothing here {n}", path="/v1/router/explain")
    eq(r.json.get("classifier"), "not_needed", "no rule needs the label")


@test
def test_client_leaves_during_classification():
    d = S["slow"]
    n = nonce()
    body = json.dumps(chat_body("auto", f"classifyme {n} [[code]]")).encode()
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.1)  # the classifier call is in flight (it answers after 3 s)
        s.close()
    time.sleep(0.5)  # past the classifier timeout: a cancelled call must not call back
    check(d.alive(), f"daemon died\n{d.stderr_tail()}")
    r = post(d, f"classifyme {n} after [[code]]")
    routed(r, "standard", "default", "timeout", "the next request")


@test
def test_shutdown_during_classification():
    """SIGTERM while a classifier call is in flight (timeout 10 s, the
    simulator answers after 3 s; the grace period is 2 s): the daemon
    exits 0, without a leak under ASan."""
    import threading
    d = E.new_daemon(tag="cls-shutdown",
                     config=write_config("shutdown", "cls-slow", timeout_ms=10000)).start()
    got = {}

    def client():
        try:
            got["r"] = post(d, f"classifyme {nonce()} [[code]]")
        except OSError as e:
            got["e"] = e

    t = threading.Thread(target=client, daemon=True)
    t.start()
    time.sleep(0.3)
    ok, msg = d.stop()
    t.join(10)
    text = d.stderr_text()
    check(ok, f"stop: {msg}\n{d.stderr_tail()}")
    check("AddressSanitizer" not in text and "LeakSanitizer" not in text and
          "runtime error" not in text, f"sanitizer report:\n{d.stderr_tail()}")


BAD = [
    ("unknown model", "  classifier: {model: nope, labels: {a: budget}}\n", "",
     'no model named "nope"'),
    ("unknown tier", "  classifier: {model: cls-ok, labels: {a: nowhere}}\n", "",
     'no tier named "nowhere"'),
    ("timeout range", "  classifier: {model: cls-ok, labels: {a: budget}, timeout_ms: 99999}\n", "",
     "timeout_ms"),
    ("no classifier", "",
     "  rules:\n    - {name: r, when: {classify: [a]}, tier: premium}\n",
     "needs routing.classifier"),
    ("unknown label", "  classifier: {model: cls-ok, labels: {a: budget}}\n",
     "  rules:\n    - {name: r, when: {classify: [b]}, tier: premium}\n",
     '"b" is not a label'),
    ("action without classifier", "",
     "  rules:\n    - {name: r, when: {keywords: [x]}, classify: true}\n",
     "needs routing.classifier"),
]


@test
def test_config_errors_have_positions():
    for what, cls, rules, msg in BAD:
        path = os.path.join(E.tmp, "bad.yaml")
        text = base_head() + "\nrouting:\n  default_tier: standard\n" + cls + rules
        with open(path, "w") as f:
            f.write(text)
        total = text.count("\n")
        # the error is on the classifier's line, or on the rule (after "rules:")
        line = total - rules.count("\n") + 2 if rules else total - cls.count("\n") + 1
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True, text=True,
                             timeout=20, env=dict(os.environ, SIM_URL="http://127.0.0.1:9",
                                                  SIM_KEY_GOOD="k"))
        check(out.returncode != 0, f"{what}: accepted")
        check(msg in out.stderr, f"{what}: expected {msg!r} in {out.stderr!r}")
        want = f"{path}:{line}:"
        check(want in out.stderr, f"{what}: expected {want}COL in {out.stderr!r}")


@test
def test_zz_daemons_exit_cleanly():
    """Last, always: every daemon stops with status 0 on SIGTERM — under
    ASan a leak (a classifier call or request not freed) makes it fail."""
    bad = []
    for name in ("ok", "garbage", "slow", "e500"):
        d = S.get(name)
        if d is None:
            continue
        ok, msg = d.stop()
        text = d.stderr_text()
        if not ok or "ERROR: AddressSanitizer" in text or "runtime error" in text or \
                "LeakSanitizer" in text:
            bad.append(f"{name}: {msg}\n{d.stderr_tail()}")
    check(not bad, "; ".join(bad))


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],), setup=setup,
                         teardown=teardown, always=("zz_daemons_exit_cleanly",)))
