#!/usr/bin/env python3
"""The simulated provider's Anthropic Messages API (tests/sim/README.md,
"Anthropic Messages API") over a real socket: what the `type: anthropic`
upstream will meet once the translation (src/upstream/providers/anthropic*.c,
unit-tested by tests/unit/upstream/test_anthropic.c) is wired in.

    python3 tests/integration/test_anthropic_sim.py [-k SUBSTRING]... [-v]

Covers: x-api-key and anthropic-version checks; plain answers with usage and
cache classes; named-event streams (order, ping, tool_use with
input_json_delta, thinking with signature_delta); tool results answered;
thinking signatures checked when sent back; what the real API refuses
(missing max_tokens, temperature > 1, whitespace stop sequences, unmatched
tool_result, tool history without tools); errors in Anthropic's shape,
529 overloaded_error with retry-after, error events and cut streams.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py (only the simulator is
started). Python 3 standard library only.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import check, eq  # noqa: E402

TESTS = []
E = None
HDRS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


def test(fn):
    TESTS.append(fn)
    return fn


def body(text="Hello there", **kw):
    b = {"model": "claude-sim", "max_tokens": 256,
         "messages": [{"role": "user", "content": text}]}
    b.update(kw)
    return b


def post(b, path="/v1/messages", headers=None):
    h = dict(HDRS)
    h.update(headers or {})
    return E.sim("POST", path, b, headers=h)


def check_ant_error(r, status, etype):
    eq(r.status, status, "status")
    j = r.json
    check(isinstance(j, dict) and j.get("type") == "error", f"Anthropic error shape: {j}")
    eq(j["error"].get("type"), etype, "error.type")
    check(isinstance(j["error"].get("message"), str) and j["error"]["message"], "message")
    return j


def events(raw):
    """(name, data) pairs of a named-event SSE body; checks each event has
    both an event: line and a JSON data: line whose type is the name."""
    out = []
    for ev in raw.replace("\r\n", "\n").split("\n\n"):
        if not ev.strip():
            continue
        lines = ev.split("\n")
        check(lines[0].startswith("event: ") and lines[1].startswith("data: "),
              f"named event: {ev!r}")
        name, data = lines[0][7:], json.loads(lines[1][6:])
        eq(data.get("type"), name, "data.type")
        out.append((name, data))
    return out


def stream(b, path="/v1/messages"):
    s = R.RawHTTP(E.sim_port, "POST", path, dict(b, stream=True), headers=HDRS)
    try:
        s.read_head()
        parts = []
        try:
            while True:
                d = s.read_some()
                if not d:
                    break
                parts.append(d)
        except R.Fail:
            parts.append(b"<cut>")  # the chunked body ended without its terminator
        raw = b"".join(parts).decode("utf-8")
        check(raw.endswith("<cut>") or "message_stop" in raw or "event: error" in raw,
              "a complete stream ends with message_stop")
        return s.status, s.headers, raw
    finally:
        s.close()


@test
def test_needs_api_key_and_version():
    r = E.sim("POST", "/v1/messages", body(), headers={"anthropic-version": "2023-06-01"})
    check_ant_error(r, 401, "authentication_error")
    # a bearer token is not how Anthropic takes API keys
    r = E.sim("POST", "/v1/messages", body(), headers={"anthropic-version": "2023-06-01",
                                                        "Authorization": "Bearer sk-ant-test"})
    check_ant_error(r, 401, "authentication_error")
    r = E.sim("POST", "/v1/messages", body(), headers={"x-api-key": "k"})
    check_ant_error(r, 400, "invalid_request_error")
    r = post(body(), path="/sim/require_key=right/v1/messages")
    check_ant_error(r, 401, "authentication_error")
    r = post(body(), path="/sim/require_key=sk-ant-test/v1/messages")
    eq(r.status, 200, "status with the right key")


@test
def test_plain_answer():
    r = post(body("Name three colours", system=[{"type": "text", "text": "Be terse.",
                                                  "cache_control": {"type": "ephemeral"}}]))
    eq(r.status, 200, "status")
    j = r.json
    eq(j["type"], "message", "type")
    check(j["id"].startswith("msg_"), "id")
    eq(j["content"], [{"type": "text", "text": "Simulated reply from claude-sim: Name three colours"}],
       "content")
    eq(j["stop_reason"], "end_turn", "stop_reason")
    u = j["usage"]
    check(u["input_tokens"] > 0 and u["output_tokens"] > 0, f"usage {u}")
    # cache_control present: both cache classes reported apart from input
    eq((u["cache_creation_input_tokens"], u["cache_read_input_tokens"]), (10, 50), "cache usage")
    r = post(body("x"), path="/messages")  # without the /v1 prefix
    eq(r.status, 200, "status of /messages")
    eq(r.json["usage"]["cache_read_input_tokens"], 0, "no cache without markers")


@test
def test_refuses_what_anthropic_refuses():
    b = body()
    del b["max_tokens"]
    check_ant_error(post(b), 400, "invalid_request_error")
    check_ant_error(post(body(temperature=1.5)), 400, "invalid_request_error")
    check_ant_error(post(body(stop_sequences=["  "])), 400, "invalid_request_error")
    check_ant_error(post(body(messages=[{"role": "system", "content": "x"}])), 400,
                    "invalid_request_error")
    j = check_ant_error(post(body(messages=[
        {"role": "user", "content": "q"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x",
                                      "content": "r"}]}])), 400, "invalid_request_error")
    check("tool_result" in j["error"]["message"], j["error"]["message"])
    j = check_ant_error(post(body(messages=[
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "r"}]}])), 400, "invalid_request_error")
    check("define tools" in j["error"]["message"], j["error"]["message"])
    check_ant_error(post(body(thinking={"type": "enabled", "budget_tokens": 2000})), 400,
                    "invalid_request_error")  # budget >= max_tokens
    check_ant_error(post(body(messages=[{"role": "user", "content": ""}])), 400,
                    "invalid_request_error")
    check_ant_error(E.sim("POST", "/v1/messages", "{nope", headers=HDRS), 400,
                    "invalid_request_error")


TOOLS = [{"name": "get_weather", "description": "w",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}},
         {"name": "now", "input_schema": {"type": "object", "properties": {}}}]


@test
def test_tool_use_and_results():
    r = post(body("Use get_weather and now please", tools=TOOLS))
    j = r.json
    eq(j["stop_reason"], "tool_use", "stop_reason")
    eq([b["type"] for b in j["content"]], ["text", "tool_use", "tool_use"], "text plus tools")
    eq(j["content"][1]["input"], {"city": "sim-city"}, "input from the schema")
    eq(j["content"][1]["id"], "toolu_sim_1_0", "id")
    r = post(body("Use get_weather and now", tools=TOOLS,
                  tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    eq([b["type"] for b in r.json["content"]], ["text", "tool_use"], "one call only")
    r = post(body("nothing named", tools=TOOLS, tool_choice={"type": "any"}))
    eq([b.get("name") for b in r.json["content"]], ["get_weather"], "any: first tool, no text")
    r = post(body("x", tools=TOOLS, tool_choice={"type": "tool", "name": "now"}))
    eq(r.json["content"][0]["input"], {}, "forced tool")
    r = post(body(tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Calling."},
                                          {"type": "tool_use", "id": "t1", "name": "now",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "noon"},
                                     {"type": "text", "text": "and?"}]}]))
    eq(r.status, 200, f"status {r.body[:200]}")
    eq(r.json["content"][0]["text"],
       "Simulated reply from claude-sim with 1 tool result(s): t1=noon", "tool results text")


@test
def test_thinking_signature_round_trip():
    b = body("17*23?", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024})
    j = post(b).json
    th = j["content"][0]
    eq(th["type"], "thinking", "first block")
    check(th["signature"].startswith("Sim"), "signature")
    back = dict(b, messages=b["messages"] + [{"role": "assistant", "content": j["content"]},
                                            {"role": "user", "content": "again"}])
    eq(post(back).status, 200, "signature sent back intact")
    th2 = dict(th, signature=th["signature"][:-2] + "AA")
    back["messages"][1] = {"role": "assistant", "content": [th2] + j["content"][1:]}
    j = check_ant_error(post(back), 400, "invalid_request_error")
    check("signature" in j["error"]["message"], j["error"]["message"])


@test
def test_stream_named_events():
    st, hd, raw = stream(body("Use get_weather now", tools=TOOLS, max_tokens=3000,
                              thinking={"type": "enabled", "budget_tokens": 1024}))
    eq(st, 200, "status")
    check(hd.get("content-type", "").startswith("text/event-stream"), "content type")
    evs = events(raw)
    names = [n for n, _ in evs]
    eq(names[0], "message_start", "first")
    eq(names[1], "ping", "ping")
    eq(names[-2:], ["message_delta", "message_stop"], "last")
    check("data: [DONE]" not in raw, "no [DONE] in an Anthropic stream")
    eq(evs[0][1]["message"]["content"], [], "message_start content")
    starts = [d["content_block"]["type"] for n, d in evs if n == "content_block_start"]
    eq(starts, ["thinking", "text", "tool_use", "tool_use"], "blocks")
    deltas = {}
    for n, d in evs:
        if n == "content_block_delta":
            deltas.setdefault(d["delta"]["type"], []).append(d)
    check("signature_delta" in deltas and "thinking_delta" in deltas, "thinking deltas")
    js = "".join(d["delta"]["partial_json"] for d in deltas["input_json_delta"]
                 if d["index"] == 2)
    eq(json.loads(js), {"city": "sim-city"}, "tool input from its deltas")
    eq(evs[-2][1]["delta"]["stop_reason"], "tool_use", "stop_reason")
    check(evs[-2][1]["usage"]["output_tokens"] > 0, "cumulative output tokens")


@test
def test_errors_and_overload():
    r = post(body(), path="/sim/status=529/v1/messages")
    check_ant_error(r, 529, "overloaded_error")
    eq(r.h("retry-after"), "1", "retry-after on 529")
    r = post(body(), path="/sim/status=429,retry_after=7/v1/messages")
    check_ant_error(r, 429, "rate_limit_error")
    eq(r.h("retry-after"), "7", "retry-after on 429")
    check_ant_error(post(body(), path="/sim/status=500/v1/messages"), 500, "api_error")
    check_ant_error(post(body(), path="/sim/error_event=1/v1/messages"), 529, "overloaded_error")
    st, _, raw = stream(body(), path="/sim/error_event=1/v1/messages")
    eq(st, 200, "error event status")
    evs = events(raw)
    eq([n for n, _ in evs], ["message_start", "error"], "error event after message_start")
    eq(evs[1][1]["error"]["type"], "overloaded_error", "error type")


@test
def test_cut_stream():
    before = E.sim_stats()["streams_cut"]
    st, _, raw = stream(body("a long enough question"), path="/sim/cut_after=3/v1/messages")
    eq(st, 200, "status")
    check(raw.endswith("<cut>"), "the stream ends without the chunked terminator")
    names = [n for n, _ in events(raw[:-5])]
    eq(names, ["message_start", "ping", "content_block_start", "content_block_delta",
               "content_block_delta"], "cut after 3 content events")
    eq(E.sim_stats()["streams_cut"], before + 1, "counted as cut")


@test
def test_translated_fixtures_accepted():
    """Every request the C translation produces in its conformance fixtures
    passes the simulator's checks of the real API's rules (roles, tool_result
    order and matching, image sources, max_tokens, thinking budget)."""
    fx = os.path.join(R.ROOT, "tests", "unit", "upstream", "fixtures", "anthropic")
    n = 0
    for name in sorted(os.listdir(fx)):
        path = os.path.join(fx, name, "out.json")
        if not name.startswith("req_") or not os.path.exists(path):
            continue
        with open(path) as f:
            b = json.load(f)
        # signatures made by the real API do not match the simulator's
        if "signature" in json.dumps(b):
            continue
        r = post(b)
        check(r.status == 200, f"{name}: {r.status} {r.body[:300]!r}")
        n += 1
    check(n >= 10, f"only {n} request fixtures found")


@test
def test_count_tokens():
    r = post(body("count me"), path="/v1/messages/count_tokens")
    eq(r.status, 200, "status")
    check(isinstance(r.json.get("input_tokens"), int) and r.json["input_tokens"] > 0,
          f"input_tokens {r.json}")


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=[sys.modules[__name__]]))
