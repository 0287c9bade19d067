#!/usr/bin/env python3
"""Integration tests of the OpenTelemetry export (observability.otlp): the
real daemon over real sockets, the simulated provider, and a local OTLP/HTTP
receiver started here (a Python standard-library HTTP server that records
every POST to /v1/traces; it can answer 200, answer 503 a number of times,
or accept and never answer).

    python3 tests/integration/test_otel.py [-k SUBSTRING]...

Covers: well-formed OTLP JSON (resourceSpans -> scopeSpans -> spans, ids hex
of the right length, start/end times, attributes typed as OTLP JSON types
them: intValue as a string, doubleValue, stringValue, boolValue,
arrayValue); one request span per request whose GenAI and llmrouter.*
attributes match the access log line of the same request; one child span
per attempt (a failover request has two); a stream's span; an incoming W3C
traceparent honoured (parent span and trace kept; sampled flag 0: nothing
exported); configured headers sent (the auth header reaches the receiver,
its value never appears in logs or config errors); batching (N requests,
fewer POSTs; batch_max_spans respected); one retry on 503; a dead collector
(closed port) and a stalled one (accepts, never answers) leave answers and
p50 latency unchanged and count their drops; the queue bound holds (drops
counted, RSS flat); shutdown sends what is queued; configuration errors with
file:line:col.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import http.client
import http.server
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
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
SECRET = "otel-secret-" + uuid.uuid4().hex[:16]
HEX = re.compile(r"^[0-9a-f]+$")


def test(fn):
    TESTS.append(fn)
    return fn


# --------------------------------------------------------------------------
# the OTLP receiver


class Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1. mode: "ok" (200 {}), "stall"
    (reads the request, never answers), fail_first=N: the first N POSTs get
    503."""

    def __init__(self, mode="ok", fail_first=0, fail_status=503):
        self.mode = mode
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.posts = []  # (path, headers dict lower-cased, parsed body or None, raw)
        self.lock = threading.Lock()
        self.release = threading.Event()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with rec.lock:
                    rec.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()},
                                      body, raw))
                    k = len(rec.posts)
                if rec.mode == "stall":
                    rec.release.wait(60)
                    return
                status = rec.fail_status if k <= rec.fail_first else 200
                out = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def close(self):
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()

    def spans(self):
        out = []
        with self.lock:
            posts = list(self.posts)
        for _, _, body, _ in posts:
            if body is None:
                continue
            for rs in body.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    out.extend(ss.get("spans", []))
        return out

    def n_posts(self):
        with self.lock:
            return len(self.posts)


def attrs(span):
    """A span's attributes as {key: python value}, checking each value has
    exactly one OTLP JSON type."""
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        check(len(v) == 1, f"attribute {a['key']} has {len(v)} value kinds: {v}")
        (kind, val), = v.items()
        if kind == "intValue":
            check(isinstance(val, str) and re.match(r"^-?\d+$", val),
                  f"{a['key']}: intValue must be a decimal string, got {val!r}")
            val = int(val)
        elif kind == "doubleValue":
            check(isinstance(val, (int, float)) and not isinstance(val, bool),
                  f"{a['key']}: doubleValue must be a number, got {val!r}")
        elif kind == "stringValue":
            check(isinstance(val, str), f"{a['key']}: stringValue {val!r}")
        elif kind == "boolValue":
            check(isinstance(val, bool), f"{a['key']}: boolValue {val!r}")
        elif kind == "arrayValue":
            check(isinstance(val.get("values"), list), f"{a['key']}: arrayValue {val!r}")
            val = [list(x.values())[0] for x in val["values"]]
        else:
            raise Fail(f"{a['key']}: unknown value kind {kind}")
        check(a["key"] not in out, f"attribute {a['key']} twice")
        out[a["key"]] = (kind, val)
    return out


def av(span, key):
    a = attrs(span)
    return a[key][1] if key in a else None


