#!/usr/bin/env python3
"""Integration tests of observability: GET /metrics (Prometheus text format,
checked by a strict parser here and by promtool when it is installed), the
JSON access log, the quality sampler, GET /v1/router/stats and the
GET /dashboard page (fetched, then rendered by headless Chromium when it is
installed: the numbers the page's JavaScript shows, and a screenshot).

    python3 tests/integration/test_observability.py [-k SUBSTRING]... [--keep-logs]

One daemon (memory cache, access log to a file, sample rate 1.0,
routing.baseline_model good-large) gets a fixed set of requests — plain,
streamed, a failover through tier f500, a cache miss and hit, an error —
then every test checks what was recorded. Prints "ok - name" /
"not ok - name: reason" and one closing line "N passed, M failed".
Python 3 standard library only; reuses tests/integration/run.py.
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body, short  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None
S = {}  # shared state: daemon, paths, what was sent

# Unique strings that must never reach the access log.
PROMPT_MARK = "obsv-prompt-text-4711"
CLIENT_AUTH = "Bearer obsv-client-secret-0815"


def test(fn):
    TESTS.append(fn)
    return fn


# ------------------------------------------------------------------ fixtures

def write_config(with_observability=True):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    if with_observability:
        head = head.replace("routing:\n", "routing:\n  baseline_model: good-large\n", 1)
    text = head + "\ncache:\n  backend: memory\n  ttl_s: 60\n"
    if with_observability:
        text += ("\nobservability:\n"
                 f"  access_log: \"{S['access_log']}\"\n"
                 "  sample_rate: 1.0\n"
                 f"  sample_file: \"{S['sample_file']}\"\n")
    path = os.path.join(E.tmp, "obs.yaml" if with_observability else "obs-plain.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_daemon():
    """The daemon with the observability config; if that config is refused
    (the section is not wired yet), the same without it, so the remaining
    tests fail on what is missing rather than not running."""
    S["access_log"] = os.path.join(E.tmp, "access.log")
    S["sample_file"] = os.path.join(E.tmp, "samples.jsonl")
    S["config_error"] = None
    try:
        S["d"] = E.new_daemon(tag="obs", config=write_config(True)).start()
    except RuntimeError as e:
        S["config_error"] = str(e)
        S["d"] = E.new_daemon(tag="obs-fallback", config=write_config(False)).start()
    return S["d"]


def get(path, headers=None):
    return R.http_request(S["d"].port, "GET", path, headers=headers)


def post(body, rid, headers=None):
    h = {"x-request-id": rid, "Authorization": CLIENT_AUTH}
    h.update(headers or {})
    return R.http_request(S["d"].port, "POST", "/v1/chat/completions", json.dumps(body).encode(), headers=h)


# ------------------------------------------------------------------ exposition format parser

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def parse_labels(s, i, line):
    """Parses {name="value",...} starting at s[i] == '{'. Returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        j = s.index("=", i)
        name = s[i:j]
        check(LABEL_NAME_RE.match(name), f"bad label name {name!r} in: {line}")
        check(name not in labels, f"duplicate label {name!r} in: {line}")
        check(s[j + 1] == '"', f"label value not quoted in: {line}")
        k = j + 2
        val = []
        while True:
            check(k < len(s), f"unterminated label value in: {line}")
            c = s[k]
            if c == "\\":
                n = s[k + 1] if k + 1 < len(s) else ""
                check(n in ('\\', '"', "n"), f"bad escape \\{n} in: {line}")
                val.append("\n" if n == "n" else n)
                k += 2
                continue
            if c == '"':
                break
            val.append(c)
            k += 1
        labels[name] = "".join(val)
        i = k + 1
        if s[i] == ",":
            i += 1
        else:
            check(s[i] == "}", f"expected , or }} in: {line}")


def parse_value(v, line):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    try:
        return float(v)
    except ValueError:
        raise Fail(f"bad sample value {v!r} in: {line}")


