#!/usr/bin/env python3
"""Integration tests of provider presets (issue #16 §1): the real daemon
over real sockets against the simulated provider's preset quirks
(tests/sim/simprovider.py, quirk=NAME in the /sim/ prefix).

    python3 tests/integration/test_presets.py [-k SUBSTRING]...

Covers: Azure's URL (deployment in the path, api-version and query:
parameters URL-encoded after it, a base_url with ?api-version= kept after
the path), its api-key header and headers: sent, none of the secrets in the
logs; a preset's default key variable; gemini's streamed tool calls without
index given indexes and ids as the OpenAI SDK's accumulator needs them, its
"stop" turned into "tool_calls", its array-wrapped errors in OpenAI's shape
(passed-through 400, a 429 failing over, a stream's first event); mistral's
flat errors wrapped and tool-call ids rewritten to 9 characters; groq's
rejected parameters dropped; deepseek's keep-alive comments not taken for
the first byte, blank lines before a plain answer, reasoning_content passed
through. Each quirk is also shown against the same simulator with
`quirks: []`, where the client gets the provider's raw departure.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py.
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
S = {}

KEYS = {  # the presets' default key variables, set for the daemon
    "AZURE_OPENAI_API_KEY": "az-key-4f1c9e2b7d",
    "GEMINI_API_KEY": "gem-key-8a7b6c5d4e",
    "MISTRAL_API_KEY": "mis-key-1a2b3c4d5e",
    "GROQ_API_KEY": "groq-key-9z8y7x6w",
    "DEEPSEEK_API_KEY": "ds-key-5t4r3e2w1q",
    "T_HDR_SECRET": "hdr-secret-77aa88bb99",
}

PROVIDERS = """\
  az:      {preset: azure, base_url: "${SIM_URL}/sim/quirk=azure/openai",
            headers: {X-Org: acme, X-Hdr-Secret: "${T_HDR_SECRET}"}, query: {tenant: "a b&c"}}
  azq:     {type: openai, base_url: "${SIM_URL}/sim/quirk=azure/openai/deployments/dq?api-version=2024-06-01",
            api_key_env: AZURE_OPENAI_API_KEY, auth_header: api-key}
  azbad:   {preset: azure, base_url: "${SIM_URL}/sim/quirk=azure,status=401/openai"}
  azecho:  {preset: azure, base_url: "${SIM_URL}/sim/quirk=azure,echo_headers=1/openai",
            headers: {X-Hdr-Secret: "${T_HDR_SECRET}"}, pass_through: [401]}
  gem:     {preset: gemini, base_url: "${SIM_URL}/sim/quirk=gemini/v1beta/openai/"}
  gembig:  {preset: gemini, base_url: "${SIM_URL}/sim/quirk=gemini,arg_bytes=400000,frags=4000/v1beta/openai"}
  gemraw:  {preset: gemini, base_url: "${SIM_URL}/sim/quirk=gemini/v1beta/openai", quirks: []}
  gem400:  {preset: gemini, base_url: "${SIM_URL}/sim/quirk=gemini,status=400/v1beta/openai"}
  gem400raw: {preset: gemini, base_url: "${SIM_URL}/sim/quirk=gemini,status=400/v1beta/openai", quirks: []}
  gem429:  {preset: gemini, base_url: "${SIM_URL}/sim/quirk=gemini,status=429/v1beta/openai"}
  gemarr:  {preset: gemini, base_url: "${SIM_URL}/sim/quirk=gemini,array_event=1/v1beta/openai"}
  mis:     {preset: mistral, base_url: "${SIM_URL}/sim/quirk=mistral/v1"}
  misraw:  {preset: mistral, base_url: "${SIM_URL}/sim/quirk=mistral/v1", quirks: []}
  mis422:  {preset: mistral, base_url: "${SIM_URL}/sim/quirk=mistral,status=422/v1", pass_through: [422]}
  groq:    {preset: groq, base_url: "${SIM_URL}/sim/quirk=groq/openai/v1"}
  groqraw: {preset: groq, base_url: "${SIM_URL}/sim/quirk=groq/openai/v1", quirks: []}
  ds:      {preset: deepseek, base_url: "${SIM_URL}/sim/quirk=deepseek,keepalive=3,keepalive_ms=100/v1"}
  dsslow:  {preset: deepseek, base_url: "${SIM_URL}/sim/quirk=deepseek,keepalive=8,keepalive_ms=100/v1",
            first_byte_timeout_ms: 400}
  local:   {preset: vllm, base_url: "${SIM_URL}/v1"}
