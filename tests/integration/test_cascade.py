#!/usr/bin/env python3
"""Integration tests of cheapest-first cascade tiers (issue 12 part 3): the
real daemon over real sockets and the simulated provider's cascade answers
(tests/sim/simprovider.py, "cascade answers" block).

    python3 tests/integration/test_cascade.py [-k SUBSTRING]...

Covers: each rejection reason escalates to the next model (empty, length,
invalid JSON, schema violation, refusal phrase, refusal field, regex, judge
below its threshold, a judge that answers no score) and x-router-cascade and
the access log show it; an accepted first step does not call the next model
(the simulator's request log); every step rejected -> the last model's
answer returned as is; a provider error inside the cascade fails over; the
last rejected answer is returned when every later model fails; a streamed
request uses the tier as a plain failover chain; the cost is the sum of the
attempts (and judges); models are tried cheapest first; the cache stores
only an accepted answer; configuration errors with file:line:column; the
report's cascade section.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Python 3 standard library only.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

TESTS = []
E = None
S = {}  # the shared daemon and its access log

CHEAP = (0.10, 0.40)   # per mtok in / out
MID = (1.00, 4.00)
BIG = (10.00, 40.00)


def test(fn):
    TESTS.append(fn)
    return fn


def model_line(name, upstream, price, provider="good"):
    return (f"  {name}: {{provider: {provider}, model: {upstream}, "
            f"input_per_mtok: {price[0]}, output_per_mtok: {price[1]}}}\n")


def config_text(access_log):
    t = "server:\n  threads: 2\n  log_level: info\n\n"
    t += ("providers:\n"
          "  good: {type: openai, base_url: \"${SIM_URL}/v1\", api_key_env: SIM_KEY_GOOD}\n"
          "  p503: {type: openai, base_url: \"${SIM_URL}/sim/status=503/v1\"}\n\n")
    t += "models:\n"
    t += model_line("c-empty", "sim-casc-empty", CHEAP)
    t += model_line("c-length", "sim-casc-length", (0.2, 0.8))
    t += model_line("c-refusal", "sim-casc-refusal", CHEAP)
    t += model_line("c-reffield", "sim-casc-refusal-field", CHEAP)
    t += model_line("c-badjson", "sim-casc-badjson", CHEAP)
    t += model_line("c-schemabad", "sim-casc-schemabad", CHEAP)
    t += model_line("mid", "sim-mid", MID)
    t += model_line("big", "sim-big", BIG)
    t += model_line("judge", "sim-judge", (0.05, 0.05))
    t += model_line("m503", "sim-503", (0.01, 0.01), provider="p503")
    t += "\ntiers:\n"
    t += "  plain: [mid, big]\n"
    # written most expensive first: the cascade sorts by price
    t += "  t-empty: {models: [big, c-empty], cascade: true}\n"
    t += "  t-length: {models: [big, c-length], cascade: true}\n"
    t += "  t-refusal: {models: [c-refusal, big], cascade: true}\n"
    t += "  t-reffield: {models: [c-reffield, big], cascade: true}\n"
    t += "  t-json: {models: [c-badjson, big], cascade: true}\n"
    t += "  t-schema: {models: [c-schemabad, big], cascade: true}\n"
    t += "  t-ok: {models: [big, mid], cascade: true}\n"
    t += "  t-regex: {models: [mid, big], cascade: true, checks: {must_match: \"from sim-big\"}}\n"
    t += ("  t-judge: {models: [mid, big], cascade: true, "
          "checks: {judge: {model: judge, threshold: 0.5}}}\n")
    t += "  t-all: {models: [c-length, c-empty], cascade: true}\n"
    t += "  t-fail: {models: [m503, c-length, mid], cascade: true}\n"
    t += "  t-kept: {models: [c-length, m503], cascade: true, order: as_written}\n"
    t += "  t-off: {models: [c-empty, big], cascade: true, checks: {non_empty: false}}\n"
    t += "\nrouting:\n  default_tier: plain\n"
    t += "\ncache:\n  backend: memory\n"
    t += f"\nobservability:\n  access_log: \"{access_log}\"\n"
    return t


def setup():
    S["log"] = os.path.join(E.tmp, "cascade-access.log")
    path = os.path.join(E.tmp, "cascade.yaml")
    with open(path, "w") as f:
        f.write(config_text(S["log"]))
    S["d"] = E.new_daemon(tag="cascade", config=path).start()


def teardown():
    d = S.get("d")
    if d is not None:
        ok, msg = d.stop()
        if not ok:
            print(f"not ok - daemon stop: {msg}", flush=True)
        d.kill()


def post(body, headers=None):
    return R.http_request(S["d"].port, "POST", "/v1/chat/completions",
                          json.dumps(body).encode(), headers=headers or {})


def log_line(rid, timeout=5):
    """The access log line of request rid (waits for it: the log is written
    when the request completes, just after the answer)."""
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


def sim_models():
    return [x["body"].get("model") for x in E.sim_requests()
            if isinstance(x.get("body"), dict)]


def content(r):
    return r.json["choices"][0]["message"]["content"]


def escalates(tier, want_header, body_extra=None, prompt="Tell me something",
              answer_from="sim-big"):
    """Sends one request to tier; checks the header, the answering model and
    the access log's steps. Returns (response, access log line)."""
    E.sim_reset()
    b = chat_body(tier, prompt, **(body_extra or {}))
    r = post(b)
    eq(r.status, 200, f"{tier}: status (body {R.short(r.body)})")
    eq(r.h("x-router-cascade"), want_header, f"{tier}: x-router-cascade")
    eq(r.json.get("model"), answer_from, f"{tier}: answering upstream model")
    rid = r.h("x-request-id")
    j = log_line(rid)
    check(isinstance(j.get("cascade"), dict), f"{tier}: no cascade in the access log: {j}")
    logged = ",".join(
        f"{s['model']}:{s['verdict']}" + (f"({s['reason']})" if s.get("reason") else "")
        for s in j["cascade"]["steps"])
    eq(logged, want_header, f"{tier}: access log steps")
    return r, j


