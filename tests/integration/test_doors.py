#!/usr/bin/env python3
"""Integration tests of the front doors wired into the daemon (issue 13
parts 2 and 3): POST /v1/messages (+ /messages, /v1/messages/count_tokens)
and POST /v1/responses, through the real daemon over real sockets, the
simulated provider speaking Chat Completions, the Messages API and the
Responses API.

    python3 tests/integration/test_doors.py [-k SUBSTRING]... [-v]
    LLMROUTER_BIN=build/asan/llmrouter python3 tests/integration/test_doors.py

Covers: plain and streamed answers in each door's format (Anthropic's named
events in order; the Responses event sequence), over an OpenAI-type model
and an Anthropic one; the pass-through bodies (Messages → Anthropic: the
client's bytes with only "model" replaced, thinking signatures and
cache_control intact; Responses → a responses_api provider with
"store":false added, its answer and stream passed back untranslated);
errors in Anthropic's shape on /v1/messages (401 with x-api-key or Bearer
proxy keys, 404 unknown path and model, 405, 400 strict JSON, 413, 502
exhausted chain, 429 retry-after) and OpenAI's on /v1/responses; stateless
refusals; count_tokens; cache hits replayed in the door's format; mixed
chains (Anthropic first then OpenAI-type, and the reverse) failing over
behind all three doors, plain and streamed; cut streams ending as the door
says; the x-router-* headers. Native Messages streams (an Anthropic model
behind /v1/messages) beyond the provider's bytes: a cut or stalled stream
ends with one Anthropic error event, usage and cost (cache classes) reach
the access log, the chat form is cached and replayed, a 20 MB stream to a
stalled then slow reader keeps RSS flat and arrives whole, a client that
leaves drops the upstream. Per-door metrics (llmrouter_door_requests_total,
/v1/router/stats doors) and the access log's door.

Prints "ok - name" / "not ok - name: reason" and "N passed, M failed".
Reuses tests/integration/run.py. Python 3 standard library only.
"""
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "sim"))
import run as R  # noqa: E402
import simprovider  # noqa: E402  (ant_signature: a signature the simulator accepts)
from run import Fail, check, eq  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None
ANT_KEY = "sk-ant-test-doors-0123456789"
PROXY_KEY = "sk-proxy-doors-0123456789abcdef"
ADMIN_KEY = "sk-admin-doors-0123456789abcdef"
DAEMONS = {}

PRICES = "input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.75"
EXTRA_PROVIDERS = f"""\
  ant:       {{type: anthropic, base_url: "${{SIM_URL}}/sim/require_key={ANT_KEY}/v1", api_key_env: TEST_ANT_KEY}}
  ant529:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/status=529,retry_after=3/v1", api_key_env: TEST_ANT_KEY}}
  antcut:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/cut_after=3/v1", api_key_env: TEST_ANT_KEY}}
  antx:      {{type: anthropic, base_url: "${{SIM_URL}}/sim/redacted=1,server_tool=1/v1", api_key_env: TEST_ANT_KEY}}
  anterr:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/error_after=2/v1", api_key_env: TEST_ANT_KEY}}
  antbig:    {{type: anthropic, base_url: "${{SIM_URL}}/sim/chunks=2000/v1", api_key_env: TEST_ANT_KEY}}
  antslow:   {{type: anthropic, base_url: "${{SIM_URL}}/sim/stall_after=4,stall_ms=8000/v1", api_key_env: TEST_ANT_KEY, idle_timeout_ms: 700}}
  nat:       {{type: openai, base_url: "${{SIM_URL}}/v1", responses_api: true}}
  nat500:    {{type: openai, base_url: "${{SIM_URL}}/sim/status=500/v1", responses_api: true}}
  natcut:    {{type: openai, base_url: "${{SIM_URL}}/sim/cut_after=4/v1", responses_api: true}}
"""
EXTRA_MODELS = f"""\
  claude:      {{provider: ant, model: claude-sim, {PRICES}}}
  claude529:   {{provider: ant529, model: claude-529, {PRICES}}}
  claudecut:   {{provider: antcut, model: claude-cut, {PRICES}}}
  claudex:     {{provider: antx, model: claude-x, {PRICES}}}
  claudeerr:   {{provider: anterr, model: claude-err, {PRICES}}}
  claudebig:   {{provider: antbig, model: claude-big, {PRICES}}}
  claudeslow:  {{provider: antslow, model: claude-slow, {PRICES}}}
  native:      {{provider: nat, model: sim-native, input_per_mtok: 1, output_per_mtok: 2}}
  native500:   {{provider: nat500, model: sim-native-500}}
  nativecut:   {{provider: natcut, model: sim-native-cut}}
"""
EXTRA_TIERS = """\
  t-claude:    [claude]
  t-oai:       [good-mini]
  a529-oai:    [claude529, good-mini]
  oai-ant:     [m500, claude]
  t-native:    [native]
  n500-oai:    [native500, good-mini]
  oai-native:  [m500, native]
  acut:        [claudecut]
  t-claudex:   [claudex]
  aerr-oai:    [claudeerr, good-mini]
  abig:        [claudebig]
  aslow:       [claudeslow]
  ncut:        [nativecut]
  t-cut:       [mcut]
  all-bad:     [m500, claude529]
  only429:     [m429]
"""


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, cache=False, keys=False):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    head = head.replace("\nproviders:\n", "\nproviders:\n" + EXTRA_PROVIDERS, 1)
    head = head.replace("\nmodels:\n", "\nmodels:\n" + EXTRA_MODELS, 1)
    head = head.replace("\ntiers:\n", "\ntiers:\n" + EXTRA_TIERS, 1)
    out = head + ("\ncache:\n  backend: memory\n  ttl_s: 60\n" if cache else "\ncache:\n  backend: off\n")
    if keys:
        out += "\nkeys:\n  team: {key_env: TEST_PROXY_KEY}\n"
        out += f"\nobservability:\n  access_log: \"{os.path.join(E.tmp, 'doors-access.log')}\"\n"
        out += "  admin_key_env: TEST_ADMIN_KEY\n"
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(out)
    return path


