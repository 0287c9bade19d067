#!/usr/bin/env python3
"""Integration tests of A/B experiments (`experiments:`, docs/quality.md):
the real daemon over real sockets and the simulated provider.

    python3 tests/integration/test_experiments.py [-k SUBSTRING]...

Covers: the arm of a key (the body's `user`) is the same on two instances,
after a reload and after a restart; 2,000 keys split as the weights say
(within 4 standard deviations); each arm's policy really routes
differently (a tier mapping, a rule subset with another complexity band,
cascades off); x-router-arm, explain's decision, the access log, the
samples file, /metrics and /v1/router/stats carry the arm; a request
without the key is still split (by its id) and counted as keyless; a
client-named tier is in no experiment; `llmrouter report --experiment`
computes, on a scripted run, the figures the test computes itself from
what it sent and received (success rates and their Wilson intervals, cost
per request and per success, latency percentiles, cache hit rate, judged
quality from a samples file the test writes, p-values); configuration
errors carry file:line:column.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq  # noqa: E402

TESTS = []
E = None
S = {}

MINI = (1.0, 2.0)
LARGE = (10.0, 40.0)
ARMS = """\
experiments:
  - name: old
    key: proxy_key
    active: false
    arms: [{name: x}, {name: y}]
  - name: policy
    key: user
    arms:
      - {name: control, weight: 2}
      - {name: lean, weight: 1, tiers: {strong: cheap}, cascade: false}
      - {name: strict, weight: 1, rules: [hard], complexity: {hard: {min: 0}}}
