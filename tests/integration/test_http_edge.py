#!/usr/bin/env python3
"""Integration tests of the HTTP edge: request-head sizes and CORS. The real
daemon over real sockets, the simulated provider behind it.

    python3 tests/integration/test_http_edge.py [-k SUBSTRING]... [-v]
    LLMROUTER_BIN=build/asan/llmrouter python3 tests/integration/test_http_edge.py

Head sizes (server.max_header_bytes, default 16 KiB): heads of 7.5, 7.8 and
12 KB spread over several fields (as SDKs and proxies send them) get their
full answer, streamed or not, also on a kept-alive connection; a head just
over the limit (its text plus 64 bytes per field), gets 431 in OpenAI's
error shape, the connection closed after it, and the provider is never called;
far over (64 KB, 1 MB) the same JSON 431 (the gate refuses it before
libmicrohttpd reads it), never a crash; the limit follows the configuration.

CORS (server.cors): off, OPTIONS is 405 in OpenAI's error shape; on, a
preflight is answered 204 without authentication, echoing the origin and the
requested headers (those of the OpenAI JS SDK), not routed nor counted;
wildcard subdomains; a disallowed origin gets 403 and no CORS headers;
answers (200, errors, 401, streams) carry Access-Control-Allow-Origin and
-Expose-Headers; a configured allow_headers list filters the echo.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None
D = {}  # daemons by name, started in setup()

FIELD_COST = 64  # what the router charges per header field on top of its text
LIMIT = 16384    # server.max_header_bytes by default
CORS_KEY = "sk-test-cors-web-0123"
APP = "https://app.example.com"
# What the OpenAI JS SDK (v4-v5) sends from a browser, as a preflight lists it.
SDK_HEADERS = ("authorization, content-type, openai-organization, openai-project, x-stainless-arch, "
               "x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-retry-count, "
               "x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout")


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, server_extra="", keys=""):
    with open(BASE_CONFIG) as f:
        text = f.read()
    text = text.replace("\nserver:\n", "\nserver:\n" + server_extra, 1)
    text += keys
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def setup():
    D["main"] = E.new_daemon(tag="main").start()
    D["small"] = E.new_daemon(tag="small", config=write_config(
        "small.yaml", "  max_header_bytes: 4096\n")).start()
    D["big"] = E.new_daemon(tag="big", config=write_config(
        "big.yaml", "  max_header_bytes: 65536\n")).start()
    os.environ["TEST_CORS_KEY"] = CORS_KEY
    D["keys"] = E.new_daemon(tag="keys", config=write_config(
        "keys.yaml", keys="\nkeys:\n  web: {key_env: TEST_CORS_KEY}\n")).start()
    D["cors"] = E.new_daemon(tag="cors", config=write_config("cors.yaml", (
        "  cors:\n"
        f"    origins: [\"{APP}\", \"https://*.example.org\", \"http://localhost:5173\"]\n"
        "    max_age: 1234\n"), "\nkeys:\n  web: {key_env: TEST_CORS_KEY, admin: true}\n")).start()
    D["cors-list"] = E.new_daemon(tag="cors-list", config=write_config("cors-list.yaml", (
        "  cors:\n"
        "    origins: \"*\"\n"
        "    allow_headers: [Authorization, content-type, \"x-stainless-*\"]\n"))).start()


def teardown():
    bad = []
    for name, d in D.items():
        ok, msg = d.stop()
        if not ok:
            bad.append(f"{name}: {msg}\n{d.stderr_tail(30)}")
    if bad:
        print("not ok - daemons_exit_cleanly: " + "; ".join(bad), flush=True)
        raise SystemExit(1)


# ------------------------------------------------------------ raw requests

def head_fields(port, method, path, body, total, n_fields):
    """Header fields (X-Pad-0..n-1) that make the request head exactly
    `total` bytes on the wire as R.RawHTTP writes it."""
    base = len(f"{method} {path} HTTP/1.1\r\n") + len(f"Host: 127.0.0.1:{port}\r\n") + 2
    if body is not None:
        base += len("Content-Type: application/json\r\n") + len(f"Content-Length: {len(body)}\r\n")
    names = [f"X-Pad-{i}" for i in range(n_fields)]
    room = total - base - sum(len(n) + 4 for n in names)
    check(room >= n_fields, f"head of {total} bytes cannot hold {n_fields} fields")
    sizes = [room // n_fields + (1 if i < room % n_fields else 0) for i in range(n_fields)]
    return {n: "v" * s for n, s in zip(names, sizes)}


def raw(d, method, path, body=None, total=None, n_fields=8, headers=None, charged=None):
    """A request whose head is `total` bytes on the wire, or takes `charged`
    bytes by the router's measure (wire bytes + 64 per field)."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    h = dict(headers or {})
    if charged is not None:
        n_all = 1 + (2 if body is not None else 0) + len(h) + n_fields  # Host, CT+CL, given, padding
        total = charged - FIELD_COST * n_all
    if total is not None:
        extra = sum(len(k) + len(v) + 4 for k, v in h.items())
        h.update(head_fields(d.port, method, path, body, total - extra, n_fields))
    return R.RawHTTP(d.port, method, path, body, h, timeout=15)