"""

MODELS = """\
  az-4o:     {provider: az, model: gpt-4o, deployment: "prod 4o"}
  az-mini:   {provider: az, model: gpt-4o-mini}
  azq-m:     {provider: azq, model: gpt-4o}
  azbad-m:   {provider: azbad, model: gpt-4o}
  azecho-m:  {provider: azecho, model: gpt-4o}
  gem-m:     {provider: gem, model: gemini-2.0-flash}
  gembig-m:  {provider: gembig, model: gemini-2.0-flash}
  gemraw-m:  {provider: gemraw, model: gemini-2.0-flash}
  gem400-m:  {provider: gem400, model: gemini-2.0-flash}
  gem400raw-m: {provider: gem400raw, model: gemini-2.0-flash}
  gem429-m:  {provider: gem429, model: gemini-2.0-flash}
  gemarr-m:  {provider: gemarr, model: gemini-2.0-flash}
  mis-m:     {provider: mis, model: mistral-small}
  misraw-m:  {provider: misraw, model: mistral-small}
  mis422-m:  {provider: mis422, model: mistral-small}
  groq-m:    {provider: groq, model: llama-3.1-8b}
  groqraw-m: {provider: groqraw, model: llama-3.1-8b}
  ds-m:      {provider: ds, model: deepseek-chat}
  dsslow-m:  {provider: dsslow, model: deepseek-chat}
  local-m:   {provider: local, model: sim-local}
"""

TIERS = """\
  standard: [local-m]
  t-az: [az-4o, az-mini]
  t-azq: [azq-m]
  t-azbad: [azbad-m, local-m]
  t-azecho: [azecho-m]
  t-gem: [gem-m]
  t-gemraw: [gemraw-m]
  t-gembig: [gembig-m]
  t-gem400: [gem400-m]
  t-gem400raw: [gem400raw-m]
  t-gem429: [gem429-m, local-m]
  t-gemarr: [gemarr-m, local-m]
  t-mis: [mis-m]
  t-misraw: [misraw-m]
  t-mis422: [mis422-m]
  t-groq: [groq-m]
  t-groqraw: [groqraw-m]
  t-ds: [ds-m]
  t-dsslow: [dsslow-m, local-m]