"""


def test(fn):
    TESTS.append(fn)
    return fn


def config_text(tag, extra_rule=""):
    t = "server:\n  threads: 2\n  log_level: info\n\n"
    t += ("providers:\n"
          "  good: {type: openai, base_url: \"${SIM_URL}/v1\", api_key_env: SIM_KEY_GOOD}\n"
          "  p500: {type: openai, base_url: \"${SIM_URL}/sim/status=500/v1\"}\n\n")
    t += "models:\n"
    t += f"  mini: {{provider: good, model: sim-mini, input_per_mtok: {MINI[0]}, output_per_mtok: {MINI[1]}}}\n"
    t += f"  large: {{provider: good, model: sim-large, input_per_mtok: {LARGE[0]}, output_per_mtok: {LARGE[1]}}}\n"
    t += "  c-empty: {provider: good, model: sim-casc-empty, input_per_mtok: 0.1, output_per_mtok: 0.1}\n"
    t += "  m500: {provider: p500, model: sim-500}\n"
    t += "\ntiers:\n  cheap: [mini]\n  strong: [large]\n  broken: [m500]\n"
    t += "  casc: {models: [c-empty, large], cascade: true}\n"
    t += "\nrouting:\n  default_tier: cheap\n  allow_client_tier: true\n  rules:\n"
    t += "    - {name: hinted, when: {header: {x-router-hint: strong}}, tier: strong}\n"
    t += "    - {name: hard, when: {complexity: {min: 0.999}}, tier: strong}\n"
    t += "    - {name: flaky, when: {header: {x-router-hint: flaky}}, tier: broken}\n"
    t += "    - {name: batch, when: {header: {x-router-hint: batch}}, tier: casc}\n"
    t += extra_rule
    t += "\n" + ARMS
    t += "\ncache:\n  backend: memory\n"
    log = os.path.join(E.tmp, f"{tag}.access.log")
    samples = os.path.join(E.tmp, f"{tag}.samples.jsonl")
    t += (f"\nobservability:\n  access_log: \"{log}\"\n  sample_rate: 1\n"
          f"  sample_file: \"{samples}\"\n")
    return t, log, samples


def start(tag):
    text, log, samples = config_text(tag)
    path = os.path.join(E.tmp, f"{tag}.yaml")
    with open(path, "w") as f:
        f.write(text)
    S[tag] = E.new_daemon(tag=tag, config=path).start()
    S[tag + ".log"], S[tag + ".samples"], S[tag + ".yaml"] = log, samples, path
    return S[tag]


def setup():
    start("a")
    start("b")
    start("rep")


def teardown():
    for tag in ("a", "b", "rep", "keys", "hdr", "hdrc", "keyrule"):
        d = S.get(tag)
        if d is not None:
            d.kill()


def body(content, user=None, **extra):
    b = {"model": "auto", "messages": [{"role": "user", "content": content}]}
    if user is not None:
        b["user"] = user
    b.update(extra)
    return b


def post(d, b, headers=None, path="/v1/chat/completions"):
    return R.http_request(d.port, "POST", path, json.dumps(b).encode(), headers=headers or {})


def arm_of(d, user):
    r = post(d, body("which arm?", user), path="/v1/router/explain")
    eq(r.status, 200, f"explain ({R.short(r.body)})")
    dec = r.json["decision"]
    eq(dec.get("experiment"), "policy", "explain: decision.experiment")
    return dec["arm"]


def users_of(d, n_each=1):
    """Some users of each arm (found through explain)."""
    found = {}
    i = 0
    while any(len(found.get(a, [])) < n_each for a in ("control", "lean", "strict")):
        u = f"user-{i}"
        found.setdefault(arm_of(d, u), []).append(u)
        i += 1
        check(i < 500, f"no user found for every arm: {found}")
    return found


def log_lines(path, pred=None, want=1, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        out = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out = [json.loads(ln) for ln in f if ln.strip()]
        out = [j for j in out if pred is None or pred(j)]
        if len(out) >= want or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def log_of(tag, rid):
    got = log_lines(S[tag + ".log"], lambda j: j.get("request_id") == rid)
    check(got, f"no access log line for {rid}")
    return got[0]


def metric(d, name, labels):
    r = R.http_request(d.port, "GET", "/metrics")
    eq(r.status, 200, "/metrics")
    total = 0.0
    for ln in r.body.decode().splitlines():
        if not ln.startswith(name + "{"):
            continue
        lab, _, val = ln.rpartition(" ")
        if all(f'{k}="{v}"' in lab for k, v in labels.items()):
            total += float(val)
    return total


# ---- stability and weights ----

def fnv_fmix(name, key):
    """The documented hash: 64-bit FNV-1a of NAME "\\n" KEY, then fmix64."""
    m = (1 << 64) - 1
    h = 14695981039346656037
    for byte in name.encode() + b"\n" + key.encode():
        h = ((h ^ byte) * 1099511628211) & m
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & m
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & m
    return h ^ (h >> 33)


def expected_arm(name, key, arms):
    """arms: [(name, weight)] in order; the first arm whose cumulative share
    is above u = top 53 bits / 2^53."""
    u = (fnv_fmix(name, key) >> 11) / float(1 << 53)
    total, run = sum(w for _, w in arms), 0.0
    for i, (a, w) in enumerate(arms):
        run += w
        if u < (run / total if i + 1 < len(arms) else 1.0):
            return a
    return arms[-1][0]


ARM_WEIGHTS = [("control", 2), ("lean", 1), ("strict", 1)]


@test
def test_arm_is_the_documented_hash():
    for i in range(300):
        u = f"doc-{i}"
        eq(arm_of(S["a"], u), expected_arm("policy", u, ARM_WEIGHTS), f"arm of {u}")


@test
def test_split_is_stable_across_instances_reload_restart():
    users = [f"stable-{i}" for i in range(150)]
    a = [arm_of(S["a"], u) for u in users]
    b = [arm_of(S["b"], u) for u in users]
    eq(a, b, "two instances give every key the same arm")
    check(len(set(a)) == 3, f"every arm is used: {set(a)}")
    # reload with another rule added: the arms stay
    text, _, _ = config_text("a", "    - {name: added, when: {header: {x-added: y}}, tier: strong}\n")
    with open(S["a.yaml"], "w") as f:
        f.write(text)
    S["a"].proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    ctl = next(u for u in users if expected_arm("policy", u, ARM_WEIGHTS) == "control")
    while True:  # a control user's explanation lists every rule
        r = post(S["a"], body("x", ctl), path="/v1/router/explain")
        if any(x["rule"] == "added" for x in r.json["rules"]):
            break
        check(time.monotonic() < deadline, "the reload did not take")
        time.sleep(0.05)
    eq([arm_of(S["a"], u) for u in users], a, "the same arms after a reload")
    S["b"].stop()
    S["b"].start()
    eq([arm_of(S["b"], u) for u in users], a, "the same arms after a restart")


@test
def test_weights_respected_on_2000_keys():
    n = 2000
    counts = {"control": 0, "lean": 0, "strict": 0}
    for i in range(n):
        counts[arm_of(S["a"], f"w-{uuid.uuid4().hex[:10]}-{i}")] += 1
    for arm, share in (("control", 0.5), ("lean", 0.25), ("strict", 0.25)):
        sd = math.sqrt(n * share * (1 - share))
        check(abs(counts[arm] - n * share) <= 4 * sd,
              f"{arm}: {counts[arm]} of {n}, expected {n * share:.0f} +- {4 * sd:.0f}")


@test
def test_proxy_key_and_header_keys():
    """key: proxy_key (the key's name) and key: header:NAME, each checked
    against the documented hash."""
    base, _, _ = config_text("keys")
    head = base.split("\nexperiments:\n")[0]
    import hashlib
    keys = "\nkeys:\n" + "".join(
        f"  team-{c}: {{key_sha256: \"{hashlib.sha256(f'secret-{c}'.encode()).hexdigest()}\"}}\n"
        for c in "abcdefgh")
    for tag, key, extra in (("keys", "proxy_key", keys), ("hdr", "header:X-Team", "")):
        text = (head + extra + f"\nexperiments:\n  - name: k\n    key: {key}\n    arms:\n"
                "      - {name: one, weight: 1}\n      - {name: two, weight: 1}\n")
        path = os.path.join(E.tmp, f"{tag}.yaml")
        with open(path, "w") as f:
            f.write(text)
        d = S[tag] = E.new_daemon(tag=tag, config=path).start()
        for c in "abcdefgh":
            h = ({"authorization": f"Bearer secret-{c}"} if tag == "keys"
                 else {"x-team": f"team-{c}"})
            r = post(d, body("which arm?"), h, path="/v1/router/explain")
            eq(r.status, 200, f"{tag}: explain ({R.short(r.body)})")
            want = expected_arm("k", f"team-{c}", [("one", 1), ("two", 1)])
            eq(r.json["decision"].get("arm"), want, f"{tag}: arm of team-{c}")
            r = post(d, body(f"real {uuid.uuid4().hex}"), h)
            eq(r.h("x-router-arm"), f"k/{want}", f"{tag}: x-router-arm of team-{c}")


@test
def test_key_rule_condition_sees_the_proxy_key():
    """Found while building key: proxy_key — a rule's `key:` condition was
    evaluated with an empty key name in the daemon, so it never matched."""
    base, _, _ = config_text("keyrule")
    head = base.split("\nexperiments:\n")[0]
    import hashlib
    text = head.replace("  rules:\n", "  rules:\n    - {name: by-key, when: {key: [team-a]}, tier: strong}\n", 1)
    text += "\nkeys:\n" + "".join(
        f"  team-{c}: {{key_sha256: \"{hashlib.sha256(f'secret-{c}'.encode()).hexdigest()}\"}}\n"
        for c in "ab")
    path = os.path.join(E.tmp, "keyrule.yaml")
    with open(path, "w") as f:
        f.write(text)
    d = S["keyrule"] = E.new_daemon(tag="keyrule", config=path).start()
    r = post(d, body("hi"), {"authorization": "Bearer secret-a"})
    eq((r.status, r.h("x-router-rule"), r.h("x-router-tier")), (200, "by-key", "strong"), "team-a")
    r = post(d, body("hi"), {"authorization": "Bearer secret-b"})
    eq((r.status, r.h("x-router-rule"), r.h("x-router-tier")), (200, "default", "cheap"), "team-b")


@test
def test_offline_explain_names_the_arm():
    req = os.path.join(E.tmp, "explain.json")
    with open(req, "w") as f:
        json.dump(body("explain me", "doc-1"), f)
    out = subprocess.run([E.bin, "-c", S["rep.yaml"], "--explain", req], capture_output=True,
                         text=True, timeout=20, env=dict(os.environ, SIM_URL="http://127.0.0.1:9",
                                                         SIM_KEY_GOOD="k"))
    eq(out.returncode, 0, f"--explain ({out.stderr})")
    want = expected_arm("policy", "doc-1", [("control", 2), ("lean", 1), ("strict", 1)])
    check(f"experiment: policy, arm {want}" in out.stdout, f"--explain: {out.stdout}")


# ---- the policies route differently ----

@test
def test_arms_route_differently():
    d = S["a"]
    u = users_of(d)
    hint = {"x-router-hint": "strong"}
    want = {  # arm -> (tier, rule, model) for a hinted request and a plain one
        "control": (("strong", "hinted", "large"), ("cheap", "default", "mini")),
        "lean": (("cheap", "hinted", "mini"), ("cheap", "default", "mini")),
        "strict": (("strong", "hard", "large"), ("strong", "hard", "large")),
    }
    for arm, (hinted, plain) in want.items():
        for headers, (tier, rule, model) in ((hint, hinted), ({}, plain)):
            r = post(d, body(f"route me {uuid.uuid4().hex}", u[arm][0]), headers)
            what = f"{arm} {'hinted' if headers else 'plain'}"
            eq(r.status, 200, f"{what}: status ({R.short(r.body)})")
            eq(r.h("x-router-arm"), f"policy/{arm}", f"{what}: x-router-arm")
            eq((r.h("x-router-tier"), r.h("x-router-rule"), r.h("x-router-model")),
               (tier, rule, model), f"{what}: tier, rule, model")


@test
def test_cascade_off_in_an_arm():
    d = S["a"]
    u = users_of(d)
    hb = {"x-router-hint": "batch"}
    r = post(d, body(f"batch {uuid.uuid4().hex}", u["control"][0]), hb)
    eq(r.status, 200, "control: status")
    check(r.h("x-router-cascade") is not None, "control: the casc tier cascades")
    eq(r.h("x-router-model"), "large", "control: the empty cheap answer escalated")
    r = post(d, body(f"batch {uuid.uuid4().hex}", u["lean"][0]), hb)
    eq(r.status, 200, "lean: status")
    eq(r.h("x-router-cascade"), None, "lean (cascade: false): no cascade")
    eq(r.h("x-router-model"), "c-empty", "lean: the first model's answer is returned as is")


@test
def test_cascade_off_arm_has_its_own_cache_entries():
    base, _, _ = config_text("hdrc")
    head = base.split("\nexperiments:\n")[0]
    text = (head + "\nexperiments:\n  - name: c\n    key: header:x-team\n    arms:\n"
            "      - {name: on}\n      - {name: off, cascade: false}\n")
    path = os.path.join(E.tmp, "hdrc.yaml")
    with open(path, "w") as f:
        f.write(text)
    d = S["hdrc"] = E.new_daemon(tag="hdrc", config=path).start()
    arms = [("on", 1), ("off", 1)]
    team = {}
    for i in range(100):
        team.setdefault(expected_arm("c", f"t{i}", arms), f"t{i}")
    b = {"model": "auto", "temperature": 0,
         "messages": [{"role": "user", "content": f"same body {uuid.uuid4().hex}"}]}
    hb = {"x-router-hint": "batch"}
    r = post(d, b, dict(hb, **{"x-team": team["on"]}))
    eq((r.h("x-router-arm"), r.h("x-cache"), r.h("x-router-model")), ("c/on", "MISS", "large"),
       "cascade arm: escalated, stored")
    r = post(d, b, dict(hb, **{"x-team": team["off"]}))
    eq((r.h("x-router-arm"), r.h("x-cache"), r.h("x-router-model")), ("c/off", "MISS", "c-empty"),
       "cascade-off arm: not the cascade's cached answer")
    r = post(d, b, dict(hb, **{"x-team": team["off"]}))
    eq(r.h("x-cache"), "HIT", "cascade-off arm: its own entry")
    r = post(d, b, dict(hb, **{"x-team": team["on"]}))
    eq((r.h("x-cache"), r.h("x-router-model")), ("HIT", "large"), "cascade arm: its own entry")


@test
def test_client_tier_is_in_no_experiment():
    d = S["a"]
    r = post(d, body("x", "someone"), {"x-router-tier": "strong"})
    eq(r.status, 200, "status")
    eq(r.h("x-router-arm"), None, "x-router-tier chose: no arm")
    r = post(d, {"model": "strong", "messages": [{"role": "user", "content": "x"}], "user": "u"})
    eq(r.h("x-router-arm"), None, "a tier named as model: no arm")
    j = log_of("a", r.h("x-request-id"))
    check("experiment" not in j and "arm" not in j, f"no experiment in the log line: {j}")


# ---- visibility ----

@test
def test_arm_in_log_samples_metrics_stats():
    d = S["a"]
    u = users_of(d)
    before = {a: metric(d, "llmrouter_experiment_requests_total",
                        {"experiment": "policy", "arm": a, "status_class": "2xx"})
              for a in ("control", "lean")}
    cost_before = metric(d, "llmrouter_experiment_cost_usd_total",
                         {"experiment": "policy", "arm": "lean"})
    rids, cost = [], 0.0
    for arm, n in (("control", 3), ("lean", 2)):
        for _ in range(n):
            r = post(d, body(f"vis {uuid.uuid4().hex}", u[arm][0]))
            eq(r.status, 200, "status")
            rids.append((r.h("x-request-id"), arm))
            if arm == "lean":
                cost += float(r.h("x-router-cost-usd"))
    for rid, arm in rids:
        j = log_of("a", rid)
        eq((j.get("experiment"), j.get("arm")), ("policy", arm), f"access log of {rid}")
        s = log_lines(S["a.samples"], lambda x, rid=rid: x.get("request_id") == rid)
        check(s, f"no sample line for {rid}")
        eq((s[0].get("experiment"), s[0].get("arm")), ("policy", arm), f"sample of {rid}")
    for a, n in (("control", 3), ("lean", 2)):
        got = metric(d, "llmrouter_experiment_requests_total",
                     {"experiment": "policy", "arm": a, "status_class": "2xx"})
        eq(got - before[a], n, f"/metrics requests of {a}")
    got = metric(d, "llmrouter_experiment_cost_usd_total", {"experiment": "policy", "arm": "lean"})
    check(abs(got - cost_before - cost) < 1e-9, f"/metrics cost of lean: {got - cost_before} != {cost}")
    st = R.http_request(d.port, "GET", "/v1/router/stats").json
    arms = {x["arm"]: x for x in st["experiments"] if x["experiment"] == "policy"}
    check(arms["control"]["requests"] >= 3 and arms["lean"]["requests"] >= 2,
          f"/v1/router/stats experiments: {st['experiments']}")


@test
def test_keyless_request_is_split_and_counted():
    d = S["a"]
    before = sum(metric(d, "llmrouter_experiment_keyless_requests_total",
                        {"experiment": "policy", "arm": a}) for a in ("control", "lean", "strict"))
    r = post(d, body("no user here"))
    eq(r.status, 200, "status")
    arm = r.h("x-router-arm")
    check(arm is not None and arm.startswith("policy/"), f"x-router-arm: {arm}")
    j = log_of("a", r.h("x-request-id"))
    eq(j.get("arm_keyless"), True, "access log: arm_keyless")
    after = sum(metric(d, "llmrouter_experiment_keyless_requests_total",
                       {"experiment": "policy", "arm": a}) for a in ("control", "lean", "strict"))
    eq(after - before, 1, "keyless counted")


@test
def test_keyless_none_and_keyless_arm():
    base, _, _ = config_text("kl")
    head = base.split("\nexperiments:\n")[0]
    for mode, want in (("none", None), ("lean", "p/lean")):
        text = (head + f"\nexperiments:\n  - name: p\n    key: user\n    keyless: {mode}\n    arms:\n"
                "      - {name: control}\n      - {name: lean, tiers: {strong: cheap}}\n")
        path = os.path.join(E.tmp, f"kl-{mode}.yaml")
        with open(path, "w") as f:
            f.write(text)
        d = E.new_daemon(tag="kl-" + mode, config=path).start()
        for i in range(6):  # the request id would split these both ways
            r = post(d, body(f"keyless {i}"))
            eq(r.status, 200, "status")
            eq(r.h("x-router-arm"), want, f"keyless: {mode}: x-router-arm")
        arms = {post(d, body("with a key", f"u{i}")).h("x-router-arm") for i in range(20)}
        eq(arms, {"p/control", "p/lean"}, f"keyless: {mode}: users with the key still split")
        d.stop()
    bad = head + ("\nexperiments:\n  - name: p\n    key: user\n    keyless: nobody\n    arms:\n"
                  "      - {name: control}\n      - {name: lean}\n")
    path = os.path.join(E.tmp, "kl-bad.yaml")
    with open(path, "w") as f:
        f.write(bad)
    p = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True, text=True)
    check(p.returncode != 0 and "keyless: expected split, none or an arm's name" in p.stderr
          and re.search(r"kl-bad.yaml:\d+:\d+", p.stderr), f"bad keyless: {p.stderr}")


# ---- the report ----

def t_tail(t, df, n=4000):
    """P(|T| >= |t|), by Simpson's rule on the t density."""
    t = abs(t)
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    f = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    h = t / n
    s = f(0) + f(t) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, n))
    return 1 - 2 * s * h / 3


