#!/usr/bin/env python3
"""Simulated OpenAI-compatible upstream provider with fault injection.

Used by the llmrouter integration tests, the SDK tests and `make demo`.
Python 3.11 standard library only.

Usage:
    python3 tests/sim/simprovider.py --port 0 [--host 127.0.0.1]
                                     [--port-file PATH] [--verbose]

After binding, prints exactly "LISTENING <port>" on stdout.

Fault options are given as a path prefix:
    /sim/<key=value,key=value,...>[/v1]/<api path>
e.g. /sim/status=429,retry_after=1/v1/chat/completions
See tests/sim/README.md for the option list and the control endpoints.
"""

import argparse
import base64
import collections
import hashlib
import http.server
import itertools
import json
import math
import os
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import urllib.parse

VERBOSE = False

# Options whose value is kept as a string; all others are parsed as integers.
STRING_OPTS = {"require_key"}

CONN_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
               socket.timeout, TimeoutError)

MODELS = [{"id": "sim-mini", "object": "model", "created": 0, "owned_by": "sim"}]


def log(msg):
    if VERBOSE:
        sys.stderr.write("simprovider: %s\n" % msg)
        sys.stderr.flush()


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------
# Shared state (thread-safe)
# --------------------------------------------------------------------------

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self._zero()

    def _zero(self):
        self.requests = 0
        self.by_path = {}
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_aborted = 0
        self.streams_cut = 0
        self.streams_error_event = 0
        self.active_streams = 0
        self.bytes_streamed = 0
        self.recent = collections.deque(maxlen=50)

    def reset(self):
        with self.lock:
            self._zero()

    def next_id(self):
        with self.lock:
            return next(self.ids)

    def record(self, entry):
        with self.lock:
            self.requests += 1
            p = entry["api_path"]
            self.by_path[p] = self.by_path.get(p, 0) + 1
            self.recent.append(entry)
        sim_health_model(entry)  # health block

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def stats(self):
        with self.lock:
            return sim_health_stats() | {  # health block
                "requests": self.requests,
                "by_path": dict(self.by_path),
                "streams_started": self.streams_started,
                "streams_completed": self.streams_completed,
                "streams_aborted": self.streams_aborted,
                "streams_cut": self.streams_cut,
                "streams_error_event": self.streams_error_event,
                "active_streams": self.active_streams,
                "bytes_streamed": self.bytes_streamed,
            }

    def recent_list(self):
        with self.lock:
            return list(self.recent)


STATE = State()


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

class ClientGone(Exception):
    """The client went away while we were writing."""