def answer(s):
    """(status, headers, body, closed_after) of one response on s."""
    s.read_head()
    body = s.read_all()
    try:
        s.sock.settimeout(3)
        closed = s.sock.recv(1) == b""
    except socket.timeout:
        closed = False
    except OSError:
        closed = True
    return s.status, s.headers, body, closed


def sim_calls():
    return len(E.sim_requests())


def check_json_error(status, headers, body, want_status, code, etype="invalid_request_error", what=""):
    eq(status, want_status, f"{what} status (body {R.short(body)})")
    ct = headers.get("content-type", "")
    check(ct.startswith("application/json"), f"{what} content-type {ct!r}")
    try:
        err = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        raise Fail(f"{what} not an OpenAI error: {R.short(body)}")
    for k in ("message", "type", "param", "code"):
        check(k in err, f"{what} error.{k} missing")
    eq(err["code"], code, f"{what} error.code")
    eq(err["type"], etype, f"{what} error.type")
    return err


def check_answered(d, total, n_fields, stream=False, what="", headers=None, charged=None):
    E.sim_reset()
    s = raw(d, "POST", "/v1/chat/completions", chat_body("auto", f"head {total}", stream=stream),
            total=total, n_fields=n_fields, headers=headers, charged=charged)
    try:
        s.read_head()
        eq(s.status, 200, f"{what} status")
        if stream:
            datas, _ = R.read_stream(s)
            check(datas and datas[-1] == "[DONE]", f"{what} stream did not end with [DONE]: {datas[-2:]}")
        else:
            j = json.loads(s.read_all())
            check(j["choices"][0]["message"]["content"], f"{what} empty answer")
    except (OSError, ValueError, KeyError) as e:
        raise Fail(f"{what}: no full answer ({type(e).__name__} {e})")
    finally:
        s.close()
    eq(sim_calls(), 1, f"{what} provider calls")


# ------------------------------------------------------------ head sizes

@test
def test_heads_below_limit_answered():
    # 7.5 and 7.8 KB used to be routed and paid for, then closed with no
    # byte sent (libmicrohttpd's 8 KiB pool); 12 KB got an HTML 431.
    for total in (7500, 7800, 12000):
        for n in (1, 8, 40):
            check_answered(D["main"], total, n, what=f"{total} B in {n} fields:")


@test
def test_head_at_limit_streamed_and_many_fields():
    # Right at the default limit, in one field or in many: the answer's
    # headers and a stream's chunks still fit next to the head.
    for n in (1, 95):
        check_answered(D["main"], None, n, stream=True, charged=LIMIT, what=f"at the limit, {n} fields, stream:")
        check_answered(D["main"], None, n, charged=LIMIT, what=f"at the limit, {n} fields:")
    # ... and with the CORS headers on the answer
    check_answered(D["cors"], None, 93, stream=True, charged=LIMIT, what="at the limit, CORS, stream:",
                   headers={"Authorization": f"Bearer {CORS_KEY}", "Origin": APP})


