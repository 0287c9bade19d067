#!/usr/bin/env python3
"""Integration tests for llmrouter.

Starts the simulated upstream (tests/sim/simprovider.py) and the daemon
(build/llmrouter, or $LLMROUTER_BIN) with tests/integration/llmrouter-test.yaml,
then runs every test function against them.

Output: one "ok - name" / "not ok - name: reason" line per test, then exactly
one "N passed, M failed" line.  Exit status 1 if any test failed or the daemon
exited abnormally (non-zero exit after SIGTERM, e.g. an AddressSanitizer leak
report, or a crash).

    python3 tests/integration/run.py            # everything
    python3 tests/integration/run.py -k failover -k embed   # subsets (substring match)
    python3 tests/integration/run.py --list

Python 3.11 standard library only.
"""

import argparse
import base64
import codecs
import http.client
import json
import os
import random
import shutil
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CONFIG = os.environ.get("LLMROUTER_TEST_CONFIG") or os.path.join(HERE, "llmrouter-test.yaml")
SIM_SCRIPT = os.path.join(ROOT, "tests", "sim", "simprovider.py")
DEFAULT_BIN = os.path.join(ROOT, "build", "llmrouter")

GOOD_KEY = "sim-key-good-123"
CLIENT_SECRET = "client-secret"
CLIENT_AUTH = "Bearer " + CLIENT_SECRET
MAX_BODY = 65536
MB = 1024 * 1024
VERBOSE = [False]


# --------------------------------------------------------------------------
# assertions


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise Fail(f"{what}: expected {expected!r}, got {actual!r}")


def short(b, n=300):
    if isinstance(b, (bytes, bytearray)):
        b = bytes(b).decode("utf-8", "replace")
    s = str(b)
    return s if len(s) <= n else s[:n] + f"...({len(s)} chars)"


# --------------------------------------------------------------------------
# config (tiny parser for the flat YAML used by the test config)


def parse_config(path):
    """Returns {"models": {name: {k: v}}, "tiers": {name: [models]}, ...}."""
    out = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            # strip comments (the config never has '#' inside values)
            line = re.sub(r"\s+#.*$", "", raw.rstrip()) if not raw.lstrip().startswith("#") else ""
            if not line.strip():
                continue
            m = re.match(r"^([A-Za-z0-9_-]+):\s*$", line)
            if m:
                section = m.group(1)
                out.setdefault(section, {})
                continue
            m = re.match(r"^\s+([A-Za-z0-9_.-]+):\s*(.*)$", line)
            if m and section:
                key, val = m.group(1), m.group(2).strip()
                if val.startswith("[") and val.endswith("]"):
                    out[section][key] = [x.strip().strip('"') for x in val[1:-1].split(",") if x.strip()]
                elif val.startswith("{") and val.endswith("}"):
                    d = {}
                    for part in re.findall(r'([A-Za-z0-9_]+):\s*("[^"]*"|[^,]+)', val[1:-1]):
                        d[part[0]] = part[1].strip().strip('"')
                    out[section][key] = d
                else:
                    out[section][key] = val.strip('"')
    return out


CFG = parse_config(CONFIG)
MODELS = CFG.get("models", {})
TIERS = CFG.get("tiers", {})


def upstream_of(model):
    return MODELS[model]["model"]


# --------------------------------------------------------------------------
# HTTP helpers


class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.header_list = headers  # [(lower-name, value)]
        self.headers = {}
        for k, v in headers:
            k = k.lower()
            self.headers[k] = (self.headers[k] + ", " + v) if k in self.headers else v
        self.body = body
        self.elapsed = elapsed
        self._json = None

    def h(self, name):
        return self.headers.get(name.lower())

    @property
    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.body)
            except Exception as e:
                raise Fail(f"response body is not JSON ({e}): {short(self.body)}")
        return self._json

    def __repr__(self):
        return f"<{self.status} {short(self.body, 200)}>"


def http_request(port, method, path, body=None, headers=None, timeout=20):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    hdrs = {}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, [(k.lower(), v) for k, v in r.getheaders()], data, time.monotonic() - t0)
    finally:
        conn.close()


class RawHTTP:
    """Minimal HTTP/1.1 client on a raw socket, for incremental reads of
    streamed bodies (chunked, Content-Length or close-delimited)."""

    def __init__(self, port, method, path, body=None, headers=None, rcvbuf=None, timeout=15, chunked_body=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.eof = False
        self.done = False
        self.status = None
        self.headers = {}
        self.chunked = False
        self.remaining = None  # content-length left
        self.chunk_left = 0
        self.need_crlf = False
        self.sse_buf = ""
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.t0 = time.monotonic()
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        hdrs = dict(headers or {})
        if body is not None or chunked_body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        if chunked_body is not None:
            hdrs["Transfer-Encoding"] = "chunked"
        elif body is not None:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            lines.append(f"{k}: {v}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        # A server may answer early (413) and stop reading: remember a failed
        # send and let the caller try to read the response anyway.
        self.send_error = None
        try:
            if chunked_body is not None:
                self.sock.sendall(head)
                for piece in chunked_body:
                    self.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.sock.sendall(b"0\r\n\r\n")
            else:
                self.sock.sendall(head + (body or b""))
        except (BrokenPipeError, ConnectionResetError) as e:
            self.send_error = e

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _fill(self, n=65536):
        if self.eof:
            return False
        data = self.sock.recv(n)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise Fail(f"connection closed before response headers complete: {short(self.buf)}")
        i = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:i]).decode("latin-1")
        del self.buf[: i + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        check(len(parts) >= 2 and parts[0].startswith("HTTP/1."), f"bad status line {lines[0]!r}")
        self.status = int(parts[1])
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            k = k.strip().lower()
            v = v.strip()
            self.headers[k] = (self.headers[k] + ", " + v) if k in self.headers else v
        te = self.headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            self.chunked = True
        elif "content-length" in self.headers:
            self.remaining = int(self.headers["content-length"])
            if self.remaining == 0:
                self.done = True
        if self.status in (204, 304):
            self.done = True
        return self

    def h(self, name):
        return self.headers.get(name.lower())

    def read_some(self, maxn=1 << 20):
        """Returns the next piece of decoded body, b"" at the end of the body."""
        while True:
            if self.done:
                return b""
            if self.chunked:
                if self.need_crlf:
                    while len(self.buf) < 2:
                        if not self._fill():
                            raise Fail("connection closed inside chunked body (missing CRLF)")
                    check(self.buf[:2] == b"\r\n", f"bad chunk terminator {bytes(self.buf[:10])!r}")
                    del self.buf[:2]
                    self.need_crlf = False
                if self.chunk_left == 0:
                    while b"\r\n" not in self.buf:
                        if not self._fill():
                            raise Fail("connection closed inside chunked body (no chunk size; stream truncated)")
                    i = self.buf.index(b"\r\n")
                    line = bytes(self.buf[:i])
                    del self.buf[: i + 2]
                    try:
                        size = int(line.split(b";")[0].strip(), 16)
                    except ValueError:
                        raise Fail(f"bad chunk size line {line[:40]!r}")
                    if size == 0:
                        # trailers
                        while True:
                            while b"\r\n" not in self.buf:
                                if not self._fill():
                                    self.done = True
                                    return b""
                            i = self.buf.index(b"\r\n")
                            tl = bytes(self.buf[:i])
                            del self.buf[: i + 2]
                            if tl == b"":
                                break
                        self.done = True
                        return b""
                    self.chunk_left = size
                if not self.buf:
                    if not self._fill():
                        raise Fail("connection closed inside a chunk (stream truncated)")
                n = min(len(self.buf), self.chunk_left, maxn)
                out = bytes(self.buf[:n])
                del self.buf[:n]
                self.chunk_left -= n
                if self.chunk_left == 0:
                    self.need_crlf = True
                return out
            elif self.remaining is not None:
                if not self.buf:
                    if not self._fill():
                        raise Fail(f"connection closed with {self.remaining} body bytes missing")
                n = min(len(self.buf), self.remaining, maxn)
                out = bytes(self.buf[:n])
                del self.buf[:n]
                self.remaining -= n
                if self.remaining == 0:
                    self.done = True
                return out
            else:
                if not self.buf:
                    if not self._fill():
                        self.done = True
                        return b""
                n = min(len(self.buf), maxn)
                out = bytes(self.buf[:n])
                del self.buf[:n]
                return out

    def read_all(self):
        parts = []
        while True:
            d = self.read_some()
            if not d:
                return b"".join(parts)
            parts.append(d)

    def next_event(self):
        """Next SSE event as a list of lines (comment lines included), or None at end."""
        while True:
            norm = self.sse_buf.replace("\r\n", "\n")
            if "\n\n" in norm:
                ev, _, rest = norm.partition("\n\n")
                self.sse_buf = rest
                if ev == "":
                    continue  # stray blank line (keep-alive)
                return ev.split("\n")
            d = self.read_some()
            if not d:
                if self.sse_buf.strip():
                    ev = self.sse_buf.replace("\r\n", "\n").strip("\n").split("\n")
                    self.sse_buf = ""
                    return ev
                return None
            self.sse_buf += self.utf8.decode(d)


def event_data(ev):
    """The data payload of an SSE event (lines joined), or None if it has none."""
    datas = [ln[5:].lstrip(" ") if ln.startswith("data:") else None for ln in ev]
    datas = [d for d in datas if d is not None]
    if not datas:
        return None
    return "\n".join(datas)


def read_stream(s, max_events=100000):
    """Reads all SSE events; returns (datas list[str], comments count)."""
    datas = []
    comments = 0
    for _ in range(max_events):
        ev = s.next_event()
        if ev is None:
            break
        d = event_data(ev)
        if d is None:
            comments += 1
        else:
            datas.append(d)
    return datas, comments


def stream_text(datas):
    text = ""
    for d in datas:
        if d == "[DONE]":
            continue
        try:
            obj = json.loads(d)
        except ValueError:
            raise Fail(f"stream data event is not JSON: {short(d)}")
        for ch in obj.get("choices") or []:
            c = (ch.get("delta") or {}).get("content")
            if isinstance(c, str):
                text += c
    return text


# --------------------------------------------------------------------------
# processes


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    """One llmrouter process with the test config."""

    def __init__(self, bin_path, sim_url, tmp, tag, config=None):
        self.config = config or CONFIG
        self.bin = bin_path
        self.sim_url = sim_url
        self.tmp = tmp
        self.tag = tag
        self.proc = None
        self.port = None
        self.stderr_path = os.path.join(tmp, f"{tag}.stderr")
        self.stdout_path = os.path.join(tmp, f"{tag}.stdout")
        self.errf = self.outf = None

    def start(self, probe="/readyz"):
        """Waits for probe to answer 200: /healthz for a daemon that is
        meant to be not ready (a tier without a usable model)."""
        if not os.path.exists(self.bin):
            raise RuntimeError(f"daemon binary {self.bin} does not exist (build it or set LLMROUTER_BIN)")
        self.port = free_port()
        env = dict(os.environ)
        env["SIM_URL"] = self.sim_url
        env["SIM_KEY_GOOD"] = GOOD_KEY
        self.errf = open(self.stderr_path, "wb")
        self.outf = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [self.bin, "-c", self.config, "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.outf, stderr=self.errf, stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
        deadline = time.monotonic() + 10
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_files()
                raise RuntimeError(f"daemon exited with status {self.proc.returncode} during startup\n"
                                   f"{self.stderr_tail()}")
            try:
                r = http_request(self.port, "GET", probe, timeout=2)
                last = r.status
                if r.status == 200:
                    return self
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"daemon not ready within 10 s (last {probe}: {last})\n{self.stderr_tail()}")

    def _close_files(self):
        for f in (self.errf, self.outf):
            if f is not None and not f.closed:
                f.close()

    def stop(self):
        """SIGTERM; it must exit 0 within 5 s.  Returns (ok, message)."""
        p = self.proc
        if p is None:
            return True, "not running"
        try:
            if p.poll() is not None:
                return False, f"daemon had already exited with status {p.returncode}"
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                return False, "daemon did not exit within 5 s of SIGTERM (killed)"
            if rc != 0:
                return False, f"daemon exited with status {rc} after SIGTERM"
            return True, "exit 0"
        finally:
            self._close_files()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
        raise Fail("VmRSS not found")

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=60):
        lines = self.stderr_text().splitlines()
        body = "\n".join("    | " + ln for ln in lines[-n:]) or "    | (empty)"
        return f"    daemon stderr ({self.stderr_path}):\n{body}"


