#!/usr/bin/env python3
"""Integration tests of the complexity scorer through the real daemon and the
simulated provider: `complexity: {min}` / `{max}` rules route a hard and an
easy prompt to different tiers; x-router-score appears (3 decimals) only when
a rule computed the score; POST /v1/router/explain and --explain show the
score and its top features; the access log has "score" (null when not
computed); routing.scorer.weights loads another weights file, and a bad one
stops the start with file:line:col; `llmrouter score` agrees with the
header; retraining reproduces the shipped weights byte for byte.

    python3 tests/integration/test_scorer.py [-k SUBSTRING]...

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None

HARD = ("A committee must schedule 12 meetings over 5 days. Each day holds at most 3 meetings, "
        "meetings 1-4 need different days, and 2*x + 3 = 11. How many schedules exist? Why? What "
        "changes if day 3 is a holiday? Give the count for each case and explain the reasoning "
        "in detail.")
EASY = "hi"

RULES = """\
  rules:
    - name: hinted-premium
      when: {header: {x-router-hint: premium}}
      tier: premium
    - name: hard
      when: {complexity: {min: 0.2}}
      tier: premium
      tags: [complex]
    - name: easy
      when: {all: [{complexity: {max: 0.12}}, {tools: false}]}
      tier: budget
"""


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, rules=RULES, scorer=None):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, rest = text.partition("\n  rules:\n")
    _, _, tail = rest.partition("\ncache:\n")
    out = head + "\n"
    if scorer:
        out += scorer
    out += rules + "\ncache:\n" + tail
    out += "\nobservability:\n  access_log: \"%s\"\n" % os.path.join(E.tmp, name + ".access.jsonl")
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(out)
    return path


def access_log(name):
    path = os.path.join(E.tmp, name + ".access.jsonl")
    for _ in range(40):
        if os.path.exists(path) and os.path.getsize(path) > 0:
            break
        time.sleep(0.05)
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def post(d, body, headers=None):
    return R.http_request(d.port, "POST", "/v1/chat/completions", body, headers=headers)


def score_of(r):
    s = r.headers.get("x-router-score")
    check(s is not None, f"x-router-score missing; headers {dict(r.headers)}")
    check(re.fullmatch(r"[01]\.\d{3}", s), f"x-router-score {s!r} is not a score with 3 decimals")
    return float(s)


def env():
    """The daemon's environment, for the command-line runs of its config."""
    return dict(os.environ, SIM_URL=f"http://127.0.0.1:{E.sim_port}", SIM_KEY_GOOD=R.GOOD_KEY)


def stop(d):
    ok, msg = d.stop()
    check(ok, msg)


@test
def test_complexity_routes_hard_and_easy():
    name = "scorer.yaml"
    d = E.new_daemon(tag="scorer-route", config=write_config(name)).start()
    try:
        r = post(d, chat_body("auto", HARD))
        eq(r.status, 200, "hard prompt status")
        eq(r.headers.get("x-router-rule"), "hard", "hard prompt rule")
        eq(r.headers.get("x-router-model"), "good-large", "hard prompt goes to premium")
        hard = score_of(r)
        r = post(d, chat_body("auto", EASY))
        eq(r.status, 200, "easy prompt status")
        eq(r.headers.get("x-router-rule"), "easy", "easy prompt rule")
        eq(r.headers.get("x-router-tier"), "budget", "easy prompt tier")
        easy = score_of(r)
        check(hard >= 0.2 > 0.12 >= easy, f"scores: hard {hard}, easy {easy}")
        # the same prompt, the same score
        eq(score_of(post(d, chat_body("auto", HARD))), hard, "deterministic score")
        # the CLI computes the same score from the same body
        p = subprocess.run([E.bin, "score"], input=json.dumps(chat_body("auto", HARD)) + "\n",
                           capture_output=True, text=True, timeout=20, env=env())
        eq(p.returncode, 0, f"llmrouter score exit ({p.stderr[-300:]!r})")
        eq("%.3f" % float(p.stdout.split()[0]), "%.3f" % hard, "llmrouter score agrees with the header")
        stop(d)
    finally:
        d.kill()