def t_q975(df):
    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_tail(mid, df) > 0.05 else (lo, mid)
    return (lo + hi) / 2


def wilson(k, n, z=1.959963984540054):
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return p, max(0, mid - half), min(1, mid + half)


def near(a, b, what, tol=1e-6):
    check(a is not None and abs(a - b) <= tol * max(1, abs(b)), f"{what}: {a} != {b}")


@test
def test_report_compares_a_scripted_run():
    d = S["rep"]
    u = users_of(d)
    sent = {"control": [], "lean": []}  # (status, cost or None, request id)

    def send(arm, headers, b=None):
        r = post(d, b or body(f"rep {uuid.uuid4().hex}", u[arm][0]), headers)
        c = r.h("x-router-cost-usd")
        sent[arm].append((r.status, float(c) if c is not None else None, r.h("x-request-id"),
                          r.h("x-cache")))
        return r

    strong = {"x-router-hint": "strong"}
    for _ in range(8):
        send("control", strong)
        send("lean", strong)
    for _ in range(3):
        send("control", {"x-router-hint": "flaky"})
    send("lean", {"x-router-hint": "flaky"})
    cached = body("cache me exactly", u["control"][0], temperature=0)
    for _ in range(3):
        send("control", {}, cached)
    eq([s[3] for s in sent["control"][-3:]], ["MISS", "HIT", "HIT"], "the cache answered twice")
    check(all(s[0] == 502 for s in sent["control"][8:11]), "the broken tier fails")

    rids = {s[2] for arm in sent for s in sent[arm]}
    logs = log_lines(S["rep.log"], lambda j: j.get("request_id") in rids, want=len(rids))
    eq(len(logs), len(rids), "every request logged")
    # the samples file with judge scores the test scripts: control 8,9,7,8..., lean 5,6,4,6...
    samples = log_lines(S["rep.samples"], lambda j: j.get("request_id") in rids,
                        want=sum(1 for a in sent for s in sent[a] if s[0] == 200))
    scores = {"control": [], "lean": []}
    judged = os.path.join(E.tmp, "rep.judged.jsonl")
    with open(judged, "w") as f:
        for j in samples:
            arm = j["arm"]
            sc = ([8, 9, 7, 8] if arm == "control" else [5, 6, 4, 6])[len(scores[arm]) % 4]
            scores[arm].append(sc)
            j["judge"] = {"model": "scripted", "score": sc, "reason": "test", "cost_usd": 0, "ms": 1}
            f.write(json.dumps(j) + "\n")
        f.write('{"request_id":"other","experiment":"other","arm":"x","judge":{"score":1}}\n')
        f.write("not json\n")
    out = subprocess.run([E.bin, "report", "--experiment", "policy", "--json", S["rep.log"], judged],
                         capture_output=True, text=True, timeout=20)
    eq(out.returncode, 0, f"report exit ({out.stderr})")
    rep = json.loads(out.stdout)
    eq(rep["control"], "control", "the control arm")
    arms = {a["arm"]: a for a in rep["arms"]}
    eq(set(arms), {"control", "lean"}, "arms in the run")
    by_id = {j["request_id"]: j for j in logs}
    for arm in ("control", "lean"):
        a, s = arms[arm], sent[arm]
        n, ok = len(s), sum(1 for x in s if x[0] == 200)
        eq(a["requests"], n, f"{arm}: requests")
        p, lo, hi = wilson(ok, n)
        near(a["success_rate"]["value"], p, f"{arm}: success rate")
        near(a["success_rate"]["lo"], lo, f"{arm}: success rate lo")
        near(a["success_rate"]["hi"], hi, f"{arm}: success rate hi")
        costs = [x[1] for x in s if x[1] is not None]
        # the log's cost of a failed request may be known (0) though no header said so
        logged = [by_id[x[2]]["cost_usd"] for x in s if by_id[x[2]]["cost_usd"] is not None]
        check(abs(sum(costs) - sum(logged)) < 1e-9, f"{arm}: header costs {costs} vs log {logged}")
        mean = sum(logged) / len(logged)
        near(a["cost_per_request"]["value"], mean, f"{arm}: cost per request")
        if len(logged) > 1:
            sd = math.sqrt(sum((c - mean) ** 2 for c in logged) / (len(logged) - 1))
            near(a["cost_per_request"]["hi"], mean + t_q975(len(logged) - 1) * sd / math.sqrt(len(logged)),
                 f"{arm}: cost per request hi", 1e-5)
        near(a["cost_per_success"]["value"], sum(costs) / ok, f"{arm}: cost per success")
        lat = sorted(by_id[x[2]]["total_ms"] for x in s)
        near(a["latency_p50_ms"]["value"], lat[math.ceil(0.5 * n) - 1], f"{arm}: p50")
        near(a["latency_p95_ms"]["value"], lat[math.ceil(0.95 * n) - 1], f"{arm}: p95")
        sc = scores[arm]
        m = sum(sc) / len(sc)
        sd = math.sqrt(sum((x - m) ** 2 for x in sc) / (len(sc) - 1))
        near(a["quality"]["value"], m, f"{arm}: quality")
        near(a["quality"]["lo"], m - t_q975(len(sc) - 1) * sd / math.sqrt(len(sc)),
             f"{arm}: quality lo", 1e-5)
    hits = sum(1 for x in sent["control"] if x[3] == "HIT")
    lookups = sum(1 for x in sent["control"] if x[3] in ("HIT", "MISS"))
    near(arms["control"]["cache_hit_rate"]["value"], hits / lookups, "control: cache hit rate")
    # lean against control
    vs = arms["lean"]["vs_control"]
    n1, k1 = len(sent["control"]), sum(1 for x in sent["control"] if x[0] == 200)
    n2, k2 = len(sent["lean"]), sum(1 for x in sent["lean"] if x[0] == 200)
    pp = (k1 + k2) / (n1 + n2)
    z = abs(k1 / n1 - k2 / n2) / math.sqrt(pp * (1 - pp) * (1 / n1 + 1 / n2))
    near(vs["success_rate_p"], math.erfc(z / math.sqrt(2)), "success rate p-value")
    ca, cb = scores["control"], scores["lean"]
    va = sum((x - sum(ca) / len(ca)) ** 2 for x in ca) / (len(ca) - 1) / len(ca)
    vb = sum((x - sum(cb) / len(cb)) ** 2 for x in cb) / (len(cb) - 1) / len(cb)
    t = (sum(ca) / len(ca) - sum(cb) / len(cb)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va * va / (len(ca) - 1) + vb * vb / (len(cb) - 1))
    near(vs["quality_p"], t_tail(t, df), "quality p-value (Welch)", 1e-5)
    check("quality" in vs["significant"] and "cost_per_success" in vs["significant"],
          f"lean is significantly cheaper and worse: {vs}")
    check("success_rate" not in vs["significant"], f"success rates do not differ enough: {vs}")
    # the table names the arms and marks significance
    out = subprocess.run([E.bin, "report", "--experiment", "policy", S["rep.log"], judged],
                         capture_output=True, text=True, timeout=20)
    eq(out.returncode, 0, "table report exit")
    check("against the control arm control" in out.stdout and "quality" in out.stdout and
          "*" in out.stdout, f"table: {out.stdout}")
    out = subprocess.run([E.bin, "report", "--experiment", "nosuch", S["rep.log"]],
                         capture_output=True, text=True, timeout=20)
    eq(out.returncode, 1, "an experiment with no lines")