class Env:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="llmrouter-it-")
        self.bin = os.environ.get("LLMROUTER_BIN") or DEFAULT_BIN
        self.sim_proc = None
        self.sim_port = None
        self.d = None  # the main Daemon
        self.runs = 0
        self.abnormal = []  # descriptions of abnormal daemon exits

    # ---- simulator
    def start_sim(self):
        self.sim_err = open(os.path.join(self.tmp, "sim.stderr"), "wb")
        self.sim_proc = subprocess.Popen(
            [sys.executable, SIM_SCRIPT, "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.sim_err, stdin=subprocess.DEVNULL, cwd=ROOT)
        result = {}

        def rd():
            result["line"] = self.sim_proc.stdout.readline()

        t = threading.Thread(target=rd, daemon=True)
        t.start()
        t.join(10)
        line = result.get("line", b"")
        m = re.match(rb"LISTENING (\d+)", line or b"")
        if not m:
            raise RuntimeError(f"simulator did not print LISTENING <port> (got {line!r}); "
                               f"stderr in {self.sim_err.name}")
        self.sim_port = int(m.group(1))
        # keep draining stdout so the simulator never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.sim_proc.stdout], daemon=True).start()

    def stop_sim(self):
        if self.sim_proc is not None and self.sim_proc.poll() is None:
            self.sim_proc.terminate()
            try:
                self.sim_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.sim_proc.kill()
                self.sim_proc.wait()

    def sim(self, method, path, body=None, headers=None, timeout=20):
        return http_request(self.sim_port, method, path, body, headers, timeout)

    def sim_stats(self):
        r = self.sim("GET", "/_sim/stats")
        check(r.status == 200, f"/_sim/stats -> {r.status}")
        return r.json

    def sim_requests(self):
        r = self.sim("GET", "/_sim/requests")
        check(r.status == 200, f"/_sim/requests -> {r.status}")
        return [x for x in r.json if not str(x.get("path", "")).startswith("/_sim")]

    def sim_reset(self):
        r = self.sim("POST", "/_sim/reset")
        check(r.status in (200, 204), f"/_sim/reset -> {r.status}")

    # ---- daemons
    def new_daemon(self, sim_url=None, tag=None, config=None):
        self.runs += 1
        return Daemon(self.bin, sim_url or f"http://127.0.0.1:{self.sim_port}", self.tmp,
                      tag or f"daemon{self.runs}", config=config)

    def start_daemon(self):
        self.d = self.new_daemon().start()

    @property
    def port(self):
        return self.d.port

    @property
    def proc(self):
        return self.d.proc

    def alive(self):
        return self.d is not None and self.d.alive()

    def rss_kb(self):
        return self.d.rss_kb()

    def stderr_text(self):
        return self.d.stderr_text()

    def stderr_tail(self, n=60):
        return self.d.stderr_tail(n)

    # ---- requests to the main daemon
    def request(self, method, path, body=None, headers=None, timeout=20):
        return http_request(self.port, method, path, body, headers, timeout)

    def get(self, path, timeout=20, headers=None):
        return self.request("GET", path, headers=headers, timeout=timeout)

    def post(self, path, body, headers=None, timeout=20):
        return self.request("POST", path, body, headers, timeout)

    def raw(self, method, path, body=None, headers=None, **kw):
        return RawHTTP(self.port, method, path, body, headers, **kw)


E = None  # the Env


def chat_body(model, content="Say hello", stream=False, **extra):
    b = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        b["stream"] = True
    b.update(extra)
    return b


def expected_reply(upstream_model, content):
    return f"Simulated reply from {upstream_model}: {content[:60]}"


def reply_content(resp):
    j = resp.json
    try:
        return j["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise Fail(f"no choices[0].message.content in {short(resp.body)}")


def check_json_ct(resp, what=""):
    ct = resp.h("content-type") or ""
    check(ct.split(";")[0].strip().lower() == "application/json",
          f"{what}content-type: expected application/json, got {ct!r}")


def check_error(resp, status, code=None, what=""):
    eq(resp.status, status, f"{what}status (body {short(resp.body)})")
    check_json_ct(resp, what)
    j = resp.json
    check(isinstance(j, dict) and isinstance(j.get("error"), dict), f"{what}no error object: {short(resp.body)}")
    err = j["error"]
    for k in ("message", "type", "param", "code"):
        check(k in err, f"{what}error object lacks key {k!r}: {short(resp.body)}")
    check(isinstance(err["message"], str) and err["message"], f"{what}error.message empty")
    if code is not None:
        eq(err["code"], code, f"{what}error.code")
    return err


def check_routed(resp, tier=None, model=None, provider=None, attempts=None, what=""):
    rid = resp.h("x-request-id")
    check(rid, f"{what}x-request-id header missing")
    for name, want in (("x-router-tier", tier), ("x-router-model", model),
                       ("x-router-provider", provider), ("x-router-attempts", attempts)):
        got = resp.h(name)
        check(got is not None and got != "", f"{what}{name} header missing")
        if want is not None:
            eq(got, str(want), f"{what}{name}")


# --------------------------------------------------------------------------
# test registry

TESTS = []


def test(fn=None, name=None):
    def reg(f):
        TESTS.append((name or f.__name__.removeprefix("test_"), f))
        return f
    return reg(fn) if fn else reg


# ---------------------------------------------------------------- basics


@test
def test_healthz_readyz():
    for p in ("/healthz", "/readyz"):
        r = E.get(p)
        eq(r.status, 200, f"GET {p} status")
        check_json_ct(r, f"{p} ")
        r.json  # parses


@test
def test_models_list():
    want = {"auto"} | set(TIERS) | set(MODELS)
    check(len(want) > 10, f"config parsing found too few names: {sorted(want)}")
    counts = {}
    for path in ("/v1/models", "/models"):
        r = E.get(path)
        eq(r.status, 200, f"GET {path} status")
        check_json_ct(r, f"{path} ")
        j = r.json
        eq(j.get("object"), "list", f"{path} object")
        data = j.get("data")
        check(isinstance(data, list), f"{path} data not a list")
        ids = set()
        for m in data:
            check(isinstance(m, dict), f"{path} entry not an object: {m!r}")
            for k in ("id", "object", "created", "owned_by"):
                check(k in m, f"{path} entry {m!r} lacks {k}")
            eq(m["object"], "model", f"{path} {m.get('id')} object")
            check(isinstance(m["created"], int) and not isinstance(m["created"], bool), f"created not int: {m!r}")
            check(isinstance(m["owned_by"], str), f"owned_by not a string: {m!r}")
            ids.add(m["id"])
        missing = want - ids
        check(not missing, f"{path} lacks {sorted(missing)}")
        counts[path] = len(data)
    eq(counts["/models"], counts["/v1/models"], "entries via /models vs /v1/models")


@test
def test_chat_basic_auto():
    content = "Say hello to the integration test"
    r = E.post("/v1/chat/completions", chat_body("auto", content))
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_json_ct(r)
    check_routed(r, tier="standard", model="good-mini", provider="good", attempts=1)
    eq(reply_content(r), expected_reply("sim-mini", content), "reply")
    eq(r.json["choices"][0].get("finish_reason"), "stop", "finish_reason")


@test
def test_chat_without_v1_prefix():
    content = "no prefix please"
    r = E.post("/chat/completions", chat_body("auto", content))
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, tier="standard", model="good-mini", attempts=1)
    eq(reply_content(r), expected_reply("sim-mini", content), "reply")


@test
def test_completions_legacy():
    for path in ("/v1/completions", "/completions"):
        r = E.post(path, {"model": "auto", "prompt": "hello there"})
        eq(r.status, 200, f"{path} status (body {short(r.body)})")
        check_json_ct(r, f"{path} ")
        check_routed(r, tier="standard", model="good-mini", attempts=1, what=f"{path} ")
        ch = (r.json.get("choices") or [{}])[0]
        check(isinstance(ch.get("text"), str) and ch["text"], f"{path} choices[0].text: {short(r.body)}")
    reqs = [q for q in E.sim_requests() if str(q.get("api_path", "")).endswith("/completions")
            and "chat" not in str(q.get("api_path"))]
    check(reqs, "simulator saw no /completions request")
    eq(reqs[-1].get("path"), "/v1/completions", "upstream path")


@test
def test_completions_stream():
    s = E.raw("POST", "/v1/completions", {"model": "auto", "prompt": "stream legacy", "stream": True}).read_head()
    try:
        eq(s.status, 200, "status")
        check((s.h("content-type") or "").startswith("text/event-stream"), f"content-type {s.h('content-type')!r}")
        check_routed(s, tier="standard", model="good-mini", attempts=1)
        datas, _ = read_stream(s)
    finally:
        s.close()
    check(datas and datas[-1] == "[DONE]", f"no [DONE] at the end: {datas[-2:]!r}")
    text = "".join((json.loads(d).get("choices") or [{}])[0].get("text", "") for d in datas[:-1])
    eq(text, expected_reply("sim-mini", "stream legacy"), "streamed text")


@test
def test_request_id_echo_and_generated():
    r = E.post("/v1/chat/completions", chat_body("auto"), headers={"x-request-id": "it-req-4242"})
    eq(r.status, 200, "status")
    eq(r.h("x-request-id"), "it-req-4242", "echoed x-request-id")
    r1 = E.post("/v1/chat/completions", chat_body("auto"))
    r2 = E.post("/v1/chat/completions", chat_body("auto"))
    a, b = r1.h("x-request-id"), r2.h("x-request-id")
    check(a and b, f"generated x-request-id missing ({a!r}, {b!r})")
    check(a != b, f"two requests got the same generated x-request-id {a!r}")


@test
def test_model_routable_name():
    r = E.post("/v1/chat/completions", chat_body("gpt-4o", "routable"))
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, tier="standard", model="good-mini", provider="good", attempts=1)
    eq(reply_content(r), expected_reply("sim-mini", "routable"), "reply")


@test
def test_model_tier_name():
    r = E.post("/v1/chat/completions", chat_body("premium", "prem"))
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, tier="premium", model="good-large", provider="good", attempts=1)
    eq(reply_content(r), expected_reply("sim-large", "prem"), "reply")