@test
def test_large_heads_on_one_keepalive_connection():
    d = D["main"]
    E.sim_reset()
    body = json.dumps(chat_body("auto", "again")).encode()
    fields = head_fields(d.port, "POST", "/v1/chat/completions", body, 12000, 8)
    s = R.RawHTTP(d.port, "POST", "/v1/chat/completions", body, fields)
    try:
        for i in range(3):
            if i:
                head = [f"POST /v1/chat/completions HTTP/1.1", f"Host: 127.0.0.1:{d.port}"]
                head += [f"{k}: {v}" for k, v in fields.items()]
                head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
                s.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                s.status, s.headers, s.done, s.remaining, s.chunked = None, {}, False, None, False
            s.read_head()
            eq(s.status, 200, f"request {i + 1} status")
            json.loads(s.read_all())
    finally:
        s.close()
    eq(sim_calls(), 3, "provider calls")


@test
def test_head_just_over_limit_json_431():
    for n in (1, 8):
        E.sim_reset()
        s = raw(D["main"], "POST", "/v1/chat/completions", chat_body("auto", "too big"), charged=LIMIT + 1,
                n_fields=n)
        try:
            status, headers, body, closed = answer(s)
        finally:
            s.close()
        err = check_json_error(status, headers, body, 431, "request_headers_too_large", what=f"{n} fields:")
        check("16384" in err["message"] and "16385" in err["message"], f"the message names both sizes: {err['message']}")
        check("close" in headers.get("connection", "").lower(), f"Connection: close expected: {headers}")
        check(closed, "the connection must be closed after the 431")
        check(headers.get("x-request-id"), "x-request-id on the 431")
        eq(sim_calls(), 0, "provider calls for a refused head")


@test
def test_head_over_limit_body_larger_than_max_body():
    # Content-Length beyond max_body_bytes: answered at once, still JSON.
    E.sim_reset()
    s = raw(D["main"], "POST", "/v1/chat/completions", b"x" * (R.MAX_BODY + 10), charged=LIMIT + 500)
    try:
        status, headers, body, _ = answer(s)
    finally:
        s.close()
    check_json_error(status, headers, body, 431, "request_headers_too_large")
    eq(sim_calls(), 0, "provider calls")


@test
def test_many_small_fields_are_charged():
    # 230 tiny fields: 3.5 KB on the wire, but each takes an entry in the pool
    E.sim_reset()
    s = raw(D["main"], "POST", "/v1/chat/completions", chat_body("auto", "fields"), total=3500, n_fields=230)
    try:
        status, headers, body, _ = answer(s)
    finally:
        s.close()
    err = check_json_error(status, headers, body, 431, "request_headers_too_large")
    check("64 bytes per field" in err["message"], f"the message says how fields count: {err['message']}")
    eq(sim_calls(), 0, "provider calls")


@test
def test_heads_far_over_limit():
    d = D["main"]
    E.sim_reset()
    for total in (64 * 1024, 1 << 20):
        s = raw(d, "POST", "/v1/chat/completions", chat_body("auto", "huge"), total=total, n_fields=4)
        try:
            # the gate refuses these before libmicrohttpd reads them: the
            # same JSON 431 as just over the limit, never its HTML page
            status, headers, body, closed = answer(s)
            check_json_error(status, headers, body, 431, "request_headers_too_large", what=f"{total} B:")
            check(closed, f"{total} B: the connection must be closed after the 431")
        finally:
            s.close()
    r = R.http_request(d.port, "GET", "/healthz")
    eq(r.status, 200, "daemon alive after huge heads")
    check(d.alive(), "daemon alive")
    eq(sim_calls(), 0, "provider calls")


@test
def test_limit_follows_configuration():
    E.sim_reset()
    s = raw(D["small"], "POST", "/v1/chat/completions", chat_body("auto", "small"), total=5000)
    try:
        status, headers, body, _ = answer(s)
    finally:
        s.close()
    err = check_json_error(status, headers, body, 431, "request_headers_too_large", what="4096 limit, 5000 B:")
    check("4096" in err["message"], f"the message names the limit: {err['message']}")
    eq(sim_calls(), 0, "provider calls")
    check_answered(D["small"], None, 8, charged=4096, what="4096 limit, at the limit:")
    check_answered(D["big"], 60000, 40, stream=True, what="65536 limit, 60000 B stream:")
    check_answered(D["big"], None, 1, charged=65536, what="65536 limit, at the limit:")


# ------------------------------------------------------------ CORS

