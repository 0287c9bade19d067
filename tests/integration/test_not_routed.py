#!/usr/bin/env python3
"""Requests that never reached routing, and explain calls, through the real
daemon: hostile input must never crash it, with or without routing rules,
and telemetry must not book such requests to a tier or rule they never had.

    python3 tests/integration/test_not_routed.py [-k SUBSTRING]...

Two daemons run the same cases: one with the test config (which has rules)
and one whose `routing.rules` is absent (a valid config: every request goes
to the default tier). Each gets invalid JSON (400), a wrong method (405), a
Content-Length over the cap (413), a client that leaves in the middle of its
body, an unknown model (404), the fuzzed bodies and raw-HTTP cases of run.py,
and must stay alive and answer /healthz. Then the access log must show those
requests with "tier": null and "rule": null, /metrics must book them under
tier="-" and rule="-" (never under the first tier or rule of the config), and
POST /v1/router/explain must be counted in llmrouter_explain_requests_total,
not in llmrouter_requests_total, and left out of `llmrouter report`.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Python 3 standard library only.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, with_rules):
    """The test config with an access log; without rules when asked."""
    with open(BASE_CONFIG) as f:
        text = f.read()
    if not with_rules:
        head, sep, tail = text.partition("\n  rules:\n")
        check(sep, "the test config has a rules list to remove")
        # drop the rules block up to the next top-level key
        rest = tail.split("\n\n", 1)
        text = head + "\n\n" + (rest[1] if len(rest) > 1 else "")
        check("rules:" not in text, "rules removed")
    log = os.path.join(E.tmp, name + ".access.log")
    text += f"\nobservability:\n  access_log: \"{log}\"\n"
    path = os.path.join(E.tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, log


def metric_lines(d):
    r = R.http_request(d.port, "GET", "/metrics")
    eq(r.status, 200, "/metrics status")
    return r.body.decode().splitlines()


def series(lines, name):
    """{labels-dict-as-tuple: value} of one family."""
    out = []
    for ln in lines:
        if not ln.startswith(name + "{") and not ln.startswith(name + " "):
            continue
        m = re.match(r'^[a-z_]+(?:\{(.*)\})? (\S+)$', ln)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        out.append((labels, float(m.group(2))))
    return out


def log_entries(path, settle=2.0):
    deadline = time.monotonic() + settle
    entries = []
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                entries = [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            entries = []
        if entries:
            break
        time.sleep(0.05)
    return entries


def disconnect_mid_body(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n{\"model\":\"auto\",")
    time.sleep(0.1)
    s.close()


def hostile_cases(d):
    """The cases answered before routing; returns the statuses seen."""
    seen = []
    r = R.http_request(d.port, "POST", "/v1/chat/completions", b"{bad")
    R.check_error(r, 400, what="invalid JSON")
    seen.append(400)
    check(d.alive(), "daemon alive after a 400 for invalid JSON")
    r = R.http_request(d.port, "GET", "/v1/chat/completions")
    R.check_error(r, 405, what="GET on a POST path")
    seen.append(405)
    check(d.alive(), "daemon alive after a 405")
    r = R.http_request(d.port, "POST", "/v1/chat/completions", b"{}",
                       headers={"Content-Length": str(R.MAX_BODY * 4)})
    eq(r.status, 413, "Content-Length over the cap")
    seen.append(413)
    check(d.alive(), "daemon alive after a 413")
    disconnect_mid_body(d.port)
    time.sleep(0.2)
    check(d.alive(), "daemon alive after a client left in the middle of its body")
    r = R.http_request(d.port, "POST", "/v1/chat/completions",
                       json.dumps(chat_body("no-such-model")).encode())
    R.check_error(r, 404, what="unknown model")
    seen.append(404)
    check(d.alive(), "daemon alive after a 404 for an unknown model")
    return seen


def run_fuzz_against(d):
    """run.py's fuzz tests aimed at daemon d."""
    saved = R.E.d
    R.E.d = d
    try:
        R.test_fuzz_json_bodies()
        R.test_fuzz_raw_http()
    finally:
        R.E.d = saved
    check(d.alive(), "daemon alive after the fuzz cases")