@test
def test_model_configured_name():
    r = E.post("/v1/chat/completions", chat_body("good-large", "direct"))
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, model="good-large", provider="good", attempts=1)
    eq(reply_content(r), expected_reply("sim-large", "direct"), "reply")
    # model name -> that model first, then the rest of the first tier listing it
    # (m500 is first listed in f500 = [m500, good-mini]).
    r = E.post("/v1/chat/completions", chat_body("m500", "via m500"))
    eq(r.status, 200, f"m500 status (body {short(r.body)})")
    check_routed(r, model="good-mini", attempts=2, what="m500: ")
    eq(reply_content(r), expected_reply("sim-mini", "via m500"), "m500 reply")


@test
def test_model_unknown():
    for path in ("/v1/chat/completions", "/chat/completions"):
        r = E.post(path, chat_body("no-such-model-xyz"))
        err = check_error(r, 404, "model_not_found", f"{path}: ")
        msg = err["message"]
        known = [n for n in ["auto", "standard", "good-mini", "premium"] if n in msg]
        check(known, f"error message names no known model: {msg!r}")
    r = E.post("/v1/embeddings", {"model": "no-such-embed", "input": "x"})
    check_error(r, 404, "model_not_found", "embeddings: ")


# ---------------------------------------------------------------- forwarding


def _find_upstream(reqs, model):
    found = []
    for q in reqs:
        b = q.get("body")
        try:
            obj = json.loads(b) if isinstance(b, str) else b
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("model") == model:
            found.append(q)
    return found


# model is not the first key, odd spacing, a nested "model" key, unicode both
# raw and escaped, an unusual custom field.
ODD_BODY = ('{ "messages" : [ {"role":"user","content":"h\u00e9llo w\u00f6rld \\u00e9 \\ud83d\\ude00 \U0001F600 \\"model\\": \\"auto\\""} ],'
            '\n  "x_custom": {"a":[1,2], "model":"keep-me"},\t"temperature": 0.25,'
            ' "model" :  "auto" , "max_tokens":17, "n":1, "stop":null}')
ODD_EXPECTED = ODD_BODY.replace('"model" :  "auto"', '"model" :  "sim-mini"')


@test
def test_forward_body_fields_unchanged():
    check(ODD_EXPECTED != ODD_BODY, "test bug: replacement did not apply")
    E.sim_reset()
    r = E.post("/v1/chat/completions", ODD_BODY.encode("utf-8"), headers={"Authorization": CLIENT_AUTH})
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, tier="standard", model="good-mini", provider="good", attempts=1)
    reqs = E.sim_requests()
    ups = _find_upstream(reqs, "sim-mini")
    eq(len(ups), 1, "upstream requests with model sim-mini")
    up = ups[0]
    got = up.get("body")
    if isinstance(got, str):
        eq(got, ODD_EXPECTED, "upstream body (byte-for-byte except model)")
    else:
        # /_sim/requests holds the parsed body: compare values and key order
        # (the byte-exact check is forward_body_byte_for_byte).
        want = json.loads(ODD_EXPECTED)
        eq(got, want, "upstream body (parsed)")
        eq(list(got), list(want), "upstream top-level key order")
    eq(up.get("path"), "/v1/chat/completions", "upstream path")
    eq(up.get("method", "POST"), "POST", "upstream method")
    hdrs = {k.lower(): v for k, v in (up.get("headers") or {}).items()}
    eq(hdrs.get("authorization"), "Bearer " + GOOD_KEY, "upstream authorization header")
    reply = reply_content(r)
    check(reply.startswith("Simulated reply from sim-mini: h\u00e9llo w\u00f6rld \u00e9 \U0001F600 \U0001F600"),
          f"reply does not echo the unicode text: {reply!r}")


class Recorder:
    """A raw HTTP/1.1 upstream stand-in: records every request's exact bytes and
    answers each with a canned chat completion.  Used to check the forwarded
    body byte for byte (the simulator only keeps the parsed body)."""

    REPLY = json.dumps({
        "id": "chatcmpl-rec", "object": "chat.completion", "created": 1700000000, "model": "recorded",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "recorded reply"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode()

    def __init__(self):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.requests = []  # [(request line, {header: value}, raw head bytes, raw body bytes)]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.srv.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(10)
        buf = b""

        def need(pred):
            nonlocal buf
            while not pred():
                d = c.recv(65536)
                if not d:
                    raise EOFError
                buf += d

        try:
            while True:
                need(lambda: b"\r\n\r\n" in buf)
                i = buf.index(b"\r\n\r\n")
                head, buf = buf[:i], buf[i + 4:]
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {}
                for ln in lines[1:]:
                    k, _, v = ln.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                if "chunked" in hdrs.get("transfer-encoding", "").lower():
                    body = b""
                    while True:
                        need(lambda: b"\r\n" in buf)
                        j = buf.index(b"\r\n")
                        size = int(buf[:j].split(b";")[0], 16)
                        buf = buf[j + 2:]
                        need(lambda: len(buf) >= size + 2)
                        body += buf[:size]
                        buf = buf[size + 2:]
                        if size == 0:
                            break
                else:
                    n = int(hdrs.get("content-length", "0"))
                    need(lambda: len(buf) >= n)
                    body, buf = buf[:n], buf[n:]
                self.requests.append((lines[0], hdrs, head, body))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(self.REPLY), self.REPLY))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            c.close()


@test
def test_forward_body_byte_for_byte():
    """A second daemon whose upstream is a raw recorder checks that the body is
    the client's bytes with only the value of top-level "model" replaced."""
    big = "y" * 50000
    cases = [
        (ODD_BODY, ODD_EXPECTED),
        ('{"model":"auto","messages":[{"role":"user","content":"hi"}]}',
         '{"model":"sim-mini","messages":[{"role":"user","content":"hi"}]}'),
        ('{"messages":[{"role":"user","content":"esc"}],"model":"\\u0061uto"}',
         '{"messages":[{"role":"user","content":"esc"}],"model":"sim-mini"}'),
        ('{"model":"premium","messages":[{"role":"user","content":"' + big + '"}],"x":{"model":"auto"}}',
         '{"model":"sim-large","messages":[{"role":"user","content":"' + big + '"}],"x":{"model":"auto"}}'),
        ('{"model":\t"gpt-4o"\n,"messages":[{"role":"user","content":"routable"}],"user":"u-1"}',
         '{"model":\t"sim-mini"\n,"messages":[{"role":"user","content":"routable"}],"user":"u-1"}'),
    ]
    rec = Recorder()
    d = E.new_daemon(sim_url=f"http://127.0.0.1:{rec.port}", tag="daemon-recorder")
    started = False
    try:
        d.start()
        started = True
        for i, (body, expected) in enumerate(cases):
            n0 = len(rec.requests)
            r = http_request(d.port, "POST", "/v1/chat/completions", body.encode("utf-8"),
                             headers={"Authorization": CLIENT_AUTH})
            eq(r.status, 200, f"case {i} status (body {short(r.body)})")
            eq(reply_content(r), "recorded reply", f"case {i} reply")
            eq(len(rec.requests) - n0, 1, f"case {i}: upstream requests")
            line, hdrs, head, raw = rec.requests[-1]
            eq(line.split(" ")[:2], ["POST", "/v1/chat/completions"], f"case {i} upstream request line")
            if raw != expected.encode("utf-8"):
                e = expected.encode("utf-8")
                k = next((j for j in range(min(len(raw), len(e))) if raw[j] != e[j]), min(len(raw), len(e)))
                raise Fail(f"case {i}: upstream body differs at byte {k}: expected ...{e[max(0, k - 20):k + 40]!r}, "
                           f"got ...{raw[max(0, k - 20):k + 40]!r} (lengths {len(e)} vs {len(raw)})")
            eq(hdrs.get("authorization"), "Bearer " + GOOD_KEY, f"case {i} upstream authorization")
            check(CLIENT_SECRET.encode() not in head, f"case {i}: client secret forwarded: {short(head)}")
            check_routed(r, attempts=1, what=f"case {i}: ")
    finally:
        rec.close()
        if started:
            ok, msg = d.stop()
        else:
            d.kill()
            ok, msg = True, ""
    if not ok:
        E.abnormal.append(f"recorder daemon: {msg}")
        print(d.stderr_tail(), file=sys.stderr)
    check(ok, f"second daemon: {msg}")


@test
def test_forward_keyless_and_no_client_auth_leak():
    E.sim_reset()
    r = E.post("/v1/chat/completions", chat_body("keyless", "keyless hi"),
               headers={"Authorization": CLIENT_AUTH})
    eq(r.status, 200, f"keyless status (body {short(r.body)})")
    check_routed(r, tier="keyless", model="keyless-mini", provider="keyless", attempts=1)
    eq(reply_content(r), expected_reply("sim-keyless", "keyless hi"), "reply")
    for p in ("/v1/chat/completions", "/v1/embeddings"):
        body = chat_body("auto") if "chat" in p else {"model": "embed-small", "input": "x"}
        r = E.post(p, body, headers={"Authorization": CLIENT_AUTH})
        eq(r.status, 200, f"{p} status (body {short(r.body)})")
    s = E.post("/v1/chat/completions", chat_body("auto", stream=True), headers={"Authorization": CLIENT_AUTH})
    eq(s.status, 200, "stream status")
    reqs = E.sim_requests()
    ups = _find_upstream(reqs, "sim-keyless")
    eq(len(ups), 1, "upstream requests for sim-keyless")
    hdrs = {k.lower(): v for k, v in (ups[0].get("headers") or {}).items()}
    check("authorization" not in hdrs, f"keyless provider got an authorization header: {hdrs.get('authorization')!r}")
    check(len(reqs) >= 4, f"expected >= 4 recorded upstream requests, got {len(reqs)}")
    for q in reqs:
        blob = json.dumps(q.get("headers") or {})
        check(CLIENT_SECRET not in blob, f"client secret reached upstream in headers: {blob}")
    for q in reqs:
        if q in ups:
            continue
        hdrs = {k.lower(): v for k, v in (q.get("headers") or {}).items()}
        eq(hdrs.get("authorization"), "Bearer " + GOOD_KEY, f"authorization on {q.get('path')}")
    check(CLIENT_SECRET not in E.stderr_text(), "client secret appears in daemon stderr")


