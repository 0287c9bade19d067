"""Shared helpers of test_judge.py and test_drift.py: a daemon per test with
observability.judge / alerts, the simulator's scripted judge, the sample
file and /metrics readers, a webhook receiver."""
import http.server
import json
import os
import re
import threading
import time

import run as R
from run import Fail

E = None


def config_text(tmp, tag, judge="", alerts="", extra_models="", tiers=None, threads=1):
    samples = os.path.join(tmp, f"{tag}-samples.jsonl")
    t = f"server:\n  threads: {threads}\n  log_level: info\n\n"
    t += ("providers:\n"
          "  good: {type: openai, base_url: \"${SIM_URL}/v1\", api_key_env: SIM_KEY_GOOD}\n"
          "  closed: {type: openai, base_url: \"http://127.0.0.1:9/v1\"}\n\n")
    t += ("models:\n"
          "  cheap: {provider: good, model: sim-cheap, input_per_mtok: 0.1, output_per_mtok: 0.4}\n"
          "  big: {provider: good, model: sim-big, input_per_mtok: 10, output_per_mtok: 40}\n"
          "  judge: {provider: good, model: sim-qjudge, input_per_mtok: 1, output_per_mtok: 2}\n")
    t += extra_models
    t += "\ntiers:\n" + (tiers or "  budget: [cheap, big]\n  premium: [big]\n")
    t += ("\nrouting:\n  default_tier: budget\n  rules:\n"
          "    - name: code\n      when: {keywords: [\"def \", \"compile\"]}\n      tier: premium\n")
    t += f"\nobservability:\n  access_log: \"{os.path.join(tmp, tag + '-access.log')}\"\n"
    t += f"  sample_file: \"{samples}\"\n"
    t += judge + alerts
    return t, samples


def start(tag, **kw):
    text, samples = config_text(E.tmp, tag, **kw)
    path = os.path.join(E.tmp, f"{tag}.yaml")
    with open(path, "w") as f:
        f.write(text)
    d = E.new_daemon(tag=tag, config=path).start()
    d.samples = samples
    return d


def stop(d):
    ok, msg = d.stop()
    d.kill()
    if not ok:
        raise Fail(f"daemon stop: {msg}")


def sim_quality(**state):
    r = E.sim("POST", "/_sim/quality", json.dumps(state).encode())
    R.check(r.status == 200, f"/_sim/quality -> {r.status}")


def judge_calls():
    return E.sim("GET", "/_sim/quality").json["calls"]


def chat(d, text="Say hello", stream=False, headers=None, **extra):
    b = R.chat_body("auto", text, stream=stream, **extra)
    return R.http_request(d.port, "POST", "/v1/chat/completions", json.dumps(b).encode(),
                          headers=headers or {})


def samples(d, n, timeout=8, pred=None):
    """The sample lines once there are n of them (pred: those counted)."""
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        try:
            with open(d.samples) as f:
                got = [json.loads(ln) for ln in f if ln.strip()]
        except OSError:
            got = []
        if pred is not None:
            got = [x for x in got if pred(x)]
        if len(got) >= n:
            return got
        time.sleep(0.05)
    raise Fail(f"{len(got)} sample lines, expected {n}: {got[-3:]}")


def metrics(d):
    r = R.http_request(d.port, "GET", "/metrics")
    R.check(r.status == 200, f"/metrics -> {r.status}")
    return r.body.decode()


def metric(text, name, labels=None):
    """The value of the series name{labels...} (labels: dict, a subset), or
    None."""
    for ln in text.splitlines():
        if not ln.startswith(name + "{") and not ln.startswith(name + " "):
            continue
        m = re.match(r"^([a-z_]+)(\{(.*)\})? (\S+)$", ln)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in (labels or {}).items()):
            return float(m.group(4))
    return None


def wait_metric(d, name, labels, want, timeout=8):
    deadline = time.monotonic() + timeout
    v = None
    while time.monotonic() < deadline:
        v = metric(metrics(d), name, labels)
        if v is not None and (want(v) if callable(want) else v == want):
            return v
        time.sleep(0.05)
    raise Fail(f"{name}{labels} = {v}, expected {want}")


def stats(d):
    r = R.http_request(d.port, "GET", "/v1/router/stats")
    R.check(r.status == 200, f"stats -> {r.status}")
    return r.json


def wait_log(d, needle, timeout=8):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in d.stderr_text():
            return
        time.sleep(0.05)
    raise Fail(f"{needle!r} not in the daemon's log: {d.stderr_tail(15)}")


class Hooks:
    """A webhook receiver on a free port: the JSON bodies it got."""

    def __init__(self, status=200):
        got = self.got = []
        st = status

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                got.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(body or b"null")})
                self.send_response(st)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def wait(self, pred, timeout=8):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for x in self.got:
                if pred(x["body"]):
                    return x
            time.sleep(0.05)
        raise Fail(f"no webhook matched; got {[x['body'] for x in self.got]}")

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