def preflight(d, origin, method="POST", req_headers=SDK_HEADERS, path="/v1/chat/completions"):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers is not None:
        h["Access-Control-Request-Headers"] = req_headers
    return R.http_request(d.port, "OPTIONS", path, headers=h)


def stats_requests(d):
    # behind keys the stats need an admin key (the CORS daemon's key is one)
    r = R.http_request(d.port, "GET", "/router/stats", headers={"Authorization": f"Bearer {CORS_KEY}"})
    eq(r.status, 200, "/router/stats")
    return r.body


@test
def test_cors_off_options_is_405_json():
    d = D["main"]
    r = preflight(d, APP)
    R.check_error(r, 405, "method_not_allowed", what="OPTIONS, CORS off: ")
    eq(r.h("allow"), "POST", "Allow")
    check(r.h("access-control-allow-origin") is None, "no CORS headers when CORS is off")
    r = R.http_request(d.port, "OPTIONS", "/v1/models", headers={"Origin": APP})
    R.check_error(r, 405, "method_not_allowed", what="OPTIONS /v1/models: ")
    eq(r.h("allow"), "GET, HEAD", "Allow")
    r = R.http_request(d.port, "OPTIONS", "/v1/nope")
    R.check_error(r, 404, "unknown_url", what="OPTIONS unknown path: ")
    # with proxy keys too: 405, not a 401 for a request that is not one
    r = preflight(D["keys"], APP)
    R.check_error(r, 405, "method_not_allowed", what="OPTIONS, CORS off, keys: ")


@test
def test_cors_preflight_allowed():
    d = D["cors"]
    E.sim_reset()
    before = stats_requests(d)
    for origin in (APP, "https://a.b.example.org", "http://localhost:5173"):
        r = preflight(d, origin)  # no Authorization: a preflight never has it
        eq(r.status, 204, f"{origin} preflight status (body {R.short(r.body)})")
        eq(r.body, b"", "preflight body")
        eq(r.h("access-control-allow-origin"), origin, "Access-Control-Allow-Origin")
        check("origin" in (r.h("vary") or "").lower(), f"Vary: Origin missing: {r.h('vary')}")
        methods = [m.strip() for m in (r.h("access-control-allow-methods") or "").split(",")]
        check("POST" in methods and "GET" in methods, f"Allow-Methods {methods}")
        eq(r.h("access-control-allow-headers"), SDK_HEADERS, "Allow-Headers echo the SDK's headers")
        eq(r.h("access-control-max-age"), "1234", "Max-Age")
        check(r.h("access-control-allow-credentials") is None, "no Allow-Credentials unless configured")
    eq(sim_calls(), 0, "a preflight never reaches a provider")
    eq(stats_requests(d), before, "/router/stats unchanged by preflights")
    # mixed case and odd spacing in the request list: echoed normalised
    r = preflight(d, APP, req_headers="Authorization,Content-Type ,  X-Stainless-OS")
    eq(r.h("access-control-allow-headers"), "authorization, content-type, x-stainless-os", "normalised echo")
    r = preflight(d, APP, req_headers=None)
    eq(r.status, 204, "preflight without Request-Headers")
    check(r.h("access-control-allow-headers") is None, "no Allow-Headers when none asked")
    # the largest answer we write: a preflight echoing a 2 KB list, its head
    # at the limit
    many = ", ".join(f"x-custom-header-{i:04d}" for i in range(90))  # 1,978 bytes
    s = raw(d, "OPTIONS", "/v1/chat/completions", charged=LIMIT, n_fields=60,
            headers={"Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": many})
    try:
        status, headers, body, _ = answer(s)
    finally:
        s.close()
    eq(status, 204, "preflight with a 16 KB head and a 2 KB list")
    eq(headers.get("access-control-allow-headers"), many, "the whole list echoed")
    r = preflight(d, APP, req_headers="authorization, bad header\x7f")
    R.check_error(r, 400, "invalid_cors_preflight", what="malformed Request-Headers: ")


@test
def test_cors_preflight_disallowed_origin():
    d = D["cors"]
    for origin in ("https://evil.example", "https://example.org", "https://app.example.com.evil.net",
                   "http://app.example.com", "https://evil-example.org", "null"):
        r = preflight(d, origin)
        R.check_error(r, 403, "cors_origin_not_allowed", what=f"{origin}: ")
        eq(r.json["error"]["type"], "permission_error", "error.type")
        check(r.h("access-control-allow-origin") is None, f"{origin}: no Allow-Origin")
        check(r.h("access-control-allow-headers") is None, f"{origin}: no Allow-Headers")