def parse_exposition(text):
    """Strict parse of Prometheus text format 0.0.4. Returns {family: {"type",
    "samples": [(name, labels, value)]}}; raises Fail on any violation."""
    check(text.endswith("\n"), "exposition does not end with a newline")
    fams = {}
    order = []

    def family_of(name):
        if name in fams:
            return name
        for sfx in ("_bucket", "_sum", "_count"):
            if name.endswith(sfx) and fams.get(name[: -len(sfx)], {}).get("type") == "histogram":
                return name[: -len(sfx)]
        return None

    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            check(len(parts) == 4, f"bad comment line: {line}")
            name = parts[2]
            check(NAME_RE.match(name), f"bad metric name {name!r}")
            f = fams.setdefault(name, {"help": None, "type": None, "samples": []})
            if name not in order:
                order.append(name)
            check(not f["samples"], f"HELP/TYPE after samples of {name}")
            if parts[1] == "HELP":
                check(f["help"] is None, f"second HELP for {name}")
                f["help"] = parts[3]
            else:
                check(f["type"] is None, f"second TYPE for {name}")
                check(parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"),
                      f"bad type {parts[3]!r}")
                f["type"] = parts[3]
                if parts[3] == "counter":
                    check(name.endswith("_total"), f"counter {name} does not end with _total")
            continue
        check(line and not line.startswith("#"), f"unexpected line {line!r}")
        m = re.match(r"[^{ ]+", line)
        name = m.group(0)
        check(NAME_RE.match(name), f"bad sample name {name!r}")
        check(name.startswith("llmrouter_"), f"metric {name} lacks the llmrouter_ prefix")
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line, i, line)
        check(i < len(line) and line[i] == " ", f"no space before the value: {line}")
        value = parse_value(line[i + 1:], line)
        fam = family_of(name)
        check(fam is not None, f"sample {name} has no HELP/TYPE before it")
        f = fams[fam]
        check(f["help"] is not None and f["type"] is not None, f"sample {name} before HELP and TYPE")
        f["samples"].append((name, labels, value))
    # histograms: cumulative buckets ending with +Inf == _count; _sum present
    for fam, f in fams.items():
        if f["type"] != "histogram":
            continue
        series = {}
        for name, labels, value in f["samples"]:
            if name == fam + "_bucket":
                check("le" in labels, f"{name} without le")
                key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                series.setdefault(key, {"b": [], "count": None, "sum": None})["b"].append((labels["le"], value))
            elif name in (fam + "_count", fam + "_sum"):
                key = tuple(sorted(labels.items()))
                series.setdefault(key, {"b": [], "count": None, "sum": None})[name[len(fam) + 1:]] = value
        for key, s in series.items():
            b = s["b"]
            check(b and b[-1][0] == "+Inf", f"{fam}{dict(key)}: last bucket is not le=\"+Inf\"")
            les = [parse_value(le, fam) for le, _ in b]
            check(les == sorted(les), f"{fam}{dict(key)}: le not increasing")
            vals = [v for _, v in b]
            check(all(x <= y for x, y in zip(vals, vals[1:])), f"{fam}{dict(key)}: buckets not cumulative")
            check(s["count"] is not None and s["sum"] is not None, f"{fam}{dict(key)}: _count/_sum missing")
            eq(vals[-1], s["count"], f"{fam}{dict(key)}: +Inf bucket vs _count")
    return fams


def total(fams, name, **match):
    """Sum of the samples of name whose labels include match."""
    fam = fams.get(name) or fams.get(re.sub(r"_(bucket|sum|count)$", "", name))
    if fam is None:
        raise Fail(f"metric {name} missing")
    return sum(v for n, lab, v in fam["samples"] if n == name and all(lab.get(k) == w for k, w in match.items()))


def samples(fams, name):
    fam = fams.get(name) or fams.get(re.sub(r"_(bucket|sum|count)$", "", name))
    return [] if fam is None else [(lab, v) for n, lab, v in fam["samples"] if n == name]


def fetch_metrics():
    r = get("/metrics")
    check(r.status == 200, f"GET /metrics -> {r.status} (not wired yet?) {short(r.body, 120)}")
    ct = r.h("content-type") or ""
    check(ct.startswith("text/plain"), f"/metrics content-type {ct!r}")
    check("version=0.0.4" in ct, f"/metrics content-type lacks version=0.0.4: {ct!r}")
    return r.body.decode("utf-8")


def fetch_stats():
    r = get("/v1/router/stats")
    check(r.status == 200, f"GET /v1/router/stats -> {r.status} (not wired yet?) {short(r.body, 120)}")
    return r.json