def daemon(kind="plain"):
    """One daemon per configuration, shared by the tests."""
    if kind not in DAEMONS:
        os.environ["TEST_ANT_KEY"] = ANT_KEY
        os.environ["TEST_PROXY_KEY"] = PROXY_KEY
        os.environ["TEST_ADMIN_KEY"] = ADMIN_KEY
        DAEMONS[kind] = E.new_daemon(tag=f"doors-{kind}", config=write_config(
            f"doors-{kind}.yaml", cache=kind == "cache", keys=kind == "keys")).start()
    return DAEMONS[kind]


def post(path, body, headers=None, d=None, raw=None):
    d = d or daemon()
    data = raw if raw is not None else json.dumps(body).encode()
    return R.http_request(d.port, "POST", path, data, headers=headers or {})


def events(path, body, d=None, headers=None):
    """(head, [(event name or None, parsed data or raw text)]) of a stream."""
    d = d or daemon()
    s = R.RawHTTP(d.port, "POST", path, body, headers=headers or {}).read_head()
    out = []
    try:
        while True:
            ev = s.next_event()
            if ev is None:
                break
            name = None
            for ln in ev:
                if ln.startswith("event:"):
                    name = ln[6:].strip()
            data = R.event_data(ev)
            if data is None:
                continue
            try:
                out.append((name, json.loads(data)))
            except ValueError:
                out.append((name, data))
    finally:
        s.close()
    return s, out


def msg_body(model, text="Tell me about the sea", **kw):
    b = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]}
    b.update(kw)
    return b


def resp_body(model, text="Tell me about the sea", **kw):
    b = {"model": model, "input": text}
    b.update(kw)
    return b


def check_ant_error(r, status, etype=None, what=""):
    eq(r.status, status, f"{what}status ({R.short(r.body)})")
    j = r.json
    check(isinstance(j, dict) and j.get("type") == "error" and isinstance(j.get("error"), dict),
          f"{what}not Anthropic's error shape: {R.short(r.body)}")
    check(isinstance(j["error"].get("message"), str) and j["error"]["message"],
          f"{what}error.message missing")
    if etype:
        eq(j["error"].get("type"), etype, f"{what}error.type")
    check("choices" not in j, "no chat fields")


def sim_requests_to(path_end):
    return [r for r in E.sim_requests() if str(r.get("api_path", "")).endswith(path_end)]


def ant_names(evs):
    return [n for n, _ in evs]


def check_ant_stream(evs, complete=True):
    names = ant_names(evs)
    check(names and names[0] == "message_start", f"first event {names[:3]}")
    for n, d in evs:
        check(isinstance(d, dict) and d.get("type") == n, f"event {n} data type {R.short(str(d))}")
    if complete:
        eq(names[-2:], ["message_delta", "message_stop"], "last events")
        check("content_block_start" in names and "content_block_delta" in names, f"blocks in {names}")
        # every started block is stopped, in order
        starts = [d["index"] for n, d in evs if n == "content_block_start"]
        stops = [d["index"] for n, d in evs if n == "content_block_stop"]
        eq(starts, stops, "block starts/stops")
    return "".join(d["delta"].get("text", "") for n, d in evs if n == "content_block_delta")


def check_resp_stream(evs, complete=True):
    names = ant_names(evs)
    check(names[:2] == ["response.created", "response.in_progress"], f"first events {names[:3]}")
    seqs = [d.get("sequence_number") for _, d in evs if isinstance(d, dict)]
    eq(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "sequence numbers one higher each")
    for n, d in evs:
        check(isinstance(d, dict) and d.get("type") == n, f"event {n} data type")
    if complete:
        eq(names[-1], "response.completed", "last event")
        for want in ("response.output_item.added", "response.output_text.delta",
                     "response.output_text.done", "response.output_item.done"):
            check(want in names, f"{want} in {names}")
    return "".join(d.get("delta", "") for n, d in evs if n == "response.output_text.delta")


# ------------------------------------------------------------------ Messages door

@test
def test_messages_plain_over_openai_model():
    E.sim_reset()
    r = post("/v1/messages", msg_body("t-oai"), headers={"anthropic-version": "2023-06-01"})
    eq(r.status, 200, f"status ({R.short(r.body)})")
    j = r.json
    eq(j.get("type"), "message", "type")
    eq(j.get("role"), "assistant", "role")
    check(j["id"].startswith("msg_"), f"id {j['id']}")
    eq(j["content"][0]["type"], "text", "block type")
    check(j["content"][0]["text"].startswith("Simulated reply from sim-mini"), f"text {j['content']}")
    eq(j["stop_reason"], "end_turn", "stop_reason")
    check(j["usage"]["input_tokens"] > 0 and j["usage"]["output_tokens"] > 0, f"usage {j['usage']}")
    R.check_routed(r, model="good-mini", provider="good", attempts=1)
    check(r.h("x-router-cost-usd") is not None, "cost header")
    chat = sim_requests_to("/chat/completions")
    eq(len(chat), 1, "chat requests upstream")
    eq(chat[0]["body"]["max_completion_tokens"], 256, "max_tokens translated")