"""


def test(fn):
    TESTS.append(fn)
    return fn


def write_config():
    S["log"] = os.path.join(E.tmp, "presets.access.log")
    text = ("server:\n  listen: \"127.0.0.1:18080\"\n  threads: 1\n  log_level: info\n"
            "providers:\n" + PROVIDERS + "models:\n" + MODELS + "tiers:\n" + TIERS +
            "routing:\n  default_tier: standard\n"
            "cache:\n  backend: off\n"
            f"observability:\n  access_log: \"{S['log']}\"\n")
    path = os.path.join(E.tmp, "presets.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def setup():
    os.environ.update(KEYS)
    S["cfg"] = write_config()
    S["d"] = E.new_daemon(tag="presets", config=S["cfg"]).start()


def teardown():
    d = S.get("d")
    if d is not None:
        d.kill()


def post(model, content="hello", stream=False, **extra):
    return R.http_request(S["d"].port, "POST", "/v1/chat/completions",
                          json.dumps(chat_body(model, content, stream=stream, **extra)).encode())


def stream(model, content="hello", **extra):
    """(status, headers-owner, [parsed data objects], raw datas) of a streamed request."""
    s = R.RawHTTP(S["d"].port, "POST", "/v1/chat/completions",
                  chat_body(model, content, stream=True, **extra)).read_head()
    try:
        if s.status != 200:
            return s.status, s, [], []
        datas, _ = R.read_stream(s)
    finally:
        s.close()
    objs = [json.loads(d) for d in datas if d != "[DONE]"]
    return 200, s, objs, datas


def log_line(rid, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(S["log"]):
            with open(S["log"], encoding="utf-8") as f:
                for ln in f:
                    if ln.strip() and json.loads(ln).get("request_id") == rid:
                        return json.loads(ln)
        time.sleep(0.05)
    raise Fail(f"no access log line for {rid}")


def last_sim(pred, what):
    for x in reversed(E.sim_requests()):
        if pred(x):
            return x
    raise Fail(f"the simulator saw no request for {what}")


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {}}}}]


def accumulate(objs):
    """What the OpenAI Python SDK's stream accumulator does with tool-call
    deltas: it needs `index` on each (else it raises) and joins arguments
    by it. Returns ({index: {id, name, arguments}}, finish_reason)."""
    calls, finish = {}, None
    for o in objs:
        for ch in o.get("choices") or []:
            for tc in (ch.get("delta") or {}).get("tool_calls") or []:
                if "index" not in tc:
                    raise Fail(f"a tool_calls delta without index: {tc}")
                c = calls.setdefault(tc["index"], {"id": None, "name": "", "arguments": ""})
                if tc.get("id"):
                    c["id"] = tc["id"]
                fn = tc.get("function") or {}
                c["name"] += fn.get("name") or ""
                c["arguments"] += fn.get("arguments") or ""
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    return calls, finish


# ------------------------------------------------------------------ azure

@test
def test_azure_url_headers_query():
    r = post("t-az", "azure hello")
    eq(r.status, 200, f"status ({R.short(r.body)})")
    x = last_sim(lambda x: "quirk=azure/" in x["path"] and "prod%204o" in x["path"], "az-4o")
    path, _, query = x["path"].partition("?")
    check(path.endswith("/openai/deployments/prod%204o/chat/completions"), f"path {path}")
    eq(query, "tenant=a%20b%26c&api-version=2024-10-21", "query: encoded, then api-version")
    h = x["headers"]
    eq(h.get("api-key"), KEYS["AZURE_OPENAI_API_KEY"], "api-key header (the preset's auth)")
    check("authorization" not in h, f"no Authorization beside api-key: {h.get('authorization')}")
    eq(h.get("x-org"), "acme", "headers: sent")
    eq(h.get("x-hdr-secret"), KEYS["T_HDR_SECRET"], "headers: from ${VAR}")


@test
def test_azure_base_url_with_query():
    """The issue's bug: a base_url with ?api-version= got the path after the query."""
    r = post("t-azq", "azure q")
    eq(r.status, 200, f"status ({R.short(r.body)})")
    x = last_sim(lambda x: "/deployments/dq" in x["path"], "azq")
    eq(x["path"].partition("?")[2], "api-version=2024-06-01", "query after the path")
    check(x["path"].partition("?")[0].endswith("/deployments/dq/chat/completions"), x["path"])
    eq(x["headers"].get("api-key"), KEYS["AZURE_OPENAI_API_KEY"], "auth_header: api-key")


@test
def test_azure_deployment_defaults_to_upstream_name():
    r = R.http_request(S["d"].port, "POST", "/v1/chat/completions",
                       json.dumps(chat_body("az-mini", "mini")).encode())
    eq(r.status, 200, f"status ({R.short(r.body)})")
    last_sim(lambda x: "/deployments/gpt-4o-mini/chat/completions?" in x["path"], "az-mini")