def wait_lines(path, pred, want, timeout=3.0):
    """Lines of a JSONL file that satisfy pred, waiting until there are want."""
    deadline = time.monotonic() + timeout
    got = []
    while True:
        got = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for ln in f:
                    if not ln.strip():
                        continue
                    try:
                        j = json.loads(ln)
                    except ValueError as e:
                        raise Fail(f"{os.path.basename(path)}: line is not JSON ({e}): {ln[:200]}")
                    if pred(j):
                        got.append((ln, j))
        if len(got) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def close(a, b, what, rel=1e-6, abs_=1e-12):
    check(a is not None and b is not None and math.isclose(a, b, rel_tol=rel, abs_tol=abs_),
          f"{what}: {a!r} != {b!r}")


# ------------------------------------------------------------------ the traffic

SENT = [
    # (request id, body, expected status, expected x-cache)
    ("obs-plain", chat_body("auto", f"plain {PROMPT_MARK}", temperature=0.7), 200, "BYPASS"),
    ("obs-stream", chat_body("auto", f"stream {PROMPT_MARK}", stream=True, temperature=0.7), 200, "BYPASS"),
    ("obs-failover", chat_body("f500", f"failover {PROMPT_MARK}", temperature=0.7), 200, "BYPASS"),
    ("obs-miss", chat_body("auto", f"cached {PROMPT_MARK}", temperature=0), 200, "MISS"),
    ("obs-hit", chat_body("auto", f"cached {PROMPT_MARK}", temperature=0), 200, "HIT"),
    ("obs-error", chat_body("no-such-model", f"error {PROMPT_MARK}"), None, None),
]
N_OK = 5  # all but the error; every one answered by good-mini


@test
def test_config_accepted():
    check(S["config_error"] is None,
          f"the daemon refused the observability config (section not wired yet?):\n{S['config_error']}")


@test
def test_traffic():
    S["resp"] = {}
    for rid, body, status, xcache in SENT:
        r = post(body, rid)
        S["resp"][rid] = r
        if status is None:
            check(r.status >= 400, f"{rid}: expected an error, got {r.status}")
            S["error_status"] = r.status
            continue
        eq(r.status, status, f"{rid} status ({short(r.body)})")
        eq(r.h("x-cache"), xcache, f"{rid} x-cache")
        eq(r.h("x-router-model"), "good-mini", f"{rid} x-router-model")
    eq(S["resp"]["obs-failover"].h("x-router-attempts"), "2", "failover attempts")
    time.sleep(0.2)  # completion (and so the recording) follows the last byte


@test
def test_metrics_format():
    text = fetch_metrics()
    S["metrics_text"] = text
    path = os.path.join(E.tmp, "metrics.txt")
    with open(path, "w") as f:
        f.write(text)
    fams = parse_exposition(text)
    S["fams"] = fams
    for name in ("llmrouter_requests_total", "llmrouter_failovers_total", "llmrouter_cache_requests_total",
                 "llmrouter_upstream_latency_seconds", "llmrouter_time_to_first_byte_seconds",
                 "llmrouter_router_overhead_seconds", "llmrouter_cost_usd_total",
                 "llmrouter_baseline_cost_usd_total", "llmrouter_prompt_tokens_total",
                 "llmrouter_completion_tokens_total", "llmrouter_errors_total", "llmrouter_streams_total",
                 "llmrouter_memcache_hits_total", "llmrouter_uptime_seconds", "llmrouter_build_info"):
        check(name in fams, f"family {name} missing")
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        # promtool exits 0 on valid input; lint remarks are printed but are not errors
        check(p.returncode == 0, f"promtool check metrics failed: {p.stdout[-600:]} {p.stderr[-600:]}")
        print(f"#   promtool check metrics: ok ({(p.stdout + p.stderr).strip()[:200] or 'no remarks'})")
    else:
        print("#   promtool not installed (apt-get install prometheus): strict parser only")