# ------------------------------------------------------------------ tests

@test
def test_empty_escalates():
    escalates("t-empty", "c-empty:rejected(empty),big:accepted")


@test
def test_length_escalates_and_cost_is_the_sum():
    r, j = escalates("t-length", "c-length:rejected(length),big:accepted")
    # the cheap attempt, from the simulator's token counts (chars // 4)
    prompt = max(1, len("Tell me something") // 4)
    cheap = (prompt * 0.2 + (len("This answer was cut off in the midd") // 4) * 0.8) / 1e6
    u = r.json["usage"]
    big = (u["prompt_tokens"] * BIG[0] + u["completion_tokens"] * BIG[1]) / 1e6
    cost = float(r.h("x-router-cost-usd"))
    check(abs(cost - (cheap + big)) < 1e-9, f"cost {cost} != cheap {cheap} + big {big}")
    check(abs(j["cost_usd"] - cost) < 1e-9, f"access log cost {j['cost_usd']} != header {cost}")
    steps = j["cascade"]["steps"]
    check(abs(steps[0]["cost_usd"] - cheap) < 1e-12, f"step 1 cost {steps[0]['cost_usd']}")
    check(abs(j["cascade"]["direct_cost_usd"] - big) < 1e-12,
          f"direct cost {j['cascade']['direct_cost_usd']} != {big}")
    eq(sim_models(), ["sim-casc-length", "sim-big"], "models called, cheapest first")
    eq(r.h("x-router-attempts"), "2", "attempts")


@test
def test_invalid_json_escalates_only_when_json_was_asked():
    escalates("t-json", "c-badjson:rejected(json),big:accepted",
              {"response_format": {"type": "json_object"}})
    # without response_format the same text is an acceptable answer
    escalates("t-json", "c-badjson:accepted", answer_from="sim-casc-badjson")


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}},
          "required": ["answer"], "additionalProperties": False}