def wait_for(fn, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise Fail(f"timed out waiting for {what}")


def spans_of(rec, rid, n=1, timeout=5.0):
    """The request span with llmrouter.request_id rid and its children."""
    def find():
        sp = rec.spans()
        root = [s for s in sp if av(s, "llmrouter.request_id") == rid]
        if not root:
            return None
        kids = [s for s in sp if s.get("parentSpanId") == root[0]["spanId"]]
        return (root, kids) if len(kids) >= n else None
    root, kids = wait_for(find, timeout, f"spans of {rid}")
    eq(len(root), 1, f"request spans of {rid}")
    return root[0], kids


# --------------------------------------------------------------------------
# daemons


def base_text():
    with open(BASE_CONFIG) as f:
        return f.read()


def write_config(name, otlp_lines, extra_obs=""):
    log = os.path.join(E.tmp, f"{name}.access.log")
    text = base_text() + (f"\nobservability:\n  access_log: \"{log}\"\n" + extra_obs +
                          "  otlp:\n" + "".join(f"    {ln}\n" for ln in otlp_lines))
    path = os.path.join(E.tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    S.setdefault("logs", {})[name] = log
    return path


def start(name, otlp_lines, extra_obs=""):
    os.environ["OTEL_TEST_AUTH"] = SECRET
    d = E.new_daemon(tag=f"otel-{name}", config=write_config(name, otlp_lines, extra_obs)).start()
    S.setdefault("daemons", {})[name] = d
    return d


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def setup():
    S["rx"] = Receiver()
    S["d"] = start("main", [f"endpoint: \"{S['rx'].url}\"", "flush_interval_ms: 100",
                            "headers: {Authorization: \"Basic ${OTEL_TEST_AUTH}\", "
                            "x-langfuse-ingestion-version: \"4\"}"])


def teardown():
    for d in S.get("daemons", {}).values():
        d.kill()
    for k in ("rx", "rx_stall", "rx_stall2", "rx_503", "rx_batch", "rx_flush"):
        if S.get(k) is not None:
            S[k].close()


def rid():
    return "otel-" + uuid.uuid4().hex[:16]


def post(d, body, headers=None, path="/v1/chat/completions", timeout=20):
    return R.http_request(d.port, "POST", path, json.dumps(body).encode(), headers=headers or {},
                          timeout=timeout)


def log_line(name, request_id, timeout=3.0):
    path = S["logs"][name]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for ln in f:
                    if ln.strip():
                        j = json.loads(ln)
                        if j.get("request_id") == request_id:
                            return j
        time.sleep(0.05)
    raise Fail(f"no access log line for {request_id}")


def metric(d, name, **labels):
    text = R.http_request(d.port, "GET", "/metrics").body.decode()
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


# --------------------------------------------------------------------------
# tests


def check_span_shape(s):
    check(isinstance(s.get("traceId"), str) and len(s["traceId"]) == 32 and HEX.match(s["traceId"])
          and s["traceId"] != "0" * 32, f"traceId {s.get('traceId')!r}")
    check(isinstance(s.get("spanId"), str) and len(s["spanId"]) == 16 and HEX.match(s["spanId"])
          and s["spanId"] != "0" * 16, f"spanId {s.get('spanId')!r}")
    if "parentSpanId" in s:
        check(len(s["parentSpanId"]) == 16 and HEX.match(s["parentSpanId"]),
              f"parentSpanId {s['parentSpanId']!r}")
    for k in ("startTimeUnixNano", "endTimeUnixNano"):
        check(isinstance(s.get(k), str) and s[k].isdigit(), f"{k} {s.get(k)!r}")
    t0, t1 = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
    check(t0 <= t1, f"start {t0} after end {t1}")
    check(abs(t0 / 1e9 - time.time()) < 120, f"start {t0} is not about now")
    check(s.get("kind") in (2, 3), f"kind {s.get('kind')!r}")
    check(isinstance(s.get("name"), str) and s["name"], "name")
    attrs(s)


@test
def test_spans_well_formed_and_match_access_log():
    rx, d = S["rx"], S["d"]
    i = rid()
    r = post(d, chat_body("auto", "hello otel", temperature=0.25, max_tokens=40),
             {"x-request-id": i})
    eq(r.status, 200, "status")
    root, kids = spans_of(rx, i)
    # envelope
    with rx.lock:
        body = next(b for _, _, b, _ in rx.posts
                    if b and i in json.dumps(b))
    rs = body["resourceSpans"]
    check(isinstance(rs, list) and len(rs) == 1, "one resourceSpans")
    res = {a["key"]: a["value"] for a in rs[0]["resource"]["attributes"]}
    eq(res.get("service.name"), {"stringValue": "llmrouter"}, "service.name")
    ss = rs[0]["scopeSpans"]
    eq(ss[0]["scope"]["name"], "llmrouter", "scope name")
    check_span_shape(root)
    for k in kids:
        check_span_shape(k)
    line = log_line("main", i)
    eq(root["kind"], 2, "request span kind SERVER")
    eq(root["name"], "chat auto", "span name")
    a = attrs(root)
    eq(a["gen_ai.operation.name"], ("stringValue", "chat"), "operation")
    eq(a["gen_ai.request.model"], ("stringValue", "auto"), "request model")
    eq(a["gen_ai.response.model"], ("stringValue", R.upstream_of(line["model"])), "response model")
    eq(a["gen_ai.provider.name"], ("stringValue", "openai"), "provider name")
    eq(a["gen_ai.request.temperature"], ("doubleValue", 0.25), "temperature")
    eq(a["gen_ai.request.max_tokens"], ("intValue", 40), "max_tokens")
    eq(a["gen_ai.response.finish_reasons"], ("arrayValue", ["stop"]), "finish reasons")
    eq(a["gen_ai.usage.input_tokens"], ("intValue", line["prompt_tokens"]), "input tokens")
    eq(a["gen_ai.usage.output_tokens"], ("intValue", line["completion_tokens"]), "output tokens")
    eq(a["http.response.status_code"], ("intValue", line["status"]), "status")
    eq(a["llmrouter.tier"], ("stringValue", line["tier"]), "tier")
    eq(a["llmrouter.rule"], ("stringValue", line["rule"]), "rule")
    eq(a["llmrouter.model"], ("stringValue", line["model"]), "model")
    eq(a["llmrouter.provider"], ("stringValue", line["provider"]), "provider")
    eq(a["llmrouter.attempts"], ("intValue", line["attempts"]), "attempts")
    eq(a["llmrouter.cache"], ("stringValue", line["cache"].lower()), "cache")
    eq(a["llmrouter.door"], ("stringValue", line["door"]), "door")
    eq(a["llmrouter.stream"], ("boolValue", False), "stream")
    check(abs(a["llmrouter.cost_usd"][1] - line["cost_usd"]) < 1e-12,
          f"cost {a['llmrouter.cost_usd']} vs {line['cost_usd']}")
    eq(a["llmrouter.cost_usd"][0], "doubleValue", "cost type")
    check("error.type" not in a, "no error.type on a 200")
    check("gen_ai.input.messages" not in a, "no content by default")
    # the span lasts as long as the access log says (within a few ms)
    dur_ms = (int(root["endTimeUnixNano"]) - int(root["startTimeUnixNano"])) / 1e6
    check(abs(dur_ms - line["total_ms"]) < 20, f"span {dur_ms} ms vs log {line['total_ms']} ms")
    # one attempt, one CLIENT child
    eq(len(kids), 1, "child spans")
    k = kids[0]
    eq(k["kind"], 3, "child kind CLIENT")
    eq(k["traceId"], root["traceId"], "child trace")
    eq(av(k, "gen_ai.request.model"), R.upstream_of(line["model"]), "child model")
    eq(av(k, "llmrouter.attempt.outcome"), "ok", "child outcome")
    eq(av(k, "http.response.status_code"), 200, "child status")
    check(int(k["startTimeUnixNano"]) >= int(root["startTimeUnixNano"]) and
          int(k["endTimeUnixNano"]) <= int(root["endTimeUnixNano"]), "child inside parent")


@test
def test_failover_has_a_child_span_per_attempt():
    rx, d = S["rx"], S["d"]
    i = rid()
    r = post(d, chat_body("auto", "fail over please"), {"x-request-id": i, "x-router-tier": "f500"})
    eq(r.status, 200, "status")
    eq(r.h("x-router-attempts"), "2", "attempts header")
    root, kids = spans_of(rx, i, n=2)
    eq(len(kids), 2, "two attempt spans")
    kids.sort(key=lambda s: av(s, "llmrouter.attempt.index"))
    eq(av(kids[0], "llmrouter.model"), "m500", "first attempt's model")
    eq(av(kids[0], "http.response.status_code"), 500, "first attempt's status")
    eq(av(kids[0], "llmrouter.attempt.outcome"), "status_5xx", "first attempt's outcome")
    eq(av(kids[0], "error.type"), "status_5xx", "first attempt's error.type")
    eq(kids[0].get("status", {}).get("code"), 2, "first attempt's status ERROR")
    eq(av(kids[1], "llmrouter.model"), "good-mini", "second attempt's model")
    eq(av(kids[1], "llmrouter.attempt.outcome"), "ok", "second attempt's outcome")
    check(int(kids[0]["endTimeUnixNano"]) <= int(kids[1]["startTimeUnixNano"]) + 1000,
          "attempts in order")
    eq(av(root, "llmrouter.attempts"), 2, "llmrouter.attempts")
    eq(av(root, "llmrouter.tier"), "f500", "tier")


@test
def test_all_failed_request_span_is_an_error():
    rx, d = S["rx"], S["d"]
    i = rid()
    r = post(d, chat_body("auto", "nothing works"), {"x-request-id": i, "x-router-tier": "allbad"})
    check(r.status in (429, 502), f"status {r.status}")
    root, kids = spans_of(rx, i, n=3)
    eq(av(root, "http.response.status_code"), r.status, "status attribute")
    eq(av(root, "error.type"), str(r.status), "error.type")
    if r.status >= 500:
        eq(root.get("status", {}).get("code"), 2, "span status ERROR")
    eq(len(kids), 3, "three attempt spans")


@test
def test_stream_span():
    rx, d = S["rx"], S["d"]
    i = rid()
    r = post(d, chat_body("auto", "stream me", stream=True), {"x-request-id": i})
    eq(r.status, 200, "status")
    root, kids = spans_of(rx, i)
    line = log_line("main", i)
    eq(av(root, "llmrouter.stream"), True, "stream attribute")
    eq(av(root, "gen_ai.usage.output_tokens"), line["completion_tokens"], "output tokens")
    eq(av(root, "gen_ai.request.model"), "auto", "request model")
    eq(av(root, "gen_ai.response.model"), R.upstream_of(line["model"]), "response model")
    eq(len(kids), 1, "one attempt")


@test
def test_embeddings_operation():
    rx, d = S["rx"], S["d"]
    i = rid()
    r = post(d, {"model": "embed-small", "input": "vectors"}, {"x-request-id": i},
             path="/v1/embeddings")
    eq(r.status, 200, "status")
    root, _ = spans_of(rx, i)
    eq(av(root, "gen_ai.operation.name"), "embeddings", "operation")
    eq(root["name"], "embeddings embed-small", "name")


@test
def test_traceparent_honoured():
    rx, d = S["rx"], S["d"]
    trace, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    i = rid()
    r = post(d, chat_body("auto", "traced"), {"x-request-id": i,
                                              "traceparent": f"00-{trace}-{parent}-01"})
    eq(r.status, 200, "status")
    root, kids = spans_of(rx, i)
    eq(root["traceId"], trace, "trace id kept")
    eq(root.get("parentSpanId"), parent, "request span is the caller's child")
    check(root["spanId"] != parent, "a span id of its own")
    eq(kids[0]["traceId"], trace, "attempt span in the same trace")
    # not sampled by the caller: nothing exported
    before = metric(d, "llmrouter_otlp_requests_unsampled_total")
    i2 = rid()
    r = post(d, chat_body("auto", "not traced"),
             {"x-request-id": i2, "traceparent": f"00-{uuid.uuid4().hex}-{parent}-00"})
    eq(r.status, 200, "status")
    time.sleep(0.4)
    check(not [s for s in rx.spans() if av(s, "llmrouter.request_id") == i2],
          "a request its caller did not sample was exported")
    wait_for(lambda: metric(d, "llmrouter_otlp_requests_unsampled_total") == before + 1, 3,
             "unsampled counted")
    # a malformed traceparent starts a new trace
    i3 = rid()
    post(d, chat_body("auto", "bad trace"), {"x-request-id": i3, "traceparent": "00-zz-11-01"})
    root3, _ = spans_of(rx, i3)
    check("parentSpanId" not in root3, "a malformed traceparent gave a parent")


@test
def test_headers_sent_and_never_logged():
    rx, d = S["rx"], S["d"]
    i = rid()
    post(d, chat_body("auto", "auth"), {"x-request-id": i})
    spans_of(rx, i)
    with rx.lock:
        posts = list(rx.posts)
    for path, h, _, _ in posts:
        eq(path, "/v1/traces", "path")
        eq(h.get("authorization"), f"Basic {SECRET}", "auth header")
        eq(h.get("x-langfuse-ingestion-version"), "4", "second header")
        eq(h.get("content-type"), "application/json", "content type")
    check(SECRET not in d.stderr_text(), "secret in the daemon's stderr")
    with open(S["logs"]["main"]) as f:
        check(SECRET not in f.read(), "secret in the access log")
    check(SECRET not in R.http_request(d.port, "GET", "/metrics").body.decode(), "secret in metrics")
    # a bad header value from the environment: the error names the header, not the value
    path = os.path.join(E.tmp, "badhdr.yaml")
    with open(path, "w") as f:
        f.write(base_text() + "\nobservability:\n  otlp:\n    endpoint: \"http://127.0.0.1:9/v1/traces\"\n"
                "    headers: {Authorization: \"${OTEL_BAD_AUTH}\"}\n")
    env = dict(os.environ, SIM_URL="http://127.0.0.1:9", SIM_KEY_GOOD="k",
               OTEL_BAD_AUTH=SECRET + "\r\nX-Evil: 1")
    out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True, text=True,
                         timeout=20, env=env)
    check(out.returncode != 0, "a header value with a line break was accepted")
    check("headers.Authorization" in out.stderr, f"the error names the header: {out.stderr!r}")
    check(SECRET not in out.stderr + out.stdout, f"secret in the config error: {out.stderr!r}")


@test
def test_batching():
    rx = S["rx_batch"] = Receiver()
    d = start("batch", [f"endpoint: \"{rx.url}\"", "flush_interval_ms: 400",
                        "batch_max_spans: 8"])
    ids = [rid() for _ in range(20)]
    for i in ids:
        eq(post(d, chat_body("auto", "batch"), {"x-request-id": i}).status, 200, "status")
    wait_for(lambda: len([s for s in rx.spans() if s["kind"] == 2]) >= 20, 6, "20 request spans")
    got = rx.spans()
    eq(len([s for s in got if s["kind"] == 2]), 20, "request spans")
    eq(len(got), 40, "spans in all (request + attempt)")
    with rx.lock:
        sizes = [sum(len(ss["spans"]) for rs in b["resourceSpans"] for ss in rs["scopeSpans"])
                 for _, _, b, _ in rx.posts]
    check(len(sizes) < 20, f"{len(sizes)} POSTs for 20 requests: not batched")
    check(max(sizes) <= 8, f"a batch of {max(sizes)} spans over batch_max_spans 8: {sizes}")
    check(sum(1 for n in sizes if n == 8) >= 3, f"full batches expected: {sizes}")
    # the receiver records a POST before it answers: the counters follow
    wait_for(lambda: metric(d, "llmrouter_otlp_spans_total", result="exported") == 40, 5,
             "exported counter at 40")
    eq(metric(d, "llmrouter_otlp_batches_total", result="exported"), len(sizes), "batch counter")
    eq(metric(d, "llmrouter_otlp_queue_spans"), 0, "queue gauge")


@test
def test_retry_once_on_503():
    rx = S["rx_503"] = Receiver(fail_first=3)
    d = start("r503", [f"endpoint: \"{rx.url}\"", "flush_interval_ms: 50"])
    i = rid()
    eq(post(d, chat_body("auto", "retry"), {"x-request-id": i}).status, 200, "status")
    # first batch: 503, retried: 503, dropped
    wait_for(lambda: rx.n_posts() >= 2, 5, "two POSTs")
    time.sleep(0.3)
    eq(rx.n_posts(), 2, "the batch is sent twice, no more")
    eq(metric(d, "llmrouter_otlp_export_retries_total"), 1, "retries")
    eq(metric(d, "llmrouter_otlp_export_errors_total", reason="http_5xx"), 2, "5xx errors")
    eq(metric(d, "llmrouter_otlp_spans_total", result="dropped_error"), 2, "dropped spans")
    # second batch: 503 then 200 on the retry
    i2 = rid()
    eq(post(d, chat_body("auto", "retry 2"), {"x-request-id": i2}).status, 200, "status")
    spans_of(rx, i2, timeout=5)
    wait_for(lambda: metric(d, "llmrouter_otlp_spans_total", result="exported") == 2, 5,
             "exported after a retry")
    eq(metric(d, "llmrouter_otlp_export_retries_total"), 2, "retries")


def p50_ms(d, n=30):
    """Median latency of n requests on one kept-alive connection (so on one
    shard: anything the exporter did on the shard's thread would delay the
    next request)."""
    lat = []
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
    try:
        for k in range(n):
            body = json.dumps(chat_body("auto", f"latency {k}")).encode()
            t = time.monotonic()
            c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            lat.append((time.monotonic() - t) * 1000)
            eq(r.status, 200, "status")
            ans = json.loads(data)["choices"][0]["message"]["content"]
            check(ans.startswith("Simulated reply from") and f"latency {k}" in ans, f"answer {ans!r}")
    finally:
        c.close()
    return statistics.median(lat)


def baseline_p50():
    """p50 of the same daemon configuration without observability.otlp."""
    if "p50" not in S:
        path = os.path.join(E.tmp, "plain.yaml")
        with open(path, "w") as f:
            f.write(base_text())
        d = E.new_daemon(tag="otel-plain", config=path).start()
        S.setdefault("daemons", {})["plain"] = d
        S["p50"] = p50_ms(d)
    return S["p50"]


@test
def test_dead_collector_changes_nothing():
    d = start("dead", [f"endpoint: \"http://127.0.0.1:{closed_port()}/v1/traces\"",
                       "flush_interval_ms: 20", "batch_max_spans: 2"])
    base = baseline_p50()
    dead = p50_ms(d)
    check(dead < base * 3 + 5, f"p50 {dead:.2f} ms with a dead collector vs {base:.2f} ms")
    wait_for(lambda: metric(d, "llmrouter_otlp_spans_total", result="dropped_error") >= 40, 5,
             "drops counted")
    check(metric(d, "llmrouter_otlp_export_errors_total", reason="connect") > 0, "connect errors")
    eq(metric(d, "llmrouter_otlp_spans_total", result="exported"), 0, "nothing exported")
    S["p50_dead"] = dead


@test
def test_stalled_collector_changes_nothing():
    rx = S["rx_stall"] = Receiver(mode="stall")
    d = start("stall", [f"endpoint: \"{rx.url}\"", "flush_interval_ms: 20", "batch_max_spans: 2",
                        "timeout_ms: 300"])
    base = baseline_p50()
    stalled = p50_ms(d)
    check(stalled < base * 3 + 5, f"p50 {stalled:.2f} ms with a stalled collector vs {base:.2f} ms")
    wait_for(lambda: metric(d, "llmrouter_otlp_export_errors_total", reason="timeout") >= 1, 5,
             "a timeout counted")
    check(metric(d, "llmrouter_otlp_spans_total", result="dropped_error") >= 2, "timeout drops")
    S["p50_stall"] = stalled


@test
def test_queue_bound_holds():
    rx = S["rx_stall2"] = Receiver(mode="stall")
    asan = "asan" in (os.environ.get("LLMROUTER_BIN") or "")
    saved = os.environ.get("ASAN_OPTIONS")
    if asan:  # freed memory kept in ASan's quarantine is not a leak
        os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "quarantine_size_mb=4"
    try:
        d = start("bound", [f"endpoint: \"{rx.url}\"", "flush_interval_ms: 10",
                            "batch_max_spans: 10", "queue_max_spans: 40", "timeout_ms: 60000"])
    finally:
        if saved is None:
            os.environ.pop("ASAN_OPTIONS", None)
        else:
            os.environ["ASAN_OPTIONS"] = saved

    def burst(n):
        for _ in range(n):
            eq(post(d, chat_body("auto", "x" * 200)).status, 200, "status")

    burst(300)
    rss1 = d.rss_kb()
    # the bound is per shard; the test config runs 2
    q = metric(d, "llmrouter_otlp_queue_spans")
    check(q <= 2 * 40, f"queue gauge {q} over 2 shards x queue_max_spans 40")
    dropped = metric(d, "llmrouter_otlp_spans_total", result="dropped_queue")
    # 600 spans: at most 2 x 40 queued and 2 x 10 in a stalled POST
    check(dropped >= 600 - 2 * 40 - 2 * 10, f"dropped_queue {dropped}")
    burst(600)
    rss2 = d.rss_kb()
    allow = 16384 if asan else 4096
    check(rss2 - rss1 < allow, f"RSS grew {rss2 - rss1} kB over 600 requests with a full queue")
    check(metric(d, "llmrouter_otlp_queue_spans") <= 2 * 40, "queue gauge over the bound")
    S["rss"] = (rss1, rss2)


@test
def test_sample_rate_zero_exports_nothing():
    rx = S["rx"]
    d = start("sample0", [f"endpoint: \"{rx.url}\"", "flush_interval_ms: 20", "sample_rate: 0"])
    i = rid()
    eq(post(d, chat_body("auto", "unsampled"), {"x-request-id": i}).status, 200, "status")
    time.sleep(0.3)
    check(not [s for s in rx.spans() if av(s, "llmrouter.request_id") == i], "exported")
    wait_for(lambda: metric(d, "llmrouter_otlp_requests_unsampled_total") == 1, 3, "unsampled")
    d.stop()


@test
def test_capture_content_opt_in():
    rx = S["rx"]
    d = start("content", [f"endpoint: \"{rx.url}\"", "flush_interval_ms: 20",
                          "capture_content: true"])
    i = rid()
    eq(post(d, chat_body("auto", "the secret recipe"), {"x-request-id": i}).status, 200, "status")
    root, _ = spans_of(rx, i)
    msgs = av(root, "gen_ai.input.messages")
    check(msgs is not None and "the secret recipe" in msgs, f"input messages {msgs!r}")
    json.loads(msgs)
    d.stop()


@test
def test_shutdown_sends_what_is_queued():
    rx = S["rx_flush"] = Receiver()
    d = start("flush", [f"endpoint: \"{rx.url}\"", "flush_interval_ms: 600000"])
    ids = [rid() for _ in range(3)]
    for i in ids:
        eq(post(d, chat_body("auto", "flush"), {"x-request-id": i}).status, 200, "status")
    time.sleep(0.2)
    eq(rx.n_posts(), 0, "nothing sent before the flush interval")
    ok, msg = d.stop()
    check(ok, msg)
    got = {av(s, "llmrouter.request_id") for s in rx.spans()}
    check(all(i in got for i in ids), f"spans sent at shutdown: {got}")


@test
def test_reload_turns_export_on_and_messages_door():
    """A daemon started without export exports after a SIGHUP that adds
    observability.otlp; a request of the Messages door is a chat span with
    door "messages"."""
    rx = S["rx"]
    path = os.path.join(E.tmp, "reload.yaml")
    with open(path, "w") as f:
        f.write(base_text())
    d = E.new_daemon(tag="otel-reload", config=path).start()
    S.setdefault("daemons", {})["reload"] = d
    i = rid()
    eq(post(d, chat_body("auto", "before"), {"x-request-id": i}).status, 200, "status")
    with open(path, "w") as f:
        f.write(base_text() + f"\nobservability:\n  otlp:\n    endpoint: \"{rx.url}\"\n"
                "    flush_interval_ms: 50\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metric(d, "llmrouter_config_reloads_total") >= 1, 5, "the reload")
    i2 = rid()
    r = post(d, {"model": "auto", "max_tokens": 30,
                 "messages": [{"role": "user", "content": "after the reload"}]},
             {"x-request-id": i2, "anthropic-version": "2023-06-01"}, path="/v1/messages")
    eq(r.status, 200, f"messages door ({R.short(r.body)})")
    root, kids = spans_of(rx, i2)
    eq(av(root, "llmrouter.door"), "messages", "door")
    eq(av(root, "gen_ai.operation.name"), "chat", "operation")
    eq(av(root, "gen_ai.request.max_tokens"), 30, "max_tokens")
    eq(len(kids), 1, "one attempt")
    check(not [s for s in rx.spans() if av(s, "llmrouter.request_id") == i],
          "a request from before the reload was exported")
    ok, msg = d.stop()
    check(ok, msg)


BAD = [
    ("protobuf", ["endpoint: \"http://127.0.0.1:9/v1/traces\"", "encoding: protobuf"],
     'only "json" is supported', 2),
    ("no endpoint", ["batch_max_spans: 10"], "endpoint is required", 0),
    ("bad url", ["endpoint: \"127.0.0.1:4318\""], "expected an http:// or https:// URL", 1),
    ("unknown key", ["endpoint: \"http://127.0.0.1:9/v1/traces\"", "flush_ms: 5"],
     'unknown key "flush_ms" in observability.otlp', 2),
    ("reserved header", ["endpoint: \"http://127.0.0.1:9/v1/traces\"",
                         "headers: {Content-Type: text/plain}"], "sets this header itself", 2),
    ("rate", ["endpoint: \"http://127.0.0.1:9/v1/traces\"", "sample_rate: 2"],
     "fraction from 0 to 1", 2),
    ("batch over queue", ["endpoint: \"http://127.0.0.1:9/v1/traces\"", "batch_max_spans: 100",
                          "queue_max_spans: 10"], "exceeds queue_max_spans", 0),
]


@test
def test_config_errors_have_positions():
    for what, lines, msg, idx in BAD:
        path = os.path.join(E.tmp, "bad.yaml")
        head = base_text() + "\nobservability:\n  otlp:\n"
        text = head + "".join(f"    {ln}\n" for ln in lines)
        with open(path, "w") as f:
            f.write(text)
        # idx: the 1-based line within the otlp block, 0 for the otlp: line's mapping
        line = head.count("\n") + (idx if idx else 1)
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True, text=True,
                             timeout=20, env=dict(os.environ, SIM_URL="http://127.0.0.1:9",
                                                  SIM_KEY_GOOD="k"))
        check(out.returncode != 0, f"{what}: accepted")
        check(msg in out.stderr, f"{what}: expected {msg!r} in {out.stderr!r}")
        want = f"{path}:{line}:"
        check(want in out.stderr, f"{what}: expected {want}COL in {out.stderr!r}")


@test
def test_experiment_arm_on_the_request_span():
    rx = S["rx"]
    log = os.path.join(E.tmp, "exp.access.log")
    text = base_text() + (
        "\nexperiments:\n  - name: otel-ab\n    key: user\n    arms:\n"
        "      - {name: control, weight: 1}\n"
        "      - {name: strong, weight: 1, tiers: {standard: premium}}\n"
        f"\nobservability:\n  access_log: \"{log}\"\n  otlp:\n    endpoint: \"{rx.url}\"\n"
        "    flush_interval_ms: 50\n")
    path = os.path.join(E.tmp, "exp.yaml")
    with open(path, "w") as f:
        f.write(text)
    S.setdefault("logs", {})["exp"] = log
    d = E.new_daemon(tag="otel-exp", config=path).start()
    S.setdefault("daemons", {})["exp"] = d
    arms = set()
    for u in range(8):
        i = rid()
        eq(post(d, chat_body("auto", "which arm?", user=f"user-{u}"), {"x-request-id": i}).status,
           200, "status")
        root, _ = spans_of(rx, i)
        line = log_line("exp", i)
        a = attrs(root)
        eq(a.get("llmrouter.experiment"), ("stringValue", "otel-ab"), "experiment attribute")
        eq(a.get("llmrouter.arm"), ("stringValue", line["arm"]), "arm attribute = access log's arm")
        arms.add(line["arm"])
    eq(arms, {"control", "strong"}, "8 users fell into both arms")
    d.stop()


@test
def test_zz_daemons_exit_cleanly():
    """Last, always: every daemon stops with status 0 on SIGTERM — under
    ASan a leak (a span record, a batch, the exporter) makes it fail."""
    bad = []
    for name, d in S.get("daemons", {}).items():
        if not d.alive():
            continue
        ok, msg = d.stop()
        text = d.stderr_text()
        if not ok or "ERROR: AddressSanitizer" in text or "runtime error" in text or \
                "LeakSanitizer" in text:
            bad.append(f"{name}: {msg}\n{d.stderr_tail()}")
    check(not bad, "; ".join(bad))
    if "p50" in S or "rss" in S:
        print(f"# p50 ms: no export {S.get('p50', 0):.2f}, dead collector "
              f"{S.get('p50_dead', 0):.2f}, stalled collector {S.get('p50_stall', 0):.2f}; "
              f"RSS kB with a full queue {S.get('rss')}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],), setup=setup,
                         teardown=teardown, always=("zz_daemons_exit_cleanly",)))
