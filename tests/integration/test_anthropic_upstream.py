#!/usr/bin/env python3
"""Integration tests of the `type: anthropic` upstream wired into the daemon:
the real daemon over real sockets, the simulated provider's Messages API
(tests/sim/README.md, "Anthropic Messages API") as Claude.

    python3 tests/integration/test_anthropic_upstream.py [-k SUBSTRING]... [-v]

Covers: /v1/messages with x-api-key and anthropic-version (never an
Authorization header, the key never in the log), the default max_tokens;
plain answers (text, tool calls, several tools, text plus tools, thinking)
as Chat Completions; cost with cache read and cache write tokens priced
apart; streams translated to chunks (role once, tool-call fragments,
finish_reason, the usage chunk only when asked, with its cost); Anthropic's
400 passed through in OpenAI's shape; 401/429/529/500 failing over from an
Anthropic model to an OpenAI-type one and back, plain and streamed; 529
retry-after kept; an error event before content failing over; a cut stream
after the commit ending with the error event, no [DONE], not cached;
requests the translation refuses (400 naming the field, or the next model
of the chain); a cached Anthropic answer replayed as SSE; backpressure on a
large Anthropic stream (bounded RSS, the whole text in order).

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "sim"))
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402
import simprovider  # noqa: E402  (split_reply: the text a stream must carry)

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None
ANT_KEY = "sk-ant-test-0123456789abcdef"
MB = 1024 * 1024
DAEMONS = {}

PRICES = "input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.75"
EXTRA_PROVIDERS = f"""\
  ant:       {{type: anthropic, base_url: "${{SIM_URL}}/sim/require_key={ANT_KEY}/v1", api_key_env: TEST_ANT_KEY}}
  ant401:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/status=401/v1", api_key_env: TEST_ANT_KEY}}
  ant429:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/status=429,retry_after=2/v1", api_key_env: TEST_ANT_KEY}}
  ant529:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/status=529,retry_after=3/v1", api_key_env: TEST_ANT_KEY}}
  ant500:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/status=500/v1", api_key_env: TEST_ANT_KEY}}
  ant400:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/status=400/v1", api_key_env: TEST_ANT_KEY}}
  antcut:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/cut_after=3/v1", api_key_env: TEST_ANT_KEY}}
  anterr:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/error_event=1/v1", api_key_env: TEST_ANT_KEY}}
  antbig:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/chunks=2000/v1", api_key_env: TEST_ANT_KEY}}
  antmany:   {{type: anthropic, base_url: "${{SIM_URL}}/sim/chunks=40000/v1", api_key_env: TEST_ANT_KEY}}
  antver:    {{type: anthropic, base_url: "${{SIM_URL}}/v1", api_key_env: TEST_ANT_KEY, anthropic_version: "2024-01-01"}}
"""
# claude429 and claude529 are called once per request by the tests below: a
# 429's (529's) cooldown is off for them; test_health.py tests cooldowns.
EXTRA_MODELS = f"""\
  claude:      {{provider: ant, model: claude-sim, {PRICES}, default_max_tokens: 777}}
  claude401:   {{provider: ant401, model: claude-401, {PRICES}}}
  claude429:   {{provider: ant429, model: claude-429, {PRICES}, circuit: false}}
  claude529:   {{provider: ant529, model: claude-529, {PRICES}, circuit: false}}
  claude500:   {{provider: ant500, model: claude-500, {PRICES}}}
  claude400:   {{provider: ant400, model: claude-400, {PRICES}}}
  claudecut:   {{provider: antcut, model: claude-cut, {PRICES}}}
  claudeerr:   {{provider: anterr, model: claude-err, {PRICES}}}
  claudebig:   {{provider: antbig, model: claude-big, {PRICES}}}
  claudemany:  {{provider: antmany, model: claude-many, {PRICES}}}
  claudever:   {{provider: antver, model: claude-ver, {PRICES}}}