@test
def test_secrets_not_logged():
    """Keys and headers: secrets appear in no log, access log or /metrics,
    and a provider echoing the api-key is masked (the 401 fails over)."""
    r = post("t-azbad", "bad key")
    eq(r.status, 200, f"failed over ({R.short(r.body)})")
    r = post("t-azecho", "echo")
    eq(r.status, 401, f"passed through ({R.short(r.body)})")
    msg = r.json["error"]["message"]
    check("api-key=****" in msg and "x-hdr-secret=****" in msg, f"both masked: {msg}")
    for v in KEYS.values():
        check(v not in msg, "a secret reached the client")
    m = R.http_request(S["d"].port, "GET", "/metrics").body.decode()
    texts = [S["d"].stderr_text(), m]
    if os.path.exists(S["log"]):
        texts.append(open(S["log"], encoding="utf-8").read())
    for t in texts:
        for name, v in KEYS.items():
            check(v not in t, f"{name}'s value in the output")


# ----------------------------------------------------------------- gemini

@test
def test_gemini_stream_tool_calls_indexed():
    st, s, objs, datas = stream("t-gem", "call get_weather and get_time", tools=TOOLS)
    eq(st, 200, "status")
    calls, finish = accumulate(objs)
    eq(sorted(calls), [0, 1], "two calls, indexes 0 and 1")
    eq([calls[0]["name"], calls[1]["name"]], ["get_weather", "get_time"], "names by index")
    for i in (0, 1):
        json.loads(calls[i]["arguments"])  # both halves joined under the right index
        check(calls[i]["id"], f"call {i} has an id (gemini sent \"\")")
    check(calls[0]["id"] != calls[1]["id"], "ids are unique")
    eq(finish, "tool_calls", "a turn with tool calls ends with tool_calls")
    eq(datas[-1], "[DONE]", "ends with [DONE]")


@test
def test_gemini_plain_tool_calls():
    r = post("t-gem", "call both", tools=TOOLS)
    eq(r.status, 200, f"status ({R.short(r.body)})")
    ch = r.json["choices"][0]
    eq(ch["finish_reason"], "tool_calls", "stop after tool calls becomes tool_calls")
    ids = [tc["id"] for tc in ch["message"]["tool_calls"]]
    check(all(ids) and len(set(ids)) == 2, f"ids given: {ids}")
    r = post("t-gemraw", "call both", tools=TOOLS)
    eq(r.json["choices"][0]["finish_reason"], "stop", "the control keeps gemini's stop")


@test
def test_gemini_long_stream_slow_client():
    """About 1 MB of tool-call fragments to a client that stalls first: the
    rewritten stream is paused and resumed (backpressure) without losing or
    repeating a byte."""
    s = R.RawHTTP(S["d"].port, "POST", "/v1/chat/completions",
                  chat_body("t-gembig", "call both", stream=True, tools=TOOLS),
                  rcvbuf=4096, timeout=30).read_head()
    try:
        eq(s.status, 200, "status")
        first = s.next_event()
        time.sleep(1.0)  # the daemon's 64 KiB buffer fills: the transfer pauses
        datas, _ = R.read_stream(s)
    finally:
        s.close()
    objs = [json.loads(d) for d in [R.event_data(first)] + datas if d != "[DONE]"]
    calls, finish = accumulate(objs)
    eq(sorted(calls), [0, 1], "two calls")
    for i in (0, 1):
        a = json.loads(calls[i]["arguments"])
        eq(len(a["q"]), 400000, f"call {i}: every fragment once, in order")
    eq(finish, "tool_calls", "finish")
    eq(datas[-1], "[DONE]", "ends with [DONE]")


@test
def test_gemini_raw_without_quirks_lacks_index():
    """The control: the same simulator with quirks: [] gives the client
    deltas the SDK cannot accumulate."""
    st, s, objs, _ = stream("t-gemraw", "call get_weather", tools=TOOLS)
    eq(st, 200, "status")
    try:
        accumulate(objs)
    except Fail:
        return
    raise Fail("deltas had an index without the quirk handling")