@test
def test_metrics_counts():
    fams = S.get("fams") or parse_exposition(fetch_metrics())
    # Health checks and scrapes carry model="-" with status 200 if they are
    # recorded at all; every request sent here was answered by good-mini or
    # is the one error.
    eq(total(fams, "llmrouter_requests_total", model="good-mini", provider="good"), N_OK,
       "requests answered by good-mini")
    eq(total(fams, "llmrouter_requests_total", model="good-mini", status="200"), N_OK, "good-mini 200s")
    eq(total(fams, "llmrouter_requests_total", tier="f500", rule="explicit", status="200"), 1, "tier f500")
    eq(total(fams, "llmrouter_requests_total", tier="standard", rule="default"), 4, "auto -> standard")
    err = str(S["error_status"])
    eq(total(fams, "llmrouter_requests_total", status=err), 1, f"requests with status {err}")
    eq(total(fams, "llmrouter_errors_total"), 1, "errors")
    eq(total(fams, "llmrouter_failovers_total", **{"from": "m500", "to": "good-mini", "reason": "status_5xx"}), 1,
       "failover m500 -> good-mini")
    eq(total(fams, "llmrouter_failovers_total"), 1, "failovers overall")
    eq(total(fams, "llmrouter_cache_requests_total", result="hit"), 1, "cache hits")
    eq(total(fams, "llmrouter_cache_requests_total", result="miss"), 1, "cache misses")
    eq(total(fams, "llmrouter_streams_total"), 1, "streams")
    # four requests reached an upstream (the hit and the error did not)
    eq(total(fams, "llmrouter_upstream_latency_seconds_count", model="good-mini"), 4, "upstream latency count")
    eq(total(fams, "llmrouter_time_to_first_byte_seconds_count", model="good-mini"), 4, "ttfb count")
    check(total(fams, "llmrouter_router_overhead_seconds_count") >= len(SENT), "overhead observations")
    check(total(fams, "llmrouter_prompt_tokens_total", model="good-mini") > 0, "prompt tokens")
    check(total(fams, "llmrouter_completion_tokens_total", model="good-mini") > 0, "completion tokens")
    cost = total(fams, "llmrouter_cost_usd_total")
    base = total(fams, "llmrouter_baseline_cost_usd_total")
    check(cost > 0, f"cost {cost}")
    check(base > cost, f"baseline (good-large) {base} should exceed the cost {cost}")
    close(total(fams, "llmrouter_savings_usd_total"), base - cost, "savings = baseline - cost", rel=1e-6)
    check(total(fams, "llmrouter_memcache_hits_total") >= 1, "memory cache hits")
    check(total(fams, "llmrouter_memcache_entries") >= 1, "memory cache entries")
    for lab, _ in samples(fams, "llmrouter_cost_usd_total"):
        check(CLIENT_AUTH.split()[1] not in lab.get("key", ""), "client key in a label")


@test
def test_access_log():
    ids = {rid for rid, *_ in SENT}
    lines = wait_lines(S["access_log"], lambda j: j.get("request_id") in ids, len(SENT))
    eq(len(lines), len(SENT), f"access log lines for the {len(SENT)} requests")
    eq(len({j["request_id"] for _, j in lines}), len(SENT), "one line per request")
    with open(S["access_log"], encoding="utf-8") as f:
        raw = f.read()
    check(PROMPT_MARK not in raw, "prompt text in the access log")
    check(CLIENT_AUTH.split()[1] not in raw, "client Authorization value in the access log")
    check(R.GOOD_KEY not in raw, "provider key in the access log")
    check("Simulated reply" not in raw, "answer text in the access log")
    fields = ["time", "request_id", "key", "method", "path", "status", "rule", "tier", "model", "provider",
              "attempts", "stream", "cache", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
              "baseline_cost_usd", "savings_usd", "cost_estimated", "total_ms", "upstream_ms", "ttfb_ms",
              "overhead_ms", "tags", "failovers"]
    by = {j["request_id"]: j for _, j in lines}
    for rid, j in by.items():
        for k in fields:
            check(k in j, f"{rid}: field {k} missing")
        check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z", j["time"]), f"{rid}: time {j['time']!r}")
        eq(j["method"], "POST", f"{rid} method")
        eq(j["path"], "/v1/chat/completions", f"{rid} path")
        check(isinstance(j["stream"], bool) and isinstance(j["cost_estimated"], bool), f"{rid}: bools")
        check(isinstance(j["tags"], list) and isinstance(j["failovers"], list), f"{rid}: lists")
        check(j["total_ms"] is not None and j["total_ms"] >= 0, f"{rid}: total_ms")
    for rid, _, status, xcache in SENT:
        j = by[rid]
        if status is not None:
            eq(j["status"], status, f"{rid} status")
            eq(j["cache"], xcache, f"{rid} cache")
            eq(j["model"], "good-mini", f"{rid} model")
            eq(j["provider"], "good", f"{rid} provider")
    eq(by["obs-stream"]["stream"], True, "stream flag")
    eq(by["obs-plain"]["stream"], False, "plain stream flag")
    eq(by["obs-plain"]["tier"], "standard", "plain tier")
    eq(by["obs-plain"]["rule"], "default", "plain rule")
    check(by["obs-plain"]["upstream_ms"] is not None and by["obs-plain"]["ttfb_ms"] is not None, "upstream times")
    check(by["obs-plain"]["cost_usd"] > 0, "plain cost")
    close(by["obs-plain"]["savings_usd"], by["obs-plain"]["baseline_cost_usd"] - by["obs-plain"]["cost_usd"],
          "plain savings")
    eq(by["obs-failover"]["tier"], "f500", "failover tier")
    eq(by["obs-failover"]["attempts"], 2, "failover attempts")
    eq([(f["from"], f["to"], f["reason"]) for f in by["obs-failover"]["failovers"]],
       [("m500", "good-mini", "status_5xx")], "failovers")
    eq(by["obs-hit"]["upstream_ms"], None, "a hit has no upstream time")
    eq(by["obs-error"]["status"], S["error_status"], "error status")
    S["log_cost"] = sum(j["cost_usd"] or 0 for j in by.values())