"""
EXTRA_TIERS = """\
  t-claude:    [claude]
  a401-oai:    [claude401, good-mini]
  a429-oai:    [claude429, good-mini]
  a529-oai:    [claude529, good-mini]
  a500-oai:    [claude500, good-mini]
  a400-oai:    [claude400, good-mini]
  aerr-oai:    [claudeerr, good-mini]
  oai-ant:     [m500, claude]
  oai503-ant:  [m503, claude]
  a529-only:   [claude529]
  acut:        [claudecut, good-mini]
  abig:        [claudebig]
  amany:       [claudemany]
  claude-oai:  [claude, good-mini]
  t-casc:      {models: [good-mini, claude], cascade: true, checks: {judge: {model: claudever, threshold: 0.5}}}
"""


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, cache=False):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    head = head.replace("\nproviders:\n", "\nproviders:\n" + EXTRA_PROVIDERS, 1)
    head = head.replace("\nmodels:\n", "\nmodels:\n" + EXTRA_MODELS, 1)
    head = head.replace("\ntiers:\n", "\ntiers:\n" + EXTRA_TIERS, 1)
    out = head + ("\ncache:\n  backend: memory\n  ttl_s: 60\n" if cache else "\ncache:\n  backend: off\n")
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(out)
    return path


def daemon(cache=False):
    """One daemon per configuration, shared by the tests (stopped at the end)."""
    key = "cache" if cache else "plain"
    if key not in DAEMONS:
        os.environ["TEST_ANT_KEY"] = ANT_KEY
        DAEMONS[key] = E.new_daemon(tag=f"anthropic-{key}",
                                    config=write_config(f"anthropic-{key}.yaml", cache)).start()
    return DAEMONS[key]


def post(body, headers=None, d=None, path="/v1/chat/completions"):
    d = d or daemon()
    return R.http_request(d.port, "POST", path, json.dumps(body).encode(), headers=headers or {})


def stream(body, d=None, **kw):
    """(head, data payloads) of a streamed request."""
    d = d or daemon()
    s = R.RawHTTP(d.port, "POST", "/v1/chat/completions", body, **kw).read_head()
    try:
        datas, _ = R.read_stream(s)
    finally:
        s.close()
    return s, datas


def chunks_of(datas):
    out = []
    for x in datas:
        if x == "[DONE]":
            continue
        try:
            out.append(json.loads(x))
        except ValueError:
            raise Fail(f"data event is not JSON: {R.short(x)}")
    return out


def expected(model, text):
    return f"Simulated reply from {model}: {text[:60]}"


def sim_requests_to(path_end):
    return [r for r in E.sim_requests() if str(r.get("api_path", "")).endswith(path_end)]


def cost_header(r):
    v = r.h("x-router-cost-usd")
    check(v is not None, "x-router-cost-usd header missing")
    return float(v)


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}},
]


def check_stream_rules(chunks, finish):
    """role exactly once (first), one finish_reason (the given one), the
    right object type."""
    roles = [c for c in chunks for ch in c.get("choices") or [] if (ch.get("delta") or {}).get("role")]
    eq(len(roles), 1, "chunks carrying the role")
    check(chunks[0]["choices"][0]["delta"].get("role") == "assistant", "the role comes first")
    fins = [ch.get("finish_reason") for c in chunks for ch in c.get("choices") or []
            if ch.get("finish_reason")]
    eq(fins, [finish], "finish_reasons")
    for c in chunks:
        eq(c.get("object"), "chat.completion.chunk", "chunk object")


# ------------------------------------------------------------------ tests

@test
def test_plain_text_headers_and_body():
    E.sim_reset()
    text = "Tell me about the sea"
    r = post(chat_body("claude", text, stop=["NEVERSEEN"]))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    R.check_routed(r, model="claude", provider="ant", attempts=1)
    j = r.json
    eq(j["object"], "chat.completion", "object")
    eq(j["choices"][0]["message"]["content"], expected("claude-sim", text), "content")
    eq(j["choices"][0]["finish_reason"], "stop", "finish_reason")
    check(j["id"].startswith("msg_sim_"), f"Anthropic's id kept: {j['id']}")
    check(j["usage"]["prompt_tokens"] > 0 and j["usage"]["completion_tokens"] > 0, f"usage {j['usage']}")
    reqs = sim_requests_to("/messages")
    eq(len(reqs), 1, "requests to /messages")
    up = reqs[0]
    check(up["path"].endswith("/v1/messages"), f"path {up['path']}")
    h = up["headers"]
    eq(h.get("x-api-key"), ANT_KEY, "x-api-key")
    eq(h.get("anthropic-version"), "2023-06-01", "anthropic-version")
    check("authorization" not in h, f"no Authorization header upstream: {sorted(h)}")
    eq(up["body"]["model"], "claude-sim", "upstream model")
    eq(up["body"]["max_tokens"], 777, "max_tokens from default_max_tokens")
    eq(up["body"]["stop_sequences"], ["NEVERSEEN"], "stop -> stop_sequences")
    check("messages" in up["body"] and "stop" not in up["body"], "a Messages body")
    check(ANT_KEY not in daemon().stderr_text(), "the key never reaches the log")


@test
def test_anthropic_version_configurable():
    E.sim_reset()
    r = post(chat_body("claudever", "version please"))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    eq(sim_requests_to("/messages")[0]["headers"].get("anthropic-version"), "2024-01-01",
       "anthropic_version from the provider")


@test
def test_plain_tools_several_and_text():
    # two tools named: text plus two tool calls in one turn
    r = post(chat_body("claude", "use get_weather and get_time please", tools=TOOLS))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    msg = r.json["choices"][0]["message"]
    eq(r.json["choices"][0]["finish_reason"], "tool_calls", "finish_reason")
    eq(msg["content"], "Calling get_weather, get_time.", "text before the calls")
    calls = msg["tool_calls"]
    eq([c["function"]["name"] for c in calls], ["get_weather", "get_time"], "tool names")
    for c in calls:
        eq(c["type"], "function", "type")
        check(c["id"].startswith("toolu_sim_"), f"Anthropic's id kept: {c['id']}")
        check(isinstance(c["function"]["arguments"], str), "arguments are a string")
    eq(json.loads(calls[0]["function"]["arguments"]), {"city": "sim-city"}, "arguments")
    # the round trip: the tool result goes back as tool_result
    conv = [{"role": "user", "content": "use get_weather"},
            {"role": "assistant", "content": None, "tool_calls": [calls[0]]},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"}]
    r = post({"model": "claude", "messages": conv, "tools": TOOLS})
    eq(r.status, 200, f"round trip status ({R.short(r.body)})")
    eq(r.json["choices"][0]["message"]["content"],
       f"Simulated reply from claude-sim with 1 tool result(s): {calls[0]['id']}=sunny", "tool result")


@test
def test_plain_thinking():
    r = post(chat_body("claude", "think hard", reasoning_effort="low"))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    msg = r.json["choices"][0]["message"]
    eq(msg.get("reasoning_content"), "Simulated thinking about: think hard", "reasoning_content")
    eq(msg["content"], expected("claude-sim", "think hard"), "content")


@test
def test_cost_with_cache_tokens():
    body = {"model": "claude", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "a long cached prefix", "cache_control": {"type": "ephemeral"}}]}]}
    E.sim_reset()
    r = post(body)
    eq(r.status, 200, f"status ({R.short(r.body)})")
    up = sim_requests_to("/messages")[0]["body"]
    eq(up["messages"][0]["content"][0].get("cache_control"), {"type": "ephemeral"},
       "cache_control passed through")
    u = r.json["usage"]
    eq(u["prompt_tokens_details"]["cached_tokens"], 50, "cache reads")
    eq(u["prompt_tokens_details"]["cache_write_tokens"], 10, "cache writes")
    inp = u["prompt_tokens"] - 60
    check(inp > 0, f"plain input tokens {inp}")
    want = (inp * 3 + 50 * 0.3 + 10 * 3.75 + u["completion_tokens"] * 15) / 1e6
    got = cost_header(r)
    check(abs(got - want) < 1e-9 + want * 1e-6,
          f"cost {got} != {want} (cache writes at cache_write_per_mtok, reads at cached_input_per_mtok)")
    # streamed: the usage chunk carries the same split cost
    s, datas = stream(dict(body, stream=True, stream_options={"include_usage": True}))
    ch = chunks_of(datas)
    usage = [c for c in ch if c.get("usage") and c.get("choices") == []]
    eq(len(usage), 1, "usage chunks")
    uc = usage[0]["usage"]
    want = ((uc["prompt_tokens"] - 60) * 3 + 50 * 0.3 + 10 * 3.75 + uc["completion_tokens"] * 15) / 1e6
    check(abs(uc.get("cost", -1) - want) < 1e-9 + want * 1e-6, f"stream usage.cost {uc.get('cost')} != {want}")


@test
def test_stream_text_chunk_rules():
    text = "Stream me a story"
    s, datas = stream(chat_body("claude", text, stream=True))
    eq(s.status, 200, "status")
    check(s.h("content-type").startswith("text/event-stream"), "SSE")
    eq(datas[-1], "[DONE]", "ends with [DONE]")
    eq(datas.count("[DONE]"), 1, "one [DONE]")
    ch = chunks_of(datas)
    check_stream_rules(ch, "stop")
    check(not any("usage" in c and c.get("choices") == [] for c in ch), "no usage chunk unless asked")
    eq(R.stream_text(datas), expected("claude-sim", text), "streamed text")
    # asked for: the usage chunk, with choices [] and a cost, right before [DONE]
    s, datas = stream(chat_body("claude", text, stream=True, stream_options={"include_usage": True}))
    ch = chunks_of(datas)
    last = ch[-1]
    eq(last.get("choices"), [], "the last chunk is the usage chunk")
    check(last["usage"]["prompt_tokens"] > 0 and last["usage"]["completion_tokens"] > 0, f"{last['usage']}")
    check(last["usage"].get("cost", 0) > 0, f"usage.cost {last['usage']}")
    eq(datas[-1], "[DONE]", "[DONE] after the usage chunk")


@test
def test_stream_tools_fragments():
    s, datas = stream(chat_body("claude", "use get_weather and get_time", tools=TOOLS, stream=True))
    eq(s.status, 200, "status")
    eq(datas[-1], "[DONE]", "[DONE]")
    ch = chunks_of(datas)
    check_stream_rules(ch, "tool_calls")
    calls = {}
    for c in ch:
        for choice in c.get("choices") or []:
            for tc in (choice.get("delta") or {}).get("tool_calls") or []:
                i = tc["index"]
                if i not in calls:
                    check(tc.get("id") and tc.get("type") == "function" and tc["function"].get("name"),
                          f"first fragment of call {i} names it: {tc}")
                    calls[i] = {"id": tc["id"], "name": tc["function"]["name"], "args": ""}
                else:
                    check("id" not in tc, f"later fragments carry no id: {tc}")
                calls[i]["args"] += tc["function"].get("arguments") or ""
    eq(sorted(calls), [0, 1], "tool-call indexes (our own counter)")
    eq([calls[i]["name"] for i in (0, 1)], ["get_weather", "get_time"], "names")
    eq(json.loads(calls[0]["args"]), {"city": "sim-city"}, "arguments of call 0")
    eq(json.loads(calls[1]["args"]), {"tz": "sim-tz"}, "arguments of call 1")
    eq(R.stream_text(datas), "Calling get_weather, get_time.", "text plus tools")


@test
def test_stream_thinking():
    s, datas = stream(chat_body("claude", "ponder", reasoning_effort="low", stream=True))
    ch = chunks_of(datas)
    reasoning = "".join((choice.get("delta") or {}).get("reasoning_content") or ""
                        for c in ch for choice in c.get("choices") or [])
    eq(reasoning, "Simulated thinking about: ponder", "reasoning_content deltas")
    eq(R.stream_text(datas), expected("claude-sim", "ponder"), "text")


@test
def test_400_passthrough_in_openai_shape():
    E.sim_reset()
    r = post(chat_body("a400-oai", "bad request"))
    err = R.check_error(r, 400, "invalid_request_error")
    eq(err["type"], "invalid_request_error", "type")
    check("simulated 400" in err["message"], f"Anthropic's message kept: {err['message']}")
    eq(r.h("x-router-attempts"), "1", "a client fault does not fail over")
    eq(len(sim_requests_to("/chat/completions")), 0, "the OpenAI model was not called")
    # streamed too
    s = R.RawHTTP(daemon().port, "POST", "/v1/chat/completions",
                  chat_body("a400-oai", "bad request", stream=True)).read_head()
    body = s.read_all()
    s.close()
    eq(s.status, 400, "streamed status")
    eq(json.loads(body)["error"]["code"], "invalid_request_error", "streamed error code")
    # Anthropic's own refusal (tool history without tools): translated
    conv = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_x", "content": "r"}]
    r = post({"model": "claude", "messages": conv})
    R.check_error(r, 400, "invalid_request_error")


@test
def test_failover_anthropic_to_openai():
    for tier, status in (("a401-oai", 401), ("a429-oai", 429), ("a529-oai", 529), ("a500-oai", 500)):
        for streamed in (False, True):
            E.sim_reset()
            what = f"{tier} {'stream' if streamed else 'plain'}: "
            body = chat_body(tier, "fail over please", stream=streamed)
            if streamed:
                s, datas = stream(body)
                eq(s.status, 200, what + "status")
                eq(s.h("x-router-model"), "good-mini", what + "served by")
                eq(s.h("x-router-attempts"), "2", what + "attempts")
                eq(R.stream_text(datas), expected("sim-mini", "fail over please"), what + "text")
                eq(datas[-1], "[DONE]", what + "[DONE]")
            else:
                r = post(body)
                eq(r.status, 200, what + f"status ({R.short(r.body)})")
                R.check_routed(r, model="good-mini", attempts=2, what=what)
                eq(R.reply_content(r), expected("sim-mini", "fail over please"), what + "content")
            eq(len(sim_requests_to("/messages")), 1, what + "one call to the Anthropic model")


@test
def test_failover_openai_to_anthropic():
    for tier in ("oai-ant", "oai503-ant"):
        E.sim_reset()
        r = post(chat_body(tier, "to claude"))
        eq(r.status, 200, f"{tier} status ({R.short(r.body)})")
        R.check_routed(r, model="claude", attempts=2, what=tier + ": ")
        eq(R.reply_content(r), expected("claude-sim", "to claude"), "content")
        s, datas = stream(chat_body(tier, "to claude", stream=True))
        eq(s.h("x-router-model"), "claude", f"{tier} stream served by")
        eq(R.stream_text(datas), expected("claude-sim", "to claude"), "streamed text")
        eq(datas[-1], "[DONE]", "[DONE]")
        check_stream_rules(chunks_of(datas), "stop")


@test
def test_529_retry_after_kept():
    r = post(chat_body("a529-only", "overloaded"))
    R.check_error(r, 429, "all_upstreams_rate_limited")
    eq(r.h("retry-after"), "3", "retry-after of the 529")


@test
def test_error_event_before_content_fails_over():
    E.sim_reset()
    s, datas = stream(chat_body("aerr-oai", "error event", stream=True))
    eq(s.status, 200, "status")
    eq(s.h("x-router-model"), "good-mini", "the next model serves")
    eq(R.stream_text(datas), expected("sim-mini", "error event"), "text")
    eq(E.sim_stats()["streams_error_event"], 1, "the Anthropic stream sent its error event")


@test
def test_cut_stream_after_commit():
    d = daemon(cache=True)
    body = chat_body("acut", "cut me short", stream=True, temperature=0)
    for i in range(2):
        s, datas = stream(body, d=d)
        eq(s.status, 200, "status")
        eq(s.h("x-router-model"), "claudecut", "committed to the Anthropic model")
        eq(s.h("x-cache"), "MISS", f"request {i + 1}: a cut stream is never stored")
        check("[DONE]" not in datas, "no [DONE] after a cut")
        last = json.loads(datas[-1])
        check("error" in last, f"the stream ends with the error event: {R.short(datas[-1])}")
        eq(last["error"]["code"], "upstream_stream_interrupted", "error code")
        eq(sum(1 for x in datas if '"error"' in x), 1, "one error event")


@test
def test_refused_translation():
    # n > 1 cannot be served by Anthropic: a 400 naming the field
    E.sim_reset()
    r = post(chat_body("t-claude", "two please", n=2))
    err = R.check_error(r, 400, "unsupported_for_model")
    eq(err["param"], "n", "param")
    eq(err["type"], "invalid_request_error", "type")
    bad = [{"role": "user", "content": "hi"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "[1]"}}]},
           {"role": "tool", "tool_call_id": "c1", "content": "r"}]
    err = R.check_error(post({"model": "t-claude", "messages": bad, "tools": TOOLS}), 400,
                        "unsupported_for_model")
    eq(err["param"], "messages[1].tool_calls[0].function.arguments", "param")
    eq(len(sim_requests_to("/messages")), 0, "nothing sent to Anthropic")
    # another model of the chain may serve it as asked
    r = post(chat_body("claude-oai", "two please", n=2))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    R.check_routed(r, model="good-mini", attempts=2)
    eq(len(r.json["choices"]), 2, "two choices")
    # embeddings are not for an Anthropic model
    r = post({"model": "claude", "input": "x"}, path="/v1/embeddings")
    err = R.check_error(r, 400, "unsupported_for_model")
    eq(err["param"], "model", "param")


@test
def test_cascade_with_anthropic_judge_and_final_model():
    # the judge is an Anthropic model (llmrouter's own call, upstream/call.c):
    # its answer has no score, so the cascade escalates to claude, whose
    # translated answer passes the checks and is returned
    E.sim_reset()
    r = post(chat_body("t-casc", "judge me"))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    eq(r.h("x-router-cascade"), "good-mini:rejected(judge_error),claude:accepted", "cascade steps")
    eq(R.reply_content(r), expected("claude-sim", "judge me"), "the Anthropic answer")
    judge = [q for q in sim_requests_to("/messages") if (q.get("body") or {}).get("model") == "claude-ver"]
    eq(len(judge), 1, "one judge call to the Anthropic Messages API")
    eq(judge[0]["headers"].get("x-api-key"), ANT_KEY, "the judge call's x-api-key")
    check("authorization" not in judge[0]["headers"], "no Authorization header on the judge call")
    check(isinstance(judge[0]["body"].get("max_tokens"), int), "a Messages body")


@test
def test_cache_hit_replayed_as_sse():
    d = daemon(cache=True)
    body = chat_body("claude", "cache this claude answer", temperature=0)
    r1 = post(body, d=d)
    eq(r1.status, 200, f"status ({R.short(r1.body)})")
    eq(r1.h("x-cache"), "MISS", "first")
    r2 = post(body, d=d)
    eq(r2.h("x-cache"), "HIT", "second")
    eq(r2.json["choices"][0]["message"]["content"], r1.json["choices"][0]["message"]["content"], "hit")
    s, datas = stream(dict(body, stream=True), d=d)
    eq(s.h("x-cache"), "HIT", "streamed request hits the plain answer")
    eq(R.stream_text(datas), r1.json["choices"][0]["message"]["content"], "replayed text")
    eq(datas[-1], "[DONE]", "[DONE]")
    # a streamed Anthropic answer is assembled and stored too
    sb = chat_body("claude", "cache this claude stream", temperature=0, stream=True)
    s, d1 = stream(sb, d=d)
    eq(s.h("x-cache"), "MISS", "streamed miss")
    r = post(dict(sb, stream=False), d=d)
    eq(r.h("x-cache"), "HIT", "the assembled stream was stored")
    eq(R.reply_content(r), R.stream_text(d1), "stored text")


def tool_args(datas):
    args = {}
    for c in chunks_of(datas):
        for choice in c.get("choices") or []:
            for tc in (choice.get("delta") or {}).get("tool_calls") or []:
                args[tc["index"]] = args.get(tc["index"], "") + (tc["function"].get("arguments") or "")
    return args


@test
def test_backpressure_big_anthropic_stream():
    # one tool call whose 20 MB of arguments come in 2000 input_json_delta
    # events of 10 KB: far more than every buffer on the way
    d = daemon()
    schema = {"type": "object", "properties": {"blob": {"type": "string", "minLength": 20 * MB}},
              "required": ["blob"]}
    want = simprovider.dumps(simprovider.schema_value(schema, schema))
    tools = [{"type": "function", "function": {"name": "bigtool", "parameters": schema}}]
    asan = "asan" in (os.environ.get("LLMROUTER_BIN") or "")
    time.sleep(0.3)
    rss0 = d.rss_kb()
    st0 = E.sim_stats()
    s = R.RawHTTP(d.port, "POST", "/v1/chat/completions",
                  chat_body("abig", "call bigtool", stream=True, tools=tools),
                  rcvbuf=32 * 1024, timeout=120).read_head()
    try:
        eq(s.status, 200, "status")
        head = b""
        while len(head) < 4096:
            x = s.read_some(4096)
            check(x, "stream ended within the first 4 KB")
            head += x
        time.sleep(1.5)
        b1 = E.sim_stats()["bytes_streamed"] - st0["bytes_streamed"]
        time.sleep(1.5)
        b2 = E.sim_stats()["bytes_streamed"] - st0["bytes_streamed"]
        rss1 = d.rss_kb()
        detail = (f"upstream {b1 / MB:.2f} MB at 1.5 s, {b2 / MB:.2f} MB at 3 s; "
                  f"rss {rss0 // 1024} -> {rss1 // 1024} MB")
        if E.args.verbose:
            print("#   " + detail, flush=True)
        check(b2 - b1 < 1 * MB, f"the upstream kept streaming to a client that was not reading ({detail})")
        check(b2 < 14 * MB, f"the daemon read far ahead of a client that was not reading ({detail})")
        # ASan keeps freed blocks in quarantine: RSS there tells little
        check((rss1 - rss0) / 1024 < (80 if asan else 20),
              f"RSS grew while the client was not reading ({detail})")
        s.sse_buf = s.utf8.decode(head)
        datas, _ = R.read_stream(s, max_events=10 ** 6)
    finally:
        s.close()
    eq(datas[-1], "[DONE]", "complete")
    args = tool_args(datas)
    eq(sorted(args), [0], "one tool call")
    check(len(args[0]) == len(want), f"arguments length {len(args[0])} != {len(want)}")
    check(args[0] == want, "the whole arguments arrived intact and in order")


@test
def test_many_small_events_in_order():
    # 40000 text deltas to a slow reader: pauses fall between and inside
    # curl deliveries; every piece arrives once, in order
    d = daemon()
    n = 40000
    want = simprovider.split_reply(expected("claude-many", "many pieces"), n)[1]
    s = R.RawHTTP(d.port, "POST", "/v1/chat/completions", chat_body("amany", "many pieces", stream=True),
                  rcvbuf=16 * 1024, timeout=120).read_head()
    try:
        eq(s.status, 200, "status")
        datas = []
        while True:
            ev = s.next_event()
            if ev is None:
                break
            x = R.event_data(ev)
            if x is not None:
                datas.append(x)
            if len(datas) % 5000 == 0:
                time.sleep(0.2)
    finally:
        s.close()
    eq(datas[-1], "[DONE]", "complete")
    got = R.stream_text(datas)
    check(len(got) == len(want), f"text length {len(got)} != {len(want)}")
    check(got == want, "the whole text arrived intact and in order")


# ------------------------------------------------------------------ main

@test
def test_daemons_stop_cleanly():
    # last: a clean exit after SIGTERM (under ASan: no leak, no error)
    bad = []
    for d in DAEMONS.values():
        ok, msg = d.stop()
        if not ok:
            bad.append(f"{d.tag}: {msg}")
        check(ANT_KEY not in d.stderr_text(), f"{d.tag}: the Anthropic key is in the log")
    DAEMONS.clear()
    check(not bad, "; ".join(bad))


def teardown():
    for d in DAEMONS.values():
        d.kill()
    DAEMONS.clear()


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), teardown=teardown,
                       always=("daemons_stop_cleanly",))


if __name__ == "__main__":
    sys.exit(main())