@test
def test_score_only_when_computed():
    name = "scorer-lazy.yaml"
    d = E.new_daemon(tag="scorer-lazy", config=write_config(name)).start()
    try:
        # an earlier rule decides: the scorer is not run, no header, null in the log
        r = post(d, chat_body("auto", HARD), headers={"x-router-hint": "premium"})
        eq(r.status, 200, "hinted status")
        eq(r.headers.get("x-router-rule"), "hinted-premium", "hinted rule")
        eq(r.headers.get("x-router-score"), None, "no x-router-score when no rule needed it")
        # a model named explicitly: no rules at all
        r = post(d, chat_body("good-mini", HARD))
        eq(r.status, 200, "explicit model status")
        eq(r.headers.get("x-router-score"), None, "no x-router-score for an explicit model")
        r = post(d, chat_body("auto", HARD))
        hard = score_of(r)
        stop(d)
        log = access_log(name)
        eq(len(log), 3, f"access log lines: {log!r}")
        check("score" in log[0] and log[0]["score"] is None, f"hinted: score null in {log[0]!r}")
        check("score" in log[1] and log[1]["score"] is None, f"explicit: score null in {log[1]!r}")
        eq("%.3f" % log[2]["score"], "%.3f" % hard, "access log score equals x-router-score")
        eq(log[2]["rule"], "hard", "access log rule")
    finally:
        d.kill()


@test
def test_stats_and_metrics_show_the_mean_score():
    """The dashboard's tier table reads mean_score from /v1/router/stats."""
    name = "scorer-stats.yaml"
    d = E.new_daemon(tag="scorer-stats", config=write_config(name)).start()
    try:
        s1 = score_of(post(d, chat_body("auto", HARD)))
        s2 = score_of(post(d, chat_body("auto", HARD + " Also list the edge cases.")))
        post(d, chat_body("auto", HARD), headers={"x-router-hint": "premium"})  # not scored
        st = json.loads(R.http_request(d.port, "GET", "/v1/router/stats").body)
        prem = [t for t in st["tiers"] if t["tier"] == "premium"]
        eq(len(prem), 1, f"premium row in {st['tiers']!r}")
        eq(prem[0]["requests"], 3, "premium requests")
        eq(prem[0]["scored_requests"], 2, "premium scored requests")
        check(abs(prem[0]["mean_score"] - (s1 + s2) / 2) < 0.002,
              f"mean_score {prem[0]['mean_score']} vs headers {s1}, {s2}")
        others = [t for t in st["tiers"] if t["tier"] != "premium"]
        check(all(t["mean_score"] is None for t in others), f"unscored tiers: {others!r}")
        m = R.http_request(d.port, "GET", "/metrics").body.decode()
        check('llmrouter_complexity_scored_requests_total{tier="premium",rule="hard"} 2' in m,
              "scored requests in /metrics: " + " ".join(l for l in m.splitlines() if "complexity" in l))
        html = R.http_request(d.port, "GET", "/dashboard").body.decode()
        check("mean_score" in html and "Mean score" in html, "the dashboard shows the mean score")
        stop(d)
    finally:
        d.kill()


@test
def test_explain_shows_the_score():
    name = "scorer-explain.yaml"
    cfg = write_config(name)
    d = E.new_daemon(tag="scorer-explain", config=cfg).start()
    try:
        r = R.http_request(d.port, "POST", "/v1/router/explain", chat_body("auto", HARD))
        eq(r.status, 200, f"explain status ({r.body[:300]!r})")
        j = json.loads(r.body)
        cx = j.get("complexity") or {}
        check(isinstance(cx.get("score"), (int, float)) and 0.2 <= cx["score"] <= 1, f"complexity {cx!r}")
        eq(cx.get("used_by_rules"), True, "used_by_rules")
        eq(cx.get("weights"), "built-in", "weights source")
        check(re.search(r"\w+ \+\d\.\d{3}", cx.get("top_features", "")), f"top_features {cx!r}")
        check(isinstance(cx.get("features"), dict) and "tokens" in cx["features"], "features listed")
        eq(j["decision"]["rule"], "hard", "explained rule")
        why = " ".join(j["rules"][1]["why"])
        check(re.search(r"yes: complexity min 0\.2: score \d\.\d{3} from ", why), f"why: {why!r}")
        # explain computes the score for display, but the rules did not need it
        r = R.http_request(d.port, "POST", "/v1/router/explain", chat_body("auto", HARD),
                           headers={"x-router-hint": "premium"})
        j = json.loads(r.body)
        eq(j["complexity"]["used_by_rules"], False, "hinted: used_by_rules")
        eq(r.headers.get("x-router-score"), None, "hinted explain: no x-router-score")
        stop(d)
        # offline, the same
        p = subprocess.run([E.bin, "-c", cfg, "--explain", "-"], input=json.dumps(chat_body("auto", HARD)),
                           capture_output=True, text=True, timeout=20, env=env())
        eq(p.returncode, 0, f"--explain exit ({p.stderr[-300:]!r})")
        check(re.search(r"complexity score: \d\.\d{3} \(used by the rules; weights built-in\)", p.stdout),
              f"--explain output: {p.stdout[:600]!r}")
    finally:
        d.kill()