@test
def test_cost_header():
    r = E.post("/v1/chat/completions", chat_body("auto", "cost me something"))
    eq(r.status, 200, "status")
    check_routed(r, model="good-mini")
    cost = r.h("x-router-cost-usd")
    check(cost, "x-router-cost-usd header missing")
    check(re.fullmatch(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", cost), f"cost not a decimal string: {cost!r}")
    u = r.json.get("usage") or {}
    pt, ct = u.get("prompt_tokens"), u.get("completion_tokens")
    check(isinstance(pt, int) and isinstance(ct, int) and pt + ct > 0, f"usage: {u!r}")
    want = pt * 0.15e-6 + ct * 0.60e-6
    check(abs(float(cost) - want) <= 1e-9, f"x-router-cost-usd {cost} != {want:.12f} (usage {u})")
    # a different model has a different price
    r = E.post("/v1/chat/completions", chat_body("premium", "cost me something"))
    eq(r.status, 200, "premium status")
    u = r.json.get("usage") or {}
    want = u.get("prompt_tokens", 0) * 2.5e-6 + u.get("completion_tokens", 0) * 10e-6
    cost = r.h("x-router-cost-usd")
    check(cost and abs(float(cost) - want) <= 1e-9, f"premium x-router-cost-usd {cost} != {want:.12f} (usage {u})")


# ---------------------------------------------------------------- streaming


@test
def test_stream_basic():
    content = "stream me please"
    expected = reply_content(E.post("/v1/chat/completions", chat_body("auto", content)))
    s = E.raw("POST", "/v1/chat/completions", chat_body("auto", content, stream=True)).read_head()
    try:
        eq(s.status, 200, "status")
        ct = s.h("content-type") or ""
        check(ct.startswith("text/event-stream"), f"content-type {ct!r}")
        check_routed(s, tier="standard", model="good-mini", provider="good", attempts=1)
        first = s.next_event()
        check(first is not None and event_data(first) is not None, f"first event {first!r}")
        datas, _ = read_stream(s)
        datas = [event_data(first)] + datas
    finally:
        s.close()
    check(datas and datas[-1] == "[DONE]", f"stream does not end with data: [DONE] (last {datas[-1:]!r})")
    eq(datas.count("[DONE]"), 1, "number of [DONE] events")
    eq(stream_text(datas), expected, "concatenated delta.content")
    check(len(datas) >= 7, f"expected role + 5 content + finish + [DONE] events, got {len(datas)}")
    for d in datas[:-1]:
        obj = json.loads(d)
        check("error" not in obj, f"error event in healthy stream: {d}")


@test
def test_stream_without_v1_and_usage():
    s = E.raw("POST", "/chat/completions",
              chat_body("auto", "usage please", stream=True, stream_options={"include_usage": True})).read_head()
    try:
        eq(s.status, 200, "status")
        datas, _ = read_stream(s)
    finally:
        s.close()
    check(datas and datas[-1] == "[DONE]", f"no [DONE] at end: {datas[-2:]!r}")
    objs = [json.loads(d) for d in datas[:-1]]
    with_usage = [o for o in objs if o.get("usage")]
    eq(len(with_usage), 1, "chunks carrying usage")


@test
def test_stream_passthrough_timing():
    check("slowstream" in TIERS, "tier slowstream missing from the test config")
    s = E.raw("POST", "/v1/chat/completions", chat_body("slowstream", "slow one", stream=True)).read_head()
    try:
        eq(s.status, 200, "status")
        times = []
        for _ in range(12):
            ev = s.next_event()
            check(ev is not None, "stream ended early")
            if event_data(ev) is not None:
                times.append(time.monotonic() - s.t0)
        check(times[0] < 1.5, f"first event only after {times[0]:.2f} s")
        spread = times[-1] - times[0]
        # 400 chunks at 50 ms each upstream: events must trickle through as they
        # arrive, not be batched.
        check(spread >= 0.3, f"12 events arrived within {spread:.3f} s (buffered, not passed through)")
    finally:
        s.close()


# ---------------------------------------------------------------- failover

def wait_sim(pred, timeout=2.0):
    """Polls /_sim/stats until pred(stats) holds or timeout; returns the last stats."""
    t0 = time.monotonic()
    while True:
        st = E.sim_stats()
        if pred(st) or time.monotonic() - t0 > timeout:
            return st
        time.sleep(0.05)


FAILOVER_TIERS = ["f429", "f500", "f503", "f401", "freset", "fslow", "fbadjson", "fdown"]
_last_m429 = [0.0]
# The simulator only notices the abandoned fslow stream when its 5 s delay is
# over (it then counts an aborted stream); the disconnect test waits for that.
_last_slow_stream = [0.0]


def _m429_cooldown():
    # p429 says Retry-After: 1.  Give any cool-down logic in the daemon time to
    # expire so every test that lists m429 really tries it.
    wait = _last_m429[0] + 1.2 - time.monotonic()
    if wait > 0:
        time.sleep(wait)


def _mark_m429():
    _last_m429[0] = time.monotonic()


def _check_failover_attempts(resp, tier):
    # freset's RST on a reused keep-alive connection looks like the idle close
    # race (stale_connection): retried once on a new connection, then failed
    # over, so 3 attempts; 2 when the first attempt had a new connection
    got = resp.h("x-router-attempts")
    if tier == "freset":
        check(got in ("2", "3"), f"x-router-attempts: expected 2 or 3, got {got!r}")
    else:
        eq(got, "2", "x-router-attempts")


def make_failover_test(tier, streamed):
    def fn():
        check(tier in TIERS, f"tier {tier} missing from config")
        if "m429" in TIERS[tier]:
            _m429_cooldown()
        content = f"failover via {tier}"
        t0 = time.monotonic()
        try:
            if not streamed:
                r = E.post("/v1/chat/completions", chat_body(tier, content))
                eq(r.status, 200, f"status (body {short(r.body)})")
                check_json_ct(r)
                check_routed(r, tier=tier, model="good-mini", provider="good")
                _check_failover_attempts(r, tier)
                eq(reply_content(r), expected_reply("sim-mini", content), "reply")
            else:
                s = E.raw("POST", "/v1/chat/completions", chat_body(tier, content, stream=True)).read_head()
                try:
                    if s.status != 200:
                        raise Fail(f"status {s.status} (body {short(s.read_all())})")
                    check((s.h("content-type") or "").startswith("text/event-stream"),
                          f"content-type {s.h('content-type')!r}")
                    check_routed(s, tier=tier, model="good-mini", provider="good")
                    _check_failover_attempts(s, tier)
                    datas, _ = read_stream(s)
                finally:
                    s.close()
                check(datas and datas[-1] == "[DONE]", f"stream does not end with [DONE]: {datas[-2:]!r}")
                eq(stream_text(datas), expected_reply("sim-mini", content), "streamed text")
                for d in datas[:-1]:
                    check("error" not in json.loads(d), f"error event leaked into the stream: {d}")
        finally:
            if "m429" in TIERS.get(tier, []):
                _mark_m429()
        el = time.monotonic() - t0
        if tier == "fslow" and streamed:
            _last_slow_stream[0] = time.monotonic()
        if tier == "fslow":
            check(el < 3.0, f"fslow took {el:.2f} s (first byte timeout is 400 ms)")
    return fn


for _t in FAILOVER_TIERS:
    test(make_failover_test(_t, False), name=f"failover_{_t}")
    test(make_failover_test(_t, True), name=f"failover_{_t}_stream")


# error_event=1 on a non-streamed request is a plain 500 in the simulator
test(make_failover_test("ferrevent", False), name="failover_ferrevent")
test(make_failover_test("ferrevent", True), name="failover_ferrevent_stream")


@test
def test_fkeepalive_not_a_failure():
    content = "keepalive please"
    r = E.post("/v1/chat/completions", chat_body("fkeepalive", content))
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, tier="fkeepalive", model="mkeepalive", provider="keepalive", attempts=1)
    eq(reply_content(r), expected_reply("sim-keepalive", content), "reply")


@test
def test_fkeepalive_stream_not_a_failure():
    content = "keepalive stream"
    s = E.raw("POST", "/v1/chat/completions", chat_body("fkeepalive", content, stream=True)).read_head()
    try:
        eq(s.status, 200, "status")
        check_routed(s, tier="fkeepalive", model="mkeepalive", provider="keepalive", attempts=1)
        datas, _ = read_stream(s)
    finally:
        s.close()
    check(datas and datas[-1] == "[DONE]", f"no [DONE]: {datas[-2:]!r}")
    eq(stream_text(datas), expected_reply("sim-keepalive", content), "streamed text")


def _f400(streamed):
    body = chat_body("f400", "bad request upstream", stream=streamed)
    direct_body = dict(body, model="sim-400")
    direct = E.sim("POST", "/sim/status=400/v1/chat/completions", direct_body)
    eq(direct.status, 400, "test precondition: simulator status=400 returns 400")
    E.sim_reset()
    r = E.post("/v1/chat/completions", body)
    eq(r.status, 400, f"status (body {short(r.body)})")
    check_json_ct(r)
    check_routed(r, model="m400", attempts=1)
    eq(r.json, direct.json, "error body returned as is")
    reqs = E.sim_requests()
    eq(len(reqs), 1, f"upstream requests (no failover) {[q.get('path') for q in reqs]}")


@test
def test_f400_returned_as_is():
    _f400(False)


@test
def test_f400_stream_returned_as_is():
    _f400(True)


@test
def test_fcut_nonstream_fails_over():
    content = "cut me"
    r = E.post("/v1/chat/completions", chat_body("fcut", content))
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, tier="fcut", model="good-mini", attempts=2)
    eq(reply_content(r), expected_reply("sim-mini", content), "reply")


@test
def test_fcut_stream_error_event_no_done():
    E.sim_reset()
    s = E.raw("POST", "/v1/chat/completions", chat_body("fcut", "cut stream", stream=True)).read_head()
    try:
        eq(s.status, 200, "status")
        check_routed(s, tier="fcut", model="mcut", attempts=1)
        datas, _ = read_stream(s)
    finally:
        s.close()
    check("[DONE]" not in datas, f"cut stream carries data: [DONE]: {datas!r}")
    check(len(datas) >= 2, f"expected content events then an error event, got {datas!r}")
    last = json.loads(datas[-1])
    check(isinstance(last.get("error"), dict) and last["error"].get("message"),
          f"last event is not an error event: {datas[-1]}")
    content_events = [d for d in datas[:-1] if "choices" in json.loads(d)]
    check(content_events, f"no content events before the error: {datas!r}")
    check(stream_text(datas[:-1]), "no content text before the error")
    reqs = E.sim_requests()
    check(not _find_upstream(reqs, "sim-mini"), "daemon failed over after the first byte went out")


def _allbad(streamed):
    _m429_cooldown()
    try:
        r = E.post("/v1/chat/completions", chat_body("allbad", "nothing works", stream=streamed),
                   headers={"Authorization": CLIENT_AUTH})
    finally:
        _mark_m429()
    err = check_error(r, 502)
    text = r.body.decode("utf-8", "replace")
    for m in ("m500", "mdown", "m429"):
        check(m in text, f"{m} not mentioned in the 502 body: {short(text, 600)}")
    check(GOOD_KEY not in text and CLIENT_SECRET not in text, "key material in the 502 body")
    eq((r.h("x-should-retry") or "").lower(), "false", "x-should-retry header")
    eq(r.h("x-router-attempts"), "3", "x-router-attempts")


@test
def test_allbad_502():
    _allbad(False)


@test
def test_allbad_stream_502():
    _allbad(True)


# ---------------------------------------------------------------- errors