def check_not_routed_telemetry(d, log):
    """Requests no model was called for (model "-") must have no tier and no
    rule: before the fix they were booked under tier and rule index 0."""
    lines = metric_lines(d)
    reqs = series(lines, "llmrouter_requests_total")
    unrouted = [lab for lab, _ in reqs if lab.get("model") == "-"]
    statuses = {lab.get("status") for lab in unrouted}
    for st in ("400", "404", "405", "413"):
        check(st in statuses, f"/metrics has unrouted {st}s (got {sorted(statuses)})")
    for lab in unrouted:
        if lab.get("status") in ("400", "404", "405", "413", "0"):
            eq((lab.get("tier"), lab.get("rule")), ("-", "-"),
               f"tier and rule of an unrouted {lab.get('status')} in /metrics")
    entries = log_entries(log)
    bad = [e for e in entries if e.get("model") is None and e.get("status") in (400, 404, 405, 413)]
    check(len({e["status"] for e in bad}) == 4,
          f"the access log has the unrouted 400, 404, 405 and 413 ({len(entries)} entries)")
    for e in bad:
        eq((e.get("tier"), e.get("rule")), (None, None),
           f"tier and rule of an unrouted {e.get('status')} in the access log")


def one_config(with_rules):
    name = "rules" if with_rules else "norules"
    cfg, log = write_config(name, with_rules)
    d = E.new_daemon(tag=name, config=cfg).start()
    try:
        hostile_cases(d)
        run_fuzz_against(d)
        # a good request still works, and is routed
        r = R.http_request(d.port, "POST", "/v1/chat/completions", json.dumps(chat_body("auto")).encode())
        eq(r.status, 200, "a good request after the hostile ones")
        eq(r.headers.get("x-router-rule"), "default", "x-router-rule of a routed request")
        eq(r.headers.get("x-router-tier"), "standard", "x-router-tier of a routed request")
        check(d.alive(), "daemon alive at the end")
        check_not_routed_telemetry(d, log)
    finally:
        ok, msg = d.stop()
    check(ok, f"{name} daemon: {msg}")


@test
def test_hostile_input_without_rules():
    one_config(with_rules=False)


@test
def test_hostile_input_with_rules():
    one_config(with_rules=True)


@test
def test_explain_counted_apart():
    cfg, log = write_config("explain", True)
    d = E.new_daemon(tag="explain", config=cfg).start()
    try:
        body = json.dumps(chat_body("auto", "hello")).encode()
        for _ in range(3):
            r = R.http_request(d.port, "POST", "/v1/router/explain", body)
            eq(r.status, 200, "explain status")
        r = R.http_request(d.port, "POST", "/v1/chat/completions", body)
        eq(r.status, 200, "chat status")
        lines = metric_lines(d)
        ex = series(lines, "llmrouter_explain_requests_total")
        eq(sum(v for lab, v in ex if lab.get("status") == "200"), 3.0, "explain calls counted")
        reqs = series(lines, "llmrouter_requests_total")
        eq(sum(v for _, v in reqs), 1.0, "llmrouter_requests_total counts only the chat request")
        st = R.http_request(d.port, "GET", "/v1/router/stats")
        eq(st.status, 200, "stats status")
        sj = json.loads(st.body)
        eq(sj["totals"]["requests"], 1, "stats totals.requests")
        eq(sj.get("explain_calls"), 3, "stats explain_calls")
        deadline = time.monotonic() + 3
        entries = []
        while time.monotonic() < deadline:
            entries = log_entries(log)
            if len(entries) >= 4:
                break
            time.sleep(0.05)
        eq(len(entries), 4, "access log lines")
        eq(sum(1 for e in entries if e.get("explain") is True), 3, "explain lines marked")
        p = subprocess.run([E.bin, "report", "--json", log], capture_output=True, timeout=20)
        eq(p.returncode, 0, f"report exit status ({p.stderr.decode()[-300:]})")
        rep = json.loads(p.stdout)
        eq(rep.get("explain_calls"), 3, "report explain_calls")
        eq(rep["total"]["requests"], 1, "report total requests")
    finally:
        ok, msg = d.stop()
    check(ok, f"explain daemon: {msg}")


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]))


if __name__ == "__main__":
    sys.exit(main())