@test
def test_schema_violation_escalates():
    r, _ = escalates("t-schema", "c-schemabad:rejected(schema),big:accepted",
                     {"response_format": {"type": "json_schema",
                                          "json_schema": {"name": "a", "schema": SCHEMA}}})
    check(isinstance(json.loads(content(r)).get("answer"), str), "big's answer fits the schema")
    # json_object only: {"sim_bad": 1} is valid JSON and accepted
    escalates("t-schema", "c-schemabad:accepted", {"response_format": {"type": "json_object"}},
              answer_from="sim-casc-schemabad")


@test
def test_refusal_phrase_escalates():
    escalates("t-refusal", "c-refusal:rejected(refusal),big:accepted")


@test
def test_refusal_field_escalates():
    escalates("t-reffield", "c-reffield:rejected(refusal),big:accepted")


@test
def test_regex_escalates():
    escalates("t-regex", "mid:rejected(regex),big:accepted")


@test
def test_judge_below_threshold_escalates():
    r, j = escalates("t-judge", "mid:rejected(judge),big:accepted", prompt="judge-score=0.2 please")
    eq(sim_models(), ["sim-mid", "sim-judge", "sim-big"], "models called")
    eq(j["cascade"]["steps"][0]["judge_score"], 0.2, "judge score in the log")
    # the judge's cost is in the request's cost
    steps = j["cascade"]["steps"]
    check(j["cost_usd"] > steps[0]["cost_usd"] + steps[1]["cost_usd"],
          f"cost {j['cost_usd']} does not include the judge ({steps})")


@test
def test_judge_above_threshold_accepts_without_calling_the_next_model():
    escalates("t-judge", "mid:accepted", prompt="judge-score=0.8 please", answer_from="sim-mid")
    eq(sim_models(), ["sim-mid", "sim-judge"], "models called")


@test
def test_judge_without_score_escalates():
    escalates("t-judge", "mid:rejected(judge_error),big:accepted", prompt="judge-garbage please")


@test
def test_accepted_first_step_does_not_call_the_next_model():
    r, _ = escalates("t-ok", "mid:accepted", answer_from="sim-mid")
    eq(sim_models(), ["sim-mid"], "models called")
    eq(r.h("x-router-model"), "mid", "x-router-model")


@test
def test_all_rejected_returns_the_last_answer():
    r, _ = escalates("t-all", "c-empty:rejected(empty),c-length:final(length)",
                     answer_from="sim-casc-length")
    eq(r.json["choices"][0]["finish_reason"], "length", "the last answer, as is")


@test
def test_provider_error_inside_the_cascade_fails_over():
    r, j = escalates("t-fail", "m503:failed,c-length:rejected(length),mid:accepted",
                     answer_from="sim-mid")
    eq(r.h("x-router-attempts"), "3", "attempts")
    eq([f["from"] for f in j["failovers"]], ["m503"], "the failover is logged as one")


@test
def test_last_rejected_answer_when_later_models_fail():
    r, _ = escalates("t-kept", "c-length:final(length),m503:failed",
                     answer_from="sim-casc-length")
    eq(r.h("x-router-model"), "c-length", "x-router-model is the model that answered")


@test
def test_disabled_check_accepts():
    escalates("t-off", "c-empty:accepted", answer_from="sim-casc-empty")


@test
def test_stream_is_a_plain_chain():
    E.sim_reset()
    r = post(chat_body("t-empty", "stream me", stream=True))
    eq(r.status, 200, "status")
    check(b"data: [DONE]" in r.body, "a whole stream")
    eq(r.h("x-router-cascade"), None, "no cascade header on a stream")
    eq(r.h("x-router-model"), "c-empty", "the chain's first model (price order) answers")
    eq(sim_models(), ["sim-casc-empty"], "no escalation")