@test
def test_weights_file_and_bad_weights():
    wpath = os.path.join(E.tmp, "weights-high.txt")
    names = subprocess.run([E.bin, "score", "--help"], capture_output=True, text=True,
                           timeout=20, env=env()).stdout.splitlines()[4].split()
    check(len(names) > 10 and names[0] == "tokens", f"feature names from score --help: {names!r}")
    with open(wpath, "w") as f:
        f.write("llmrouter-scorer 1\nbias 5\n" + "".join(f"{n} 0\n" for n in names))
    name = "scorer-weights.yaml"
    cfg = write_config(name, scorer=f"  scorer: {{weights: \"{wpath}\"}}\n")
    d = E.new_daemon(tag="scorer-weights", config=cfg).start()
    try:
        # every prompt scores 1 / (1 + e^-5) under these weights
        r = post(d, chat_body("auto", EASY))
        eq(r.headers.get("x-router-score"), "0.993", "score under the loaded weights")
        eq(r.headers.get("x-router-rule"), "hard", "even a greeting is hard under them")
        stop(d)
    finally:
        d.kill()
    # --check-config names the weights in use
    p = subprocess.run([E.bin, "-c", cfg, "--check-config"], capture_output=True, text=True, timeout=20, env=env())
    eq(p.returncode, 0, f"--check-config with a weights file ({p.stderr[-300:]!r})")
    check(re.search(r"^complexity scorer: .*weights-high\.txt$", p.stdout, re.M), f"summary: {p.stdout!r}")
    p = subprocess.run([E.bin, "-c", write_config("scorer-builtin.yaml"), "--check-config"], capture_output=True,
                       text=True, timeout=20, env=env())
    check(re.search(r"^complexity scorer: built-in weights$", p.stdout, re.M), f"summary: {p.stdout!r}")
    # a bad weights file: the daemon does not start, and says where
    with open(wpath, "w") as f:
        f.write("llmrouter-scorer 1\nbias 5\ntokens many\n")
    p = subprocess.run([E.bin, "-c", cfg, "--check-config"], capture_output=True, text=True, timeout=20, env=env())
    check(p.returncode != 0, "--check-config accepts a bad weights file")
    check(re.search(r"scorer-weights\.yaml:\d+:\d+: routing\.scorer\.weights: .*weights-high\.txt:3:8: "
                    r"\"many\" is not a number", p.stderr), f"stderr: {p.stderr[-500:]!r}")
    d = E.new_daemon(tag="scorer-badweights", config=cfg)
    try:
        d.start()
        check(False, "the daemon started with a bad weights file")
    except RuntimeError as e:
        check("weights-high.txt:3:8" in str(e) or "weights-high.txt:3:8" in d.stderr_text(),
              f"start-up error does not name the weights file position: {str(e)[-400:]!r}")
    finally:
        d.kill()


@test
def test_bad_complexity_condition():
    cfg = write_config("scorer-bad.yaml", rules="""\
  rules:
    - name: hard
      when: {complexity: {min: 2}}
      tier: premium
""")
    p = subprocess.run([E.bin, "-c", cfg, "--check-config"], capture_output=True, text=True, timeout=20, env=env())
    check(p.returncode != 0, "--check-config accepts complexity min 2")
    check(re.search(r"scorer-bad\.yaml:\d+:\d+: routing\.rules\[0\]\.when\.complexity\.min: expected a "
                    r"score between 0 and 1, found \"2\"", p.stderr), f"stderr: {p.stderr[-400:]!r}")


@test
def test_training_reproduces_the_shipped_weights():
    """config/scorer/train.py, fed by this binary's `score --features`,
    rebuilds config/scorer/weights.txt and src/route/scorer_weights.c byte
    for byte, and the binary's scores equal the script's."""
    data = os.path.join(os.path.dirname(R.ROOT), "shared", "data")
    if not os.path.isdir(data):
        data = "/work/shared/data"
    p = subprocess.run([sys.executable, os.path.join(R.ROOT, "config", "scorer", "train.py"), "--check",
                        "--bin", E.bin, "--data", data], capture_output=True, text=True, timeout=600)
    eq(p.returncode, 0, f"train.py --check: {p.stdout[-400:]!r} {p.stderr[-400:]!r}")
    check("reproduced byte for byte" in p.stdout, p.stdout)


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]))


if __name__ == "__main__":
    sys.exit(main())