@test
def test_gemini_array_error_unwrapped():
    r = post("t-gem400", "bad request")
    eq(r.status, 400, "400 passed through")
    j = r.json
    check(isinstance(j, dict) and isinstance(j.get("error"), dict), f"OpenAI shape: {j}")
    eq(j["error"]["message"], "simulated gemini error", "message")
    eq(j["error"]["type"], "INVALID_ARGUMENT", "type from status")
    r = post("t-gem400raw", "bad request")
    check(isinstance(r.json, list), f"without the quirk the array reaches the client: {r.json}")


@test
def test_gemini_429_fails_over():
    r = post("t-gem429", "rate limited")
    eq(r.status, 200, f"failed over ({R.short(r.body)})")
    eq(r.h("x-router-model"), "local-m", "the next model answered")


@test
def test_gemini_array_error_event_fails_over():
    st, s, objs, _ = stream("t-gemarr", "array event")
    eq(st, 200, "status")
    eq(s.h("x-router-model"), "local-m", "failed over before the commit")
    eq(s.h("x-router-attempts"), "2", "two attempts")
    j = log_line(s.h("x-request-id"))
    eq([f["from"] for f in j["failovers"]], ["gemarr-m"], f"failovers {j['failovers']}")
    check("error event: simulated gemini error" in S["d"].stderr_text(),
          "the array's message is read as an error event (daemon log)")


# ---------------------------------------------------------------- mistral