@test
def test_naming_a_model_is_not_a_cascade():
    E.sim_reset()
    r = post(chat_body("c-empty", "just you"))
    eq(r.status, 200, "status")
    eq(r.h("x-router-cascade"), None, "no cascade when the client names a model")
    eq(content(r), "", "c-empty's own answer")


@test
def test_cache_stores_only_accepted_answers():
    body = {"temperature": 0}
    r1 = post(chat_body("t-length", "cache me please", **body))
    eq(r1.h("x-router-cascade"), "c-length:rejected(length),big:accepted", "first")
    r2 = post(chat_body("t-length", "cache me please", **body))
    eq(r2.h("x-cache"), "HIT", "the accepted answer is cached")
    eq(content(r2), content(r1), "same answer")
    a = post(chat_body("t-all", "do not cache me", **body))
    eq(a.h("x-router-cascade"), "c-empty:rejected(empty),c-length:final(length)", "all rejected")
    b = post(chat_body("t-all", "do not cache me", **body))
    eq(b.h("x-cache"), "MISS", "an answer that failed its checks is not cached")


@test
def test_metrics_count_steps():
    post(chat_body("t-refusal", "metrics"))
    r = R.http_request(S["d"].port, "GET", "/metrics")
    eq(r.status, 200, "metrics")
    text = r.body.decode()
    want = ('llmrouter_cascade_steps_total{tier="t-refusal",model="c-refusal",'
            'verdict="rejected",reason="refusal"}')
    check(want in text, f"{want} not in /metrics")
    check("llmrouter_cascade_direct_cost_usd_total{tier=\"t-refusal\"}" in text,
          "direct cost metric")


@test
def test_report_shows_cascade_steps():
    out = subprocess.run([E.bin, "report", S["log"]], capture_output=True, text=True, timeout=20)
    eq(out.returncode, 0, f"report exit ({out.stderr})")
    check("Cascades" in out.stdout, f"no cascade section in:\n{out.stdout}")
    check("t-length" in out.stdout and "c-length" in out.stdout, "tier and step in the report")
    js = subprocess.run([E.bin, "report", "--json", S["log"]], capture_output=True, text=True,
                        timeout=20)
    j = json.loads(js.stdout)
    tiers = {c["tier"]: c for c in j["cascades"]}
    t = tiers["t-length"]
    check(t["requests"] >= 2, f"t-length requests {t}")
    s0 = t["steps"][0]
    eq(s0["model"], "c-length", "first step")
    eq(s0["accepted"], 0, "c-length never accepted")
    check(t["cost_usd"] > t["direct_cost_usd"], f"a failing cheap step costs more: {t}")


BAD_CONFIGS = [
    ("one model", "  t: {models: [mid], cascade: true}\n", "a cascade needs at least 2 models"),
    ("threshold", "  t: {models: [mid, big], cascade: true, checks: {judge: {model: mid, threshold: 1.5}}}\n",
     "expected a number from 0 to 1"),
    ("judge model", "  t: {models: [mid, big], cascade: true, checks: {judge: {model: nope}}}\n",
     "no model named \"nope\""),
    ("regex", "  t: {models: [mid, big], cascade: true, checks: {must_match: \"(\"}}\n",
     "invalid regular expression"),
    ("unknown key", "  t: {models: [mid, big], cascade: true, checks: {refusals: true}}\n",
     "unknown key \"refusals\""),
]


@test
def test_config_errors_have_positions():
    for what, tier, msg in BAD_CONFIGS:
        path = os.path.join(E.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write("providers:\n  p: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n"
                    "models:\n  mid: {provider: p}\n  big: {provider: p}\n"
                    "tiers:\n" + tier + "routing: {default_tier: t}\n")
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True,
                             text=True, timeout=20)
        check(out.returncode != 0, f"{what}: accepted")
        check(f"{path}:7:" in out.stderr and msg in out.stderr,
              f"{what}: expected {path}:7:COL and {msg!r} in {out.stderr!r}")


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],), setup=setup,
                         teardown=teardown))