class BadRequest(Exception):
    def __init__(self, message, code=None, param=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


SIM_RE = re.compile(r"^/sim/([^/]*)(/.*)?$")


def parse_path(raw_path):
    """Return (opts, api_path) for a request target."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    opts = {}
    m = SIM_RE.match(path)
    if m:
        for item in m.group(1).split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, val = item.partition("=")
            key = urllib.parse.unquote(key).strip()
            val = urllib.parse.unquote(val) if sep else "1"
            if key in STRING_OPTS:
                opts[key] = val
            else:
                try:
                    opts[key] = int(val)
                except ValueError:
                    opts[key] = val
        path = m.group(2) or "/"
    if path == "/v1" or path.startswith("/v1/"):
        path = path[3:] or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return opts, path


def iopt(opts, key, default=0):
    v = opts.get(key, default)
    return v if isinstance(v, int) else default


def error_type_for(status):
    if status == 400:
        return "invalid_request_error"
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(status, message, code, etype=None, param=None):
    return {"error": {"message": message,
                      "type": etype or error_type_for(status),
                      "param": param,
                      "code": code}}


def content_text(content):
    """Text of a message content: a string, or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return " ".join(texts)
    return ""


def split_reply(reply, n):
    """Split reply into exactly n non-empty pieces whose concatenation is the
    reply (padding the reply with filler words if it is too short)."""
    n = max(1, n)
    if len(reply) < n:
        i = 0
        while len(reply) < n:
            i += 1
            reply += " w%d" % i
    tokens = re.findall(r"\s*\S+\s*", reply) if reply.strip() else [reply]
    if len(tokens) >= n:
        pieces = []
        for k in range(n):
            a = k * len(tokens) // n
            b = (k + 1) * len(tokens) // n
            pieces.append("".join(tokens[a:b]))
        if "".join(pieces) == reply:
            return pieces, reply
    pieces = []
    for k in range(n):
        a = k * len(reply) // n
        b = (k + 1) * len(reply) // n
        pieces.append(reply[a:b])
    return pieces, reply


def fixed_pieces(n, size):
    pieces = []
    for i in range(1, max(1, n) + 1):
        tag = str(i)
        if size > len(tag):
            pieces.append(tag + "x" * (size - len(tag)))
        else:
            pieces.append("x" * size)
    return pieces


def make_reply(model, user_text, opts):
    """Return (pieces, full_text, completion_tokens)."""
    chunks = iopt(opts, "chunks", 5)
    if chunks < 1:
        chunks = 1
    cb = iopt(opts, "chunk_bytes", 0)
    if cb > 0:
        pieces = fixed_pieces(chunks, cb)
        text = "".join(pieces)
        ctoks = max(1, len(text) // 4)
        return pieces, text, ctoks
    base = "Simulated reply from %s: %s" % (model, user_text[:60])
    pieces, text = split_reply(base, chunks)
    ctoks = len(text.split())
    return pieces, text, ctoks


def embedding_vector(text, dims):
    out = []
    counter = 0
    buf = b""
    while len(out) < dims:
        if len(buf) < 4:
            buf += hashlib.sha256(("%d:" % counter).encode() +
                                  text.encode("utf-8")).digest()
            counter += 1
        u = int.from_bytes(buf[:4], "little")
        buf = buf[4:]
        v = (u / 0xFFFFFFFF) * 2.0 - 1.0
        # round to float32 so a float<->base64 conversion is exact
        v = struct.unpack("<f", struct.pack("<f", v))[0]
        out.append(v)
    return out


# ==========================================================================
# Chat answers: tool calls, structured outputs and n > 1.
# Everything is derived from the request alone, so a test can predict the
# answer exactly; tests/sim/README.md documents the conventions.
# ==========================================================================

N_MAX = 128                # OpenAI's limit for n
SCHEMA_MAX_DEPTH = 16      # recursive $refs end in null below this depth
SCHEMA_SHRINK_DEPTH = 8    # below this, arrays get minItems items and
                           # nullable branches null, so recursion ends validly
ARRAY_MAX_ITEMS = 64       # a huge minItems must not build a huge answer
TOOL_RESULT_MAX = 1000     # characters of each tool result echoed back
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

STRING_FORMATS = {
    "date-time": "2024-01-02T03:04:05Z",
    "date": "2024-01-02",
    "time": "03:04:05",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "sim.example.com",
}


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def schema_resolve(schema, root):
    """Follow local $refs ("#", "#/definitions/X", "#/$defs/X"); an
    unresolvable one means "anything"."""
    for _ in range(32):
        if not isinstance(schema, dict) or not isinstance(schema.get("$ref"),
                                                          str):
            return schema
        ref = schema["$ref"]
        if not ref.startswith("#"):
            return {}
        target = root
        for part in ref[1:].split("/")[1:]:
            part = urllib.parse.unquote(part).replace("~1", "/") \
                .replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and \
                    int(part) < len(target):
                target = target[int(part)]
            else:
                return {}
        schema = target
    return {}


def schema_is_null(schema, root):
    s = schema_resolve(schema, root)
    return isinstance(s, dict) and (s.get("type") == "null" or
                                    ("const" in s and s["const"] is None))


def schema_merge_all_of(schema, root):
    out = {k: v for k, v in schema.items() if k != "allOf"}
    props = dict(out.get("properties") or {})
    req = list(out.get("required") or [])
    for part in schema["allOf"]:
        part = schema_resolve(part, root)
        if not isinstance(part, dict):
            continue
        props.update(part.get("properties") or {})
        req += [r for r in part.get("required") or [] if r not in req]
        for k, v in part.items():
            if k not in ("properties", "required"):
                out.setdefault(k, v)
    if props:
        out["properties"] = props
    if req:
        out["required"] = req
    return out


def number_value(schema, integer):
    v = 42 if integer else 1.5
    step = 1 if integer else 0.5
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if is_num(lo) and v < lo:
        v = lo
    if is_num(xlo) and v <= xlo:
        v = xlo + step
    if xlo is True and is_num(lo) and v <= lo:   # draft 4 form
        v = lo + step
    if is_num(hi) and v > hi:
        v = hi
    if is_num(xhi) and v >= xhi:
        v = xhi - step
    if xhi is True and is_num(hi) and v >= hi:
        v = hi - step
    if integer:
        v = int(math.ceil(v))
    return v


def schema_value(schema, root, name="", depth=0):
    """A deterministic JSON value that validates against a JSON Schema:
    const, then the first enum value, the first non-null anyOf/oneOf branch,
    merged allOf, otherwise by type (strings "sim-<property>", integers 42,
    numbers 1.5, booleans true, one array item or minItems, objects with
    their required properties or all properties when none are required),
    clamped to minimum/maximum and minLength/maxLength."""
    schema = schema_resolve(schema, root)
    if schema is False:
        return None
    if not isinstance(schema, dict):
        schema = {}
    if depth > SCHEMA_MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            nulls = [b for b in branches if schema_is_null(b, root)]
            if depth > SCHEMA_SHRINK_DEPTH and nulls:
                return None
            pick = next((b for b in branches if not schema_is_null(b, root)),
                        branches[0])
            return schema_value(pick, root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        return schema_value(schema_merge_all_of(schema, root), root, name,
                            depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        t = non_null[0] if non_null and (depth <= SCHEMA_SHRINK_DEPTH or
                                         "null" not in t) else "null"
    if t is None:
        if "properties" in schema or "required" in schema:
            t = "object"
        elif "items" in schema or "prefixItems" in schema:
            t = "array"
        else:
            t = "string"
    if t == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        req = schema.get("required")
        if isinstance(req, list):
            keys = [k for k in props if k in req]
            keys += [k for k in req if isinstance(k, str) and k not in props]
        else:
            keys = list(props)
        return {k: schema_value(props.get(k, {}), root, k, depth + 1)
                for k in keys}
    if t == "array":
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        if isinstance(items, list):          # draft 7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        prefix = prefix if isinstance(prefix, list) else []
        lo = schema.get("minItems")
        hi = schema.get("maxItems")
        lo = lo if isinstance(lo, int) and not isinstance(lo, bool) else 0
        count = max(0 if depth > SCHEMA_SHRINK_DEPTH else 1, len(prefix), lo)
        if isinstance(hi, int) and not isinstance(hi, bool):
            count = min(count, max(0, hi))
        count = min(count, ARRAY_MAX_ITEMS)
        return [schema_value(prefix[i] if i < len(prefix) else items, root,
                             name, depth + 1) for i in range(count)]
    if t == "string":
        s = STRING_FORMATS.get(schema.get("format")) or \
            ("sim-%s" % name if name else "sim")
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        if isinstance(lo, int) and len(s) < lo:
            s += "x" * (lo - len(s))
        if isinstance(hi, int) and 0 <= hi < len(s):
            s = s[:hi]
        return s
    if t == "integer":
        return number_value(schema, True)
    if t == "number":
        return number_value(schema, False)
    if t == "boolean":
        return True
    return None


def split_chars(text, n):
    """text in min(n, len) pieces by characters (no padding: JSON must stay
    JSON)."""
    n = max(1, min(n, len(text)))
    return [text[k * len(text) // n:(k + 1) * len(text) // n]
            for k in range(n)]


def chat_n(body):
    n = body.get("n")
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= N_MAX:
        raise BadRequest("Invalid 'n': must be an integer from 1 to %d "
                         "(simulated)" % N_MAX, code="invalid_value",
                         param="n")
    return n


def chat_tools(body):
    """The request's function tools (list of function objects) and its
    tool_choice, validated like OpenAI does."""
    tools = body.get("tools")
    funcs = []
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("Invalid 'tools': expected an array "
                             "(simulated)", code="invalid_type",
                             param="tools")
        for i, t in enumerate(tools):
            kind = t.get("type") if isinstance(t, dict) else None
            if kind == "custom":
                continue
            if kind != "function":
                raise BadRequest("Invalid 'tools[%d]': expected a function "
                                 "tool (simulated)" % i,
                                 code="invalid_value", param="tools[%d]" % i)
            f = t.get("function")
            name = f.get("name") if isinstance(f, dict) else None
            if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
                raise BadRequest("Invalid 'tools[%d].function.name': 1 to 64 "
                                 "of a-z, A-Z, 0-9, _ and - (simulated)" % i,
                                 code="invalid_value",
                                 param="tools[%d].function.name" % i)
            funcs.append(f)
    tc = body.get("tool_choice")
    if tc is None:
        return funcs, None
    if not tools:
        raise BadRequest("Invalid value for 'tool_choice': 'tool_choice' is "
                         "only allowed when 'tools' are specified. "
                         "(simulated)", code="invalid_value",
                         param="tool_choice")
    if isinstance(tc, dict):
        if tc.get("type") == "function":
            f = tc.get("function")
            name = f.get("name") if isinstance(f, dict) else None
            if not any(x["name"] == name for x in funcs):
                raise BadRequest("Invalid value for 'tool_choice': no "
                                 "function named %r is specified in the "
                                 "'tools' parameter. (simulated)" % (name,),
                                 code="invalid_value", param="tool_choice")
        return funcs, tc
    if tc not in ("none", "auto", "required"):
        raise BadRequest("Invalid value for 'tool_choice': expected 'none', "
                         "'auto', 'required' or a function (simulated)",
                         code="invalid_value", param="tool_choice")
    return funcs, tc


def chat_tool_plan(body, messages, funcs, tc):
    """The functions to call: only when the last message is the user's and
    tool_choice is not "none". A forced function is called alone; otherwise
    every tool whose name appears as a word in the user's message, in the
    order of `tools` (just the first with parallel_tool_calls: false), and
    with tool_choice "required" and no name mentioned, the first tool."""
    if not funcs or tc == "none":
        return []
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return []
    if isinstance(tc, dict) and tc.get("type") == "function":
        name = tc["function"]["name"]
        return [f for f in funcs if f["name"] == name][:1]
    text = content_text(last.get("content"))
    chosen = [f for f in funcs
              if re.search(r"(?<![A-Za-z0-9_-])%s(?![A-Za-z0-9_-])"
                           % re.escape(f["name"]), text)]
    if not chosen and tc == "required":
        chosen = funcs[:1]
    if body.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    return chosen


def chat_format(body):
    """None for text, else ("json_object", None) or ("json_schema", schema)."""
    rf = body.get("response_format")
    if rf is None:
        return None
    if not isinstance(rf, dict):
        raise BadRequest("Invalid 'response_format': expected an object "
                         "(simulated)", code="invalid_type",
                         param="response_format")
    kind = rf.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ("json_object", None)
    if kind == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict):
            raise BadRequest("Missing required parameter: "
                             "'response_format.json_schema'. (simulated)",
                             code="missing_required_parameter",
                             param="response_format.json_schema")
        if not isinstance(js.get("name"), str) or not js["name"]:
            raise BadRequest("Missing required parameter: "
                             "'response_format.json_schema.name'. "
                             "(simulated)",
                             code="missing_required_parameter",
                             param="response_format.json_schema.name")
        schema = js.get("schema", {})
        if not isinstance(schema, (dict, bool)):
            raise BadRequest("Invalid 'response_format.json_schema.schema': "
                             "expected an object (simulated)",
                             code="invalid_type",
                             param="response_format.json_schema.schema")
        return ("json_schema", schema)
    raise BadRequest("Invalid value for 'response_format.type': expected "
                     "'text', 'json_object' or 'json_schema' (simulated)",
                     code="invalid_value", param="response_format.type")


def tool_results_text(model, messages):
    """When the conversation ends with tool messages: a reply that quotes
    each result as name=content (the name taken from the assistant's
    tool_calls), so a test can check the round trip."""
    i = len(messages)
    while i > 0 and isinstance(messages[i - 1], dict) and \
            messages[i - 1].get("role") == "tool":
        i -= 1
    results = messages[i:]
    if not results:
        return None
    names = {}
    if i > 0 and isinstance(messages[i - 1], dict):
        for tc in messages[i - 1].get("tool_calls") or []:
            if isinstance(tc, dict) and isinstance(tc.get("function"), dict):
                names[tc.get("id")] = tc["function"].get("name")
    parts = []
    for m in results:
        tid = m.get("tool_call_id")
        name = names.get(tid) or str(tid)
        parts.append("%s=%s" % (name,
                                content_text(m.get("content"))[:TOOL_RESULT_MAX]))
    return "Simulated reply from %s with %d tool result%s: %s" % (
        model, len(parts), "" if len(parts) == 1 else "s", "; ".join(parts))


def chat_choices(body, messages, model, last_user, opts):
    """The answer's choices, each {"finish", "tokens"} plus either "calls"
    [{id, name, arguments}] or "text" and its stream "pieces"."""
    funcs, tc = chat_tools(body)
    fmt = chat_format(body)
    n = chat_n(body)
    plan = chat_tool_plan(body, messages, funcs, tc)
    chunks = max(1, iopt(opts, "chunks", 5))
    out = []
    for c in range(n):
        if plan:
            calls = []
            for i, f in enumerate(plan):
                params = f.get("parameters")
                if not isinstance(params, dict):
                    params = {"type": "object", "properties": {}}
                calls.append({
                    "id": "call_sim_%d_%d_%d" % (len(messages), c, i),
                    "name": f["name"],
                    "arguments": dumps(schema_value(params, params))})
            tokens = sum(max(1, (len(x["name"]) + len(x["arguments"])) // 4)
                         for x in calls)
            out.append({"calls": calls, "finish": "tool_calls",
                        "tokens": tokens})
            continue
        tool_text = tool_results_text(model, messages)
        if fmt is not None:
            if fmt[0] == "json_object":
                value = {"model": model,
                         "reply": tool_text or "Simulated reply from %s: %s"
                         % (model, last_user[:60])}
            else:
                value = schema_value(fmt[1], fmt[1])
            text = dumps(value)
            pieces = split_chars(text, chunks)
            tokens = max(1, len(text) // 4)
        elif tool_text is not None:
            pieces, text = split_reply(tool_text, chunks)
            tokens = len(text.split())
        elif c == 0 or iopt(opts, "chunk_bytes", 0) > 0:
            pieces, text, tokens = make_reply(model, last_user, opts)
        else:
            pieces, text = split_reply("Simulated reply from %s (choice %d): "
                                       "%s" % (model, c, last_user[:60]),
                                       chunks)
            tokens = len(text.split())
        out.append({"text": text, "pieces": pieces, "finish": "stop",
                    "tokens": tokens})
    return out


def chat_message(ch):
    if "calls" in ch:
        return {"role": "assistant", "content": None, "refusal": None,
                "tool_calls": [{"id": x["id"], "type": "function",
                                "function": {"name": x["name"],
                                             "arguments": x["arguments"]}}
                               for x in ch["calls"]]}
    return {"role": "assistant", "content": ch["text"], "refusal": None}


def chat_deltas(ch, chunks):
    """A choice's stream deltas, role first, as OpenAI sends them: each tool
    call opens with index, id, type, name and arguments "" and continues
    with index + argument fragments."""
    if "text" in ch:
        return ([{"role": "assistant", "content": ""}] +
                [{"content": p} for p in ch["pieces"]])
    deltas = []
    for i, x in enumerate(ch["calls"]):
        head = {"tool_calls": [{"index": i, "id": x["id"], "type": "function",
                                "function": {"name": x["name"],
                                             "arguments": ""}}]}
        if i == 0:
            head = dict({"role": "assistant", "content": None}, **head)
        deltas.append(head)
        for frag in split_chars(x["arguments"], max(2, chunks)):
            deltas.append({"tool_calls": [{"index": i,
                                           "function": {"arguments": frag}}]})
    return deltas


def chat_stream_events(choices, chunk_obj, opts):
    """(first, contents, finals) for Handler.stream: the choices' deltas
    interleaved round-robin by choice index, then one finish chunk per
    choice."""
    chunks = max(1, iopt(opts, "chunks", 5))
    seqs = [chat_deltas(ch, chunks) for ch in choices]
    events = []
    for k in range(max(len(s) for s in seqs)):
        for c, s in enumerate(seqs):
            if k < len(s):
                events.append(chunk_obj(c, s[k], None))
    finals = [chunk_obj(c, {}, ch["finish"]) for c, ch in enumerate(choices)]
    return events[0], events[1:], finals


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def server_bind(self):
        # Skip HTTPServer.server_bind's getfqdn() (can be slow).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, CONN_ERRORS) or isinstance(exc, OSError):
            log("connection error from %s: %r" % (client_address, exc))
            return
        sys.stderr.write("simprovider: error handling request from %s\n"
                         % (client_address,))
        traceback.print_exc(file=sys.stderr)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "simprovider/1.0"

    def version_string(self):
        return self.server_version

    # ---- plumbing -------------------------------------------------------

    def setup(self):
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().setup()

    def log_message(self, format, *args):
        if VERBOSE:
            sys.stderr.write("simprovider: %s - %s\n"
                             % (self.address_string(), format % args))

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.dispatch()

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionResetError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until blank line
                    while True:
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ConnectionResetError("eof in chunked body")
                data += chunk
                self.rfile.readline(65537)  # CRLF after the chunk
            return bytes(data)
        cl = self.headers.get("Content-Length")
        if cl:
            n = int(cl)
            data = self.rfile.read(n) if n > 0 else b""
            if len(data) < n:
                raise ConnectionResetError("eof in body")
            return data
        return b""

    def write(self, data):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except CONN_ERRORS as e:
            raise ClientGone(repr(e))
        except OSError as e:
            raise ClientGone(repr(e))

    def send_bytes(self, status, body, ctype="application/json",
                   headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # writes the header buffer
        self.write(body)

    def send_json(self, status, obj, headers=None):
        self.send_bytes(status, dumps(obj).encode("utf-8"),
                        headers=headers)

    def send_error_json(self, status, message, code, etype=None, param=None,
                        headers=None):
        self.send_json(status, error_body(status, message, code, etype, param),
                       headers=headers)

    def abort_rst(self):
        """Close the connection with a TCP RST, sending nothing."""
        self.close_connection = True
        try:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            self.request.close()
        except OSError:
            pass

    def abort_fin(self):
        """Close the connection (FIN) in the middle of a response."""
        self.close_connection = True
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- dispatch -------------------------------------------------------

    def dispatch(self):
        sim_health_enter(self)  # health block
        try:
            self._dispatch()
        except ClientGone as e:
            log("client went away: %s" % e)
            self.close_connection = True
        except CONN_ERRORS as e:
            log("connection error: %r" % (e,))
            self.close_connection = True
        except Exception:
            sys.stderr.write("simprovider: internal error on %s %s\n"
                             % (self.command, self.path))
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self.send_error_json(500, "simulator internal error",
                                     "sim_internal")
            except Exception:
                pass
        finally:
            sim_health_exit(self)  # health block

    def _dispatch(self):
        raw = self.read_body()
        path_only = self.path.split("?", 1)[0]

        if path_only == "/_sim" or path_only.startswith("/_sim/"):
            self.rfile_body = raw  # the control's own body (quality judge block)
            return self.control(path_only)

        opts, api_path = parse_path(self.path)
        api_path = preset_path(opts, api_path)  # preset quirks block
        body = None
        body_ok = False
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
                body_ok = True
            except (ValueError, UnicodeDecodeError):
                body = None
        STATE.record({
            "method": self.command,
            "path": self.path,
            "api_path": api_path,
            "opts": opts,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        })
        log("%s %s opts=%s" % (self.command, api_path, opts))
        chaos_prepare(self, body, opts)  # chaos block

        if flaky_fault(self, opts):
            return  # health block: a switch turned this provider bad

        delay = iopt(opts, "delay_ms", 0)
        if delay > 0:
            time.sleep(delay / 1000.0)

        if retry_fault(self, body, opts):
            return  # retries, policy and deadlines (block below)

        if upstream_fault(self, body, api_path):
            return  # model-name-triggered upstream faults (block below)

        if echo_key_fault(self, body, opts, api_path):
            return  # errors that repeat the credential (block below)

        if preset_quirk(self, body, opts, api_path):
            return  # a provider preset's quirks (block below)

        if anthropic_messages(self, body, body_ok, opts, api_path):
            return  # the Anthropic Messages API (block below)

        if responses_api(self, body, body_ok, opts, api_path):
            return  # the OpenAI Responses API (block below)

        if iopt(opts, "reset", 0):
            return self.abort_rst()

        if "require_key" in opts:
            want = "Bearer %s" % opts["require_key"]
            if (self.headers.get("Authorization") or "").strip() != want:
                return self.send_error_json(
                    401, "Incorrect API key provided (simulated)",
                    "invalid_api_key", etype="invalid_request_error")

        status = iopt(opts, "status", 0)
        if status and status != 200:
            return self.send_status_fault(status, opts)

        streaming = isinstance(body, dict) and body.get("stream") is True
        if iopt(opts, "error_event", 0) and not streaming:
            return self.send_status_fault(500, opts)

        if self.command == "POST" and quality_answer(self, body, api_path):
            return  # quality judge (block below cascade answers)
        if self.command == "POST" and cascade_answer(self, body, api_path):
            return  # cascade answers and the judge (block above upstream_fault)
        try:
            if api_path == "/chat/completions" and self.command == "POST":
                return self.chat(raw, body, body_ok, opts)
            if api_path == "/completions" and self.command == "POST":
                return self.completions(raw, body, body_ok, opts)
            if api_path == "/embeddings" and self.command == "POST":
                return self.embeddings(raw, body, body_ok, opts)
            if api_path == "/models" and self.command == "GET":
                return self.respond_ok({"object": "list",
                                        "data": list(MODELS)}, opts)
        except BadRequest as e:
            return self.send_error_json(400, e.message, e.code,
                                        etype="invalid_request_error",
                                        param=e.param)
        return self.send_error_json(
            404, "Unknown request URL: %s %s (simulated)"
            % (self.command, api_path), "unknown_url",
            etype="invalid_request_error")

    def send_status_fault(self, status, opts):
        headers = {}
        if status == 429:
            ra = iopt(opts, "retry_after", 1)
            headers["Retry-After"] = str(ra)
            headers["retry-after-ms"] = str(ra * 1000)
        self.send_error_json(status, "simulated %d" % status,
                             "sim_%d" % status, headers=headers)

    # ---- control endpoints ---------------------------------------------

    def control(self, path):
        if chaos_control(self, path):
            return None  # chaos block
        if quality_control(self, path):
            return None  # quality judge block
        if path == "/_sim/stats" and self.command == "GET":
            return self.send_json(200, STATE.stats())
        if path == "/_sim/requests" and self.command == "GET":
            return self.send_json(200, STATE.recent_list())
        if path == "/_sim/classifier" and self.command == "GET":
            return self.send_json(200, classifier_stats())
        if self.command == "POST" and sim_health_control(self, path):
            return None  # health block
        if path == "/_sim/reset" and self.command in ("POST", "GET"):
            sim_health_reset()  # health block
            STATE.reset()
            classifier_reset()
            retry_reset()
            chaos_reset()  # chaos block
            quality_reset()  # quality judge block
            return self.send_json(200, {"ok": True})
        if path == "/_sim/arrivals" and self.command == "GET":
            return self.send_json(200, retry_arrivals())
        if path == "/_sim/health" and self.command == "GET":
            return self.send_json(200, {"ok": True})
        return self.send_error_json(404, "unknown control endpoint",
                                    "unknown_url")

    # ---- response emitters with faults -----------------------------------

    def respond_ok(self, obj, opts):
        """Non-streamed 200 JSON response, honouring invalid_json,
        keepalive and cut_after."""
        if iopt(opts, "invalid_json", 0):
            payload = b'{"id": "broken", "choices": ['
        else:
            payload = dumps(obj).encode("utf-8")
        ka = max(0, iopt(opts, "keepalive", 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(ka + len(payload)))
        self.end_headers()
        retry_stall(self, opts)
        for _ in range(ka):
            self.write(b"\n")
            time.sleep(0.05)
        if "cut_after" in opts:
            self.write(payload[: len(payload) // 2])
            return self.abort_fin()
        self.write(payload)

    def stream(self, opts, first_event, content_events, final_events,
               pace_first=True):
        """Write an SSE stream with chunked framing, honouring the fault
        options. Events are already-serialised JSON objects (str)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        STATE.add(streams_started=1, active_streams=1)
        outcome = "aborted"
        try:
            try:
                self.end_headers()
                retry_stall(self, opts)
            except CONN_ERRORS as e:
                raise ClientGone(repr(e))
            except OSError as e:
                raise ClientGone(repr(e))
            outcome = self._stream_body(opts, first_event, content_events,
                                        final_events, pace_first)
        except ClientGone as e:
            log("stream aborted: %s" % e)
            outcome = "aborted"
            self.close_connection = True
        finally:
            if outcome == "completed":
                STATE.add(active_streams=-1, streams_completed=1)
            elif outcome == "cut":
                STATE.add(active_streams=-1, streams_cut=1)
            elif outcome == "error_event":
                STATE.add(active_streams=-1, streams_error_event=1)
            else:
                STATE.add(active_streams=-1, streams_aborted=1)

    def chunk(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return
        self.write(b"%x\r\n" % len(data) + data + b"\r\n")
        STATE.add(bytes_streamed=len(data))

    def event(self, payload):
        self.chunk("data: %s\n\n" % payload)

    def terminate(self):
        self.write(b"0\r\n\r\n")

    def _stream_body(self, opts, first_event, content_events, final_events,
                     pace_first):
        for _ in range(max(0, iopt(opts, "keepalive", 0))):
            self.chunk(": keep-alive\n\n")
            time.sleep(0.05)

        if iopt(opts, "error_event", 0):
            self.event(dumps(error_body(500, "simulated overload",
                                        "overloaded", etype="server_error")))
            self.terminate()
            return "error_event"

        if iopt(opts, "invalid_json", 0):
            self.chunk("data: {not json\n\n")
            self.event("[DONE]")
            self.terminate()
            return "completed"

        interval = max(0, iopt(opts, "interval_ms", 0)) / 1000.0
        cut = iopt(opts, "cut_after", -1) if "cut_after" in opts else None

        sent_any = False
        if first_event is not None:
            self.event(first_event)
            sent_any = True
        for i, ev in enumerate(content_events):
            if cut is not None and i >= cut:
                break
            if interval and sent_any and (pace_first or i > 0):
                time.sleep(interval)
            self.event(ev)
            sent_any = True
        if cut is not None:
            self.abort_fin()
            return "cut"
        for ev in final_events:
            if interval and sent_any:
                time.sleep(interval)
            self.event(ev)
        self.event("[DONE]")
        self.terminate()
        return "completed"

    # ---- API endpoints ------------------------------------------------

    @staticmethod
    def require_object(body, body_ok):
        if not body_ok:
            raise BadRequest("We could not parse the JSON body of your "
                             "request. (simulated)", code="invalid_json")
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object "
                             "(simulated)", code="invalid_json")

    def chat(self, raw, body, body_ok, opts):
        self.require_object(body, body_ok)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' is a required property (simulated)",
                             code="missing_required_parameter",
                             param="messages")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            model = "sim-mini"

        total_chars = 0
        last_user = ""
        for m in messages:
            if not isinstance(m, dict):
                continue
            t = content_text(m.get("content"))
            total_chars += len(t)
            if m.get("role") == "user":
                last_user = t
        prompt_tokens = max(1, total_chars // 4)
        # tools, response_format and n shape the choices (see chat_choices)
        choices = chat_choices(body, messages, model, last_user, opts)
        completion_tokens = sum(ch["tokens"] for ch in choices)
        usage = {"prompt_tokens": prompt_tokens,
                 "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        cid = "chatcmpl-sim%d" % STATE.next_id()
        created = int(time.time())

        if body.get("stream") is not True:
            return self.respond_ok({
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{
                    "index": i,
                    "message": chat_message(ch),
                    "logprobs": None,
                    "finish_reason": ch["finish"],
                } for i, ch in enumerate(choices)],
                "usage": usage,
                "system_fingerprint": "fp_sim",
            }, opts)

        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and so.get("include_usage") is True

        def chunk_obj(index, delta, finish):
            o = {"id": cid, "object": "chat.completion.chunk",
                 "created": created, "model": model,
                 "system_fingerprint": "fp_sim",
                 "choices": [{"index": index, "delta": delta,
                              "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                o["usage"] = None
            return dumps(o)

        first, contents, finals = chat_stream_events(choices, chunk_obj, opts)
        if include_usage:
            finals.append(dumps({"id": cid, "object": "chat.completion.chunk",
                                 "created": created, "model": model,
                                 "system_fingerprint": "fp_sim",
                                 "choices": [], "usage": usage}))
        self.stream(opts, first, contents, finals)

    def completions(self, raw, body, body_ok, opts):
        self.require_object(body, body_ok)
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt:
            if all(isinstance(p, str) for p in prompt):
                prompts = list(prompt)
            else:
                # token arrays: treat as a single prompt text
                prompts = [" ".join(str(p) for p in prompt)]
        else:
            raise BadRequest("'prompt' is a required property (simulated)",
                             code="missing_required_parameter",
                             param="prompt")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            model = "sim-mini"

        prompt_tokens = max(1, sum(len(p) for p in prompts) // 4)
        replies = [make_reply(model, p, opts) for p in prompts]
        completion_tokens = sum(r[2] for r in replies)
        usage = {"prompt_tokens": prompt_tokens,
                 "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        cid = "cmpl-sim%d" % STATE.next_id()
        created = int(time.time())

        if body.get("stream") is not True:
            return self.respond_ok({
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"text": r[1], "index": i, "logprobs": None,
                             "finish_reason": "stop"}
                            for i, r in enumerate(replies)],
                "usage": usage,
                "system_fingerprint": "fp_sim",
            }, opts)

        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and so.get("include_usage") is True

        def chunk_obj(idx, text, finish):
            o = {"id": cid, "object": "text_completion", "created": created,
                 "model": model, "system_fingerprint": "fp_sim",
                 "choices": [{"text": text, "index": idx, "logprobs": None,
                              "finish_reason": finish}]}
            if include_usage:
                o["usage"] = None
            return dumps(o)

        contents = []
        for i, r in enumerate(replies):
            contents.extend(chunk_obj(i, p, None) for p in r[0])
        finals = [chunk_obj(i, "", "stop") for i in range(len(replies))]
        if include_usage:
            finals.append(dumps({"id": cid, "object": "text_completion",
                                 "created": created, "model": model,
                                 "system_fingerprint": "fp_sim",
                                 "choices": [], "usage": usage}))
        self.stream(opts, None, contents, finals, pace_first=False)

    def embeddings(self, raw, body, body_ok, opts):
        self.require_object(body, body_ok)
        inp = body.get("input")
        if isinstance(inp, str):
            inputs = [inp]
        elif (isinstance(inp, list) and inp
              and all(isinstance(x, str) for x in inp)):
            inputs = list(inp)
        else:
            raise BadRequest("'input' must be a string or a list of strings "
                             "(simulated)", code="invalid_input",
                             param="input")
        dims = body.get("dimensions", 8)
        if dims is None:
            dims = 8
        if not isinstance(dims, int) or isinstance(dims, bool) or \
                dims < 1 or dims > 65536:
            raise BadRequest("'dimensions' must be a positive integer "
                             "(simulated)", code="invalid_value",
                             param="dimensions")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            model = "sim-embed"
        as_b64 = (body.get("encoding_format") == "base64"
                  and not iopt(opts, "no_base64", 0))
        data = []
        for i, text in enumerate(inputs):
            vec = embedding_vector(text, dims)
            if as_b64:
                emb = base64.b64encode(
                    struct.pack("<%df" % len(vec), *vec)).decode("ascii")
            else:
                emb = vec
            data.append({"object": "embedding", "index": i,
                         "embedding": emb})
        ptoks = max(1, sum(len(t) for t in inputs) // 4)
        self.respond_ok({"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": ptoks,
                                   "total_tokens": ptoks}}, opts)



# --------------------------------------------------------------------------
# Key echo (issue 14, "secrets never leak": tests/integration/
# test_resilience_ops.py). A provider whose errors repeat the credential it
# was sent, as real ones do ("Incorrect API key provided: sk-..."), so a
# test can prove the router never shows it to a client. Self-contained:
# echo_key_fault() is called once from Handler._dispatch and returns True
# when it answered. Options (with /sim/<opts>/):
#
#   echo_key=1              answer `status` (default 401) with an error body
#                           whose message holds the Authorization and
#                           x-api-key headers received (OpenAI's shape, or
#                           Anthropic's on /messages)
#   echo_key=1,status=200   a streamed request gets a 200 stream whose first
#                           data event is that error; a plain one a 200 JSON
#                           object {"error": ...} with it
#   echo_key=1,echo_after=N a streamed request gets N content chunks, then
#                           the error event with the key, then the end
#                           (a provider failing mid-stream)
# --------------------------------------------------------------------------

def echo_key_message(h):
    return ("Incorrect API key provided: Authorization=%s x-api-key=%s"
            % (h.headers.get("Authorization") or "-", h.headers.get("x-api-key") or "-"))


def echo_key_fault(h, body, opts, api_path):
    if not iopt(opts, "echo_key", 0):
        return False
    msg = echo_key_message(h)
    anthropic = api_path.startswith("/messages")
    status = iopt(opts, "status", 401)
    streaming = isinstance(body, dict) and body.get("stream") is True
    if anthropic:
        err = {"type": "error", "error": {"type": "authentication_error", "message": msg}}
    else:
        err = error_body(401, msg, "invalid_api_key", etype="invalid_request_error")
    if streaming and (status == 200 or "echo_after" in opts):
        n = max(0, iopt(opts, "echo_after", 0))
        model = body.get("model") or "sim"
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if anthropic:
            def ev(name, obj):
                h.chunk("event: %s\ndata: %s\n\n" % (name, dumps(obj)))
            if n > 0:
                ev("message_start", {"type": "message_start", "message": {
                    "id": "msg_echo", "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": 1}}})
                ev("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
                for i in range(n):
                    ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": "w%d " % i}})
            ev("error", err)
        else:
            for i in range(n):
                h.event(dumps({"id": "chatcmpl-echo", "object": "chat.completion.chunk",
                               "created": int(time.time()), "model": model,
                               "choices": [{"index": 0, "delta": (
                                   {"role": "assistant", "content": "w%d " % i} if i == 0
                                   else {"content": "w%d " % i}),
                                   "finish_reason": None}]}))
            h.event(dumps(err))
        h.terminate()
        return True
    h.send_json(status, err)
    return True
# ------------------------------------------------------------ end of key echo


# --------------------------------------------------------------------------
# Upstream faults chosen by the request's model name (tests/integration/
# test_upstream_faults.py). Self-contained: upstream_fault() is called once
# from Handler._dispatch after the request is read and recorded, and returns
# True when it answered (or dropped) the request. Model names:
#
#   sim-drop-after-read       read the whole request, then close (FIN) without
#                             a byte of answer, on a keep-alive connection
#   sim-429-ms-N              429 with only `retry-after-ms: N`
#   sim-429-s-N               429 with only `Retry-After: N` (seconds)
#   sim-429-date-N            429 with `Retry-After: <HTTP-date N s from now>`
#   sim-429-none              429 without any retry header
#   sim-stream-<shape>        a stream (chat or legacy completions) shaped by
#                             <shape>, dash-separated words:
#                               nofinish   no finish_reason chunk
#                               nodone     no data: [DONE]
#                               close      connection-close framing (no
#                                          chunked, no Content-Length)
#                               n2         two interleaved choices (0 and 1)
#                               halffinish with n2: only choice 0 finishes
#     e.g. sim-stream-nofinish-nodone, sim-stream-close-nofinish-nodone,
#          sim-stream-nodone, sim-stream-n2-halffinish-nodone
# --------------------------------------------------------------------------

FAULT_429_RE = re.compile(r"^sim-429-(ms|s|date)-(\d+)$")


# --------------------------------------------------------------------------
# Classifier models (routing.classifier tests). The answer is a label derived
# from the last user message: the word inside "[[...]]" when there is one,
# else "code" for a code fence or "def ", else "simple".
#   sim-classify            answers the label
#   sim-classify-garbage    answers a sentence that is no label
#   sim-classify-slow-<ms>  answers the label after <ms> milliseconds
#   sim-classify-500        fails with HTTP 500
# GET /_sim/classifier returns {"calls": {model: n}, "texts": [last user
# messages, in order]}; /_sim/reset clears it.
# --------------------------------------------------------------------------

CLASSIFIER_LOCK = threading.Lock()
CLASSIFIER_CALLS = {}
CLASSIFIER_TEXTS = collections.deque(maxlen=50)
CLASSIFY_LABEL_RE = re.compile(r"\[\[([A-Za-z0-9_-]+)\]\]")


def classifier_reset():
    with CLASSIFIER_LOCK:
        CLASSIFIER_CALLS.clear()
        CLASSIFIER_TEXTS.clear()


def classifier_stats():
    with CLASSIFIER_LOCK:
        return {"calls": dict(CLASSIFIER_CALLS), "texts": list(CLASSIFIER_TEXTS)}


def classifier_label(text):
    m = CLASSIFY_LABEL_RE.search(text)
    if m:
        return m.group(1)
    if "```" in text or "def " in text:
        return "code"
    return "simple"


def classifier_answer(h, body, model):
    messages = body.get("messages") if isinstance(body, dict) else None
    messages = messages if isinstance(messages, list) else []
    user, chars = "", 0
    for m in messages:
        if isinstance(m, dict):
            t = content_text(m.get("content"))
            chars += len(t)
            if m.get("role") == "user":
                user = t
    with CLASSIFIER_LOCK:
        CLASSIFIER_CALLS[model] = CLASSIFIER_CALLS.get(model, 0) + 1
        CLASSIFIER_TEXTS.append(user)
    if model == "sim-classify-500":
        h.send_error_json(500, "simulated classifier failure", "sim_500")
        return True
    m = re.match(r"^sim-classify-slow-(\d+)$", model)
    if m:
        time.sleep(int(m.group(1)) / 1000.0)
    content = classifier_label(user)
    if model == "sim-classify-garbage":
        content = "Well, I would say this looks like a question about many things."
    h.send_json(200, {
        "id": "chatcmpl-sim%d" % STATE.next_id(), "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": max(1, chars // 4), "completion_tokens": 1,
                  "total_tokens": max(1, chars // 4) + 1},
    })
    return True


# ---- cascade answers (issue 12 part 3: cheapest-first cascades) -----------
# Non-streamed chat answers that a cascade's checks reject, triggered by the
# upstream model name; and a judge model that answers a score. Streamed
# requests to these models get the ordinary simulated stream.
#   sim-casc-empty          content ""
#   sim-casc-length         finish_reason "length" (a truncated answer)
#   sim-casc-refusal        a refusal phrase ("I'm sorry, but I can't ...")
#   sim-casc-refusal-field  content null, message.refusal set
#   sim-casc-badjson        content that is not JSON
#   sim-casc-schemabad      JSON that matches no useful schema ({"sim_bad": 1})
#   sim-judge               content: the number after "judge-score=" in the
#                           prompt it judges (default 0.9); "judge-garbage"
#                           in it: a reply with no number
CASCADE_CONTENT = {
    "sim-casc-empty": ("", "stop", None),
    "sim-casc-length": ("This answer was cut off in the midd", "length", None),
    "sim-casc-refusal": ("I'm sorry, but I can't help with that request.", "stop", None),
    "sim-casc-refusal-field": (None, "stop", "I can't assist with that."),
    "sim-casc-badjson": ("{\"answer\": not json", "stop", None),
    "sim-casc-schemabad": ("{\"sim_bad\": 1}", "stop", None),
}
JUDGE_SCORE_RE = re.compile(r"judge-score=([0-9.]+)")


def cascade_answer(h, body, api_path):
    if api_path != "/chat/completions" or not isinstance(body, dict) or \
            body.get("stream") is True:
        return False
    model = body.get("model")
    if model == "sim-judge":
        text = " ".join(content_text(m.get("content"))
                        for m in body.get("messages") or [] if isinstance(m, dict))
        m = JUDGE_SCORE_RE.search(text)
        if "judge-garbage" in text:
            content = "Hard to say."
        else:
            content = m.group(1) if m else "0.9"
        finish, refusal = "stop", None
    elif model in CASCADE_CONTENT:
        content, finish, refusal = CASCADE_CONTENT[model]
    else:
        return False
    prompt = sum(len(content_text(m.get("content")))
                 for m in body.get("messages") or [] if isinstance(m, dict)) // 4
    completion = max(1, len(content or refusal or "") // 4)
    h.respond_ok({
        "id": "chatcmpl-sim%d" % STATE.next_id(), "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": finish,
                     "message": {"role": "assistant", "content": content,
                                 "refusal": refusal}}],
        "usage": {"prompt_tokens": max(1, prompt), "completion_tokens": completion,
                  "total_tokens": max(1, prompt) + completion},
    }, {})
    return True
# ---- end of cascade answers ------------------------------------------------


# ---- quality judge (issue 15) ----------------------------------------------
# A judge model whose scores the tests script, and models whose answers
# degrade on demand. POST /_sim/quality {"scores": {"sim-x": 3}, "default": 8,
# "mode": "json"|"text"|"garbage"|"status", "delay_ms": 0,
# "degrade": {"sim-x": "refusal"|"length"|"badjson"}} replaces the state
# "when": [{"question": REGEX, "model": "sim-x", "score": 4}, ...]}
# replaces the state (absent keys: defaults); /_sim/reset clears it. The
# judge ("sim-qjudge") finds the judged model by the "Simulated reply from
# MODEL" of the answer it is shown, or a "qscore=N" marker in it; a "when"
# entry whose regex matches the question (what the judge is shown before
# the answer) and whose model is the judged one wins over "scores".
# GET /_sim/quality: the calls.
QUALITY = {"scores": {}, "default": 8, "mode": "json", "delay_ms": 0,
           "degrade": {}, "when": [], "calls": 0}
QSCORE_RE = re.compile(r"qscore=(\d+)")
QMODEL_RE = re.compile(r"Simulated reply from ([A-Za-z0-9_.-]+)")


def quality_reset():
    QUALITY.update({"scores": {}, "default": 8, "mode": "json",
                    "delay_ms": 0, "degrade": {}, "when": [], "calls": 0})


def quality_control(h, path):
    if path != "/_sim/quality":
        return False
    if h.command == "GET":
        h.send_json(200, {"calls": QUALITY["calls"]})
        return True
    try:
        body = json.loads(h.rfile_body.decode("utf-8") or "{}")
    except ValueError:
        body = {}
    calls = QUALITY["calls"]
    quality_reset()
    QUALITY["calls"] = calls
    for k in ("scores", "default", "mode", "delay_ms", "degrade", "when"):
        if k in body:
            QUALITY[k] = body[k]
    h.send_json(200, {"ok": True})
    return True


def quality_answer(h, body, api_path):
    if api_path != "/chat/completions" or not isinstance(body, dict):
        return False
    model = body.get("model")
    if model == "sim-qjudge":
        QUALITY["calls"] += 1
        if QUALITY["delay_ms"]:
            time.sleep(QUALITY["delay_ms"] / 1000.0)
        mode = QUALITY["mode"]
        if mode == "status":
            h.send_error_json(503, "simulated judge outage", "sim_503")
            return True
        text = " ".join(content_text(m.get("content"))
                        for m in body.get("messages") or [] if isinstance(m, dict))
        question, _, answer = text.partition("Answer:")
        if not _:
            question, answer = "", text
        m = QSCORE_RE.search(answer)
        if m:
            score = int(m.group(1))
        else:
            mm = QMODEL_RE.search(answer)
            judged = mm.group(1).rstrip(":.") if mm else ""
            score = QUALITY["scores"].get(judged, QUALITY["default"])
            for w in QUALITY["when"]:
                if w.get("model") == judged and re.search(w.get("question", ""), question):
                    score = int(w.get("score", score))
                    break
        if mode == "garbage":
            content = "I would rather not grade this."
        elif mode == "text":
            content = "Score: %d \u2014 simulated judge (scores set by /_sim/quality)" % score
        else:
            content = dumps({"score": score, "reason": "simulated judge (scores set by /_sim/quality)"})
        h.respond_ok({
            "id": "chatcmpl-sim%d" % STATE.next_id(), "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content,
                                     "refusal": None}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 20,
                      "total_tokens": 1020},
        }, {})
        return True
    how = QUALITY["degrade"].get(model) if isinstance(model, str) else None
    if how is None or body.get("stream") is True:
        return False
    content, finish, refusal = "Simulated reply from %s: degraded" % model, "stop", None
    if how == "refusal":
        content, refusal = None, "I can't help with that."
    elif how == "length":
        finish = "length"
    elif how == "badjson":
        content = "{not json"
    h.respond_ok({
        "id": "chatcmpl-sim%d" % STATE.next_id(), "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": finish,
                     "message": {"role": "assistant", "content": content,
                                 "refusal": refusal}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }, {})
    return True
# ---- end of quality judge --------------------------------------------------


def upstream_fault(h, body, api_path):
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model.startswith("sim-"):
        return False
    if model.startswith("sim-classify"):
        return classifier_answer(h, body, model)
    if model == "sim-drop-after-read":
        h.close_connection = True
        try:
            h.wfile.flush()
            h.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return True
    m = FAULT_429_RE.match(model)
    if m or model == "sim-429-none":
        headers = {}
        if m:
            kind, n = m.group(1), int(m.group(2))
            if kind == "ms":
                headers["retry-after-ms"] = str(n)
            elif kind == "s":
                headers["Retry-After"] = str(n)
            else:
                import email.utils
                headers["Retry-After"] = email.utils.formatdate(
                    time.time() + n, usegmt=True)
        h.send_error_json(429, "simulated rate limit (%s)" % model,
                          "rate_limit_exceeded", etype="requests",
                          headers=headers)
        return True
    if model.startswith("sim-stream-") and isinstance(body, dict) and \
            api_path in ("/chat/completions", "/completions"):
        shaped_stream(h, body, api_path, model[len("sim-stream-"):].split("-"))
        return True
    return False


def shaped_stream(h, body, api_path, words):
    chat = api_path == "/chat/completions"
    close = "close" in words
    n = 2 if "n2" in words else 1
    so = body.get("stream_options")
    include_usage = isinstance(so, dict) and so.get("include_usage") is True
    cid = ("chatcmpl-shaped%d" if chat else "cmpl-shaped%d") % STATE.next_id()
    created = int(time.time())

    def chunk(idx, piece, finish, first=False):
        if chat:
            delta = {"role": "assistant", "content": ""} if first else \
                ({"content": piece} if piece is not None else {})
            ch = {"index": idx, "delta": delta, "logprobs": None,
                  "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            ch = {"text": piece or "", "index": idx, "logprobs": None,
                  "finish_reason": finish}
            obj = "text_completion"
        o = {"id": cid, "object": obj, "created": created,
             "model": body.get("model"), "choices": [ch]}
        if include_usage:
            o["usage"] = None
        return "data: %s\n\n" % dumps(o)

    events = []
    for i in range(n):
        if chat:
            events.append(chunk(i, None, None, first=True))
    for piece in ("Shaped ", "stream ", "text."):
        for i in range(n):
            events.append(chunk(i, piece, None))
    if "nofinish" not in words:
        for i in range(n):
            if i == 0 or "halffinish" not in words:
                events.append(chunk(i, None, "stop"))
        if include_usage:
            events.append("data: %s\n\n" % dumps({
                "id": cid, "object": "chat.completion.chunk" if chat
                else "text_completion", "created": created,
                "model": body.get("model"), "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3 * n,
                          "total_tokens": 3 + 3 * n}}))
    if "nodone" not in words:
        events.append("data: [DONE]\n\n")

    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Cache-Control", "no-cache")
    if close:
        h.send_header("Connection", "close")
        h.close_connection = True
    else:
        h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    STATE.add(streams_started=1)
    for ev in events:
        data = ev.encode("utf-8")
        h.write(data if close else b"%x\r\n" % len(data) + data + b"\r\n")
        time.sleep(0.005)
    if close:
        try:
            h.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    else:
        h.write(b"0\r\n\r\n")

# ---------------------------------------------------- end of upstream faults

# --------------------------------------------------------------------------
# Retries, failure policy and deadlines (issue 14 task B; tests/integration/
# test_retries.py). Self-contained: retry_fault() is called once from
# Handler._dispatch after the request is read, recorded and delayed, and
# returns True when it answered (or dropped) the request; retry_stall() is
# called by respond_ok() and stream() right after the response headers.
# Options:
#   fail_first=N,fail_key=K   the first N requests with the same key (K, a
#                             "|" and the last user message: a test that
#                             uses a fresh prompt gets a fresh counter) fail;
#                             later ones get the usual answer. Every request
#                             with a fail_key has its arrival time recorded.
#   fail_status=S             how they fail: HTTP S (default 503) with the
#                             simulator's error body, plus
#   fail_retry_after=N        `Retry-After: N` (seconds) and/or
#   fail_retry_after_ms=N     `retry-after-ms: N`;
#   fail_kind=reset|drop|badjson|stall   instead of a status: a TCP RST after
#                             reading the request; a close (FIN) without a
#                             byte of answer; a 200 whose body is not JSON;
#                             the usual answer after a stall_after_headers_ms
#                             (default 10000) pause after its headers
#   stall_after_headers_ms=N  every answer: status and headers, then N ms of
#                             silence, then the body (streams: the events)
# Model names:
#   sim-drop-reused           the usual answer on a connection's first
#                             request; on a later one (a reused keep-alive
#                             connection) the request is read and the
#                             connection closed without a byte of answer —
#                             the idle keep-alive close race
# Control: GET /_sim/arrivals returns {key: [time.monotonic() of each
# arrival]}; POST /_sim/reset clears it and the counters.
# --------------------------------------------------------------------------

RETRY_LOCK = threading.Lock()
RETRY_COUNTS = {}
RETRY_ARRIVALS = {}


def retry_reset():
    with RETRY_LOCK:
        RETRY_COUNTS.clear()
        RETRY_ARRIVALS.clear()


def retry_arrivals():
    with RETRY_LOCK:
        return {k: list(v) for k, v in RETRY_ARRIVALS.items()}


def retry_last_user(body):
    messages = body.get("messages") if isinstance(body, dict) else None
    text = ""
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, dict) and m.get("role") == "user":
            text = content_text(m.get("content"))
    if not text and isinstance(body, dict) and isinstance(body.get("prompt"), str):
        text = body["prompt"]
    return text


def retry_close(h):
    h.close_connection = True
    try:
        h.wfile.flush()
        h.request.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def retry_fault(h, body, opts):
    h._retry_nreq = getattr(h, "_retry_nreq", 0) + 1
    h._retry_stall = 0
    model = body.get("model") if isinstance(body, dict) else None
    if model == "sim-drop-reused" and h._retry_nreq > 1:
        retry_close(h)
        return True
    if "fail_key" not in opts:
        return False
    key = "%s|%s" % (opts["fail_key"], retry_last_user(body))
    with RETRY_LOCK:
        RETRY_ARRIVALS.setdefault(key, []).append(time.monotonic())
        n = RETRY_COUNTS.get(key, 0) + 1
        RETRY_COUNTS[key] = n
    if n > iopt(opts, "fail_first", 0):
        return False
    kind = opts.get("fail_kind", "status")
    if kind == "reset":
        h.abort_rst()
        return True
    if kind == "drop":
        retry_close(h)
        return True
    if kind == "badjson":
        h.send_bytes(200, b'{"id": "broken", "choices": [')
        return True
    if kind == "stall":
        h._retry_stall = iopt(opts, "stall_after_headers_ms", 10000)
        return False
    status = iopt(opts, "fail_status", 503)
    headers = {}
    if "fail_retry_after" in opts:
        headers["Retry-After"] = str(opts["fail_retry_after"])
    if "fail_retry_after_ms" in opts:
        headers["retry-after-ms"] = str(opts["fail_retry_after_ms"])
    h.send_error_json(status, "simulated %d (fail_first)" % status, "sim_%d" % status,
                      headers=headers)
    return True


def retry_stall(h, opts):
    ms = getattr(h, "_retry_stall", 0) or iopt(opts, "stall_after_headers_ms", 0)
    if ms > 0:
        h.wfile.flush()
        time.sleep(ms / 1000.0)

# ------------------------------------ end of retries, policy and deadlines

# --------------------------------------------------------------------------
# Anthropic Messages API (POST [/v1]/messages, [/v1]/messages/count_tokens)
# for the `type: anthropic` upstream (tests/unit/upstream/test_anthropic.c
# covers the translation; see tests/sim/README.md "Anthropic Messages API").
# Self-contained: anthropic_messages() is called once from Handler._dispatch
# after the request is read and recorded and returns True when it answered.
# Errors use Anthropic's shape {"type":"error","error":{"type","message"}};
# streams use Anthropic's named events. Fault options honoured: reset,
# require_key (compared with x-api-key), status, error_event, cut_after,
# keepalive (ping events), chunks, interval_ms, invalid_json; and for the
# native Messages streams error_after, stall_after/stall_ms, redacted,
# server_tool.
# --------------------------------------------------------------------------

ANT_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   402: "billing_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large",
                   429: "rate_limit_error", 500: "api_error",
                   504: "timeout_error", 529: "overloaded_error"}


class AntError(Exception):
    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message


def ant_error_type(status):
    if status in ANT_ERROR_TYPES:
        return ANT_ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def ant_error_body(status, message):
    return {"type": "error", "error": {"type": ant_error_type(status),
                                       "message": message},
            "request_id": "req_sim_%d" % STATE.next_id()}


def ant_send_error(h, status, message, headers=None):
    hd = {"request-id": "req_sim"}
    hd.update(headers or {})
    h.send_json(status, ant_error_body(status, message), headers=hd)


def ant_signature(thinking):
    """The signature the simulator gives a thinking text; a request that
    sends a thinking block back must carry it byte for byte."""
    d = hashlib.sha256(("sim-thinking:" + thinking).encode("utf-8")).digest()
    return "Sim" + base64.b64encode(d).decode("ascii")


def ant_blocks(content):
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def ant_validate(h, body):
    """Raises AntError for what the real API refuses (the pitfalls a
    translation must avoid)."""
    if not isinstance(body, dict):
        raise AntError(400, "request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise AntError(400, "model: Field required")
    mt = body.get("max_tokens")
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        raise AntError(400, "max_tokens: Field required (an integer >= 1)")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise AntError(400, "messages: at least one message is required")
    t = body.get("temperature")
    if t is not None and (not is_num(t) or t < 0 or t > 1):
        raise AntError(400, "temperature: must be between 0 and 1")
    sys_ = body.get("system")
    if sys_ is not None and not isinstance(sys_, str):
        if not isinstance(sys_, list) or any(
                not isinstance(b, dict) or b.get("type") != "text"
                or not isinstance(b.get("text"), str) for b in sys_):
            raise AntError(400, "system: must be a string or text blocks")
    for s in body.get("stop_sequences") or []:
        if not isinstance(s, str) or not s.strip():
            raise AntError(400, "stop_sequences: each sequence must contain "
                                "non-whitespace")
    tools = body.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise AntError(400, "tools: must be an array")
        for i, tl in enumerate(tools):
            if not isinstance(tl, dict) or not isinstance(tl.get("name"), str) \
                    or not isinstance(tl.get("input_schema"), dict) \
                    or tl["input_schema"].get("type") != "object":
                raise AntError(400, "tools.%d: needs name and an input_schema "
                                    "of type object" % i)
            names.add(tl["name"])
    tc = body.get("tool_choice")
    if tc is not None:
        if not isinstance(tc, dict) or tc.get("type") not in (
                "auto", "any", "none", "tool"):
            raise AntError(400, "tool_choice: invalid")
        if not tools:
            raise AntError(400, "tool_choice may only be specified while "
                                "providing tools")
        if tc["type"] == "tool" and tc.get("name") not in names:
            raise AntError(400, "tool_choice: tool %r not found"
                           % tc.get("name"))
    th = body.get("thinking")
    if th is not None:
        if not isinstance(th, dict) or th.get("type") not in ("enabled",
                                                              "disabled"):
            raise AntError(400, "thinking: invalid")
        if th["type"] == "enabled":
            b = th.get("budget_tokens")
            if not isinstance(b, int) or b < 1024 or b >= mt:
                raise AntError(400, "thinking.budget_tokens: must be >= 1024 "
                                    "and less than max_tokens")
            if t is not None and t != 1:
                raise AntError(400, "temperature may only be set to 1 when "
                                    "thinking is enabled")
            if isinstance(tc, dict) and tc.get("type") in ("any", "tool"):
                raise AntError(400, "Thinking may not be enabled when "
                                    "tool_choice forces tool use.")
    prev_tool_ids = set()
    used_tools = False
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user",
                                                            "assistant"):
            raise AntError(400, "messages.%d.role: must be user or assistant"
                           % i)
        blocks = ant_blocks(m.get("content"))
        if not isinstance(m.get("content"), (str, list)):
            raise AntError(400, "messages.%d.content: invalid" % i)
        ids = set()
        seen_other = False
        for j, b in enumerate(blocks):
            bt = b.get("type") if isinstance(b, dict) else None
            where = "messages.%d.content.%d" % (i, j)
            if bt == "text":
                if not isinstance(b.get("text"), str) or not b["text"]:
                    raise AntError(400, where + ": text content blocks must "
                                   "be non-empty")
                seen_other = True
            elif bt == "image":
                src = b.get("source") or {}
                if src.get("type") == "base64":
                    if src.get("media_type") not in (
                            "image/jpeg", "image/png", "image/gif",
                            "image/webp") or not src.get("data"):
                        raise AntError(400, where + ": invalid image source")
                elif src.get("type") != "url" or not src.get("url"):
                    raise AntError(400, where + ": invalid image source")
                seen_other = True
            elif bt == "tool_use" and m["role"] == "assistant":
                if not isinstance(b.get("id"), str) or \
                        not isinstance(b.get("input"), dict):
                    raise AntError(400, where + ": tool_use needs id and an "
                                   "input object")
                ids.add(b["id"])
                used_tools = True
            elif bt == "tool_result" and m["role"] == "user":
                if seen_other:
                    raise AntError(400, where + ": tool_result blocks must "
                                   "come first in their message")
                if b.get("tool_use_id") not in prev_tool_ids:
                    raise AntError(400, "messages.%d: Each `tool_result` "
                                   "block must have a corresponding "
                                   "`tool_use` block in the previous "
                                   "message." % i)
            elif bt in ("thinking", "redacted_thinking") and \
                    m["role"] == "assistant":
                if bt == "thinking" and b.get("signature") != ant_signature(
                        b.get("thinking") or ""):
                    raise AntError(400, where + ": Invalid `signature` in "
                                   "`thinking` block")
            else:
                raise AntError(400, where + ": unexpected block type %r"
                               % (bt,))
        prev_tool_ids = ids if m["role"] == "assistant" else set()
    if used_tools and not tools:
        raise AntError(400, "Requests which include `tool_use` or "
                            "`tool_result` blocks must define tools.")


def ant_plan(body):
    """The answer's blocks (text, thinking, tool_use), stop_reason and
    output token count, from the request only."""
    model = body["model"]
    msgs = body["messages"]
    last = ant_blocks(msgs[-1].get("content")) if msgs[-1]["role"] == "user" \
        else []
    results = [b for b in last if b.get("type") == "tool_result"]
    text = " ".join(b["text"] for b in last if b.get("type") == "text")
    tools = body.get("tools") or []
    tc = body.get("tool_choice") or {"type": "auto"}
    blocks = []
    th = body.get("thinking") or {}
    if th.get("type") == "enabled":
        thought = "Simulated thinking about: %s" % text[:60]
        blocks.append({"type": "thinking", "thinking": thought,
                       "signature": ant_signature(thought)})
    calls = []
    if tools and tc["type"] != "none" and not results and last:
        if tc["type"] == "tool":
            calls = [t for t in tools if t["name"] == tc["name"]]
        else:
            calls = [t for t in tools if re.search(
                r"\b%s\b" % re.escape(t["name"]), text)]
            if not calls and tc["type"] == "any":
                calls = tools[:1]
        if tc.get("disable_parallel_tool_use"):
            calls = calls[:1]
    if results:
        parts = []
        for r in results:
            c = r.get("content")
            parts.append("%s=%s" % (r.get("tool_use_id"), content_text(c)
                                    [:1000] if not isinstance(c, str)
                                    else c[:1000]))
        reply = "Simulated reply from %s with %d tool result(s): %s" % (
            model, len(results), "; ".join(parts))
    elif calls:
        reply = "Calling %s." % ", ".join(t["name"] for t in calls) \
            if tc["type"] == "auto" else ""
    else:
        reply = "Simulated reply from %s: %s" % (model, text[:60])
    stop_reason = "tool_use" if calls else "end_turn"
    stop_seq = None
    for s in body.get("stop_sequences") or []:
        k = reply.find(s)
        if k >= 0 and not calls:
            reply, stop_reason, stop_seq = reply[:k], "stop_sequence", s
    words = reply.split()
    if len(words) > body["max_tokens"] and not calls:
        reply = " ".join(words[:body["max_tokens"]])
        stop_reason = "max_tokens"
    if reply:
        blocks.append({"type": "text", "text": reply})
    for k, t in enumerate(calls):
        blocks.append({"type": "tool_use",
                       "id": "toolu_sim_%d_%d" % (len(msgs), k),
                       "name": t["name"],
                       "input": schema_value(t["input_schema"],
                                             t["input_schema"])})
    out = len(reply.split()) + sum(len(dumps(b["input"])) // 4 + 1
                                   for b in blocks
                                   if b["type"] == "tool_use")
    return blocks, stop_reason, stop_seq, out


def ant_usage(body, opts):
    raw = dumps(body.get("messages")) + dumps(body.get("system") or "")
    cached = '"cache_control"' in dumps(body)
    u = {"input_tokens": max(1, len(raw) // 4),
         "cache_creation_input_tokens": iopt(opts, "cache_write",
                                             10 if cached else 0),
         "cache_read_input_tokens": iopt(opts, "cache_read",
                                         50 if cached else 0)}
    return u


def anthropic_messages(h, body, body_ok, opts, api_path):
    if api_path not in ("/messages", "/messages/count_tokens") or \
            h.command != "POST":
        return False
    if iopt(opts, "reset", 0):
        h.abort_rst()
        return True
    key = (h.headers.get("x-api-key") or "").strip()
    if "require_key" in opts and key != opts["require_key"]:
        ant_send_error(h, 401, "invalid x-api-key (simulated)")
        return True
    if not key:
        ant_send_error(h, 401, "x-api-key header is required (simulated)")
        return True
    if not (h.headers.get("anthropic-version") or "").strip():
        ant_send_error(h, 400, "anthropic-version: header is required "
                               "(simulated)")
        return True
    status = iopt(opts, "status", 0)
    if status and status != 200:
        hd = {}
        if status == 429 or status == 529:
            hd["retry-after"] = str(iopt(opts, "retry_after", 1))
        ant_send_error(h, status, "simulated %d" % status, headers=hd)
        return True
    if not body_ok:
        ant_send_error(h, 400, "request body is not valid JSON (simulated)")
        return True
    streaming = isinstance(body, dict) and body.get("stream") is True
    if iopt(opts, "error_event", 0) and not streaming:
        ant_send_error(h, 529, "Overloaded")
        return True
    if api_path == "/messages/count_tokens":
        if not isinstance(body, dict) or not isinstance(body.get("messages"),
                                                        list):
            ant_send_error(h, 400, "messages: Field required")
            return True
        h.send_json(200, {"input_tokens": ant_usage(body, opts)
                          ["input_tokens"]})
        return True
    try:
        ant_validate(h, body)
    except AntError as e:
        ant_send_error(h, e.status, e.message + " (simulated)")
        return True
    blocks, stop_reason, stop_seq, out = ant_plan(body)
    blocks = ant_extra_blocks(opts, blocks)
    usage = ant_usage(body, opts)
    mid = "msg_sim_%d" % STATE.next_id()
    if not streaming:
        usage["output_tokens"] = out
        h.respond_ok({"id": mid, "type": "message", "role": "assistant",
                      "model": body["model"], "content": blocks,
                      "stop_reason": stop_reason, "stop_sequence": stop_seq,
                      "usage": usage}, opts)
        return True
    ant_stream(h, body, opts, mid, blocks, stop_reason, stop_seq, usage, out)
    return True


# ---- blocks with no chat equivalent (native Messages pass-through tests) --
# redacted=1 puts a redacted_thinking block first; server_tool=1 a server
# tool call (server_tool_use web_search) and its web_search_tool_result
# before the text. Streamed: redacted_thinking and the result come whole in
# content_block_start, the server tool's input as input_json_delta pieces.
SIM_REDACTED_DATA = "EmwKAhgBEgySimRedactedThinking"


def ant_extra_blocks(opts, blocks):
    extra = []
    if iopt(opts, "redacted", 0):
        extra.append({"type": "redacted_thinking", "data": SIM_REDACTED_DATA})
    if iopt(opts, "server_tool", 0):
        extra.append({"type": "server_tool_use", "id": "srvtoolu_sim_1",
                      "name": "web_search", "input": {"query": "sim query"}})
        extra.append({"type": "web_search_tool_result",
                      "tool_use_id": "srvtoolu_sim_1",
                      "content": [{"type": "web_search_result",
                                   "url": "https://example.com/sim",
                                   "title": "Sim result",
                                   "encrypted_content": "SimEncrypted",
                                   "page_age": None}]})
    return extra + blocks


def ant_stream(h, body, opts, mid, blocks, stop_reason, stop_seq, usage, out):
    def ev(t, **d):
        return "event: %s\ndata: %s\n\n" % (t, dumps(dict({"type": t}, **d)))
    chunks = max(1, iopt(opts, "chunks", 5))
    start = ev("message_start", message={
        "id": mid, "type": "message", "role": "assistant",
        "model": body["model"], "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": dict(usage, output_tokens=1)})
    content = []
    for i, b in enumerate(blocks):
        if b["type"] == "text":
            content.append(ev("content_block_start", index=i,
                              content_block={"type": "text", "text": ""}))
            for p in split_reply(b["text"], chunks)[0]:
                content.append(ev("content_block_delta", index=i, delta={
                    "type": "text_delta", "text": p}))
        elif b["type"] == "thinking":
            content.append(ev("content_block_start", index=i, content_block={
                "type": "thinking", "thinking": ""}))
            for p in split_chars(b["thinking"], 2):
                content.append(ev("content_block_delta", index=i, delta={
                    "type": "thinking_delta", "thinking": p}))
            content.append(ev("content_block_delta", index=i, delta={
                "type": "signature_delta", "signature": b["signature"]}))
        elif b["type"] in ("redacted_thinking", "web_search_tool_result"):
            content.append(ev("content_block_start", index=i,
                              content_block=b))
        else:
            content.append(ev("content_block_start", index=i, content_block={
                "type": b["type"], "id": b["id"], "name": b["name"],
                "input": {}}))
            content.append(ev("content_block_delta", index=i, delta={
                "type": "input_json_delta", "partial_json": ""}))
            for p in split_chars(dumps(b["input"]), max(2, chunks)):
                content.append(ev("content_block_delta", index=i, delta={
                    "type": "input_json_delta", "partial_json": p}))
        content.append(ev("content_block_stop", index=i))
    final = [ev("message_delta", delta={"stop_reason": stop_reason,
                                        "stop_sequence": stop_seq},
                usage={"output_tokens": out}),
             ev("message_stop")]
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Cache-Control", "no-cache")
    h.send_header("Transfer-Encoding", "chunked")
    h.send_header("request-id", "req_sim")
    STATE.add(streams_started=1, active_streams=1)
    outcome = "aborted"
    try:
        h.end_headers()
        for _ in range(max(0, iopt(opts, "keepalive", 0))):
            h.chunk(ev("ping"))
            time.sleep(0.05)
        h.chunk(start)
        if iopt(opts, "error_event", 0):
            h.chunk(ev("error", error={"type": "overloaded_error",
                                       "message": "Overloaded"}))
            h.terminate()
            outcome = "error_event"
            return
        if iopt(opts, "invalid_json", 0):
            h.chunk("event: content_block_start\ndata: {not json\n\n")
        interval = max(0, iopt(opts, "interval_ms", 0)) / 1000.0
        cut = iopt(opts, "cut_after", -1) if "cut_after" in opts else None
        h.chunk(ev("ping"))
        err_after = iopt(opts, "error_after", -1) if "error_after" in opts \
            else None
        stall_after = iopt(opts, "stall_after", -1) \
            if "stall_after" in opts else None
        for i, e in enumerate(content):
            if stall_after is not None and i == stall_after:
                time.sleep(max(0, iopt(opts, "stall_ms", 5000)) / 1000.0)
            if err_after is not None and i >= err_after:
                h.chunk(ev("error", error={"type": "overloaded_error",
                                           "message": "Overloaded"}))
                h.terminate()
                outcome = "error_event"
                return
            if cut is not None and i >= cut:
                h.abort_fin()
                outcome = "cut"
                return
            if interval:
                time.sleep(interval)
            h.chunk(e)
        if cut is not None and cut >= len(content):
            h.abort_fin()
            outcome = "cut"
            return
        for e in final:
            h.chunk(e)
        h.terminate()
        outcome = "completed"
    except (ClientGone,) + CONN_ERRORS as e:
        log("anthropic stream aborted: %r" % (e,))
        h.close_connection = True
    finally:
        key = {"completed": "streams_completed", "cut": "streams_cut",
               "error_event": "streams_error_event"}.get(outcome,
                                                        "streams_aborted")
        STATE.add(active_streams=-1, **{key: 1})

# ------------------------------------------- end of Anthropic Messages API

# --------------------------------------------------------------------------
# OpenAI Responses API (POST [/v1]/responses), for the daemon's native
# pass-through to a `responses_api: true` provider (issue 13 part 3).
# Options as for chat: status=N (an OpenAI error), chunks=N, cut_after=N
# (the stream stops after N events, no response.completed), error_event=1
# (an `error` event after response.created).
# --------------------------------------------------------------------------

def resp_input_text(body):
    inp = body.get("input")
    if isinstance(inp, str):
        return inp
    text = ""
    for it in inp if isinstance(inp, list) else []:
        if isinstance(it, dict) and it.get("role") == "user":
            c = it.get("content")
            if isinstance(c, str):
                text = c
            elif isinstance(c, list):
                text = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return text


def responses_api(h, body, body_ok, opts, api_path):
    if api_path != "/responses" or h.command != "POST":
        return False
    status = iopt(opts, "status", 0)
    if status and status != 200:
        h.send_status_fault(status, opts)
        return True
    if not body_ok or not isinstance(body, dict) or "input" not in body:
        h.send_error_json(400, "input: required (simulated)", "missing_required_parameter",
                          etype="invalid_request_error", param="input")
        return True
    model = str(body.get("model"))
    pieces, text, ctoks = make_reply(model, resp_input_text(body), opts)
    rid = "resp_sim_%d" % STATE.next_id()
    ptoks = max(1, len(json.dumps(body.get("input"))) // 4)
    usage = {"input_tokens": ptoks, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": ctoks, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": ptoks + ctoks}
    msg = {"type": "message", "id": "msg_" + rid, "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]}
    resp = {"id": rid, "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": model, "output": [msg], "usage": usage,
            "store": body.get("store")}
    if body.get("stream") is not True:
        h.send_json(200, resp)
        return True
    seq = [0]

    def ev(obj):
        obj["sequence_number"] = seq[0]
        seq[0] += 1
        return ("event: %s\ndata: %s\n\n" % (obj["type"], json.dumps(obj))).encode()

    start = dict(resp, status="in_progress", output=[], usage=None)
    item0 = dict(msg, status="in_progress", content=[])
    events = [ev({"type": "response.created", "response": start}),
              ev({"type": "response.in_progress", "response": start})]
    if iopt(opts, "error_event", 0):
        events.append(ev({"type": "error", "code": "server_error",
                          "message": "simulated error event", "param": None}))
    events.append(ev({"type": "response.output_item.added", "output_index": 0, "item": item0}))
    events.append(ev({"type": "response.content_part.added", "item_id": msg["id"],
                      "output_index": 0, "content_index": 0,
                      "part": {"type": "output_text", "text": "", "annotations": []}}))
    for p in pieces:
        events.append(ev({"type": "response.output_text.delta", "item_id": msg["id"],
                          "output_index": 0, "content_index": 0, "delta": p}))
    events.append(ev({"type": "response.output_text.done", "item_id": msg["id"],
                      "output_index": 0, "content_index": 0, "text": text}))
    events.append(ev({"type": "response.output_item.done", "output_index": 0, "item": msg}))
    events.append(ev({"type": "response.completed", "response": resp}))
    cut = iopt(opts, "cut_after", 0)
    if cut:
        events = events[:cut]
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Connection", "close")
    h.end_headers()
    for e in events:
        h.write(e)
    h.close_connection = True
    return True

# ------------------------------------------- end of OpenAI Responses API

# --------------------------------------------------------------------------
# Circuit breaking and concurrency limits (issue 14, task C:
# tests/integration/test_health.py). Self-contained; hooked in at the
# places marked "health block": Handler.dispatch counts API requests in
# flight, State.record counts requests per body model, State.stats adds the
# figures below, and Handler._dispatch asks flaky_fault() first; the block
# also wraps Handler.send_response.
#
#   /_sim/stats  "inflight"       API requests read and not answered yet (a
#                                 request stops counting when its status
#                                 line goes out: the client may start its
#                                 next one as soon as it has the answer)
#                "peak_inflight"  the most at once since the last reset
#                "by_model"       requests per body "model"
#   option flaky=NAME             answers like status=N while the switch
#                                 NAME is set to N (healthy otherwise)
#   POST /_sim/flaky?name=NAME&status=N   sets the switch (0: healthy);
#                                 /_sim/reset clears every switch
# --------------------------------------------------------------------------

STRING_OPTS.add("flaky")
_HEALTH_LOCK = threading.Lock()
_HEALTH = {"inflight": 0, "peak_inflight": 0, "by_model": {}, "flaky": {}}


def sim_health_enter(handler):
    """Counts an API request in flight; returns whether it counted."""
    handler._sim_inflight = False
    if handler.path.split("?", 1)[0].startswith("/_sim"):
        return False
    with _HEALTH_LOCK:
        _HEALTH["inflight"] += 1
        _HEALTH["peak_inflight"] = max(_HEALTH["peak_inflight"], _HEALTH["inflight"])
    handler._sim_inflight = True
    return True


def sim_health_exit(handler):
    """The request is answered (or dropped): it stops counting, once."""
    if getattr(handler, "_sim_inflight", False):
        handler._sim_inflight = False
        with _HEALTH_LOCK:
            _HEALTH["inflight"] -= 1


_plain_send_response = Handler.send_response


def _send_response_counted(self, code, message=None):
    sim_health_exit(self)
    return _plain_send_response(self, code, message)


Handler.send_response = _send_response_counted


def sim_health_model(entry):
    body = entry.get("body")
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str):
        with _HEALTH_LOCK:
            _HEALTH["by_model"][model] = _HEALTH["by_model"].get(model, 0) + 1


def sim_health_stats():
    with _HEALTH_LOCK:
        return {"inflight": _HEALTH["inflight"], "peak_inflight": _HEALTH["peak_inflight"],
                "by_model": dict(_HEALTH["by_model"])}


def sim_health_reset():
    with _HEALTH_LOCK:
        _HEALTH["peak_inflight"] = _HEALTH["inflight"]
        _HEALTH["by_model"] = {}
        _HEALTH["flaky"] = {}


def sim_health_control(handler, path):
    """POST /_sim/flaky?name=NAME&status=N. Returns True when it answered."""
    if path != "/_sim/flaky":
        return False
    q = urllib.parse.parse_qs(handler.path.split("?", 1)[1] if "?" in handler.path else "")
    name = (q.get("name") or [""])[0]
    try:
        status = int((q.get("status") or ["0"])[0])
    except ValueError:
        status = -1
    if not name or status < 0 or status > 599:
        handler.send_error_json(400, "expected ?name=NAME&status=N", "sim_bad_flaky")
        return True
    with _HEALTH_LOCK:
        _HEALTH["flaky"][name] = status
    handler.send_json(200, {"ok": True, "name": name, "status": status})
    return True


def flaky_fault(handler, opts):
    """The flaky=NAME option: answers the switch's status when it is set."""
    name = opts.get("flaky")
    if not isinstance(name, str):
        return False
    with _HEALTH_LOCK:
        status = _HEALTH["flaky"].get(name, 0)
    if not status or status == 200:
        return False
    handler.send_status_fault(status, opts)
    return True

# ------------------------ end of circuit breaking and concurrency limits

# --------------------------------------------------------------------------
# Chaos faults (issue 14 task G: tests/integration/test_chaos.py).
# Self-contained; hooked in at the places marked "chaos block":
# Handler._dispatch calls chaos_prepare() once after the request is read and
# recorded, Handler.control asks chaos_control() first and the reset clears
# the counters. chaos_prepare() shapes the handler instance (its write,
# send_header and abort_fin), so the ordinary emitters need no change.
#
#   trickle_ms=N      every byte of the body (after the status line and the
#                     headers) written on its own, N ms apart; a stream's
#                     chunk framing too
#   reset_after=N     like cut_after=N, but the connection ends with a TCP
#                     RST (SO_LINGER 0) instead of a FIN: a stream sends the
#                     role chunk and N content chunks; a plain answer its
#                     headers (full Content-Length) and half its body
#                     (`reset=1` is different: a RST before any byte)
#   close_nodone=1    a clean end without [DONE]: a stream sends the role
#                     chunk and every content chunk, no finish_reason chunk,
#                     no [DONE], then the chunked terminator and a FIN; a
#                     plain answer has no Content-Length (framed by the
#                     close) and ends with a FIN after half its body
#   GET /_sim/chaos   {"by_marker": {"<n>": requests}} for API requests whose
#                     last user message holds "chaos-<n>" (the suite's
#                     per-request marker); /_sim/reset clears it
# Streams ended by reset_after or close_nodone count as streams_cut.
# --------------------------------------------------------------------------

_CHAOS_LOCK = threading.Lock()
_CHAOS_MARKERS = {}
_CHAOS_MARKER_RE = re.compile(r"\bchaos-(\d+)\b")


def chaos_reset():
    with _CHAOS_LOCK:
        _CHAOS_MARKERS.clear()


def _chaos_marker(body):
    if not isinstance(body, dict):
        return None
    text = ""
    messages = body.get("messages")
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, dict) and m.get("role") == "user":
            text = content_text(m.get("content"))
    if not text and isinstance(body.get("prompt"), str):
        text = body["prompt"]
    m = _CHAOS_MARKER_RE.search(text)
    return m.group(1) if m else None


def chaos_prepare(h, body, opts):
    """Counts the request's marker and installs the chaos options on the
    handler instance (instance attributes shadow the class's methods)."""
    # one handler serves every request of a keep-alive connection: undo what
    # an earlier request of the connection installed
    for name in ("write", "send_header", "abort_fin"):
        h.__dict__.pop(name, None)
    marker = _chaos_marker(body)
    if marker is not None:
        with _CHAOS_LOCK:
            _CHAOS_MARKERS[marker] = _CHAOS_MARKERS.get(marker, 0) + 1
    streaming = isinstance(body, dict) and body.get("stream") is True

    gap = iopt(opts, "trickle_ms", 0)
    if gap > 0:
        def trickle_write(data):
            for i in range(len(data)):
                Handler.write(h, data[i:i + 1])
                time.sleep(gap / 1000.0)
        h.write = trickle_write

    if "reset_after" in opts:
        opts["cut_after"] = iopt(opts, "reset_after", 0)
        h.abort_fin = h.abort_rst

    if iopt(opts, "close_nodone", 0):
        opts.pop("reset_after", None)
        if streaming:
            # every content chunk, then the end a finished stream would
            # have, minus the finish_reason chunk and [DONE]
            opts["cut_after"] = max(1, iopt(opts, "chunks", 5))

            def clean_end():
                h.terminate()
                Handler.abort_fin(h)
            h.abort_fin = clean_end
        else:
            opts["cut_after"] = 1

            def send_header_close_framed(key, value):
                if key.lower() == "content-length":
                    h.close_connection = True
                    return Handler.send_header(h, "Connection", "close")
                return Handler.send_header(h, key, value)
            h.send_header = send_header_close_framed


def chaos_control(h, path):
    """GET /_sim/chaos. Returns True when it answered."""
    if path != "/_sim/chaos" or h.command != "GET":
        return False
    with _CHAOS_LOCK:
        by_marker = dict(_CHAOS_MARKERS)
    h.send_json(200, {"by_marker": by_marker})
    return True

# ------------------------------------------------------ end of chaos faults


# ---------------------------------------------------------------- preset quirks
# quirk=NAME in the /sim/ prefix reproduces a provider preset's departures
# from OpenAI's wire format (tests/integration/test_presets.py):
#   azure     the path is [/openai]/deployments/<deployment>/<api path> and
#             needs ?api-version= (else 404, like Azure); the request is
#             recorded as sent (path with query, headers); echo_headers=1
#             answers 401 repeating its api-key and X-Hdr-Secret headers
#   gemini    an error (status=N) is [{"error":{code,message,status}}];
#             array_event=1 sends it as a 200 stream's first event; a streamed
#             tool call has no index and id "", its arguments in frags=K (2)
#             chunks (arg_bytes=N pads them), and the turn ends with
#             finish_reason "stop" (a plain answer's calls too, ids "")
#   mistral   an error (status=N) is flat {"object":"error",message,type,...};
#             a tool-call id that is not 9 of [a-zA-Z0-9] gets that 400
#   groq      logprobs, top_logprobs, logit_bias, n != 1 or messages[].name
#             get a 400
#   deepseek  keepalive=N ": keep-alive" comments (streamed) or blank lines
#             (plain) every keepalive_ms (100) before the answer, which
#             carries reasoning_content (message and deltas)
PRESET_DEPLOY_RE = re.compile(r"^(?:/openai)?/deployments/([^/]+)(/.*)$")
PRESET_ID9_RE = re.compile(r"^[a-zA-Z0-9]{9}$")


def preset_path(opts, api_path):
    """The API path of a preset-shaped request target: Azure's deployment,
    gemini's /v1beta/openai, groq's /openai/v1 taken off."""
    q = opts.get("quirk")
    if q == "azure":
        m = PRESET_DEPLOY_RE.match(api_path)
        return m.group(2) if m else api_path
    if q in ("gemini", "groq"):
        return re.sub(r"^/(v1beta/openai|openai/v1)(?=/)", "", api_path)
    return api_path


def _preset_stream_head(h):
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()


def _preset_chunk(model, delta, finish=None):
    return dumps({"id": "chatcmpl-q", "object": "chat.completion.chunk", "created": 0,
                  "model": model, "choices": [{"index": 0, "delta": delta,
                                               "finish_reason": finish}]})


def _preset_usage(h, body, model):
    so = body.get("stream_options") or {}
    if isinstance(so, dict) and so.get("include_usage"):
        h.event(dumps({"id": "chatcmpl-q", "object": "chat.completion.chunk", "created": 0,
                       "model": model, "choices": [],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 5,
                                 "total_tokens": 12}}))


def _preset_gemini(h, body, opts, status):
    model = body.get("model") or "sim"
    codes = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 403: "PERMISSION_DENIED"}
    err = [{"error": {"code": status or 400, "message": "simulated gemini error",
                      "status": codes.get(status or 400, "UNAVAILABLE")}}]
    if status and status != 200:
        h.send_json(status, err)
        return True
    tools = [t.get("function", {}).get("name") for t in body.get("tools") or []
             if isinstance(t, dict)]
    if not body.get("stream"):
        if not tools:
            return False
        h.send_json(200, {"id": "chatcmpl-q", "object": "chat.completion", "created": 0,
                          "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": None, "tool_calls": [
                              {"id": "", "type": "function",
                               "function": {"name": n, "arguments": "{}"}} for n in tools[:2]]}}],
                          "usage": {"prompt_tokens": 7, "completion_tokens": 5,
                                    "total_tokens": 12}})
        return True
    if iopt(opts, "array_event", 0):
        _preset_stream_head(h)
        h.event(dumps(err))
        h.terminate()
        return True
    if not tools:
        return False
    _preset_stream_head(h)
    first = True
    pad = max(8, iopt(opts, "arg_bytes", 8))  # arg_bytes=N, frags=K: a long stream
    frags = max(2, iopt(opts, "frags", 2))
    for name in tools[:2]:
        args = dumps({"tool": name, "q": "x" * pad})
        step = max(1, -(-len(args) // frags))
        pieces = [args[i:i + step] for i in range(0, len(args), step)]
        delta = {"tool_calls": [{"id": "", "type": "function",
                                 "function": {"name": name, "arguments": pieces[0]}}]}
        if first:
            delta = dict({"role": "assistant"}, **delta)
            first = False
        h.event(_preset_chunk(model, delta))
        for piece in pieces[1:]:
            h.event(_preset_chunk(model, {"tool_calls": [{"function": {"arguments": piece}}]}))
    h.event(_preset_chunk(model, {}, "stop"))
    _preset_usage(h, body, model)
    h.event("[DONE]")
    h.terminate()
    return True


def _preset_mistral(h, body, status):
    def flat(st, msg):
        h.send_json(st, {"object": "error", "message": msg, "type": "invalid_request_error",
                         "param": None, "code": str(st)})
        return True
    if status and status != 200:
        return flat(status, "simulated mistral error")
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        ids = [m["tool_call_id"]] if "tool_call_id" in m else []
        ids += [tc.get("id") for tc in m.get("tool_calls") or [] if isinstance(tc, dict)]
        for i in ids:
            if not isinstance(i, str) or not PRESET_ID9_RE.match(i):
                return flat(400, "Tool call id was %s but must be a-z, A-Z, 0-9, with a "
                                 "length of 9. (simulated)" % (i,))
    return False


def _preset_groq(h, body):
    bad = [k for k in ("logprobs", "top_logprobs", "logit_bias") if k in body]
    if "n" in body and body["n"] != 1:
        bad.append("n")
    if any(isinstance(m, dict) and "name" in m for m in body.get("messages") or []):
        bad.append("messages[].name")
    if not bad:
        return False
    h.send_error_json(400, "'%s' : property '%s' is unsupported (simulated)" % (bad[0], bad[0]),
                      None, etype="invalid_request_error", param=bad[0])
    return True


def _preset_deepseek(h, body, opts):
    model = body.get("model") or "sim"
    n = max(0, iopt(opts, "keepalive", 0))
    gap = max(0, iopt(opts, "keepalive_ms", 100)) / 1000.0
    if body.get("stream"):
        _preset_stream_head(h)
        for _ in range(n):
            h.chunk(": keep-alive\n\n")
            time.sleep(gap)
        h.event(_preset_chunk(model, {"role": "assistant", "content": None,
                                      "reasoning_content": "Thinking it over."}))
        h.event(_preset_chunk(model, {"content": "Deep answer."}))
        h.event(_preset_chunk(model, {}, "stop"))
        _preset_usage(h, body, model)
        h.event("[DONE]")
        h.terminate()
        return True
    ans = dumps({"id": "chatcmpl-q", "object": "chat.completion", "created": 0, "model": model,
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": "Deep answer.",
                                          "reasoning_content": "Thinking it over."}}],
                 "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12,
                           "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 7}})
    data = ans.encode("utf-8")
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(n + len(data)))
    h.end_headers()
    for _ in range(n):
        h.write(b"\n")
        time.sleep(gap)
    h.write(data)
    return True


def preset_quirk(h, body, opts, api_path):
    """Answers a request of a quirk=NAME provider where its quirk shows;
    False to let the ordinary handlers answer."""
    q = opts.get("quirk")
    if q is None or h.command != "POST" or api_path != "/chat/completions":
        return False
    if q == "azure":
        if iopt(opts, "echo_headers", 0):  # a provider repeating what it was sent
            return h.send_error_json(
                401, "Incorrect API key provided: api-key=%s x-hdr-secret=%s (simulated)"
                % (h.headers.get("api-key") or "-", h.headers.get("X-Hdr-Secret") or "-"),
                "invalid_api_key", etype="invalid_request_error") or True
        if "api-version=" not in h.path.partition("?")[2]:
            h.send_json(404, {"error": {"code": "404", "message": "Resource not found"}})
            return True
        return False
    if not isinstance(body, dict):
        return False
    status = iopt(opts, "status", 0)
    if q == "gemini":
        return _preset_gemini(h, body, opts, status)
    if q == "mistral":
        return _preset_mistral(h, body, status)
    if q == "groq":
        return _preset_groq(h, body)
    if q == "deepseek":
        return _preset_deepseek(h, body, opts)
    return False

# ------------------------------------------------------- end of preset quirks




# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(
        description="Simulated OpenAI-compatible provider with fault "
                    "injection (see tests/sim/README.md)")
    ap.add_argument("--port", type=int, required=True,
                    help="port to listen on (0 = pick a free port)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file", help="write the bound port to this file")
    ap.add_argument("--verbose", action="store_true",
                    help="log requests to stderr")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose

    Server.address_family = (socket.AF_INET6 if ":" in args.host
                             else socket.AF_INET)
    try:
        server = Server((args.host, args.port), Handler)
    except OSError as e:
        sys.stderr.write("simprovider: cannot listen on %s:%d: %s\n"
                         % (args.host, args.port, e))
        return 1
    port = server.server_address[1]

    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever,
                         kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()

    sys.stdout.write("LISTENING %d\n" % port)
    sys.stdout.flush()

    while not stop.wait(0.5):
        if not t.is_alive():
            break
    server.shutdown()
    server.server_close()
    log("shut down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