@test
def test_sampler():
    ids = {rid for rid, *_ in SENT}
    lines = wait_lines(S["sample_file"], lambda j: j.get("request_id") in ids, N_OK)
    got = {j["request_id"]: j for _, j in lines}
    for rid in ("obs-plain", "obs-stream", "obs-failover", "obs-miss"):
        check(rid in got, f"no sample for {rid} at sample_rate 1.0 (have {sorted(got)})")
    for k in ("time", "request_id", "rule", "tier", "model", "provider", "request", "response"):
        check(k in got["obs-plain"], f"sample field {k} missing")
    j = got["obs-plain"]
    check(isinstance(j["request"], dict), f"request not embedded as JSON: {str(j['request'])[:100]}")
    eq(j["request"]["messages"][0]["content"], f"plain {PROMPT_MARK}", "sampled prompt")
    check(isinstance(j["response"], dict), f"response not embedded as JSON: {str(j['response'])[:100]}")
    check(j["response"]["choices"][0]["message"]["content"].startswith("Simulated reply"), "sampled answer")
    eq(j["model"], "good-mini", "sample model")
    eq(got["obs-failover"]["tier"], "f500", "sample tier")


@test
def test_stats_json():
    s = fetch_stats()
    S["stats"] = s
    t = s["totals"]
    for k in ("requests", "errors", "cost_usd", "baseline_cost_usd", "savings_usd", "savings_percent",
              "cache_hits", "cache_hit_rate", "p50_ms", "p95_ms", "prompt_tokens", "completion_tokens"):
        check(k in t, f"totals.{k} missing")
    eq(t["requests"], len(SENT), "totals.requests (only API requests are counted)")
    eq(t["errors"], 1, "totals.errors")
    eq(t["cache_hits"], 1, "totals.cache_hits")
    close(t["cache_hit_rate"], 0.5, "cache hit rate (1 hit, 1 miss)")
    close(t["savings_usd"], t["baseline_cost_usd"] - t["cost_usd"], "savings")
    close(t["savings_percent"], 100 * t["savings_usd"] / t["baseline_cost_usd"], "savings %")
    check(t["p50_ms"] is not None and 0 < t["p50_ms"] <= t["p95_ms"], f"p50 {t['p50_ms']} p95 {t['p95_ms']}")
    fams = S.get("fams")
    if fams:
        close(t["cost_usd"], total(fams, "llmrouter_cost_usd_total"), "stats cost vs /metrics", rel=1e-6)
        close(t["baseline_cost_usd"], total(fams, "llmrouter_baseline_cost_usd_total"), "stats baseline vs /metrics")
    if "log_cost" in S:
        close(t["cost_usd"], S["log_cost"], "stats cost vs access log", rel=1e-6)
    models = {m["model"]: m for m in s["models"]}
    check("good-mini" in models, f"models: {sorted(models)}")
    gm = models["good-mini"]
    for k in ("requests", "errors", "cost_usd", "savings_usd", "cache_hits", "cache_hit_rate", "p50_ms", "p95_ms"):
        check(k in gm, f"models[good-mini].{k} missing")
    eq(gm["requests"], N_OK, "good-mini requests")
    eq(gm["cache_hits"], 1, "good-mini cache hits")
    tiers = {x["tier"]: x for x in s["tiers"]}
    eq(tiers.get("f500", {}).get("requests"), 1, "tier f500 requests")
    eq(tiers.get("standard", {}).get("requests"), 4, "tier standard requests")


