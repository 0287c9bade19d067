#!/usr/bin/env python3
"""The hostile-client suite (issue 14): the real daemon over real sockets,
clients that misbehave on purpose. Each test asserts a prompt, well-formed
answer (one JSON error in the door's shape, its status line written once,
the connection closed when the framing cannot be trusted) and a daemon that
keeps serving afterwards.

    python3 tests/integration/test_hostile.py [-k SUBSTRING]... [-v]
    LLMROUTER_BIN=build/asan/llmrouter python3 tests/integration/test_hostile.py

- Request smuggling: Content-Length with Transfer-Encoding, two different
  Content-Lengths, on a new and on a kept-alive connection: 400, closed, the
  hidden request never answered.
- Bad lengths and unknown codings: invalid Content-Length values (-1,
  "0, 45", 2^64, ...), unknown Transfer-Encodings (which used to hang the
  connection for 60 s), Transfer-Encoding in HTTP/1.0: one JSON answer, fast.
- Protocol: the HTTP/2 preface and other versions (505), a TLS ClientHello,
  malformed request lines and header lines (400), heads cut by a half-close.
- Sizes: a long URI (414), huge and many header fields (431), a body over
  the limit (413) that the client is still sending when it is refused.
- Slowloris: a daemon with max_connections 200 filled with clients sending
  their heads a byte at a time: probes and normal requests are still
  answered (the oldest slow connection is evicted), every slow connection is
  closed by server.request_timeout_ms; a table full of idle kept-alive
  connections still answers probes from the reserve and refuses the rest
  with a JSON 503 until the idle ones time out; a slow body and a slow next
  head on a kept-alive connection get a 408.
- server.max_connections_per_ip: over it, a JSON 429 at once; another
  address is not affected.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import re
import select
import socket
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
D = {}  # daemons by name, started in setup()

TIGHT_MAX = 200        # server.max_connections of the "tight" daemon (one thread)
TIGHT_TIMEOUT_MS = 2000  # its server.request_timeout_ms
TIGHT_IDLE_S = 4       # its server.connection_timeout_s
RESERVE = 32           # GATE_PROBE_RESERVE
LINGER_S = 2           # GATE_LINGER_MS
PER_IP = 3             # server.max_connections_per_ip of the "perip" daemon
PROMPT_S = 5           # "promptly": generous for a shared machine


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, server_extra=""):
    with open(BASE_CONFIG) as f:
        text = f.read()
    text = text.replace("\nserver:\n", "\nserver:\n" + server_extra, 1)
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def setup():
    D["main"] = E.new_daemon(tag="main").start()
    tight = write_config("tight.yaml", (
        f"  max_connections: {TIGHT_MAX}\n"
        f"  request_timeout_ms: {TIGHT_TIMEOUT_MS}\n"
        f"  connection_timeout_s: {TIGHT_IDLE_S}\n"))
    tight_text = open(tight).read().replace("  threads: 2\n", "  threads: 1\n", 1)
    with open(tight, "w") as f:
        f.write(tight_text)
    D["tight"] = E.new_daemon(tag="tight", config=tight).start()
    D["perip"] = E.new_daemon(tag="perip", config=write_config(
        "perip.yaml", f"  max_connections_per_ip: {PER_IP}\n")).start()


def teardown():
    bad = []
    for name, d in D.items():
        ok, msg = d.stop()
        if not ok:
            bad.append(f"{name}: {msg}\n{d.stderr_tail(30)}")
    if bad:
        print("not ok - daemons_exit_cleanly: " + "; ".join(bad), flush=True)
        raise SystemExit(1)


# ------------------------------------------------------------ raw exchanges

def connect(port, src=None, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_until_close(s, limit_s):
    """Everything the server sends until it closes (or limit_s passes):
    (bytes, closed, seconds)."""
    t0 = time.monotonic()
    out = b""
    closed = False
    while time.monotonic() - t0 < limit_s:
        s.settimeout(max(0.05, limit_s - (time.monotonic() - t0)))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not d:
            closed = True
            break
        out += d
    return out, closed, time.monotonic() - t0


def exchange(port, data, limit_s=PROMPT_S, src=None, half_close=False):
    s = connect(port, src)
    try:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, limit_s)
    finally:
        s.close()


def parse_responses(data):
    """The responses in data, in order: [(status, headers, body)]; the rest
    that is not a complete response is returned as the last element's
    'rest'. Raises Fail on a malformed response."""
    out = []
    while data:
        if not data.startswith(b"HTTP/1."):
            raise Fail(f"not an HTTP response: {data[:80]!r}")
        end = data.find(b"\r\n\r\n")
        if end < 0:
            raise Fail(f"incomplete response head: {data[:120]!r}")
        lines = data[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            k = k.strip().lower()
            if k in headers:
                raise Fail(f"header {k} twice in one response (the head written twice?): {data[:300]!r}")
            headers[k] = v.strip()
        rest = data[end + 4:]
        if "content-length" in headers:
            n = int(headers["content-length"])
            if len(rest) < n:
                raise Fail(f"body shorter than Content-Length {n}: {rest[:80]!r}")
            body, data = rest[:n], rest[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                nl = rest.find(b"\r\n")
                size = int(rest[:nl].split(b";")[0], 16)
                rest = rest[nl + 2:]
                if size == 0:
                    data = rest[rest.find(b"\r\n") + 2:]
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        else:
            body, data = rest, b""
        out.append((status, headers, body))
    return out


STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] \d{3} ")


def one_json_error(data, closed, secs, status, code=None, what="", anthropic=False, must_close=True):
    """data holds exactly one response: a JSON error with this status (a
    list of allowed ones), in OpenAI's shape (or Anthropic's), its status
    line written once, answered within PROMPT_S and (must_close) followed by
    the close of the connection."""
    statuses = status if isinstance(status, (list, tuple)) else [status]
    check(data, f"{what}no answer within {secs:.1f} s (closed={closed})")
    eq(len(STATUS_LINE.findall(data)), 1, f"{what}status lines in {data[:300]!r}:")
    resps = parse_responses(data)
    eq(len(resps), 1, f"{what}responses")
    st, h, body = resps[0]
    check(st in statuses, f"{what}status {st}, expected {statuses}: {body[:200]!r}")
    check(h.get("content-type", "").startswith("application/json"), f"{what}content-type {h.get('content-type')!r}")
    try:
        j = json.loads(body)
    except ValueError:
        raise Fail(f"{what}body is not JSON: {body[:200]!r}")
    if anthropic:
        eq(j.get("type"), "error", f"{what}Anthropic shape: type")
        check(isinstance(j.get("error"), dict) and j["error"].get("type") and j["error"].get("message"),
              f"{what}Anthropic shape: {j}")
    else:
        err = j.get("error")
        check(isinstance(err, dict), f"{what}OpenAI shape: {j}")
        for k in ("message", "type", "param", "code"):
            check(k in err, f"{what}error.{k} missing: {j}")
        if code is not None:
            eq(err["code"], code, f"{what}error.code")
    check(secs < PROMPT_S, f"{what}answered after {secs:.1f} s")
    if must_close:
        check(closed, f"{what}the connection must be closed after the answer")
        eq(h.get("connection", "").lower(), "close", f"{what}Connection header")
    return st, h, j


def serving(d, what=""):
    check(d.alive(), f"{what}daemon died (rc {d.proc.returncode})\n{d.stderr_tail(20)}")
    r = R.http_request(d.port, "GET", "/healthz", timeout=PROMPT_S)
    eq(r.status, 200, f"{what}healthz")
    r = R.http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto", "still there?"),
                       timeout=20)
    eq(r.status, 200, f"{what}chat after the hostile client")


def chat_json():
    return json.dumps(chat_body("auto", "hostile")).encode()


GOOD = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
HIDDEN = b"GET /v1/models HTTP/1.1\r\nHost: hidden\r\n\r\n"


def keepalive_then(port, second, limit_s=PROMPT_S):
    """A sound request, its answer read, then `second` on the same
    connection: (bytes after the first answer, closed, seconds)."""
    s = connect(port)
    try:
        s.sendall(GOOD)
        buf = b""
        while True:
            d = s.recv(65536)
            check(d, "closed after the first, sound request")
            buf += d
            try:
                resps = parse_responses(buf)
                if resps:
                    break
            except Fail:
                continue
        eq(resps[0][0], 200, "first request on the kept-alive connection")
        try:
            s.sendall(second)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, limit_s)
    finally:
        s.close()


# ------------------------------------------------------------ smuggling

def smuggle_cl_te(te_first, path=b"/v1/chat/completions"):
    body = b"0\r\n\r\n" + HIDDEN
    cl = b"Content-Length: %d\r\n" % len(body)
    te = b"Transfer-Encoding: chunked\r\n"
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
            (te + cl if te_first else cl + te) + b"\r\n" + body)


@test
def test_smuggling_cl_and_te_refused():
    d = D["main"]
    for te_first in (False, True):
        data, closed, secs = exchange(d.port, smuggle_cl_te(te_first))
        one_json_error(data, closed, secs, 400, "conflicting_framing", what=f"te_first={te_first}: ")
        check(b"hidden" not in data.lower() and b'"object":"list"' not in data,
              "the hidden request was answered")
    serving(d)


def refused_count(d, code):
    """The sum of llmrouter_http_refused_total{code=...} over statuses."""
    r = R.http_request(d.port, "GET", "/metrics", timeout=PROMPT_S)
    eq(r.status, 200, "/metrics")
    total = 0
    for m in re.finditer(r'^llmrouter_http_refused_total\{code="([a-z_]+)",status="([0-9a-z]+)"\} (\d+)$',
                         r.body.decode(), re.M):
        if m.group(1) == code:
            total += int(m.group(3))
    check("# TYPE llmrouter_http_refused_total counter" in r.body.decode(), "family missing")
    return total


@test
def test_gate_refusals_counted_in_metrics():
    d = D["main"]
    before = {c: refused_count(d, c) for c in ("conflicting_framing", "invalid_content_length",
                                               "http_version_not_supported")}
    for te_first in (False, True):
        exchange(d.port, smuggle_cl_te(te_first))
    exchange(d.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
    exchange(d.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    after = {c: refused_count(d, c) for c in before}
    eq(after["conflicting_framing"] - before["conflicting_framing"], 2, "smuggling refusals counted")
    eq(after["invalid_content_length"] - before["invalid_content_length"], 1, "bad length counted")
    eq(after["http_version_not_supported"] - before["http_version_not_supported"], 1,
       "HTTP/2 preface counted")


@test
def test_smuggling_cl_and_te_on_keepalive_connection():
    d = D["main"]
    for te_first in (False, True):
        data, closed, secs = keepalive_then(d.port, smuggle_cl_te(te_first))
        one_json_error(data, closed, secs, 400, "conflicting_framing", what=f"kept-alive, te_first={te_first}: ")
    serving(d)


def two_cls(a, b, body):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %s\r\nContent-Length: %s\r\n\r\n" % (a, b)) + body


@test
def test_smuggling_two_content_lengths():
    d = D["main"]
    body = chat_json()
    # the first length covers the JSON only; the second one also the hidden request
    req = two_cls(b"%d" % len(body), b"%d" % (len(body) + len(HIDDEN)), body + HIDDEN)
    data, closed, secs = exchange(d.port, req)
    one_json_error(data, closed, secs, 400, "conflicting_content_length", what="new connection: ")
    data, closed, secs = keepalive_then(d.port, req)
    one_json_error(data, closed, secs, 400, "conflicting_content_length", what="kept-alive: ")
    # the same length twice is one length (RFC 9112 section 6.3): answered
    same = two_cls(b"%d" % len(body), b"%d" % len(body), body)
    data, closed, secs = exchange(d.port, same + b"", limit_s=15, half_close=False)
    resps = parse_responses(data) if data else []
    check(resps and resps[0][0] == 200, f"two equal Content-Lengths: {data[:200]!r}")
    serving(d)


# ------------------------------------------------------------ bad lengths, codings

BAD_CL = [b"-1", b"0, 45", b"45, 45", b"18446744073709551616", b"99999999999999999999999", b"abc", b"",
          b"5 ", b"+5", b"0x10", b"1e3", b"1 2"]


@test
def test_invalid_content_length_one_json_answer():
    d = D["main"]
    for v in BAD_CL:
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + v + b"\r\n\r\n{}")
        status = 413 if v.isdigit() else 400
        code = "request_too_large" if v.isdigit() else "invalid_content_length"
        data, closed, secs = exchange(d.port, req)
        one_json_error(data, closed, secs, status, code, what=f"Content-Length {v!r}: ")
    serving(d)


@test
def test_invalid_content_length_kept_alive_still_answered():
    # A later request of a kept-alive connection is parsed by libmicrohttpd
    # itself, which answers a malformed Content-Length on its own (an HTML
    # page, 0.9.75 writes its head twice): documented in docs/operations.md.
    # What must hold: some answer or a close, promptly, and a daemon that
    # serves on.
    d = D["main"]
    for v in (b"-1", b"0, 45", b"18446744073709551616"):
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + v + b"\r\n\r\n{}")
        data, closed, secs = keepalive_then(d.port, req)
        check(closed, f"{v!r}: the connection must be closed, not left hanging ({secs:.1f} s)")
        check(data.startswith(b"HTTP/1.1 4"), f"{v!r}: expected some 4xx, got {data[:80]!r}")
    serving(d)


BAD_TE = [(b"gzip", 400), (b"identity", 400), (b"gzip, chunked", 501), (b"deflate, chunked", 501),
          (b"chunked, gzip", 400), (b"chunked, chunked", 400), (b"chunked ", 400), (b"chunked;x=1", 400),
          (b"x" * 300, 400), (b"\"chunked\"", 400)]


@test
def test_unknown_transfer_encoding_answered_promptly():
    d = D["main"]
    for v, status in BAD_TE:
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: " + v + b"\r\n\r\n0\r\n\r\n")
        data, closed, secs = exchange(d.port, req)
        one_json_error(data, closed, secs, status, what=f"Transfer-Encoding {v[:30]!r}: ")
    # two fields: libmicrohttpd reads only the first one
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n")
    data, closed, secs = exchange(d.port, req)
    one_json_error(data, closed, secs, 400, "invalid_transfer_encoding", what="two fields: ")
    # HTTP/1.0 has no transfer codings
    req = (b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"0\r\n\r\n")
    data, closed, secs = exchange(d.port, req)
    one_json_error(data, closed, secs, 400, "invalid_transfer_encoding", what="HTTP/1.0: ")
    serving(d)


@test
def test_unknown_transfer_encoding_on_keepalive_connection():
    d = D["main"]
    for v, status in ((b"gzip", 400), (b"gzip, chunked", 501), (b"identity", 400)):
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + v +
               b"\r\n\r\n0\r\n\r\n")
        data, closed, secs = keepalive_then(d.port, req)
        one_json_error(data, closed, secs, status, what=f"kept-alive, {v!r}: ")
    serving(d)


@test
def test_sound_chunked_and_content_length_still_work():
    d = D["main"]
    body = chat_json()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 9]), body[i:i + 9]) for i in range(0, len(body), 9))
    for framing, payload in ((b"Transfer-Encoding: chunked\r\n", chunked + b"0\r\n\r\n"),
                             (b"transfer-encoding: CHUNKED\r\n", chunked + b"0\r\n\r\n"),
                             (b"Content-Length: %d\r\n" % len(body), body),
                             (b"content-length:%d\r\n" % len(body), body)):
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\n" + framing + b"\r\n" + payload)
        data, closed, secs = exchange(d.port, req, limit_s=15)
        resps = parse_responses(data)
        check(resps and resps[0][0] == 200, f"{framing!r}: {data[:200]!r}")


# ------------------------------------------------------------ protocol

@test
def test_http2_and_other_versions():
    d = D["main"]
    cases = [
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /v1/models HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /v1/models HTTP/3.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /v1/models HTTP/0.9\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /v1/models\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/models HTTP/1.1.1\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/models http/1.1\r\n\r\n", 400, "malformed_request"),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(200)), 400, "malformed_request"),
    ]
    for req, status, code in cases:
        data, closed, secs = exchange(d.port, req)
        one_json_error(data, closed, secs, status, code, what=f"{req[:24]!r}: ")
    serving(d)


@test
def test_malformed_heads_json_400():
    d = D["main"]
    cases = [
        b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",            # space before the colon
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",  # obsolete line folding
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n: empty name\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nX-A: a\rb\r\n\r\n",            # bare CR
        b"GET /hea\x01lthz HTTP/1.1\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",                             # space in the target
        b"GET  /healthz HTTP/1.1\r\n\r\n",
        b" GET /healthz HTTP/1.1\r\n\r\n",
        b"G(T /healthz HTTP/1.1\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ]
    for req in cases:
        data, closed, secs = exchange(d.port, req)
        one_json_error(data, closed, secs, 400, "malformed_request", what=f"{req[:40]!r}: ")
    # a head cut by a half-close is refused at once, not at the deadline
    data, closed, secs = exchange(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", half_close=True)
    one_json_error(data, closed, secs, 400, "malformed_request", what="half-closed head: ")
    # a client that connects and leaves without a byte gets nothing, and nothing breaks
    for _ in range(20):
        connect(d.port).close()
    serving(d)


@test
def test_oversized_heads_and_bodies():
    d = D["main"]
    data, closed, secs = exchange(d.port, b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    one_json_error(data, closed, secs, 414, "uri_too_long", what="100 KB target: ")
    data, closed, secs = exchange(d.port, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
    one_json_error(data, closed, secs, 431, "request_headers_too_large", what="200 KB field: ")
    data, closed, secs = exchange(
        d.port, b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n")
    one_json_error(data, closed, secs, 431, "request_headers_too_large", what="5000 fields: ")
    # a body far over max_body_bytes, still being sent when the 413 comes:
    # the answer must survive (read by a client that sends everything first)
    big = b"x" * (R.MAX_BODY * 8)
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(big)) + big
    data, closed, secs = exchange(d.port, req)
    one_json_error(data, closed, secs, 413, "request_too_large", what="body over the limit: ")
    serving(d)


@test
def test_messages_door_errors_in_anthropic_shape():
    d = D["main"]
    data, closed, secs = exchange(d.port, smuggle_cl_te(False, b"/v1/messages"))
    one_json_error(data, closed, secs, 400, what="/v1/messages CL+TE: ", anthropic=True)
    req = (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
    data, closed, secs = exchange(d.port, req)
    one_json_error(data, closed, secs, 413, what="/v1/messages 413: ", anthropic=True)
    req = (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    data, closed, secs = keepalive_then(d.port, req)
    one_json_error(data, closed, secs, 400, what="/v1/messages kept-alive TE gzip: ", anthropic=True)
    serving(d)


# ------------------------------------------------------------ slowloris

class Trickler:
    """n connections that send a request head a byte at a time, forever:
    records when each one is closed by the server and what it got."""

    def __init__(self, port, n, head=b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: "):
        self.socks = []
        self.closed_at = {}
        self.got = {}
        self.t0 = time.monotonic()
        for _ in range(n):
            s = connect(port)
            s.setblocking(False)
            try:
                s.send(head)
            except OSError:
                pass
            self.socks.append(s)
        self.stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        last = 0
        while not self.stop:
            open_ = [s for s in self.socks if s.fileno() not in self.closed_at]
            if not open_:
                return
            r, _, _ = select.select(open_, [], [], 0.1)
            for s in r:
                try:
                    d = s.recv(65536)
                except (ConnectionResetError, OSError):
                    d = b""
                if d:
                    self.got[s.fileno()] = self.got.get(s.fileno(), b"") + d
                else:
                    self.closed_at[s.fileno()] = time.monotonic() - self.t0
            if time.monotonic() - last >= 0.25:
                last = time.monotonic()
                for s in open_:
                    if s.fileno() in self.closed_at:
                        continue
                    try:
                        s.send(b"a")
                    except OSError:
                        pass

    def n_open(self):
        return len([s for s in self.socks if s.fileno() not in self.closed_at])

    def close(self):
        self.stop = True
        self.th.join(5)
        for s in self.socks:
            s.close()


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


@test
def test_slowloris_fills_the_table_probes_and_traffic_still_answered():
    d = D["tight"]
    n = TIGHT_MAX + RESERVE + 20  # the table, the reserve and some over
    tr = Trickler(d.port, n)
    try:
        time.sleep(1.3)  # the slow ones are older than the eviction age now
        # The table is full of slow heads: a probe and a normal request each
        # evict the oldest slow connection and are answered.
        for path in ("/healthz", "/readyz", "/metrics"):
            r, secs = timed(lambda: R.http_request(d.port, "GET", path, timeout=PROMPT_S))
            eq(r.status, 200, f"probe {path} with the table full of slow clients")
            check(secs < PROMPT_S, f"probe {path} took {secs:.1f} s")
        r, secs = timed(lambda: R.http_request(d.port, "POST", "/v1/chat/completions",
                                               chat_body("auto", "during the attack"), timeout=20))
        eq(r.status, 200, "a normal request during the attack")
        # every slow connection is closed by the deadline (+ the linger)
        limit = TIGHT_TIMEOUT_MS / 1000 + LINGER_S + 6
        while tr.n_open() and time.monotonic() - tr.t0 < limit:
            time.sleep(0.2)
        eq(tr.n_open(), 0, f"slow connections still open after {limit:.0f} s")
        late = [t for t in tr.closed_at.values() if t > TIGHT_TIMEOUT_MS / 1000 + LINGER_S + 3]
        check(not late, f"{len(late)} closed late: {sorted(late)[-3:]}")
        # what they got: a JSON 408, or (over the reserve) a 503
        statuses = {}
        for fd, got in tr.got.items():
            st = parse_responses(got)[0][0] if got.startswith(b"HTTP/1.") else None
            statuses[st] = statuses.get(st, 0) + 1
        check(statuses.get(408, 0) >= TIGHT_MAX - 10, f"408s to the slow clients: {statuses}")
        check(set(statuses) <= {408, 503}, f"answers to the slow clients: {statuses}")
        check("http: thread 0, last 10 s:" in d.stderr_text(), "the refusals are not in the log")
    finally:
        tr.close()
    serving(d)


@test
def test_table_full_of_idle_connections_reserve_answers_probes():
    d = D["tight"]
    socks = []
    ok = refused = 0
    try:
        # kept-alive connections that made one request and stay idle
        for i in range(TIGHT_MAX + 20):
            s = connect(d.port)
            s.sendall(GOOD)
            data = b""
            while True:
                x = s.recv(65536)
                if not x:
                    break
                data += x
                try:
                    if parse_responses(data):
                        break
                except Fail:
                    pass
            st = parse_responses(data)[0][0] if data else None
            if st == 200:
                ok += 1
                socks.append(s)
            else:
                eq(st, 503, f"connection {i} over the table: {data[:200]!r}")
                one_json_error(data, True, 0, 503, "too_many_connections", what=f"connection {i}: ",
                               must_close=False)
                s.close()
                refused += 1
        check(ok >= TIGHT_MAX - 5 and ok <= TIGHT_MAX + 1, f"{ok} connections served, {refused} refused")
        check(refused >= 15, f"only {refused} refused over a table of {TIGHT_MAX}")
        # the table is full of idle connections: probes come in on the reserve
        for path in ("/healthz", "/readyz", "/metrics", "/v1/healthz"):
            r, secs = timed(lambda: R.http_request(d.port, "GET", path, timeout=PROMPT_S))
            eq(r.status, 200, f"probe {path} with a full table")
        # anything else: a JSON 503 with Retry-After
        r = R.http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto"), timeout=PROMPT_S)
        R.check_error(r, 503, "too_many_connections", what="chat with a full table: ")
        eq(r.h("retry-after"), "1", "Retry-After")
        # the idle ones time out (connection_timeout_s): traffic resumes
        t0 = time.monotonic()
        while time.monotonic() - t0 < TIGHT_IDLE_S + 10:
            r = R.http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto"), timeout=20)
            if r.status == 200:
                break
            time.sleep(0.5)
        eq(r.status, 200, "traffic after the idle connections timed out")
    finally:
        for s in socks:
            s.close()
    serving(d)


@test
def test_slow_body_gets_408():
    d = D["tight"]
    s = connect(d.port)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"model\":")
        t0 = time.monotonic()
        data = b""
        closed = False
        while time.monotonic() - t0 < TIGHT_TIMEOUT_MS / 1000 + 8:
            r, _, _ = select.select([s], [], [], 0.25)
            if r:
                try:
                    x = s.recv(65536)
                except ConnectionResetError:
                    x = b""
                if not x:
                    closed = True
                    break
                data += x
            try:
                s.send(b" ")
            except OSError:
                pass
        secs = time.monotonic() - t0
        check(closed, f"the slow body was not cut off after {secs:.1f} s")
        check(secs >= TIGHT_TIMEOUT_MS / 1000 - 0.5, f"cut off after {secs:.1f} s, before the deadline")
        one_json_error(data, True, 0, 408, "request_timeout", what="slow body: ", must_close=False)
    finally:
        s.close()
    serving(d)


@test
def test_slow_next_head_on_keepalive_connection_gets_408():
    d = D["tight"]
    s = connect(d.port)
    try:
        s.sendall(GOOD)
        data = b""
        while not data.endswith(b"}"):
            data += s.recv(65536)
        eq(parse_responses(data)[0][0], 200, "first request")
        s.sendall(b"GET /v1/models HTTP/1.1\r\nX-Slow: ")
        t0 = time.monotonic()
        data = b""
        closed = False
        limit = TIGHT_IDLE_S + TIGHT_TIMEOUT_MS / 1000 + 8
        while time.monotonic() - t0 < limit:
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                try:
                    x = s.recv(65536)
                except ConnectionResetError:
                    x = b""
                if not x:
                    closed = True
                    break
                data += x
            try:
                s.send(b"a")  # activity: libmicrohttpd's idle timeout never fires
            except OSError:
                pass
        secs = time.monotonic() - t0
        check(closed, f"the trickled head was not cut off after {secs:.1f} s")
        check(secs >= TIGHT_IDLE_S - 0.5, f"cut off after {secs:.1f} s, before the deadline")
        one_json_error(data, True, 0, 408, "request_timeout", what="slow next head: ", must_close=False)
    finally:
        s.close()
    serving(d)


# ------------------------------------------------------------ per address

@test
def test_connections_per_ip_limit():
    d = D["perip"]
    held = [connect(d.port) for _ in range(PER_IP)]
    try:
        for s in held:  # make sure each is accepted and counted
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            check(s.recv(65536).startswith(b"HTTP/1.1 200"), "a connection within the limit")
        data, closed, secs = exchange(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        one_json_error(data, closed, secs, 429, "too_many_connections", what="over the per-address limit: ")
        check(str(PER_IP).encode() in data, f"the message names the limit: {data[-200:]!r}")
        # another client address is not affected
        data, closed, secs = exchange(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                      src="127.0.0.2")
        check(data.startswith(b"HTTP/1.1 200"), f"from 127.0.0.2: {data[:100]!r}")
        # one closed: room for one more
        held.pop().close()
        t0 = time.monotonic()
        while True:
            data, closed, secs = exchange(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if data.startswith(b"HTTP/1.1 200") or time.monotonic() - t0 > PROMPT_S:
                break
            time.sleep(0.1)
        check(data.startswith(b"HTTP/1.1 200"), f"after one closed: {data[:100]!r}")
    finally:
        for s in held:
            s.close()
    serving(d)


@test
def test_all_daemons_serve_after_everything():
    for name, d in D.items():
        serving(d, what=f"{name}: ")


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), setup=setup, teardown=teardown)


if __name__ == "__main__":
    sys.exit(main())