@test
def test_error_malformed_json():
    for body in (b"{", b'{"model": "auto", "messages": [', b"not json at all", b'{"model":"auto",}',
                 b'{"model":"auto","messages":[{"role":"user","content":"x"}]} trailing', b""):
        r = E.post("/v1/chat/completions", body)
        check_error(r, 400, what=f"body {body[:30]!r}: ")


@test
def test_error_body_not_object():
    for body in (b"[]", b'"a string"', b"42", b"null", b"true",
                 b'[{"model":"auto","messages":[{"role":"user","content":"x"}]}]'):
        r = E.post("/v1/chat/completions", body)
        check_error(r, 400, what=f"body {body[:30]!r}: ")


@test
def test_error_messages_invalid():
    cases = [
        {"model": "auto"},
        {"model": "auto", "messages": []},
        {"model": "auto", "messages": "hello"},
        {"model": "auto", "messages": {"role": "user", "content": "x"}},
        {"model": "auto", "messages": None},
        {"model": "auto", "messages": 5},
    ]
    for b in cases:
        r = E.post("/v1/chat/completions", b)
        check_error(r, 400, what=f"{json.dumps(b)}: ")
    r = E.post("/chat/completions", {"model": "auto"})
    check_error(r, 400, what="without /v1: ")


@test
def test_error_missing_model():
    for b in ({"messages": [{"role": "user", "content": "x"}]},):
        r = E.post("/v1/chat/completions", b)
        check_error(r, 400, what="chat: ")
    r = E.post("/v1/embeddings", {"input": "x"})
    check_error(r, 400, what="embeddings: ")


def _big_body(total):
    pad = "x" * (total - 100)
    b = json.dumps(chat_body("auto", pad)).encode()
    return b


@test
def test_body_just_under_limit_accepted():
    b = _big_body(MAX_BODY - 2000)
    check(len(b) < MAX_BODY, "test bug")
    r = E.post("/v1/chat/completions", b)
    eq(r.status, 200, f"status for {len(b)}-byte body (body {short(r.body)})")


def _read_raw_response(s):
    try:
        s.read_head()
        body = s.read_all()
    except (ConnectionResetError, BrokenPipeError) as e:
        extra = f" (sending the body had failed first: {s.send_error!r})" if s.send_error else ""
        raise Fail(f"connection reset before a complete response was read ({e!r}){extra}")
    return Resp(s.status, list(s.headers.items()), body, 0)


@test
def test_error_413_content_length():
    b = _big_body(MAX_BODY + 5000)
    check(len(b) > MAX_BODY, "test bug")
    r = E.post("/v1/chat/completions", b)
    check_error(r, 413)
    # again on a raw socket, reading whatever comes back
    s = E.raw("POST", "/v1/chat/completions", b)
    try:
        check_error(_read_raw_response(s), 413, what="raw: ")
    finally:
        s.close()


@test
def test_error_413_chunked():
    b = _big_body(MAX_BODY * 2)
    pieces = [b[i:i + 8192] for i in range(0, len(b), 8192)]
    s = E.raw("POST", "/v1/chat/completions", chunked_body=pieces)
    try:
        check_error(_read_raw_response(s), 413, what="chunked: ")
    finally:
        s.close()


@test
def test_chunked_small_body_accepted():
    b = json.dumps(chat_body("auto", "chunked hello")).encode()
    pieces = [b[i:i + 7] for i in range(0, len(b), 7)]
    s = E.raw("POST", "/v1/chat/completions", chunked_body=pieces)
    try:
        s.read_head()
        body = s.read_all()
    finally:
        s.close()
    eq(s.status, 200, f"status (body {short(body)})")
    eq(json.loads(body)["choices"][0]["message"]["content"], expected_reply("sim-mini", "chunked hello"), "reply")


@test
def test_error_unknown_path():
    for m, p in (("GET", "/v1/nope"), ("POST", "/v1/nope"), ("GET", "/nope/deeper"), ("GET", "/v2/models")):
        r = E.request(m, p, body=b"{}" if m == "POST" else None)
        check_error(r, 404, what=f"{m} {p}: ")


@test
def test_error_wrong_method():
    for m, p in (("GET", "/v1/chat/completions"), ("DELETE", "/v1/models"), ("GET", "/chat/completions"),
                 ("PUT", "/v1/embeddings"), ("GET", "/v1/completions")):
        r = E.request(m, p)
        check_error(r, 405, what=f"{m} {p}: ")


# ---------------------------------------------------------------- embeddings


def _decode_b64_f32(s):
    raw = base64.b64decode(s, validate=True)
    check(len(raw) % 4 == 0, f"base64 payload length {len(raw)} not a multiple of 4")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _direct_floats(prefix, upstream_model, inputs):
    r = E.sim("POST", f"{prefix}/v1/embeddings",
              {"model": upstream_model, "input": inputs, "encoding_format": "float"})
    eq(r.status, 200, "direct simulator embeddings status")
    vecs = [d["embedding"] for d in sorted(r.json["data"], key=lambda d: d["index"])]
    for v in vecs:
        check(isinstance(v, list), "direct simulator float embedding not a list")
    return vecs


def _close_vec(got, want, what):
    eq(len(got), len(want), f"{what} length")
    for i, (a, b) in enumerate(zip(got, want)):
        check(a == _f32(b) or abs(a - b) <= 1e-6 * max(1.0, abs(b)), f"{what}[{i}]: {a!r} != {b!r}")


@test
def test_embeddings_base64():
    inputs = ["hello", "world", "h\u00e9llo \U0001F600"]
    want = _direct_floats("", "sim-embed", inputs)
    for path in ("/v1/embeddings", "/embeddings"):
        r = E.post(path, {"model": "embed-small", "input": inputs, "encoding_format": "base64"})
        eq(r.status, 200, f"{path} status (body {short(r.body)})")
        check_json_ct(r, f"{path} ")
        check_routed(r, model="embed-small", attempts=1, what=f"{path} ")
        data = r.json.get("data")
        check(isinstance(data, list) and len(data) == 3, f"{path} data: {short(r.body)}")
        for i, d in enumerate(sorted(data, key=lambda d: d["index"])):
            check(isinstance(d.get("embedding"), str), f"{path} data[{i}].embedding not a base64 string")
            v = _decode_b64_f32(d["embedding"])
            eq(len(v), 8, f"{path} data[{i}] float32 count")
            _close_vec(v, want[i], f"{path} data[{i}]")


@test
def test_embeddings_floats_converted_to_base64():
    inputs = ["alpha", "beta", "gamma delta"]
    want = _direct_floats("/sim/no_base64=1", "sim-embed-floats", inputs)
    E.sim_reset()
    r = E.post("/v1/embeddings", {"model": "embed-floats", "input": inputs, "encoding_format": "base64"})
    eq(r.status, 200, f"status (body {short(r.body)})")
    check_routed(r, model="embed-floats", attempts=1)
    data = sorted(r.json.get("data") or [], key=lambda d: d.get("index", 0))
    eq(len(data), 3, "number of embeddings")
    for i, d in enumerate(data):
        check(isinstance(d.get("embedding"), str),
              f"data[{i}].embedding is {type(d.get('embedding')).__name__}, expected base64 string")
        v = _decode_b64_f32(d["embedding"])
        eq(len(v), 8, f"data[{i}] float32 count")
        for j, (a, b) in enumerate(zip(v, want[i])):
            eq(a, _f32(b), f"data[{i}][{j}] (float32 of upstream float)")
    for k in ("object", "model", "usage"):
        check(k in r.json, f"response lacks {k!r}: {short(r.body)}")
    # the upstream got the client's body with only the model replaced
    ups = _find_upstream(E.sim_requests(), "sim-embed-floats")
    eq(len(ups), 1, "upstream requests")
    b = ups[0]["body"]
    b = json.loads(b) if isinstance(b, str) else b
    eq(b.get("encoding_format"), "base64", "upstream encoding_format")


@test
def test_embeddings_floats_passthrough():
    inputs = ["alpha", "beta"]
    want = _direct_floats("/sim/no_base64=1", "sim-embed-floats", inputs)
    for model, extra in (("embed-floats", {}), ("embed-floats", {"encoding_format": "float"}),
                         ("embeddings-floats", {})):
        r = E.post("/v1/embeddings", dict({"model": model, "input": inputs}, **extra))
        eq(r.status, 200, f"{model} {extra} status (body {short(r.body)})")
        data = sorted(r.json.get("data") or [], key=lambda d: d.get("index", 0))
        eq(len(data), 2, "number of embeddings")
        for i, d in enumerate(data):
            check(isinstance(d.get("embedding"), list), f"{model} {extra}: data[{i}].embedding not a list")
            eq(d["embedding"], want[i], f"{model} {extra}: data[{i}] floats")
    want2 = _direct_floats("", "sim-embed", inputs)
    r = E.post("/v1/embeddings", {"model": "embeddings", "input": inputs})
    eq(r.status, 200, "tier embeddings status")
    check_routed(r, tier="embeddings", model="embed-small", attempts=1)
    data = sorted(r.json.get("data") or [], key=lambda d: d.get("index", 0))
    eq([d["embedding"] for d in data], want2, "tier embeddings floats")


# ---------------------------------------------------------------- connections


@test
def test_client_keepalive():
    conn = http.client.HTTPConnection("127.0.0.1", E.port, timeout=20)
    try:
        sock = None
        seq = [("GET", "/healthz", None), ("POST", "/v1/chat/completions", chat_body("auto", "one")),
               ("GET", "/v1/models", None), ("POST", "/v1/chat/completions", chat_body("auto", "two")),
               ("POST", "/v1/embeddings", {"model": "embed-small", "input": "k"}),
               ("POST", "/v1/chat/completions", chat_body("premium", "three")),
               ("GET", "/readyz", None),
               # last: a close-delimited stream would be legitimate HTTP
               ("POST", "/v1/chat/completions", chat_body("auto", "four", stream=True))]
        for i, (m, p, b) in enumerate(seq):
            body = json.dumps(b).encode() if b is not None else None
            conn.request(m, p, body=body, headers={"Content-Type": "application/json"} if body else {})
            if sock is None:
                sock = conn.sock
            else:
                check(conn.sock is sock, f"request {i} ({m} {p}) needed a new connection")
            r = conn.getresponse()
            data = r.read()
            eq(r.status, 200, f"request {i} {m} {p} status (body {short(data)})")
            if i < len(seq) - 1:
                check(not r.will_close, f"daemon closed the connection after request {i} ({m} {p})")
            if b and b.get("stream"):
                check(data.rstrip().endswith(b"data: [DONE]"), f"stream {i} did not end with [DONE]")
    finally:
        conn.close()


@test
def test_pipelined_requests():
    one = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    body = json.dumps(chat_body("auto", "piped")).encode()
    two = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    three = b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", E.port), timeout=10)
    try:
        s.sendall(one + two + three)
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3})", data)
    eq([int(x) for x in statuses], [200, 200, 200], f"statuses of pipelined requests ({short(data)})")
    check(b"Simulated reply from sim-mini: piped" in data, "pipelined chat reply missing")