TOOL_TURN = [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc123XYZ_long", "type": "function",
         "function": {"name": "get_weather", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_abc123XYZ_long", "content": "sunny"},
]


def post_msgs(model, messages, **extra):
    body = dict(model=model, messages=messages, **extra)
    return R.http_request(S["d"].port, "POST", "/v1/chat/completions", json.dumps(body).encode())


@test
def test_mistral_tool_ids_rewritten():
    r = post_msgs("t-mis", TOOL_TURN, tools=TOOLS)
    eq(r.status, 200, f"status ({R.short(r.body)})")
    x = last_sim(lambda x: "quirk=mistral/" in x["path"] and x["body"] and
                 len(x["body"].get("messages", [])) == 3, "mistral tool turn")
    m = x["body"]["messages"]
    new = m[1]["tool_calls"][0]["id"]
    check(len(new) == 9 and new.isalnum(), f"9 alphanumerics: {new!r}")
    eq(m[2]["tool_call_id"], new, "the tool message's id maps the same way")
    r = post_msgs("t-misraw", TOOL_TURN, tools=TOOLS)
    eq(r.status, 400, "without the quirk mistral refuses the ids")


@test
def test_mistral_flat_error_wrapped():
    r = post("t-mis422", "unprocessable")
    eq(r.status, 422, f"passed through ({R.short(r.body)})")
    j = r.json
    check(isinstance(j.get("error"), dict), f"wrapped: {j}")
    eq(j["error"]["message"], "simulated mistral error", "message")
    eq(j["error"]["type"], "invalid_request_error", "type")
    check("object" not in j, "the flat keys moved inside error")
    r = post_msgs("t-misraw", TOOL_TURN)
    check("error" not in r.json and r.json.get("object") == "error",
          f"the control's error is flat: {r.json}")


# ------------------------------------------------------------------- groq

@test
def test_groq_params_dropped():
    msgs = [{"role": "user", "content": "hi groq", "name": "alice"}]
    extra = {"logprobs": True, "top_logprobs": 2, "logit_bias": {"50256": -100}, "n": 1}
    r = post_msgs("t-groq", msgs, **extra)
    eq(r.status, 200, f"status ({R.short(r.body)})")
    x = last_sim(lambda x: "quirk=groq/" in x["path"] and x["body"], "groq")
    for k in ("logprobs", "top_logprobs", "logit_bias", "n"):
        check(k not in x["body"], f"{k} dropped")
    check("name" not in x["body"]["messages"][0], "messages[].name dropped")
    eq(x["body"]["messages"][0]["content"], "hi groq", "the rest kept")
    r = post_msgs("t-groqraw", msgs, **extra)
    eq(r.status, 400, "without the quirk groq refuses them")


# --------------------------------------------------------------- deepseek

@test
def test_deepseek_keepalive_stream_and_reasoning():
    st, s, objs, datas = stream("t-ds", "think")
    eq(st, 200, "status")
    eq(s.h("x-router-model"), "ds-m", "deepseek answered")
    deltas = [(o["choices"][0].get("delta") or {}) for o in objs if o.get("choices")]
    check(any(d.get("reasoning_content") == "Thinking it over." for d in deltas),
          f"reasoning_content passed through: {deltas}")
    eq("".join(d.get("content") or "" for d in deltas), "Deep answer.", "content")


@test
def test_deepseek_keepalive_not_first_byte():
    """8 comments 100 ms apart, first_byte_timeout_ms 400: comments do not
    count as the first byte, so the attempt times out and fails over."""
    st, s, objs, _ = stream("t-dsslow", "queued")
    eq(st, 200, "status")
    eq(s.h("x-router-model"), "local-m", "failed over: comments are not the first event")
    j = log_line(s.h("x-request-id"))
    eq([(f["from"], f["reason"]) for f in j["failovers"]], [("dsslow-m", "timeout")],
       "the first-byte timer fired despite the comments")


@test
def test_deepseek_plain_blank_lines_and_reasoning():
    r = post("t-ds", "think plain")
    eq(r.status, 200, f"status ({R.short(r.body)})")
    msg = r.json["choices"][0]["message"]
    eq(msg.get("reasoning_content"), "Thinking it over.", "reasoning_content kept")
    eq(msg.get("content"), "Deep answer.", "content")


# ----------------------------------------------------------------- config

@test
def test_config_errors():
    cases = [
        ("  p1: {preset: mistrall}\n", "mistrall",
         'unknown preset "mistrall"; did you mean "mistral"?'),
        ("  p1: {preset: azure}\n", "{preset: azure}", 'preset azure needs "resource"'),
        ("  p1: {preset: vllm, headers: {X-A: \"${T_BAD}\"}}\n", "\"${T_BAD}\"",
         "the value is empty or has a line break"),
        ("  p1: {preset: gemini, quirks: [tool_indx]}\n", "[tool_indx]",
         'did you mean "tool_index"?'),
    ]
    for prov, at, msg in cases:
        text = ("providers:\n" + prov + "models:\n  m1: {provider: p1}\n"
                "tiers:\n  t1: [m1]\nrouting:\n  default_tier: t1\n")
        path = os.path.join(E.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        line = text[:text.index(at)].count("\n") + 1
        col = text.index(at) - text[:text.index(at)].rfind("\n")
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True,
                             text=True, timeout=20,
                             env=dict(os.environ, T_BAD="x\r\nEvil: 1"))
        check(out.returncode != 0, f"{msg}: accepted")
        want = f"{path}:{line}:{col}: "
        check(any(ln.startswith(want) and msg in ln for ln in out.stderr.splitlines()),
              f"expected {want}...{msg} in {out.stderr!r}")
        check("Evil" not in out.stderr, "a header's value is never echoed")


@test
def test_zz_daemon_exits_cleanly():
    d = S.get("d")
    ok, msg = d.stop()
    text = d.stderr_text()
    check(ok and "AddressSanitizer" not in text and "runtime error" not in text and
          "LeakSanitizer" not in text, f"{msg}\n{d.stderr_tail()}")
    S["d"] = None


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],), setup=setup,
                         teardown=teardown, always=("zz_daemon_exits_cleanly",)))
