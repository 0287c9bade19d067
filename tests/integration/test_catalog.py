#!/usr/bin/env python3
"""Integration tests of the price and capability table (config/catalog.yaml)
and the capability checks that steer routing (upstream/fit.c): the real
daemon over real sockets, the simulated provider (tests/sim/simprovider.py)
behind every model.

    python3 tests/integration/test_catalog.py [-k SUBSTRING]...

Covers: a model whose context window cannot hold the estimated prompt plus
the requested output is skipped (and one that can is not); models without
tools / vision / json_schema / audio are skipped for requests that use them,
each skip in x-router-skipped, x-router-attempts, the access log's
failovers and /metrics; a model taking its limits and price from the table
(provider "openai" + upstream gpt-3.5-turbo); a request no model of its
chain can serve gets 400 no_model_can_serve naming what was missing (plain
and streamed), while a skip followed by a provider failure is still a 502
listing the skip; an unpriced model's answers are marked (x-router-cost-usd:
unpriced, cost_usd null + unpriced in the log, llmrouter_unpriced_requests_total,
"unpriced" in llmrouter report) and --check-config warns about it;
`llmrouter models` and `--json`, with -c; config errors with file:line:col.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
CATALOG = os.path.join(ROOT, "config", "catalog.yaml")
TESTS = []
E = None
S = {}

PROVIDERS = """\
  openai:    {type: openai, base_url: "${SIM_URL}/v1", api_key_env: SIM_KEY_GOOD}
"""

MODELS = """\
  small-ctx: {provider: good, model: sim-mini, input_per_mtok: 1, output_per_mtok: 1, context_window: 300}
  textonly:  {provider: good, model: sim-mini, input_per_mtok: 1, output_per_mtok: 1, capabilities: []}
  gpt35:     {provider: openai, model: gpt-3.5-turbo}
  named:     {provider: good, model: sim-named, catalog: gpt-4o-mini, output_per_mtok: 7}
  noprice:   {provider: good, model: sim-noprice}
"""

TIERS = """\
  ctx:      [small-ctx, good-large]
  caps:     [textonly, good-large]
  table:    [gpt35, good-large]
  nothing:  [textonly, small-ctx]
  skip502:  [small-ctx, m500]
  nopricetier: [noprice]
  namedtier: [named]