@test
def test_client_disconnect_aborts_upstream():
    check("slowstream" in TIERS, "tier slowstream missing from the test config")
    wait = _last_slow_stream[0] + 5.6 - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    before = wait_sim(lambda st: st["active_streams"] == 0)
    check(before["active_streams"] == 0, f"simulator has active streams before the test: {before}")
    s = E.raw("POST", "/v1/chat/completions", chat_body("slowstream", "abort me", stream=True)).read_head()
    try:
        eq(s.status, 200, "status")
        n = 0
        while n < 3:
            ev = s.next_event()
            check(ev is not None, "stream ended early")
            if event_data(ev) is not None:
                n += 1
        mid = E.sim_stats()
        check(mid["active_streams"] >= 1, f"simulator shows no active stream: {mid}")
    finally:
        s.close()
    t0 = time.monotonic()
    st = wait_sim(lambda st: st["streams_aborted"] >= before["streams_aborted"] + 1
                  and st["active_streams"] == 0, timeout=2.0)
    check(time.monotonic() - t0 <= 2.3, "took over 2 s")
    eq(st["streams_aborted"] - before["streams_aborted"], 1, f"streams_aborted increase within 2 s ({st})")
    eq(st["active_streams"], 0, "active_streams after the abort")
    check(E.alive(), "daemon died")
    eq(E.get("/healthz").status, 200, "healthz after disconnect")


@test
def test_backpressure_bigstream():
    check("bigstream" in TIERS, "tier bigstream missing from the test config")
    time.sleep(0.3)
    rss0 = E.rss_kb()
    st0 = E.sim_stats()
    s = E.raw("POST", "/v1/chat/completions", chat_body("bigstream", "big", stream=True),
              rcvbuf=64 * 1024, timeout=30).read_head()
    try:
        eq(s.status, 200, "status")
        got = 0
        while got < 4096:
            d = s.read_some(4096)
            check(d, "stream ended within the first 4 KB")
            got += len(d)
        # stop reading for 3 s
        time.sleep(1.5)
        b1 = E.sim_stats()["bytes_streamed"] - st0["bytes_streamed"]
        rss1 = E.rss_kb()
        time.sleep(1.5)
        b2 = E.sim_stats()["bytes_streamed"] - st0["bytes_streamed"]
        rss2 = E.rss_kb()
        grow_mb = (max(rss1, rss2) - rss0) / 1024
        detail = (f"rss before {rss0 // 1024} MB, during stall {rss1 // 1024}/{rss2 // 1024} MB; "
                  f"upstream bytes streamed {b1 / MB:.1f} MB at 1.5 s, {b2 / MB:.1f} MB at 3 s")
        if VERBOSE[0]:
            print("#   " + detail, flush=True)
        check(grow_mb <= 20, f"daemon RSS grew by {grow_mb:.1f} MB while the client was not reading ({detail})")
        check(b2 < 40 * MB, f"upstream streamed {b2 / MB:.1f} MB while the client was not reading ({detail})")
        check(b2 - b1 < 2 * MB, f"upstream kept streaming while the client was not reading ({detail})")
        # now drain everything
        tail = b""
        total = got
        while True:
            d = s.read_some()
            if not d:
                break
            total += len(d)
            tail = (tail + d)[-200:]
    finally:
        s.close()
    check(total >= 50000 * 1000, f"only {total} bytes of stream received")
    check(tail.replace(b"\r\n", b"\n").rstrip(b"\n").endswith(b"data: [DONE]"),
          f"big stream does not end with [DONE]: {tail[-80:]!r}")
    st = wait_sim(lambda st: st["active_streams"] == 0)
    eq(st["active_streams"], 0, "simulator active_streams after big stream")


def _one_stream(i, results):
    try:
        content = f"concurrent {i}"
        s = E.raw("POST", "/v1/chat/completions", chat_body("auto", content, stream=True), timeout=30).read_head()
        try:
            if s.status != 200:
                results[i] = f"status {s.status}"
                return
            datas, _ = read_stream(s)
        finally:
            s.close()
        if not datas or datas[-1] != "[DONE]":
            results[i] = f"no [DONE] ({datas[-2:]!r})"
        elif stream_text(datas) != expected_reply("sim-mini", content):
            results[i] = f"wrong text {stream_text(datas)!r}"
        else:
            results[i] = True
    except Exception as e:  # noqa: BLE001
        results[i] = repr(e)


@test
def test_concurrent_50_streams():
    n = 50
    results = [None] * n
    threads = [threading.Thread(target=_one_stream, args=(i, results)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bad = [(i, r) for i, r in enumerate(results) if r is not True]
    check(not bad, f"{len(bad)}/{n} concurrent streams failed, e.g. {bad[:3]}")


@test
def test_concurrent_mixed_nonstream():
    n = 40
    results = [None] * n

    def one(i):
        try:
            tier = ["auto", "premium", "f500", "fdown"][i % 4]
            r = E.post("/v1/chat/completions", chat_body(tier, f"mixed {i}"), timeout=30)
            want = "sim-large" if tier == "premium" else "sim-mini"
            results[i] = True if r.status == 200 and reply_content(r) == expected_reply(want, f"mixed {i}") \
                else f"{tier}: {r.status} {short(r.body, 120)}"
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bad = [(i, r) for i, r in enumerate(results) if r is not True]
    check(not bad, f"{len(bad)}/{n} concurrent requests failed, e.g. {bad[:3]}")


# ---------------------------------------------------------------- robustness


def _mutations(rng):
    base = json.dumps(chat_body("auto", "fuzz")).encode()
    out = []
    for _ in range(150):
        b = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(4)
            pos = rng.randrange(len(b) + 1)
            if op == 0 and b:
                del b[min(pos, len(b) - 1)]
            elif op == 1:
                b.insert(pos, rng.randrange(256))
            elif op == 2 and b:
                b[min(pos, len(b) - 1)] = rng.choice(b'{}[]",:\\0123456789.eE+-ntfu \x00\xff\xc3')
            else:
                b = b[:pos]
        out.append(bytes(b))
    for _ in range(60):
        out.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))))
    odd_values = [None, True, 0, -1, 1e308, "", "x" * 5000, [], {}, [[]], {"a": None}, "\u0000", -0.0]
    for _ in range(60):
        d = chat_body("auto", "fuzz")
        key = rng.choice(["model", "messages", "stream", "temperature", "n", "stream_options", "max_tokens"])
        d[key] = rng.choice(odd_values)
        if rng.random() < 0.3:
            d["messages"] = [rng.choice(odd_values)]
        if rng.random() < 0.2:
            d["messages"] = [{"role": rng.choice(odd_values), "content": rng.choice(odd_values)}]
        out.append(json.dumps(d).encode())
    special = [
        b'{"model":"auto","messages":[{"role":"user","content":"\xff\xfe\xc3\x28 bad utf8"}]}',
        b'{"model":"\xc3\x28","messages":[{"role":"user","content":"x"}]}',
        b'{"model":"auto","messages":[{"role":"user","content":"\\ud800 lone surrogate"}]}',
        b'{"model":"auto","messages":[{"role":"user","content":"\\u12"}]}',
        b'{"model":"auto","messages":[{"role":"user","content":"x"}],"model":"premium"}',
        b'{"model":"auto","messages":[{"role":"user","content":"' + b"\\" * 999 + b'"}]}',
        b'{"model":"auto","messages":[{"role":"user","content":1e99999}]}',
        b'{"model":"auto","messages":[{"role":"user","content":-}]}',
        b'{"model":"auto","messages":[{"role":"user","content":"x"}]}\x00',
        b'\xef\xbb\xbf{"model":"auto","messages":[{"role":"user","content":"bom"}]}',
        b'{"model":' + b"[" * 30000 + b"]" * 30000 + b',"messages":[]}',
        b'{"model":"auto","messages":' + b"[" * 30000 + b"]" * 30000 + b"}",
        b'{"model":"auto","messages":[' + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b"]}",
        b'{"model":"auto","messages":' + b"[" * 30000,
        b'{"model":"auto","messages":[{"role":"user","content":"x"}],"stream":"yes"}',
        b'{"model":"auto","messages":[{"role":"user","content":"x"}],"stream":1}',
        b'{"model":"auto","messages":[{"role":"user","content":"x"}],"stream":null}',
        b'{"model":"auto","messages":[{"role":"user","content":"x"}],"stream":true,"stream":false}',
        b'{"model":5,"messages":[{"role":"user","content":"x"}]}',
        b'{"model":null,"messages":[{"role":"user","content":"x"}]}',
        b'{"model":"","messages":[{"role":"user","content":"x"}]}',
        b'{"model":"' + b"a" * 60000 + b'","messages":[{"role":"user","content":"x"}]}',
    ]
    out.extend(special)
    return out


@test
def test_fuzz_json_bodies():
    rng = random.Random(1234)
    bodies = _mutations(rng)
    paths = ["/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/chat/completions"]
    failures = []
    lock = threading.Lock()
    idx = [0]

    def worker():
        while True:
            with lock:
                if idx[0] >= len(bodies):
                    return
                i = idx[0]
                idx[0] += 1
            b = bodies[i]
            p = paths[i % len(paths)]
            try:
                r = E.post(p, b, timeout=20)
                if r.status >= 500 and r.status != 502:
                    failures.append(f"#{i} {p} {b[:60]!r}: status {r.status}")
                elif r.status >= 400:
                    try:
                        j = json.loads(r.body)
                        if not isinstance(j.get("error"), dict):
                            raise ValueError
                    except Exception:  # noqa: BLE001
                        failures.append(f"#{i} {p} {b[:60]!r}: {r.status} without JSON error body: {short(r.body, 80)}")
            except Exception as e:  # noqa: BLE001
                failures.append(f"#{i} {p} {b[:60]!r}: {e!r}")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(E.alive(), f"daemon died during JSON fuzzing (rc {E.proc.returncode})")
    eq(E.get("/healthz").status, 200, "healthz after fuzzing")
    check(not failures, f"{len(failures)} of {len(bodies)} bodies: " + "; ".join(failures[:4]))
    # explicit expectations for a few
    for body in (b'{"model":"auto","messages":' + b"[" * 100000 + b"]" * 100000 + b"}",):
        r = E.post("/v1/chat/completions", body)
        check_error(r, 413, what="100000-deep nesting (over max body): ")
    # as deep as fits under max_body_bytes
    r = E.post("/v1/chat/completions", b'{"model":"auto","messages":' + b"[" * 65000)
    check_error(r, 400, what="unterminated 65000-deep nesting: ")
    r = E.post("/v1/chat/completions", b'{"model":"auto","messages":' + b"[" * 32700 + b"]" * 32700 + b"}")
    check(r.status >= 400, f"32700-deep nested messages got status {r.status}")
    check_error(r, r.status, what="32700-deep nesting: ")
    r = E.post("/v1/chat/completions", b'{"model":"auto","messages":[{"role":"user","content":"x"}],"x":'
               + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b"}")
    check(r.status in (200, 400), f"10000-deep objects in an extra field: status {r.status} {short(r.body)}")
    check(E.alive(), "daemon died on deep nesting")