# ---- configuration errors ----

BAD = [
    ("weight 0", "      - {name: control, weight: 0}\n      - {name: b}\n",
     "weight: expected a number above 0"),
    ("arm twice", "      - {name: a}\n      - {name: a}\n", "arm \"a\" is defined twice"),
    ("unknown rule", "      - {name: a}\n      - {name: b, rules: [nope]}\n",
     "no rule named \"nope\""),
    ("unknown tier", "      - {name: a}\n      - {name: b, tiers: {strong: nope}}\n",
     "no tier named \"nope\""),
    ("no complexity", "      - {name: a}\n      - {name: b, complexity: {hinted: {min: 0.5}}}\n",
     "has no complexity condition"),
    ("one arm", "      - {name: a}\n", "at least two arms"),
]


@test
def test_config_errors_have_positions():
    for what, arms, msg in BAD:
        text, _, _ = config_text("bad")
        head = text.split("\nexperiments:\n")[0]
        text = head + "\nexperiments:\n  - name: e\n    key: user\n    arms:\n" + arms
        path = os.path.join(E.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        line = text.count("\n") - arms.count("\n") + 1 + (arms.count("\n") - 1)
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True, text=True,
                             timeout=20, env=dict(os.environ, SIM_URL="http://127.0.0.1:9",
                                                  SIM_KEY_GOOD="k"))
        check(out.returncode != 0, f"{what}: accepted")
        check(msg in out.stderr, f"{what}: expected {msg!r} in {out.stderr!r}")
        check(f"{path}:{line}:" in out.stderr or f"{path}:{line - 1}:" in out.stderr,
              f"{what}: expected {path}:{line}:COL in {out.stderr!r}")


@test
def test_zz_daemons_exit_cleanly():
    """Last, always: every daemon stops with status 0 on SIGTERM — under
    ASan a leak makes it fail."""
    bad = []
    for tag in ("a", "b", "rep", "keys", "hdr", "hdrc", "keyrule"):
        d = S.get(tag)
        if d is None:
            continue
        ok, msg = d.stop()
        text = d.stderr_text()
        if not ok or "ERROR: AddressSanitizer" in text or "runtime error" in text or \
                "LeakSanitizer" in text:
            bad.append(f"{tag}: {msg}\n{d.stderr_tail()}")
    check(not bad, "; ".join(bad))


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],), setup=setup,
                         teardown=teardown, always=("zz_daemons_exit_cleanly",)))