"""

IMAGE = [{"type": "text", "text": "What is this?"},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
AUDIO = [{"type": "text", "text": "Transcribe"},
         {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]
TOOLS = [{"type": "function", "function": {"name": "get_weather",
                                           "parameters": {"type": "object", "properties": {}}}}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
LONG = "lorem ipsum dolor sit amet " * 80  # 2160 chars: about 540 tokens


def test(fn):
    TESTS.append(fn)
    return fn


def config_text(extra_top=""):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\nrouting:\n")
    head = head.replace("\nproviders:\n", "\nproviders:\n" + PROVIDERS, 1)
    head = head.replace("\nmodels:\n", "\nmodels:\n" + MODELS, 1)
    head = head.replace("\ntiers:\n", "\ntiers:\n" + TIERS, 1)
    text = extra_top + f"catalog: \"{CATALOG}\"\n" + head
    text += "\nrouting:\n  default_tier: standard\n  allow_client_tier: true\n"
    text += "\ncache:\n  backend: off\n"
    return text


def setup():
    S["log"] = os.path.join(E.tmp, "catalog.access.log")
    text = config_text() + f"\nobservability:\n  access_log: \"{S['log']}\"\n"
    S["config"] = os.path.join(E.tmp, "catalog.yaml")
    with open(S["config"], "w") as f:
        f.write(text)
    S["d"] = E.new_daemon(tag="catalog", config=S["config"]).start()


def teardown():
    d = S.get("d")
    if d is not None:
        d.kill()


def post(tier, content="Say hello", stream=False, **extra):
    body = chat_body(tier, content, stream=stream, **extra)
    return R.http_request(S["d"].port, "POST", "/v1/chat/completions", json.dumps(body).encode())


def log_line(rid, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(S["log"]):
            with open(S["log"], encoding="utf-8") as f:
                for ln in f:
                    if ln.strip():
                        j = json.loads(ln)
                        if j.get("request_id") == rid:
                            return j
        time.sleep(0.05)
    raise Fail(f"no access log line for {rid}")


def metrics():
    r = R.http_request(S["d"].port, "GET", "/metrics")
    eq(r.status, 200, "/metrics")
    return r.body.decode()


def metric(text, name, labels):
    import re
    for ln in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{(.*)\})? (\S+)$", ln)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def served_after_skip(r, model, skipped, reason, what):
    eq(r.status, 200, f"{what}: status ({R.short(r.body)})")
    eq(r.h("x-router-model"), model, f"{what}: x-router-model")
    eq(r.h("x-router-attempts"), "2", f"{what}: x-router-attempts")
    sk = r.h("x-router-skipped") or ""
    check(sk.startswith(f"{skipped} ({reason}"), f"{what}: x-router-skipped is {sk!r}")


@test
def test_context_window_skip():
    r = post("ctx", "hi")
    eq(r.status, 200, "a short prompt fits")
    eq(r.h("x-router-model"), "small-ctx", "the small model serves a short prompt")
    eq(r.h("x-router-skipped"), None, "nothing skipped")
    r = post("ctx", LONG)
    served_after_skip(r, "good-large", "small-ctx", "context_window", "long prompt")
    check("300 allowed" in r.h("x-router-skipped"), f"the limit named: {r.h('x-router-skipped')}")
    # a short prompt asking for more output than the window holds
    r = post("ctx", "hi", max_tokens=1000)
    served_after_skip(r, "good-large", "small-ctx", "context_window", "max_tokens 1000")
    r = post("ctx", "hi", max_completion_tokens=1000)
    served_after_skip(r, "good-large", "small-ctx", "context_window", "max_completion_tokens")
    j = log_line(r.h("x-request-id"))
    eq(j["attempts"], 2, "access log attempts")
    eq(j["failovers"], [{"from": "small-ctx", "to": "good-large", "reason": "context_window",
                         "status": None}], "access log failovers")
    v = metric(metrics(), "llmrouter_failovers_total",
               {"from": "small-ctx", "reason": "context_window"})
    check(v is not None and v >= 3, f"llmrouter_failovers_total{{reason=context_window}} = {v}")


@test
def test_context_window_skip_stream():
    r = post("ctx", LONG, stream=True)
    served_after_skip(r, "good-large", "small-ctx", "context_window", "streamed long prompt")
    check(b"[DONE]" in r.body, "the stream completed")


@test
def test_capability_skips():
    r = post("caps", "plain text")
    eq(r.h("x-router-model"), "textonly", "a plain request stays on the text-only model")
    for what, kw, reason in (("tools", {"tools": TOOLS}, "no_tools"),
                             ("image", {"content": IMAGE}, "no_vision"),
                             ("json_schema", {"response_format": SCHEMA}, "no_json_schema"),
                             ("audio", {"content": AUDIO}, "no_audio")):
        content = kw.pop("content", "Say hello")
        r = post("caps", content, **kw)
        served_after_skip(r, "good-large", "textonly", reason, what)
    # json_object is not a schema: no skip
    r = post("caps", "json please", response_format={"type": "json_object"})
    eq(r.h("x-router-model"), "textonly", "json_object needs no json_schema capability")
    v = metric(metrics(), "llmrouter_failovers_total", {"from": "textonly", "reason": "capability"})
    check(v is not None and v >= 4, f"llmrouter_failovers_total{{reason=capability}} = {v}")


@test
def test_table_limits_and_price():
    # gpt-3.5-turbo at a provider named openai: the table gives it 16385
    # tokens of context, 4096 of output, tools only, and its price
    r = post("table", "hello")
    eq(r.status, 200, "served")
    eq(r.h("x-router-model"), "gpt35", "the table's model serves a plain request")
    cost = r.h("x-router-cost-usd")
    check(cost is not None and float(cost) > 0, f"priced by the table: {cost!r}")
    r = post("table", IMAGE)
    served_after_skip(r, "good-large", "gpt35", "no_vision", "image to gpt-3.5-turbo")
    r = post("table", "hello", max_tokens=5000)
    served_after_skip(r, "good-large", "gpt35", "max_output_tokens", "max_tokens over 4096")
    r = post("table", "word " * 12000, max_tokens=2000)  # ~15000 + 2000 > 16385
    served_after_skip(r, "good-large", "gpt35", "context_window", "prompt over 16k")
    r = post("table", "hello", tools=TOOLS)
    eq(r.h("x-router-model"), "gpt35", "tools: the table says it has them")


@test
def test_nothing_can_serve_is_400():
    for stream in (False, True):
        r = post("nothing", [{"type": "text", "text": LONG}] + IMAGE[1:], stream=stream)
        eq(r.status, 400, f"stream={stream}: status ({R.short(r.body)})")
        e = r.json["error"]
        eq(e["code"], "no_model_can_serve", "error.code")
        eq(e["type"], "invalid_request_error", "error.type")
        check("no_vision" in e["message"] and "context_window" in e["message"],
              f"the message says what was missing: {e['message']}")
        eq([a["model"] for a in e["attempts"]], ["textonly", "small-ctx"], "error.attempts")
        check(e["attempts"][0]["error"].startswith("skipped: no_vision"), str(e["attempts"]))
        eq(r.h("x-router-attempts"), "2", "x-router-attempts")
        check(r.h("x-should-retry") is None, "a 400 is not marked x-should-retry")
    st = E.sim_stats()
    check(isinstance(st, dict), "simulator reachable")


@test
def test_skip_then_failure_is_502():
    r = post("skip502", LONG)
    eq(r.status, 502, f"status ({R.short(r.body)})")
    e = r.json["error"]
    eq(e["code"], "all_upstreams_failed", "error.code")
    check(e["attempts"][0]["error"].startswith("skipped: context_window"),
          f"the skip is listed: {e['attempts']}")
    eq(e["attempts"][1]["model"], "m500", "then the failed call")


@test
def test_unpriced_marked():
    r = post("nopricetier", "hello")
    eq(r.status, 200, "served")
    eq(r.h("x-router-cost-usd"), "unpriced", "x-router-cost-usd")
    j = log_line(r.h("x-request-id"))
    eq(j["cost_usd"], None, "access log cost_usd")
    eq(j.get("unpriced"), True, "access log unpriced")
    eq(j["savings_usd"], None, "no savings claimed")
    # a stream that asked for usage still gets its usage chunk, without a cost
    for tier, want_cost in (("nopricetier", False), ("namedtier", True)):
        rs = post(tier, "hello", stream=True, stream_options={"include_usage": True})
        eq(rs.status, 200, f"{tier}: stream")
        chunks = [json.loads(ln[6:]) for ln in rs.body.decode().splitlines()
                  if ln.startswith("data: {")]
        usage = [c["usage"] for c in chunks if c.get("usage")]
        check(len(usage) == 1 and usage[0].get("prompt_tokens"), f"{tier}: usage chunk {usage}")
        eq("cost" in usage[0], want_cost, f"{tier}: usage.cost present")
    r2 = post("namedtier", "hello")
    cost = r2.h("x-router-cost-usd")
    check(cost not in (None, "unpriced") and float(cost) > 0, f"named entry priced: {cost!r}")
    j2 = log_line(r2.h("x-request-id"))
    check("unpriced" not in j2, "a priced answer has no unpriced mark")
    v = metric(metrics(), "llmrouter_unpriced_requests_total", {"model": "noprice"})
    check(v is not None and v >= 1, f"llmrouter_unpriced_requests_total{{model=noprice}} = {v}")
    check(metric(metrics(), "llmrouter_unpriced_requests_total", {"model": "named"}) is None,
          "no unpriced series for a priced model")
    st = R.http_request(S["d"].port, "GET", "/v1/router/stats")
    rows = {m["model"]: m for m in st.json["models"]}
    check(rows["noprice"]["unpriced_requests"] >= 1, f"stats: {rows['noprice']}")
    out = subprocess.run([E.bin, "report", S["log"]], capture_output=True, text=True, timeout=20)
    eq(out.returncode, 0, f"report: {out.stderr}")
    line = [ln for ln in out.stdout.splitlines() if "noprice" in ln]
    check(line and "unpriced" in line[0], f"report row: {line}")
    check("unpriced:" in out.stdout, "report's closing note")
    out = subprocess.run([E.bin, "report", "--json", S["log"]], capture_output=True, text=True,
                         timeout=20)
    rep = json.loads(out.stdout)
    check(rep["total"]["unpriced_requests"] >= 1, f"report --json total: {rep['total']}")


@test
def test_check_config_warns_unpriced():
    env = dict(os.environ, SIM_URL="http://127.0.0.1:9", SIM_KEY_GOOD="k")
    out = subprocess.run([E.bin, "-c", S["config"], "--check-config"], capture_output=True,
                         text=True, timeout=20, env=env)
    eq(out.returncode, 0, f"--check-config: {out.stderr}")
    warn = [ln for ln in out.stderr.splitlines() if "without a price" in ln]
    check(len(warn) == 1, f"one warning line: {out.stderr}")
    check("noprice" in warn[0] and "named" not in warn[0].split("):")[1].split(";")[0].split(", ")
          and "gpt35" not in warn[0], f"names the unpriced ones only: {warn[0]}")
    check(f"{S['config']}:" in warn[0], f"with the file: {warn[0]}")
    check("UNPRICED" in out.stdout, "the summary marks it")
    check("catalog gpt-3.5-turbo" in out.stdout, f"the summary names the entry: {out.stdout}")


@test
def test_models_command():
    out = subprocess.run([E.bin, "models", "--catalog", CATALOG], capture_output=True, text=True,
                         timeout=20)
    eq(out.returncode, 0, out.stderr)
    check("gpt-4o-mini" in out.stdout and "claude-sonnet-4-5" in out.stdout, out.stdout[:400])
    check("figures as of" in out.stdout, "the date is shown")
    out = subprocess.run([E.bin, "models", "--json", "-c", S["config"]], capture_output=True,
                         text=True, timeout=20,
                         env=dict(os.environ, SIM_URL="http://127.0.0.1:9", SIM_KEY_GOOD="k"))
    eq(out.returncode, 0, out.stderr)
    j = json.loads(out.stdout)
    check(len(j["date"]) == 10, "date")
    m = {e["name"]: e for e in j["models"]}
    eq(m["gpt-4o-mini"]["context_window"], 128000, "table entry")
    check("vision" in m["gpt-4o-mini"]["capabilities"], "capabilities")
    c = {e["name"]: e for e in j["configured"]}
    eq(c["gpt35"]["catalog"], "gpt-3.5-turbo", "matched by provider and upstream name")
    eq(c["named"]["catalog"], "gpt-4o-mini", "named")
    eq(c["named"]["output_per_mtok"], 7, "the configuration's price wins")
    eq(c["named"]["input_per_mtok"], 0.15, "the rest from the table")
    eq(c["noprice"]["unpriced"], True, "unpriced")
    eq(c["noprice"]["capabilities"], None, "no data: null (assumed able)")
    eq(c["textonly"]["capabilities"], [], "capabilities: []")


BAD = [
    ("unknown entry", "  bad: {provider: good, catalog: gpt-17}\n", "has no model named \"gpt-17\"",
     34),
    ("unknown capability", "  bad: {provider: good, capabilities: [tools, smell]}\n",
     "unknown capability \"smell\"", 47),
    ("max output over context", "  bad: {provider: good, context_window: 10, max_output_tokens: 20}\n",
     "max_output_tokens (20) is more than context_window (10)", 8),
]


@test
def test_config_errors_have_positions():
    env = dict(os.environ, SIM_URL="http://127.0.0.1:9", SIM_KEY_GOOD="k")
    for what, model, msg, col in BAD:
        text = config_text().replace("\nmodels:\n", "\nmodels:\n" + model, 1)
        line = text.split("\n").index(model.rstrip("\n")) + 1
        path = os.path.join(E.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True,
                             text=True, timeout=20, env=env)
        check(out.returncode != 0, f"{what}: accepted")
        check(msg in out.stderr, f"{what}: expected {msg!r} in {out.stderr!r}")
        want = f"{path}:{line}:{col}:"
        check(want in out.stderr, f"{what}: expected {want} in {out.stderr!r}")
    text = config_text().replace(f"catalog: \"{CATALOG}\"", "catalog: /nonexistent.yaml")
    with open(path, "w") as f:
        f.write(text)
    out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True, text=True,
                         timeout=20, env=env)
    check(out.returncode != 0 and f"{path}:1:10: catalog: the price table /nonexistent.yaml"
          in out.stderr, f"missing table: {out.stderr!r}")


@test
def test_zz_daemon_exits_cleanly():
    """Last, always: the daemon stops with status 0 on SIGTERM — under ASan
    a leak makes it fail."""
    d = S.get("d")
    if d is None:
        return
    ok, msg = d.stop()
    text = d.stderr_text()
    bad = not ok or "ERROR: AddressSanitizer" in text or "runtime error" in text or \
        "LeakSanitizer" in text
    check(not bad, f"{msg}\n{d.stderr_tail()}")


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],), setup=setup,
                         teardown=teardown, always=("zz_daemon_exits_cleanly",)))