def _raw_exchange(data, close_write=True, timeout=3, chunk_delay=None):
    s = socket.create_connection(("127.0.0.1", E.port), timeout=timeout)
    out = b""
    try:
        try:
            if chunk_delay:
                for i in range(0, len(data), 7):
                    s.sendall(data[i:i + 7])
                    time.sleep(chunk_delay)
            else:
                s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not d:
                break
            out += d
    finally:
        s.close()
    return out


@test
def test_fuzz_raw_http():
    rng = random.Random(99)
    body = json.dumps(chat_body("auto", "raw")).encode()
    good = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
    cases = [
        b"", b"\r\n\r\n", b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"GET /healthz HTTP/1.1\r\nHost x no colon\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"a" * 200000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n",
        b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\nabc",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\nabc",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"model\":",
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc",
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n{}",
        b"GET /healthz HTTP/1.1\r\nHost: \x00\xff\xfe\r\n\r\n",
        b"G\x00T /healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz\x00 HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\n\n",
        b"GET /healthz HTTP/1.1\r\n Folded: header\r\n\r\n",
        b"GET %zz%00%ff/v1/models HTTP/1.1\r\n\r\n",
        b"GET /v1/models?x=" + b"%" * 1000 + b" HTTP/1.1\r\n\r\n",
        b"GET /../../etc/passwd HTTP/1.1\r\n\r\n",
        b"GET http://evil/v1/models HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(200)),
        b"GET /healthz HTTP/1.0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        good[: len(good) // 2],
        good[: len(good) - 3],
        good + b"GARBAGE AFTER\r\n\r\n",
        good * 20,
    ]
    for _ in range(60):
        cases.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))))
    for _ in range(40):
        g = bytearray(good)
        for _ in range(rng.randint(1, 5)):
            p = rng.randrange(len(g))
            g[p] = rng.randrange(256)
        cases.append(bytes(g))
    errors = []
    lock = threading.Lock()
    idx = [0]

    def worker():
        while True:
            with lock:
                if idx[0] >= len(cases):
                    return
                i = idx[0]
                idx[0] += 1
            try:
                out = _raw_exchange(cases[i], close_write=(i % 3 != 0), timeout=1.5)
                if out and not out.startswith(b"HTTP/1."):
                    errors.append(f"#{i} {cases[i][:40]!r}: non-HTTP response {out[:60]!r}")
            except Exception as e:  # noqa: BLE001
                if not isinstance(e, (ConnectionResetError, BrokenPipeError)):
                    errors.append(f"#{i} {cases[i][:40]!r}: {e!r}")

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # slowloris-ish: a request trickled in small pieces still works
    out = _raw_exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        close_write=False, timeout=5, chunk_delay=0.02)
    check(out.startswith(b"HTTP/1.1 200") or out.startswith(b"HTTP/1.0 200"),
          f"trickled request answered {out[:80]!r}")
    check(E.alive(), f"daemon died during raw fuzzing (rc {E.proc.returncode})")
    eq(E.get("/healthz").status, 200, "healthz after raw fuzzing")
    r = E.post("/v1/chat/completions", chat_body("auto", "still alive"))
    eq(r.status, 200, "chat after raw fuzzing")
    check(not errors, f"{len(errors)} problems: " + "; ".join(errors[:4]))
    # explicit expectations
    out = _raw_exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 200000 + b"\r\n\r\n")
    check(not out.startswith(b"HTTP/1.1 200"), "200-KB header accepted")
    out = _raw_exchange(b"GARBAGE\r\n\r\n")
    check(out == b"" or re.match(rb"HTTP/1\.[01] 4\d\d", out), f"invalid request line answered {out[:60]!r}")