@test
def test_messages_without_v1_prefix():
    r = post("/messages", msg_body("t-oai"))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    eq(r.json.get("type"), "message", "type")


@test
def test_messages_stream_over_openai_model():
    s, evs = events("/v1/messages", msg_body("t-oai", stream=True))
    eq(s.status, 200, "status")
    check("text/event-stream" in (s.h("content-type") or ""), "content type")
    text = check_ant_stream(evs)
    check(text.startswith("Simulated reply from sim-mini"), f"text {text!r}")
    md = [d for n, d in evs if n == "message_delta"][0]
    eq(md["delta"]["stop_reason"], "end_turn", "stop_reason")
    check(md["usage"]["output_tokens"] > 0, f"usage {md['usage']}")
    check(not any(isinstance(d, str) and d == "[DONE]" for _, d in evs), "no [DONE]")


@test
def test_messages_pass_through_to_anthropic_keeps_bytes():
    E.sim_reset()
    sig = simprovider.ant_signature("hmm")
    body = {"model": "t-claude", "max_tokens": 2048,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": sig},
                    {"type": "tool_use", "id": "toolu_01AbC", "name": "get", "input": {"a": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01AbC", "content": "42"}]}],
            "tools": [{"name": "get", "input_schema": {"type": "object"}}]}
    raw = json.dumps(body, ensure_ascii=False, indent=1).encode()
    r = post("/v1/messages", None, raw=raw)
    eq(r.status, 200, f"status ({R.short(r.body)})")
    eq(r.json.get("type"), "message", "an Anthropic message")
    R.check_routed(r, model="claude", provider="ant", attempts=1)
    reqs = sim_requests_to("/messages")
    eq(len(reqs), 1, "requests to /messages")
    sent = reqs[0]["body"]
    eq(sent["model"], "claude-sim", "model replaced")
    want = dict(body, model="claude-sim")
    eq(sent, want, "everything else as the client wrote it")
    eq(sent["messages"][1]["content"][0]["signature"], sig, "signature")


@test
def test_messages_stream_over_anthropic():
    s, evs = events("/v1/messages", msg_body("t-claude", stream=True))
    eq(s.status, 200, "status")
    text = check_ant_stream(evs)
    check(text.startswith("Simulated reply from claude-sim"), f"text {text!r}")
    eq(s.h("x-router-model"), "claude", "x-router-model")


@test
def test_messages_stream_over_anthropic_keeps_thinking_signature():
    body = msg_body("t-claude", "Think about the sea", stream=True, max_tokens=2048,
                    thinking={"type": "enabled", "budget_tokens": 1024})
    r = post("/v1/messages", dict(body, stream=False))
    eq(r.status, 200, f"plain ({R.short(r.body)})")
    think = [b for b in r.json["content"] if b["type"] == "thinking"]
    check(think and think[0]["signature"] == simprovider.ant_signature(think[0]["thinking"]),
          f"plain signature kept: {think}")
    s, evs = events("/v1/messages", body)
    check_ant_stream(evs)
    sigs = [d["delta"]["signature"] for n, d in evs
            if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"]
    thought = "".join(d["delta"]["thinking"] for n, d in evs
                      if n == "content_block_delta" and d["delta"]["type"] == "thinking_delta")
    eq(sigs, [simprovider.ant_signature(thought)], "streamed signature_delta")


@test
def test_messages_count_tokens():
    E.sim_reset()
    r = post("/v1/messages/count_tokens", {"model": "t-oai", "messages": [
        {"role": "user", "content": "hello there, how many tokens is this sentence?"}]})
    eq(r.status, 200, f"status ({R.short(r.body)})")
    check(isinstance(r.json.get("input_tokens"), int) and r.json["input_tokens"] > 0,
          f"input_tokens {r.json}")
    eq(len(E.sim_requests()), 0, "no provider asked (an estimate)")


@test
def test_messages_errors_in_anthropic_shape():
    check_ant_error(post("/v1/messages", msg_body("no-such-model")), 404, "not_found_error", "model: ")
    check_ant_error(post("/v1/messages", None, raw=b'{"model":"t-oai","model":"x"}'), 400,
                    "invalid_request_error", "duplicate key: ")
    check_ant_error(post("/v1/messages", None, raw=b'{"model": '), 400, "invalid_request_error", "cut JSON: ")
    check_ant_error(post("/v1/messages", {"model": "t-oai", "messages": []}), 400,
                    "invalid_request_error", "no max_tokens: ")
    check_ant_error(post("/v1/messages/batches", msg_body("t-oai")), 404, "not_found_error", "unknown path: ")
    d = daemon()
    check_ant_error(R.http_request(d.port, "GET", "/v1/messages"), 405, None, "GET: ")
    big = msg_body("t-oai", "x" * 70000)
    check_ant_error(post("/v1/messages", big), 413, "request_too_large", "large: ")


@test
def test_messages_exhausted_chain_502_and_429():
    r = post("/v1/messages", msg_body("all-bad"))
    check_ant_error(r, 502, "api_error", "all failed: ")
    r = post("/v1/messages", msg_body("only429"))
    check_ant_error(r, 429, "rate_limit_error", "all 429: ")
    check(r.h("retry-after") is not None, "retry-after kept")


@test
def test_messages_proxy_keys_x_api_key_and_bearer():
    d = daemon("keys")
    check_ant_error(post("/v1/messages", msg_body("t-oai"), d=d), 401, "authentication_error", "none: ")
    check_ant_error(post("/v1/messages", msg_body("t-oai"), d=d, headers={"x-api-key": "wrong"}), 401,
                    "authentication_error", "wrong: ")
    r = post("/v1/messages", msg_body("t-oai"), d=d, headers={"x-api-key": PROXY_KEY})
    eq(r.status, 200, f"x-api-key ({R.short(r.body)})")
    r = post("/v1/messages", msg_body("t-oai"), d=d, headers={"authorization": f"Bearer {PROXY_KEY}"})
    eq(r.status, 200, f"bearer ({R.short(r.body)})")
    r = post("/v1/responses", resp_body("t-oai"), d=d, headers={"authorization": f"Bearer {PROXY_KEY}"})
    eq(r.status, 200, f"responses ({R.short(r.body)})")
    # the access log names the door of each request
    want = {}
    for path, door in (("/v1/messages", "messages"), ("/v1/responses", "responses")):
        want[door] = path
    deadline = time.time() + 10
    doors = {}
    while time.time() < deadline and len(doors) < 2:
        with open(os.path.join(E.tmp, "doors-access.log"), encoding="utf-8") as f:
            for line in f:
                j = json.loads(line)
                if j.get("status") == 200:
                    doors[j.get("door")] = j.get("path")
        time.sleep(0.1)
    eq(doors, want, "door field of the access log")
    # the chat door keeps OpenAI's shape and does not take x-api-key
    r = post("/v1/chat/completions", R.chat_body("t-oai", "hi"), d=d, headers={"x-api-key": PROXY_KEY})
    R.check_error(r, 401)


@test
def test_messages_unsupported_block_for_openai_model():
    body = msg_body("t-oai")
    body["messages"][0]["content"] = [{"type": "document", "source": {
        "type": "text", "media_type": "text/plain", "data": "doc"}}, {"type": "text", "text": "hi"}]
    r = post("/v1/messages", body)
    check_ant_error(r, 400, "invalid_request_error", "document: ")
    check("document" in r.json["error"]["message"], "names the block")


@test
def test_messages_native_stream_passes_the_providers_events():
    """An Anthropic model behind /v1/messages: the client gets the provider's
    own events byte for byte (redacted_thinking, server tools, pings), the
    translation still prices it."""
    body = msg_body("t-claudex", "Search the sea", stream=True)
    d = daemon()
    s = R.RawHTTP(d.port, "POST", "/v1/messages", json.dumps(body).encode()).read_head()
    try:
        got = s.read_all()
    finally:
        s.close()
    eq(s.status, 200, "status")
    # the same request straight to the simulator
    direct = R.RawHTTP(E.sim_port, "POST", "/sim/redacted=1,server_tool=1/v1/messages",
                       json.dumps(dict(body, model="claude-x")).encode(),
                       headers={"x-api-key": ANT_KEY, "anthropic-version": "2023-06-01"}).read_head()
    try:
        want = direct.read_all()
    finally:
        direct.close()
    norm = lambda b: __import__("re").sub(rb'"msg_sim_\d+"', b'"msg_sim_N"', b)
    eq(norm(got), norm(want), "the provider's bytes")
    evs = [json.loads(ln[6:]) for ln in got.decode().split("\n") if ln.startswith("data: ")]
    starts = [e["content_block"]["type"] for e in evs if e["type"] == "content_block_start"]
    eq(starts, ["redacted_thinking", "server_tool_use", "web_search_tool_result", "text"], "blocks")
    check(any(e["type"] == "ping" for e in evs), "pings pass too")


@test
def test_messages_native_plain_keeps_blocks_without_chat_equivalent():
    r = post("/v1/messages", msg_body("t-claudex", "Search the sea"))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    eq([b["type"] for b in r.json["content"]],
       ["redacted_thinking", "server_tool_use", "web_search_tool_result", "text"], "blocks")
    eq(r.json["content"][0]["data"], simprovider.SIM_REDACTED_DATA, "redacted data")


@test
def test_messages_native_stream_error_after_commit_is_the_providers():
    s, evs = events("/v1/messages", msg_body("aerr-oai", stream=True))
    eq(s.status, 200, "status")
    eq(s.h("x-router-model"), "claudeerr", "committed on the Anthropic model, no failover")
    names = ant_names(evs)
    eq(names[0], "message_start", "first")
    eq(names[-1], "error", f"ends with the provider's error event: {names}")
    eq(names.count("error"), 1, "one error event")
    eq(evs[-1][1]["error"]["type"], "overloaded_error", "the provider's own error")


@test
def test_messages_native_stream_fails_over_before_commit():
    s, evs = events("/v1/messages", msg_body("a529-oai", stream=True))
    eq(s.status, 200, "status")
    eq(s.h("x-router-model"), "good-mini", "failed over")
    check_ant_stream(evs)


def raw_stream(body, d=None, headers=None, path="/v1/messages"):
    """(head, the body's bytes decoded, [(event name, parsed data)])."""
    d = d or daemon()
    s = R.RawHTTP(d.port, "POST", path, body, headers=headers or {}).read_head()
    try:
        text = s.read_all().decode("utf-8")
    finally:
        s.close()
    evs = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, None
        for ln in block.split("\n"):
            if ln.startswith("event:"):
                name = ln[6:].strip()
            elif ln.startswith("data:"):
                data = ln[5:].lstrip(" ")
        evs.append((name, json.loads(data) if data else None))
    return s, text, evs


def sim_direct(opts, body):
    """The bytes the simulator streams for body (model: the upstream name)
    when asked directly, its message ids made comparable."""
    s = R.RawHTTP(E.sim_port, "POST", f"/sim/{opts}/v1/messages", json.dumps(body).encode(),
                  headers={"x-api-key": ANT_KEY, "anthropic-version": "2023-06-01"}).read_head()
    got = b""
    try:
        while True:
            x = s.read_some()
            if not x:
                break
            got += x
    except Fail:
        pass  # a cut stream: what came before the close
    finally:
        s.close()
    return got.decode("utf-8")


def norm_ids(text):
    return re.sub(r'"msg_sim_\d+"', '"msg_sim_N"', text)


@test
def test_messages_native_cut_stream_ends_with_one_error_event():
    body = msg_body("acut", stream=True)
    s, text, evs = raw_stream(body)
    eq(s.status, 200, "status")
    sent = norm_ids(sim_direct("cut_after=3", dict(body, model="claude-cut")))
    got = norm_ids(text)
    check(sent and got.startswith(sent) and len(got) > len(sent),
          f"the provider's events, then the router's: {R.short(got[len(sent):].encode())}")
    rest = [e for e in got[len(sent):].split("\n\n") if e.strip()]
    eq(len(rest), 1, f"one event added: {rest}")
    check(rest[0].startswith("event: error\ndata: "), f"an error event: {rest[0]!r}")
    j = json.loads(rest[0].split("data: ", 1)[1])
    eq((j["type"], j["error"]["type"]), ("error", "api_error"), "Anthropic's error shape")


@test
def test_messages_native_stream_stalled_upstream_ends_with_an_error_event():
    # committed (text deltas went out), then 8 s of silence: past the
    # provider's idle_timeout_ms (0.7 s) the client's stream ends with an
    # Anthropic error event after the last complete event
    t0 = time.time()
    s, text, evs = raw_stream(msg_body("aslow", "stall please", stream=True))
    took = time.time() - t0
    eq(s.status, 200, f"status {R.short(text.encode())}")
    names = ant_names(evs)
    eq(names[:3], ["message_start", "ping", "content_block_start"], "the provider's events first")
    check(evs[0][1]["message"]["id"].startswith("msg_sim_"), "the provider's own message_start")
    eq(names.count("content_block_delta"), 3, f"the events before the stall: {names}")
    eq(names[-1], "error", f"ends with an error event: {names}")
    eq(names.count("error"), 1, "one error event")
    check("message_stop" not in names, "no message_stop")
    eq(evs[-1][1]["error"]["type"], "api_error", "error type")
    check(took < 6, f"ended by the idle timeout, not by the provider ({took:.1f} s)")


@test
def test_messages_native_stream_usage_and_cost_in_the_access_log():
    d = daemon("keys")
    body = msg_body("t-claude", "count my tokens", stream=True,
                    system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}])
    s, text, evs = raw_stream(body, d=d, headers={"x-api-key": PROXY_KEY})
    eq(s.status, 200, f"status {R.short(text.encode())}")
    rid = s.h("x-request-id")
    check(evs[0][1]["message"]["id"].startswith("msg_sim_"), "the provider's own stream")
    start = evs[0][1]["message"]["usage"]
    out = [d_["usage"]["output_tokens"] for n, d_ in evs if n == "message_delta"][-1]
    line = None
    deadline = time.time() + 10
    while line is None and time.time() < deadline:
        with open(os.path.join(E.tmp, "doors-access.log"), encoding="utf-8") as f:
            for ln in f:
                j = json.loads(ln)
                if j.get("request_id") == rid:
                    line = j
        time.sleep(0.05)
    check(line is not None, f"access log line for {rid}")
    eq(line["door"], "messages", "door")
    eq(line["completion_tokens"], out, "output tokens from message_delta")
    inp, cr, cw = start["input_tokens"], start["cache_read_input_tokens"], start["cache_creation_input_tokens"]
    check(cr > 0 and cw > 0, f"cache classes {start}")
    eq(line["prompt_tokens"], inp + cr + cw, "prompt tokens: input and both cache classes")
    eq(line["cached_tokens"], cr, "cache reads")
    want = (inp * 3 + cr * 0.3 + cw * 3.75 + out * 15) / 1e6
    check(abs(line["cost_usd"] - want) < 1e-9, f"cost {line['cost_usd']} != {want}")
    eq(line["cost_estimated"], False, "cost from the usage, not an estimate")


@test
def test_messages_native_stream_cached_and_replayed():
    d = daemon("cache")
    body = msg_body("t-claudex", "cache this native stream", stream=True, temperature=0)
    s, text, evs = raw_stream(body, d=d)
    eq(s.h("x-cache"), "MISS", "first")
    check(evs[0][1]["message"]["id"].startswith("msg_sim_"), "the provider's own stream")
    want = "".join(d_["delta"].get("text", "") for n, d_ in evs if n == "content_block_delta")
    s2, text2, evs2 = raw_stream(body, d=d)
    eq(s2.h("x-cache"), "HIT", "the assembled stream was stored")
    eq(check_ant_stream(evs2), want, "replayed text")
    check(not evs2[0][1]["message"]["id"].startswith("msg_sim_"), "replayed by the router")
    r = post("/v1/messages", dict(body, stream=False), d=d)
    eq(r.h("x-cache"), "HIT", "plain hit")
    eq("".join(b.get("text", "") for b in r.json["content"]), want, "plain text")


@test
def test_messages_native_backpressure_big_stream():
    # one tool call whose 20 MB of input come in 2000 input_json_delta
    # events of 10 KB, to a client that stops reading, then reads slowly
    MB = 1 << 20
    d = daemon()
    schema = {"type": "object", "properties": {"blob": {"type": "string", "minLength": 20 * MB}},
              "required": ["blob"]}
    want = simprovider.dumps(simprovider.schema_value(schema, schema))
    body = msg_body("abig", "call bigtool", stream=True, tools=[{"name": "bigtool", "input_schema": schema}])
    asan = "asan" in (os.environ.get("LLMROUTER_BIN") or "")
    time.sleep(0.3)
    rss0 = d.rss_kb()
    st0 = E.sim_stats()
    s = R.RawHTTP(d.port, "POST", "/v1/messages", body, rcvbuf=32 * 1024, timeout=120).read_head()
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
        check((rss1 - rss0) / 1024 < (80 if asan else 20), f"RSS grew while the client was not reading ({detail})")
        text = (head + s.read_all()).decode("utf-8")
    finally:
        s.close()
    evs = [e for e in text.split("\n\n") if e.strip()]
    check(evs[-1].startswith("event: message_stop"), f"complete: {evs[-1][:120]!r}")
    args = "".join(json.loads(e.split("data: ", 1)[1])["delta"]["partial_json"] for e in evs
                   if e.startswith("event: content_block_delta") and "input_json_delta" in e)
    check(len(args) == len(want), f"input length {len(args)} != {len(want)}")
    check(args == want, "the whole input arrived intact and in order")


@test
def test_messages_native_stream_client_leaves():
    # a client that goes away in the middle of a big native stream: the
    # upstream transfer is dropped, the daemon goes on serving
    d = daemon()
    schema = {"type": "object", "properties": {"blob": {"type": "string", "minLength": 4 << 20}},
              "required": ["blob"]}
    body = msg_body("abig", "call bigtool", stream=True, tools=[{"name": "bigtool", "input_schema": schema}])
    st0 = E.sim_stats()
    s = R.RawHTTP(d.port, "POST", "/v1/messages", body, rcvbuf=32 * 1024, timeout=60).read_head()
    eq(s.status, 200, "status")
    check(len(s.read_some(4096)) > 0, "first bytes")
    s.close()
    deadline = time.time() + 10
    st = st0
    while time.time() < deadline:
        st = E.sim_stats()
        if st["streams_aborted"] > st0["streams_aborted"] and st["active_streams"] == st0["active_streams"]:
            break
        time.sleep(0.05)
    check(st["streams_aborted"] > st0["streams_aborted"], f"the upstream stream was dropped: {st}")
    eq(post("/v1/messages", msg_body("t-claude")).status, 200, "the daemon goes on")


@test
def test_explain_takes_every_doors_body():
    """POST /v1/router/explain/messages and /responses route a door's body as
    the door would; /v1/router/explain(/chat/completions) stays chat."""
    cases = [("/v1/messages", "/v1/router/explain/messages", msg_body("auto", "hi")),
             ("/v1/messages", "/v1/router/explain/messages", msg_body("t-claude", "hi")),
             ("/v1/responses", "/v1/router/explain/responses", resp_body("auto", "hi")),
             ("/v1/responses", "/v1/router/explain/responses", resp_body("t-oai", "hi")),
             ("/v1/chat/completions", "/v1/router/explain/chat/completions",
              R.chat_body("auto", "hi"))]
    for door, path, body in cases:
        real = post(door, body)
        eq(real.status, 200, f"{door} status ({R.short(real.body)})")
        before = len(E.sim_requests())
        r = post(path, body)
        eq(r.status, 200, f"{path} status ({R.short(r.body)})")
        eq(r.json["decision"]["tier"], real.headers.get("x-router-tier"), f"{path}: the door's tier")
        eq(r.json["decision"]["rule"], real.headers.get("x-router-rule"), f"{path}: the door's rule")
        eq(len(E.sim_requests()), before, f"{path}: explain calls no provider")
    r = post("/v1/router/explain/messages", {"model": "auto", "messages": [{"role": "user", "content": "x"}]})
    check_ant_error(r, 400, "invalid_request_error", "a Messages body without max_tokens: ")
    r = post("/v1/router/explain/responses", {"model": "auto"})
    eq(r.status, 400, f"a Responses body without input ({R.short(r.body)})")
    eq(post("/v1/router/explain/messages/count_tokens", msg_body("auto")).status, 404, "no count_tokens explain")
    eq(post("/v1/router/explain/embeddings", {"model": "auto", "input": "x"}).status, 404, "unknown door")


@test
def test_messages_cut_stream_ends_with_error_event():
    s, evs = events("/v1/messages", msg_body("acut", stream=True))
    eq(s.status, 200, "status")
    names = ant_names(evs)
    eq(names[0], "message_start", "first")
    eq(names[-1], "error", f"ends with an error event: {names}")
    check("message_stop" not in names, "no message_stop")
    eq(evs[-1][1]["error"]["type"], "api_error", "error type")


# ------------------------------------------------------------------ Responses door

@test
def test_responses_plain_over_openai_model():
    E.sim_reset()
    r = post("/v1/responses", resp_body("t-oai", instructions="be brief", max_output_tokens=100))
    eq(r.status, 200, f"status ({R.short(r.body)})")
    j = r.json
    eq(j.get("object"), "response", "object")
    eq(j.get("status"), "completed", "status")
    msgs = [o for o in j["output"] if o["type"] == "message"]
    check(msgs and msgs[0]["content"][0]["text"].startswith("Simulated reply from sim-mini"), f"output {j['output']}")
    check(j["usage"]["input_tokens"] > 0, f"usage {j['usage']}")
    R.check_routed(r, model="good-mini", provider="good", attempts=1)
    sent = sim_requests_to("/chat/completions")[0]["body"]
    eq(sent["messages"][0], {"role": "system", "content": "be brief"}, "instructions")
    eq(sent["max_completion_tokens"], 100, "max_output_tokens")


@test
def test_responses_stream_over_openai_and_anthropic():
    for tier, up in (("t-oai", "sim-mini"), ("t-claude", "claude-sim"), ("/responses", None)):
        if up is None:
            break
        s, evs = events("/v1/responses", resp_body(tier, stream=True))
        eq(s.status, 200, f"{tier} status")
        text = check_resp_stream(evs)
        check(text.startswith(f"Simulated reply from {up}"), f"{tier} text {text!r}")
        done = evs[-1][1]["response"]
        eq(done["status"], "completed", "completed")
        check(done["usage"]["output_tokens"] > 0, f"usage {done['usage']}")
    r = post("/responses", resp_body("t-claude"))
    eq(r.status, 200, f"no /v1 ({R.short(r.body)})")
    eq(r.json["object"], "response", "object")


@test
def test_responses_stateless_refusals_in_openai_shape():
    r = post("/v1/responses", resp_body("t-oai", store=True))
    R.check_error(r, 400)
    check("store" in r.json["error"]["message"], "names store")
    r = post("/v1/responses", resp_body("t-oai", previous_response_id="resp_1"))
    R.check_error(r, 400)
    R.check_error(post("/v1/responses", resp_body("nope")), 404, "model_not_found")
    R.check_error(post("/v1/responses", None, raw=b'{"model":"t-oai","input":"a","input":"b"}'), 400)


@test
def test_responses_native_pass_through_plain():
    E.sim_reset()
    body = resp_body("t-native", tools=[{"type": "web_search"}], include=["reasoning.encrypted_content"])
    r = post("/v1/responses", body)
    eq(r.status, 200, f"status ({R.short(r.body)})")
    check(r.json["id"].startswith("resp_sim_"), f"the provider's own Response: {r.json['id']}")
    R.check_routed(r, model="native", provider="nat", attempts=1)
    reqs = sim_requests_to("/responses")
    eq(len(reqs), 1, "requests to /responses")
    eq(reqs[0]["body"], dict(body, model="sim-native", store=False), "as sent, store false added")
    eq(len(sim_requests_to("/chat/completions")), 0, "no chat request")
    check(float(r.h("x-router-cost-usd")) > 0, "cost from the Response's usage")


@test
def test_responses_native_pass_through_stream():
    E.sim_reset()
    s, evs = events("/v1/responses", resp_body("t-native", stream=True))
    eq(s.status, 200, "status")
    text = check_resp_stream(evs)
    check(text.startswith("Simulated reply from sim-native"), f"text {text!r}")
    check(evs[-1][1]["response"]["id"].startswith("resp_sim_"), "the provider's own events")
    s, evs = events("/v1/responses", resp_body("ncut", stream=True))
    eq(s.status, 200, "cut status")
    eq(evs[-1][0], "error", f"a cut native stream ends with an error event: {ant_names(evs)}")


@test
def test_responses_cut_translated_stream_fails():
    s, evs = events("/v1/responses", resp_body("t-cut", stream=True))
    eq(s.status, 200, "status")
    names = ant_names(evs)
    check("response.failed" in names, f"response.failed in {names}")
    check("response.completed" not in names, "not completed")


# ------------------------------------------------------------------ per-door metrics

def admin_get(d, path):
    return R.http_request(d.port, "GET", path, headers={"authorization": f"Bearer {ADMIN_KEY}"})


def door_counts(d):
    """{(door, status_class): value} of llmrouter_door_requests_total."""
    r = admin_get(d, "/metrics")
    eq(r.status, 200, "GET /metrics")
    text = r.body.decode("utf-8")
    check("# TYPE llmrouter_door_requests_total counter" in text, "the family's TYPE line")
    out = {}
    for ln in text.splitlines():
        m = re.match(r'^llmrouter_door_requests_total\{door="([^"]*)",status_class="([^"]*)"\} (\S+)$', ln)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


@test
def test_door_metrics_and_access_log():
    d = daemon("keys")
    auth = {"authorization": f"Bearer {PROXY_KEY}"}
    before = door_counts(d)
    calls = [
        ("chat", "/v1/chat/completions", R.chat_body("t-oai", "hi")),
        ("completions", "/v1/completions", {"model": "t-oai", "prompt": "hi"}),
        ("embeddings", "/v1/embeddings", {"model": "embed-small", "input": ["hi"]}),
        ("messages", "/v1/messages", msg_body("t-oai")),
        ("messages", "/v1/messages", msg_body("t-claude", stream=True)),
        ("responses", "/v1/responses", resp_body("t-oai")),
    ]
    rids = {}
    for door, path, body in calls:
        if body.get("stream"):
            s, _, _ = raw_stream(body, d=d, headers=auth)
            eq(s.status, 200, f"{door} stream")
            rids[s.h("x-request-id")] = door
            continue
        r = post(path, body, d=d, headers=auth)
        eq(r.status, 200, f"{door} ({R.short(r.body)})")
        rids[r.h("x-request-id")] = door
    r = post("/v1/messages", msg_body("no-such-model"), d=d, headers=auth)
    eq(r.status, 404, "messages 404")
    rids[r.h("x-request-id")] = "messages"
    r = post("/v1/responses", resp_body("t-oai", store=True), d=d, headers=auth)
    eq(r.status, 400, "responses 400")
    rids[r.h("x-request-id")] = "responses"
    want = {("chat", "2xx"): 1, ("completions", "2xx"): 1, ("embeddings", "2xx"): 1,
            ("messages", "2xx"): 2, ("responses", "2xx"): 1, ("messages", "4xx"): 1, ("responses", "4xx"): 1}
    deadline = time.time() + 5
    while True:
        after = door_counts(d)
        got = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
        got = {k: v for k, v in got.items() if v}
        if got == want or time.time() > deadline:
            break
        time.sleep(0.05)
    eq(got, want, "llmrouter_door_requests_total deltas")
    for door, _cls in after:
        check(door in ("chat", "completions", "embeddings", "messages", "responses"), f"door value {door}")
    st = admin_get(d, "/v1/router/stats").json
    eq(sorted(st["doors"]), ["chat", "completions", "embeddings", "messages", "responses"], "stats doors")
    check(st["doors"]["messages"] >= 3 and st["doors"]["embeddings"] >= 1, f"stats doors {st['doors']}")
    # the access log names the door the same way
    seen = {}
    deadline = time.time() + 5
    while len(seen) < len(rids) and time.time() < deadline:
        with open(os.path.join(E.tmp, "doors-access.log"), encoding="utf-8") as f:
            for ln in f:
                j = json.loads(ln)
                if j.get("request_id") in rids:
                    seen[j["request_id"]] = j.get("door")
        time.sleep(0.05)
    eq(seen, rids, "the access log's door of each request")


# ------------------------------------------------------------------ failover, cache

@test
def test_mixed_chains_fail_over_behind_every_door():
    cases = [("/v1/chat/completions", "chat"), ("/v1/messages", "messages"), ("/v1/responses", "responses")]
    for tier, model, prov in (("a529-oai", "good-mini", "good"), ("oai-ant", "claude", "ant")):
        for path, door in cases:
            if door == "chat":
                body = R.chat_body(tier, "fail over please")
            elif door == "messages":
                body = msg_body(tier, "fail over please")
            else:
                body = resp_body(tier, "fail over please")
            r = post(path, body)
            eq(r.status, 200, f"{door} {tier} plain ({R.short(r.body)})")
            R.check_routed(r, model=model, provider=prov, attempts=2)
            body["stream"] = True
            s, evs = events(path, body)
            eq(s.status, 200, f"{door} {tier} stream status")
            eq(s.h("x-router-model"), model, f"{door} {tier} stream model")
            eq(s.h("x-router-attempts"), "2", f"{door} {tier} stream attempts")
            if door == "messages":
                check_ant_stream(evs)
            elif door == "responses":
                check_resp_stream(evs)
    # behind the Responses door, a native provider failing over to a chat one and back
    for tier, model in (("n500-oai", "good-mini"), ("oai-native", "native")):
        r = post("/v1/responses", resp_body(tier))
        eq(r.status, 200, f"{tier} ({R.short(r.body)})")
        eq(r.h("x-router-model"), model, f"{tier} model")
        eq(r.json["object"], "response", f"{tier} object")


@test
def test_cache_hits_replay_in_the_door_format():
    d = daemon("cache")
    for path, mk, kind in (("/v1/messages", msg_body, "message"), ("/v1/responses", resp_body, "response")):
        body = mk("t-oai", f"cache me {kind}", temperature=0)
        r1 = post(path, body, d=d)
        eq(r1.status, 200, f"{kind} first")
        r2 = post(path, body, d=d)
        eq(r2.status, 200, f"{kind} second")
        eq(r2.h("x-cache"), "HIT", f"{kind} x-cache")
        j = r2.json
        eq(j.get("type") if kind == "message" else j.get("object"), kind, f"{kind} replayed shape")
        body["stream"] = True
        events(path, body, d=d)
        s, evs = events(path, body, d=d)
        eq(s.h("x-cache"), "HIT", f"{kind} stream x-cache")
        if kind == "message":
            check_ant_stream(evs)
        else:
            check_resp_stream(evs)


# ------------------------------------------------------------------ main

@test
def test_daemons_stop_cleanly():
    bad = []
    for d in DAEMONS.values():
        ok, msg = d.stop()
        if not ok:
            bad.append(f"{d.tag}: {msg}")
        check(ANT_KEY not in d.stderr_text(), f"{d.tag}: the Anthropic key is in the log")
        check(PROXY_KEY not in d.stderr_text(), f"{d.tag}: the proxy key is in the log")
        check(ADMIN_KEY not in d.stderr_text(), f"{d.tag}: the admin key is in the log")
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