@test
def test_cors_headers_on_answers():
    d = D["cors"]
    auth = {"Authorization": f"Bearer {CORS_KEY}", "Origin": APP}
    cases = [
        ("200", R.http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto"), headers=auth), 200),
        ("401", R.http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto"),
                               headers={"Origin": APP, "Authorization": "Bearer wrong"}), 401),
        ("404 model", R.http_request(d.port, "POST", "/v1/chat/completions", chat_body("no-such-model"),
                                     headers=auth), 404),
        ("400", R.http_request(d.port, "POST", "/v1/chat/completions", b"{not json", headers=auth), 400),
        ("models", R.http_request(d.port, "GET", "/v1/models", headers=auth), 200),
    ]
    for what, r, status in cases:
        eq(r.status, status, f"{what} status")
        eq(r.h("access-control-allow-origin"), APP, f"{what}: Access-Control-Allow-Origin")
        check("origin" in (r.h("vary") or "").lower(), f"{what}: Vary: Origin")
        exp = [x.strip() for x in (r.h("access-control-expose-headers") or "").split(",")]
        for name in ("x-request-id", "x-router-model", "x-router-tier", "x-router-cost-usd", "retry-after"):
            check(name in exp, f"{what}: {name} not exposed: {exp}")
    s = R.RawHTTP(d.port, "POST", "/v1/chat/completions", chat_body("auto", stream=True), auth)
    try:
        s.read_head()
        eq(s.status, 200, "stream status")
        eq(s.h("access-control-allow-origin"), APP, "stream: Access-Control-Allow-Origin")
        datas, _ = R.read_stream(s)
        eq(datas[-1], "[DONE]", "stream end")
    finally:
        s.close()
    # a disallowed origin gets the answer but nothing that lets a page read it
    r = R.http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto"),
                       headers={"Authorization": f"Bearer {CORS_KEY}", "Origin": "https://evil.example"})
    eq(r.status, 200, "disallowed origin, server-side request still answered")
    check(r.h("access-control-allow-origin") is None, "no Allow-Origin for a disallowed origin")
    check("origin" in (r.h("vary") or "").lower(), "Vary: Origin even then")


@test
def test_cors_allow_headers_list_and_any_origin():
    d = D["cors-list"]
    r = preflight(d, "https://anything.test:8443",
                  req_headers="Authorization, X-Stainless-OS, X-Stainless-Retry-Count, OpenAI-Project, X-Evil")
    eq(r.status, 204, "preflight status")
    eq(r.h("access-control-allow-origin"), "https://anything.test:8443", "origin echoed for \"*\"")
    eq(r.h("access-control-allow-headers"), "authorization, x-stainless-os, x-stainless-retry-count",
       "only the configured headers")
    eq(r.h("access-control-max-age"), "600", "default Max-Age")
    r = preflight(d, "not an origin")
    R.check_error(r, 403, "cors_origin_not_allowed", what="malformed Origin with \"*\": ")


@test
def test_cors_config_errors():
    for extra, needle in (
        ("  cors:\n    origins: [\"https://app.example.com/\"]\n", "trailing"),
        ("  cors:\n    origins: \"*\"\n    allow_credentials: true\n", "allow_credentials"),
        ("  cors:\n    max_age: 5\n", "origins is required"),
        ("  cors:\n    origins: [\"*\"]\n    allow_headers: [\"bad header\"]\n", "header name"),
        ("  max_header_bytes: 100\n", "max_header_bytes"),
    ):
        cfg = write_config("bad.yaml", extra)
        p = __import__("subprocess").run([E.bin, "--check-config", "-c", cfg], capture_output=True, text=True,
                                         timeout=10, env=dict(os.environ, SIM_URL="http://127.0.0.1:9"))
        check(p.returncode != 0, f"config accepted: {extra!r}")
        check(needle in p.stderr, f"{extra!r}: message lacks {needle!r}: {p.stderr[-300:]}")


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), setup=setup, teardown=teardown)


if __name__ == "__main__":
    sys.exit(main())
