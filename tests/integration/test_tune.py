#!/usr/bin/env python3
"""Integration tests of `llmrouter tune` (docs/quality.md, "Tuning"): the
real binary on access logs and judged samples files the tests write, and
the real daemon loading what --refit wrote.

    python3 tests/integration/test_tune.py [-k SUBSTRING]...

Covers: on a hand-computed example (two tiers, five score buckets, both
tiers judged in every bucket) the proposal is the threshold, expected cost
and quality computed by hand, for both objectives; a rule judged below the
bar is flagged; with too few samples per bucket it says so and proposes
nothing (exit 1); the YAML names the rule that sends traffic to the strong
tier; --refit on traffic where the cheap tier fails on code prompts writes
a weights file with a better held-out AUC than the built-in weights, which
`llmrouter score`, the daemon (routing.scorer.weights) and an experiment
arm (weights:) load; bad options exit 2.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import check, eq  # noqa: E402

TESTS = []
E = None
S = {}


def test(fn):
    TESTS.append(fn)
    return fn


def write(name, lines):
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        for ln in lines:
            f.write((ln if isinstance(ln, str) else json.dumps(ln)) + "\n")
    return path


def tune(*args):
    return subprocess.run([E.bin, "tune", *args], capture_output=True, text=True, timeout=60)


def near(a, b, what, tol=1e-9):
    check(a is not None and abs(a - b) <= tol, f"{what}: {a} != {b}")


# The hand-computed example. Scores 0.05, 0.15, 0.25, 0.35, 0.45 (buckets
# of 0.1: 0 to 4), in each bucket 4 judged samples of each tier (as an
# experiment between a low and a high threshold gives). budget costs 0.001
# and is judged 8 below 0.3, 4 from 0.3; premium costs 0.010 and is judged
# 8 everywhere. The traffic (40 samples): quality (12*8 + 8*4 + 20*8) / 40
# = 7.2, cost (20*0.001 + 20*0.010) / 40 = 0.0055.
# Threshold t (buckets below t -> budget):
#   t=0.3: quality 8,   cost (24*0.001 + 16*0.010) / 40 = 0.0046
#   t=0.4: quality (24*8 + 8*4 + 8*8) / 40 = 7.2, cost (32*0.001 + 8*0.010) / 40 = 0.0028
#   t=0.5: quality 6.4, cost 0.001
# Minimal cost at quality >= 7.2: t = 0.4. Most quality at cost <= 0.0055: t = 0.3.
def example(drop_budget_above=None):
    log, samples = [], []
    n = 0
    for b in range(5):
        score = 0.05 + 0.1 * b
        for tier, cost, rule in (("budget", 0.001, "short-question"),
                                 ("premium", 0.010, "hard-prompts")):
            for _ in range(4):
                if drop_budget_above is not None and tier == "budget" and score > drop_budget_above:
                    continue
                q = 8 if tier == "premium" or score < 0.3 else 4
                rid = f"req_{n}"
                n += 1
                log.append({"request_id": rid, "tier": tier, "rule": rule, "status": 200,
                            "cost_usd": cost, "total_ms": 10})
                samples.append({"request_id": rid, "rule": rule, "tier": tier,
                                "score": round(score, 3), "model": "m", "provider": "p",
                                "status": 200, "request": None, "response": None,
                                "judge": {"model": "j", "score": q, "reason": "r",
                                          "cost_usd": 0, "ms": 1}})
    # lines the tool must skip: unjudged, failed, malformed
    samples.append({"request_id": "x1", "tier": "budget", "score": 0.1, "status": 200,
                    "judge": None})
    samples.append({"request_id": "x2", "tier": "budget", "score": 0.1, "status": 502,
                    "judge": {"score": 1}})
    samples.append("not json")
    return log, samples


@test
def test_hand_computed_threshold_min_cost():
    log, samples = example()
    lp, sp = write("ex.log", log), write("ex.samples", samples)
    out = tune("--bucket", "0.1", "--min-samples", "3", "--json", lp, sp)
    eq(out.returncode, 0, f"exit ({out.stderr})")
    j = json.loads(out.stdout)
    eq(j["judged_samples"], 40, "judged samples read (unjudged, failed, malformed skipped)")
    eq(len(j["pairs"]), 1, "one tier pair")
    p = j["pairs"][0]
    eq((p["cheap"], p["strong"]), ("budget", "premium"), "the pair, cheapest first")
    eq(p["found"], True, f"a proposal: {p}")
    near(p["threshold"], 0.4, "threshold")
    near(p["base_quality"], 7.2, "baseline quality")
    near(p["base_cost"], 0.0055, "baseline cost")
    near(p["quality"], 7.2, "expected quality")
    near(p["cost"], 0.0028, "expected cost")
    near(p["cost_change"], 0.0028 - 0.0055, "cost change")
    eq(p["support_min"], 4, "support per bucket")
    eq(p["samples"], 40, "samples behind it")
    eq(p["rule"], "hard-prompts", "the rule sending traffic to premium")
    flagged = {f["rule"]: f for f in j["flagged_rules"]}
    check("short-question" in flagged and "hard-prompts" not in flagged, f"flags: {flagged}")
    near(flagged["short-question"]["quality"], (12 * 8 + 8 * 4) / 20, "flagged rule's quality")
    # the text form prints the YAML change
    out = tune("--bucket", "0.1", "--min-samples", "3", lp, sp)
    eq(out.returncode, 0, "text exit")
    check("- name: hard-prompts\n      when: {complexity: {min: 0.40}}\n      tier: premium" in
          out.stdout, f"YAML change in {out.stdout}")
    check("-49.1%" in out.stdout, f"cost change in percent: {out.stdout}")


@test
def test_hand_computed_threshold_max_quality():
    log, samples = example()
    lp, sp = write("exq.log", log), write("exq.samples", samples)
    out = tune("--objective", "quality", "--bucket", "0.1", "--min-samples", "3", "--json", lp, sp)
    eq(out.returncode, 0, f"exit ({out.stderr})")
    p = json.loads(out.stdout)["pairs"][0]
    near(p["threshold"], 0.3, "threshold")
    near(p["quality"], 8, "expected quality")
    near(p["cost"], 0.0046, "expected cost")


@test
def test_too_few_samples_says_so():
    # a plain threshold deployment at 0.3: budget never judged above it
    log, samples = example(drop_budget_above=0.3)
    lp, sp = write("few.log", log), write("few.samples", samples)
    out = tune("--bucket", "0.1", "--min-samples", "5", "--json", lp, sp)
    eq(out.returncode, 1, f"nothing proposed: exit 1 ({out.stdout})")
    p = json.loads(out.stdout)["pairs"][0]
    eq(p["found"], False, "no proposal")
    check("too few samples" in p["why"] and "need 5" in p["why"], f"why: {p['why']}")
    out = tune("--bucket", "0.1", "--min-samples", "5", lp, sp)
    check("no proposal: too few samples" in out.stdout, f"text: {out.stdout}")


@test
def test_bad_usage():
    log, samples = example()
    lp, sp = write("u.log", log), write("u.samples", samples)
    for args in (["--objective", "speed", lp, sp], ["--bucket", "0", lp, sp], [lp],
                 ["--tiers", "budget", lp, sp]):
        out = tune(*args)
        eq(out.returncode, 2, f"{args}: exit 2 ({out.stderr})")
    out = tune(lp, os.path.join(E.tmp, "missing.jsonl"))
    eq(out.returncode, 1, "a missing file")


# ---- --refit ----

CODE = ["Write a python function that sorts an array of integers and returns the index",
        "Fix this code: def parse(x): return json.loads(x) raises an exception in the loop",
        "Implement a class with a method that compiles the regex and returns the variable",
        "Refactor the javascript function so the array loop does not throw an exception"]
PLAIN = ["What is the capital of France", "Name a fruit that is yellow",
         "Who painted the Mona Lisa", "Tell me a fun fact about cats"]


def refit_data(seed=7, n=320):
    rnd = random.Random(seed)
    log, samples = [], []
    for i in range(n):
        code = i % 2 == 0
        text = rnd.choice(CODE if code else PLAIN) + " " + " ".join(
            rnd.choice(["please", "today", "now", "quickly", "thanks"]) for _ in range(rnd.randint(0, 4)))
        rid = f"rf_{seed}_{i}"
        log.append({"request_id": rid, "cost_usd": 0.001, "status": 200})
        samples.append({"request_id": rid, "rule": "default", "tier": "budget", "score": None,
                        "status": 200,
                        "request": {"model": "auto", "messages": [{"role": "user", "content": text}]},
                        "response": None,
                        "judge": {"model": "j", "score": 3 if code else 9, "reason": "r"}})
    # a few premium samples so there is a pair (not used by the refit)
    for i in range(6):
        rid = f"rp_{i}"
        log.append({"request_id": rid, "cost_usd": 0.01, "status": 200})
        samples.append({"request_id": rid, "rule": "hard", "tier": "premium", "score": 0.5,
                        "status": 200, "request": None, "response": None,
                        "judge": {"model": "j", "score": 9}})
    return log, samples


@test
def test_refit_improves_held_out_auc_and_loads():
    log, samples = refit_data()
    lp, sp = write("rf.log", log), write("rf.samples", samples)
    outp = os.path.join(E.tmp, "weights.refit.txt")
    out = tune("--refit", "--out", outp, "--json", lp, sp)
    check(out.returncode in (0, 1), f"exit {out.returncode} ({out.stderr})")
    j = json.loads(out.stdout)
    rf = j["refit"]
    eq(rf["ok"], True, f"refit: {rf}")
    eq(rf["cheap"], "budget", "fitted on the cheap tier")
    eq(rf["train"] + rf["held_out"], 320, "every budget sample used once")
    check(60 <= rf["held_out"] <= 100, f"about a quarter held out: {rf['held_out']}")
    check(rf["auc_new"] > rf["auc_old"] and rf["auc_new"] > 0.9,
          f"held-out AUC old {rf['auc_old']:.3f} -> new {rf['auc_new']:.3f}")
    check(os.path.exists(outp), "weights file written")
    # the same split every run: the same file
    with open(outp) as f:
        first = f.read()
    tune("--refit", "--out", outp, "--json", lp, sp)
    with open(outp) as f:
        eq(f.read(), first, "a second run writes the same weights")
    # llmrouter score reads it, and code prompts now score higher than plain ones
    sc = subprocess.run([E.bin, "score", "--weights", outp], capture_output=True, text=True,
                        input=json.dumps({"prompt": CODE[0]}) + "\n" + json.dumps({"prompt": PLAIN[0]}) + "\n",
                        timeout=20)
    eq(sc.returncode, 0, f"score --weights ({sc.stderr})")
    code_s, plain_s = (float(x) for x in sc.stdout.split())
    check(code_s > plain_s + 0.3, f"refitted scores: code {code_s}, plain {plain_s}")
    # the default output path is beside --weights
    old = os.path.join(E.tmp, "mine.txt")
    with open(old, "w") as f:
        f.write(first)
    out = tune("--refit", "--weights", old, lp, sp)
    check(os.path.exists(os.path.join(E.tmp, "mine.refit.txt")), f"beside the old: {out.stdout}")
    check("held-out AUC" in out.stdout and "mine.refit.txt" in out.stdout, f"text: {out.stdout}")
    # the daemon loads it: as routing.scorer.weights, and as an experiment arm's weights
    base = open(os.path.join(HERE, "llmrouter-test.yaml")).read().partition("\nrouting:\n")[0]
    cfg = base + (f"\nrouting:\n  default_tier: standard\n  scorer: {{weights: \"{outp}\"}}\n"
                  "  rules:\n    - {name: hard, when: {complexity: {min: 0.5}}, tier: premium}\n"
                  "experiments:\n  - name: w\n    key: user\n    arms:\n      - {name: old}\n"
                  f"      - {{name: new, weights: \"{outp}\"}}\n")
    path = os.path.join(E.tmp, "refit.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    d = E.new_daemon(tag="refit", config=path).start()
    try:
        b = {"model": "auto", "messages": [{"role": "user", "content": CODE[0]}], "user": "u"}
        r = R.http_request(d.port, "POST", "/v1/router/explain", json.dumps(b).encode())
        eq(r.status, 200, "explain")
        eq(r.json["complexity"]["weights"], outp, "the daemon scores with the refitted weights")
    finally:
        ok, msg = d.stop()
        check(ok, f"daemon stop: {msg}")


@test
def test_refit_with_too_little_data():
    log, samples = example()  # no request bodies: no features
    lp, sp = write("rl.log", log), write("rl.samples", samples)
    out = tune("--refit", "--bucket", "0.1", "--min-samples", "3", "--out",
               os.path.join(E.tmp, "never.txt"), lp, sp)
    eq(out.returncode, 1, "exit 1")
    check("refit: too little data" in out.stdout, f"says why: {out.stdout}")
    check(not os.path.exists(os.path.join(E.tmp, "never.txt")), "no file written")


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__],)))