@test
def test_cli():
    """--version, --help, --check-config (summary, exit codes, file:line:col
    errors), and the start-up report of a provider key variable that is unset."""
    def run(args, env=None):
        e = dict(os.environ, SIM_URL="http://127.0.0.1:1", SIM_KEY_GOOD=GOOD_KEY)
        e.update(env or {})
        return subprocess.run([E.bin] + args, capture_output=True, text=True, env=e, timeout=20)
    p = run(["--version"])
    eq(p.returncode, 0, "--version exit")
    check(re.match(r"llmrouter \d+\.\d+\.\d+", p.stdout), f"--version printed {p.stdout!r}")
    p = run(["--help"])
    eq(p.returncode, 0, "--help exit")
    check("--check-config" in p.stdout and "--listen" in p.stdout, "--help lists the options")
    p = run(["-c", CONFIG, "--check-config"])
    eq(p.returncode, 0, f"--check-config exit (stderr {p.stderr[-300:]!r})")
    for word in ("providers (", "models (", "tiers (", "rules (", "good-mini", "f429"):
        check(word in p.stdout, f"summary lacks {word!r}")
    check(GOOD_KEY not in p.stdout + p.stderr, "the provider key was printed")
    p = run(["-c", CONFIG, "--check-config"], env={"SIM_KEY_GOOD": ""})
    eq(p.returncode, 0, "an unset key variable is a warning, not an error")
    check("SIM_KEY_GOOD" in p.stderr and "not set" in p.stderr, f"no warning naming SIM_KEY_GOOD: {p.stderr!r}")
    bad = os.path.join(E.tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("providers:\n  a: {type: openai, base_url: \"http://x\"}\nmodels:\n  m: {provider: zz}\n"
                "tiers: {t: [m]}\nrouting: {default_tier: t}\n")
    p = run(["-c", bad, "--check-config"])
    check(p.returncode != 0, "a bad config must exit non-zero")
    check(re.search(r"bad\.yaml:4:17: models\.m\.provider: no provider named \"zz\"", p.stderr),
          f"error without file:line:col: {p.stderr!r}")
    p = run(["-c", bad, "--listen", f"127.0.0.1:{free_port()}"])
    check(p.returncode != 0, "the daemon must refuse to start on a bad config")
    p = run(["-c", os.path.join(E.tmp, "missing.yaml")])
    check(p.returncode != 0 and "missing.yaml" in p.stderr, "a missing file is named")
    p = run(["--bogus"])
    eq(p.returncode, 2, "unknown option exit")
    # a port another daemon already serves is refused, not silently shared
    p = run(["-c", CONFIG, "--listen", f"127.0.0.1:{E.d.port}"])
    check(p.returncode != 0 and "cannot listen" in p.stderr, f"port in use not reported: {p.stderr!r}")


@test
def test_model_retrieve():
    """GET /v1/models/{id} (the SDK's models.retrieve) for a model, a tier,
    auto, and an unknown name."""
    for mid, owner in (("good-mini", "good"), ("premium", "llmrouter"), ("auto", "llmrouter")):
        for prefix in ("/v1", ""):
            r = E.get(f"{prefix}/models/{mid}")
            eq(r.status, 200, f"GET {prefix}/models/{mid}")
            body = json.loads(r.body)
            eq(body.get("id"), mid, "id")
            eq(body.get("object"), "model", "object")
            eq(body.get("owned_by"), owner, "owned_by")
            check(isinstance(body.get("created"), int), "created is an integer")
    check_error(E.get("/v1/models/nope"), 404, "model_not_found", "unknown model")


@test
def test_rules_through_daemon():
    """Rules of the test config: a header rule, a keyword rule with an explicit
    chain, the default, and a client-forced tier (allowed in the test config)."""
    r = E.post("/v1/chat/completions", chat_body("auto", "hello"), headers={"x-router-hint": "premium"})
    eq(r.status, 200, "status")
    check_routed(r, tier="premium", model="good-large")
    eq(r.h("x-router-rule"), "hinted-premium", "x-router-rule")
    r = E.post("/v1/chat/completions", chat_body("auto", "tell me about the zebracorn"))
    eq(r.h("x-router-rule"), "custom-chain", "x-router-rule")
    eq(r.h("x-router-tier"), "custom", "x-router-tier for an explicit chain")
    eq(r.h("x-router-model"), "good-large", "first model of the chain")
    r = E.post("/v1/chat/completions", chat_body("auto", "hello"))
    eq(r.h("x-router-rule"), "default", "no rule matched")
    eq(r.h("x-router-tier"), "standard", "default tier")
    r = E.post("/v1/chat/completions", chat_body("premium", "zebracorn"))
    eq(r.h("x-router-rule"), "explicit", "a tier named by the client skips the rules")
    r = E.post("/v1/chat/completions", chat_body("auto", "zebracorn"), headers={"x-router-tier": "budget"})
    eq(r.h("x-router-rule"), "client-tier", "forced by x-router-tier")
    eq(r.h("x-router-tier"), "budget", "forced tier")
    r = E.post("/v1/chat/completions", chat_body("auto", "hi"), headers={"x-router-tier": "nope"})
    check_error(r, 400, "unknown_tier", "unknown forced tier: ")
    # streamed requests carry the rule too
    s = E.raw("POST", "/v1/chat/completions", chat_body("auto", "zebracorn", stream=True)).read_head()
    try:
        eq(s.h("x-router-rule"), "custom-chain", "streamed x-router-rule")
    finally:
        s.close()


# Realistic prompts against config/llmrouter.yaml: (name, body, headers, rule, tier)
_LONG_DOC = ("The committee reviewed the quarterly figures and noted several trends. " * 2600)
REALISTIC = [
    ("factual question", "What is the capital of Australia?", None, "short-question", "budget"),
    ("yes/no question", "Is the Pacific the largest ocean?", None, "short-question", "budget"),
    # The keyword rules "translation" and "proofs-and-reasoning" are gone from
    # the shipped config (on MMLU they fired at random); the complexity scorer
    # judges these short, classic requests easy, so they take the default tier.
    ("translation", "Translate 'good morning, how are you?' into Spanish.", None, "default", "standard"),
    ("chinese translation", "请把这句话翻译成英文：今天天气很好。", None, "default", "standard"),
    ("proof", "Prove that there are infinitely many prime numbers.", None, "default", "standard"),
    ("step by step", "A train leaves at 3pm at 60 km/h and another at 4pm at 80 km/h. Work it out step by step: when does the second catch up?",
     None, "explicit-reasoning", "premium"),
    ("show that", "Show that the sum of two even numbers is even.", None, "default", "standard"),
    ("multi-part problem", "A committee must schedule 12 meetings over 5 days. Each day holds at most 3 meetings, "
     "meetings 1-4 need different days, and 2*x + 3 = 11. How many schedules exist? Why? What changes if day 3 "
     "is a holiday? Give the count for each case and explain the reasoning in detail.", None, "complex-prompt", "premium"),
    ("code review", "Please review this code:\n```python\ndef add(a, b):\n    return a - b\n```\nWhy is it wrong?",
     None, "code-review", "premium"),
    ("stack trace", "I get this stack trace when I start the server, what does it mean? Traceback (most recent call last): ...",
     None, "code-review", "premium"),
    ("improve is not prove", "Improve the wording of this paragraph about our summer offer for customers in the north.",
     None, "default", "standard"),
    ("open writing", "Write a short story about a dragon who runs a tea shop in a small mountain village.",
     None, "default", "standard"),
    ("hint header", "Write a limerick about routers.", {"x-router-hint": "premium"}, "client-hint-premium", "premium"),
    ("long document", "Summarise this report:\n" + _LONG_DOC, None, "long-context", "long_context"),
]


def _realistic_body(text, images=False):
    content = text if not images else [{"type": "text", "text": text},
                                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    return {"model": "auto", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                          {"role": "user", "content": content}]}


@test
def test_rules_realistic_prompts():
    """config/llmrouter.yaml's example rules on realistic prompts, checked both
    through POST /v1/router/explain and through real requests' headers (no
    provider keys are set, so the requests end in 502 — after routing)."""
    cfg = os.path.join(ROOT, "config", "llmrouter.yaml")
    # no provider key is set, so no tier can serve: not ready, but alive
    d = E.new_daemon(tag="daemon-realistic", config=cfg).start(probe="/healthz")
    try:
        eq(http_request(d.port, "GET", "/readyz").status, 503, "/readyz without any provider key")
        cases = list(REALISTIC) + [("image", None, None, "multimodal", "vision")]
        for name, text, headers, rule, tier in cases:
            body = _realistic_body("What is in this picture?", images=True) if text is None else _realistic_body(text)
            for path in ("/v1/router/explain", "/router/explain"):
                r = http_request(d.port, "POST", path, json.dumps(body).encode(), headers=headers)
                eq(r.status, 200, f"{name}: explain status ({short(r.body)})")
                j = json.loads(r.body)
                eq(j["decision"]["rule"], rule, f"{name}: explained rule")
                eq(j["decision"]["tier"], tier, f"{name}: explained tier")
                check(j["routed"] is True and len(j["rules"]) == 7, f"{name}: explain lists every rule")
                check(all(isinstance(x["why"], list) and x["why"] for x in j["rules"]), f"{name}: every rule says why")
                check(j["decision"]["chain"], f"{name}: a chain")
            r = http_request(d.port, "POST", "/v1/chat/completions", json.dumps(body).encode(), headers=headers)
            eq(r.status, 502, f"{name}: no provider key is set, so every model is skipped")
            eq(r.headers.get("x-router-rule"), rule, f"{name}: x-router-rule")
            eq(r.headers.get("x-router-tier"), tier, f"{name}: x-router-tier")
        # explaining a request that would be rejected answers the rejection
        r = http_request(d.port, "POST", "/v1/router/explain", b'{"model":"auto"}')
        eq(r.status, 400, "explain of an invalid request")
        # the same decision offline, from the command line
        p = subprocess.run([E.bin, "-c", cfg, "--explain", "-"], input=json.dumps(_realistic_body(
            dict((x[0], x[1]) for x in REALISTIC)["multi-part problem"])), capture_output=True, text=True, timeout=20)
        eq(p.returncode, 0, f"--explain exit ({p.stderr[-300:]!r})")
        check("complex-prompt" in p.stdout and "MATCH (chosen)" in p.stdout and "tier premium" in p.stdout
              and "complexity score: " in p.stdout, f"--explain output: {p.stdout[-600:]!r}")
        p = subprocess.run([E.bin, "-c", cfg, "--explain", "-", "--json", "--header", "x-router-hint: premium"],
                           input=json.dumps(_realistic_body("hello")), capture_output=True, text=True, timeout=20)
        eq(json.loads(p.stdout)["decision"]["rule"], "client-hint-premium", "--explain --header")
        ok, msg = d.stop()
        check(ok, msg)
    finally:
        d.kill()


@test
def test_sighup_reload():
    """SIGHUP swaps in an edited configuration without dropping the daemon; a
    broken edit is reported with file:line:col and the running one is kept."""
    with open(CONFIG) as f:
        original = f.read()
    path = os.path.join(E.tmp, "reload.yaml")
    with open(path, "w") as f:
        f.write(original)
    d = E.new_daemon(tag="daemon-reload", config=path).start()
    try:
        r = http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto", "before"))
        eq(r.status, 200, "status before reload")
        eq(r.headers.get("x-router-model"), "good-mini", "model before reload")
        with open(path, "w") as f:
            f.write(original.replace("default_tier: standard", "default_tier: premium"))
        d.proc.send_signal(signal.SIGHUP)
        model = None
        for _ in range(40):
            r = http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto", "after"))
            model = r.headers.get("x-router-model")
            if model == "good-large":
                break
            time.sleep(0.05)
        eq(model, "good-large", "model after reloading default_tier: premium")
        with open(path, "w") as f:
            f.write(original.replace("default_tier: standard", "default_tier: nosuchtier"))
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        check(d.alive(), "daemon died on a broken reload")
        r = http_request(d.port, "POST", "/v1/chat/completions", chat_body("auto", "kept"))
        eq(r.status, 200, "status after a broken reload")
        eq(r.headers.get("x-router-model"), "good-large", "the last good configuration is kept")
        err = d.stderr_text()
        check(re.search(r"reload\.yaml:\d+:\d+: routing\.default_tier: no tier named", err),
              f"broken reload not reported with file:line:col: {err[-400:]!r}")
        ok, msg = d.stop()
        check(ok, msg)
    finally:
        d.kill()


@test
def test_sigterm_with_active_stream():
    """A second daemon gets SIGTERM while a 20-s stream is in flight: it must
    still exit 0 within 5 s, and the client's stream must end."""
    check("slowstream" in TIERS, "tier slowstream missing from the test config")
    d = E.new_daemon(tag="daemon-sigterm").start()
    s = None
    ok, msg, el = False, "not stopped", 0.0
    try:
        s = RawHTTP(d.port, "POST", "/v1/chat/completions", chat_body("slowstream", "term", stream=True),
                    timeout=8).read_head()
        eq(s.status, 200, "status")
        n = 0
        while n < 2:
            ev = s.next_event()
            check(ev is not None, "stream ended early")
            n += event_data(ev) is not None
        t0 = time.monotonic()
        ok, msg = d.stop()
        el = time.monotonic() - t0
        ended = False
        try:
            read_stream(s)
            ended = True
        except (Fail, OSError, UnicodeDecodeError):
            ended = True  # a cut stream is an acceptable ending here
        check(ended, "client stream did not end")
    finally:
        if s is not None:
            s.close()
        d.kill()
    if not ok:
        print(d.stderr_tail(), file=sys.stderr)
    check(ok, f"{msg} (after {el:.1f} s)")


@test
def test_health_after_everything():
    check(E.alive(), "daemon not alive")
    for p in ("/healthz", "/readyz"):
        eq(E.get(p).status, 200, p)
    st = wait_sim(lambda st: st.get("active_streams") == 0, timeout=3.0)
    eq(st.get("active_streams"), 0, "simulator active_streams at the end (after waiting 3 s)")
    check(CLIENT_SECRET not in E.stderr_text(), "client secret in daemon stderr")
    check(GOOD_KEY not in E.stderr_text(), "provider key in daemon stderr")


# --------------------------------------------------------------------------
# runner


def main():
    global E
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", action="append", default=[], help="run only tests whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list test names and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print timings, tracebacks of failures")
    ap.add_argument("--keep-logs", action="store_true", help="keep the log directory even if everything passed")
    args = ap.parse_args()
    VERBOSE[0] = args.verbose

    selected = [(n, f) for n, f in TESTS if not args.k or any(k in n for k in args.k)]
    if args.list:
        for n, _ in selected:
            print(n)
        return 0

    passed = failed = 0
    E = Env(args)

    def report(name, ok, reason=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok - {name}", flush=True)
        else:
            failed += 1
            reason = " ".join(str(reason).split())
            print(f"not ok - {name}: {reason}", flush=True)

    try:
        E.start_sim()
        E.start_daemon()
    except Exception as e:  # noqa: BLE001
        msg = str(e)
        report("setup", False, msg.splitlines()[0] if msg else repr(e))
        print(msg, file=sys.stderr)
        _cleanup(E)
        print(f"{passed} passed, {failed} failed")
        return 1

    t_start = time.monotonic()
    for name, fn in selected:
        if not E.alive():
            # a previous test crashed the daemon: record it and start a new one
            rc = E.proc.returncode
            E.abnormal.append(f"daemon exited with status {rc} (before {name})")
            report(f"daemon_alive_before_{name}", False, f"daemon exited with status {rc}")
            print(E.stderr_tail(), file=sys.stderr)
            E.d.kill()
            try:
                E.start_daemon()
            except Exception as e:  # noqa: BLE001
                report(f"restart_daemon_before_{name}", False, str(e).splitlines()[0])
                print(str(e), file=sys.stderr)
                break
        t0 = time.monotonic()
        try:
            fn()
            report(name, True)
        except Fail as e:
            report(name, False, e)
        except Exception as e:  # noqa: BLE001
            if args.verbose:
                traceback.print_exc()
            report(name, False, f"{type(e).__name__}: {e}")
        if args.verbose:
            print(f"#   {name} took {time.monotonic() - t0:.2f} s", flush=True)

    if E.alive():
        ok, msg = E.d.stop()
    else:
        ok, msg = False, f"daemon exited with status {E.proc.returncode} before the end"
    report("daemon_clean_shutdown", ok, msg)
    if not ok:
        E.abnormal.append(msg)
    if failed or E.abnormal:
        print(E.stderr_tail(80), file=sys.stderr)
    if args.verbose:
        print(f"# tests took {time.monotonic() - t_start:.1f} s", flush=True)
    _cleanup(E)
    bad = bool(failed or E.abnormal)
    if bad or args.keep_logs:
        print(f"# logs kept in {E.tmp}", file=sys.stderr)
    else:
        shutil.rmtree(E.tmp, ignore_errors=True)
    sys.stderr.flush()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if bad else 0


def run_suite(tests, modules=(), setup=None, teardown=None, always=()):
    """The runner of the smaller suites (test_cache.py, test_budgets.py,
    test_observability.py): parses -k/-v/--keep-logs, creates the Env (and
    hands it to every module in `modules` as their global E), starts the
    simulator, runs setup(), the tests whose names match -k (plus those in
    `always`), then teardown(); prints one ok/not ok line per test and the
    closing "N passed, M failed". Returns the exit status."""
    global E
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", action="append", default=[])
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    E = Env(args)
    for m in modules:
        m.E = E
    E.start_sim()
    passed = failed = 0
    try:
        if setup is not None:
            setup()
    except Exception as e:  # noqa: BLE001
        print(f"not ok - setup: {e}", flush=True)
        E.stop_sim()
        print(f"# logs kept in {E.tmp}", file=sys.stderr)
        print("0 passed, 1 failed", flush=True)
        return 1
    for fn in tests:
        name = fn.__name__[5:]
        if args.k and not any(k in name for k in args.k) and name not in always:
            continue
        try:
            fn()
            print(f"ok - {name}", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001
            if args.verbose:
                traceback.print_exc()
            print(f"not ok - {name}: {'' if isinstance(e, Fail) else type(e).__name__} {e}", flush=True)
            failed += 1
    if teardown is not None:
        teardown()
    E.stop_sim()
    if failed or args.keep_logs:
        print(f"# logs kept in {E.tmp}", file=sys.stderr)
    else:
        shutil.rmtree(E.tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def _cleanup(env):
    if env.d is not None:
        env.d.kill()
    env.stop_sim()


if __name__ == "__main__":
    sys.exit(main())