@test
def test_dashboard_page():
    r = get("/dashboard")
    eq(r.status, 200, "GET /dashboard status")
    ct = r.h("content-type") or ""
    check(ct.startswith("text/html"), f"content-type {ct!r}")
    html = r.body.decode("utf-8")
    refs = re.findall(r"""<(?:script|link|img|iframe)[^>]*(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    check(not refs, f"external references: {refs}")
    check("http://" not in html and "https://" not in html, "an absolute URL in the page")
    check("@import" not in html and "url(" not in html, "CSS imports")
    for i in ("total-requests", "total-cost", "total-savings", "models", "tiers"):
        check(f'id="{i}"' in html, f"element id {i} missing")


def find_chromium():
    for n in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(n)
        if p:
            return p
    return None


def chromium(args, timeout=90):
    exe = find_chromium()
    if exe is None:
        raise Fail("chromium is not installed (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="obs-chromium-", dir=E.tmp)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}"] + args
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return p


@test
def test_dashboard_renders_in_chromium():
    before = fetch_stats()["totals"]["requests"]
    url = f"http://127.0.0.1:{S['d'].port}/dashboard"
    p = chromium(["--virtual-time-budget=5000", "--dump-dom", url])
    dom = p.stdout.decode("utf-8", "replace")
    check(p.returncode == 0 and "<html" in dom, f"chromium --dump-dom failed ({p.returncode}): {p.stderr[-400:]}")
    after = fetch_stats()["totals"]["requests"]
    with open(os.path.join(E.tmp, "dashboard.dom.html"), "w") as f:
        f.write(dom)

    def text_of(id_):
        m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(id_), dom)
        check(m, f"element {id_} not in the rendered DOM")
        return m.group(1).strip()

    shown = text_of("total-requests")
    check(shown.isdigit(), f"total-requests shows {shown!r}: the page's script did not fill it")
    check(before <= int(shown) <= after, f"total-requests shows {shown}, /v1/router/stats said {before}..{after}")
    eq(int(shown), len(SENT), "total-requests = requests sent")
    cost = text_of("total-cost")
    check(cost.startswith("$"), f"total-cost shows {cost!r}")
    check(text_of("total-savings").startswith("$"), "total-savings")
    check(re.search(r'<tr[^>]*data-name="good-mini"', dom), "no good-mini row in table#models")
    check(re.search(r'<tr[^>]*data-name="f500"', dom), "no f500 row in table#tiers")

    shot = os.path.join(E.tmp, "dashboard.png")
    p = chromium(["--virtual-time-budget=5000", "--hide-scrollbars", "--window-size=1200,900",
                  f"--screenshot={shot}", url])
    check(p.returncode == 0 and os.path.exists(shot), f"screenshot failed ({p.returncode}): {p.stderr[-400:]}")
    with open(shot, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG")
    print(f"#   dashboard screenshot: {shot} ({os.path.getsize(shot)} bytes; kept with --keep-logs or on failure)")


@test
def test_access_log_reopen_on_sighup():
    if S["config_error"] is not None:
        raise Fail("observability config not accepted")
    d = S["d"]
    rotated = S["access_log"] + ".1"
    os.rename(S["access_log"], rotated)
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not os.path.exists(S["access_log"]):
        time.sleep(0.05)
    check(os.path.exists(S["access_log"]), "SIGHUP did not reopen the access log at its path")
    r = post(chat_body("auto", "after rotation", temperature=0.7), "obs-rotated")
    eq(r.status, 200, "request after SIGHUP")
    lines = wait_lines(S["access_log"], lambda j: j.get("request_id") == "obs-rotated", 1)
    eq(len(lines), 1, "the new file gets the next line")
    old = wait_lines(rotated, lambda j: j.get("request_id") == "obs-rotated", 0, timeout=0)
    eq(len(old), 0, "the rotated file gets no new line")


@test
def test_daemon_exits_cleanly():
    ok, msg = S["d"].stop()
    check(ok, msg)


# ------------------------------------------------------------------ main

def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), setup=start_daemon,
                       teardown=lambda: S["d"].kill(), always=("traffic", "daemon_exits_cleanly"))


if __name__ == "__main__":
    sys.exit(main())
