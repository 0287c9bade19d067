#!/usr/bin/env python3
"""Integration tests of observability.alerts (issue 15 §2): rolling windows
of judged scores and hard failures per model and per rule, alerts (log line,
gauge, webhook), demotion (skipped in chains, in x-router-skipped and
/readyz) and recovery; a dead webhook is harmless. The real daemon, the
simulator's scripted judge and degrading models, and a webhook receiver
started by the test.

    python3 tests/integration/test_drift.py [-k SUBSTRING]...
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import check, eq  # noqa: E402
import qtest as Q  # noqa: E402

TESTS = []
E = None


def test(fn):
    TESTS.append(fn)
    return fn


JUDGE = "  judge: {model: judge, rate: 1, timeout_ms: 2000}\n"


def alerts(hook_port=None, demote=False, cooldown=1, extra=""):
    t = ("  alerts:\n    window: 10\n    min_samples: 5\n    min_mean_score: 6\n"
         "    max_failure_rate: 0.3\n")
    t += f"    demote: {'true' if demote else 'false'}\n    demote_cooldown_s: {cooldown}\n"
    if hook_port is not None:
        t += (f"    webhook: {{url: \"http://127.0.0.1:{hook_port}/hook\", "
              "headers: {X-Token: \"${SIM_KEY_GOOD}\"}, timeout_ms: 1000, retries: 2}\n")
    return t + extra


GAUGE = "llmrouter_quality_alert"


def send(d, n, text="Hello there", **kw):
    out = []
    for i in range(n):
        r = Q.chat(d, f"{text} {i}", **kw)
        eq(r.status, 200, f"status ({R.short(r.body)})")
        out.append(r)
    return out


def judged(d, n):
    return Q.samples(d, n, pred=lambda x: x.get("judge") is not None)


@test
def test_mean_drop_raises_alert_gauge_log_webhook_and_clears():
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 3})
    hooks = Q.Hooks()
    d = Q.start("drift-mean", judge=JUDGE, alerts=alerts(hooks.port))
    try:
        send(d, 4)
        judged(d, 4)
        eq(Q.metric(Q.metrics(d), GAUGE, {"kind": "model", "name": "cheap",
                                          "reason": "mean_score"}), 0.0, "no alert below min_samples")
        send(d, 1)
        Q.wait_metric(d, GAUGE, {"kind": "model", "name": "cheap", "reason": "mean_score"}, 1.0)
        Q.wait_metric(d, GAUGE, {"kind": "rule", "name": "default", "reason": "mean_score"}, 1.0)
        eq(Q.metric(Q.metrics(d), GAUGE, {"kind": "model", "name": "cheap",
                                          "reason": "failure_rate"}), 0.0, "failure rate fine")
        Q.wait_log(d, "quality alert raised: model cheap mean_score: mean score 3.00")
        h = hooks.wait(lambda b: b["event"] == "raised" and b["kind"] == "model")
        b = h["body"]
        eq((b["name"], b["reason"], b["samples"], b["scored"], b["demoted"]),
           ("cheap", "mean_score", 5, 5, False), "webhook body")
        check(abs(b["mean_score"] - 3.0) < 1e-9, f"webhook mean {b}")
        eq(b["thresholds"]["min_mean_score"], 6, "thresholds")
        eq(h["headers"].get("x-token"), R.GOOD_KEY, "webhook header from ${ENV}")
        check(R.GOOD_KEY not in d.stderr_text(), "the header's secret is not logged")
        st = Q.stats(d)["quality"]["alerts"]
        check(any(a["kind"] == "model" and a["name"] == "cheap" for a in st), f"stats alerts {st}")
        # good answers push the window's mean back over 6: cleared
        Q.sim_quality(scores={"sim-cheap": 10})
        send(d, 10, "better")
        Q.wait_metric(d, GAUGE, {"kind": "model", "name": "cheap", "reason": "mean_score"}, 0.0)
        Q.wait_log(d, "quality alert cleared: model cheap mean_score")
        hooks.wait(lambda b: b["event"] == "cleared" and b["kind"] == "model")
        Q.wait_metric(d, "llmrouter_alert_webhook_total", {"result": "ok"}, lambda v: v >= 4)
    finally:
        Q.stop(d)
        hooks.close()


@test
def test_hard_failures_raise_failure_rate_alert():
    E.sim_reset()
    Q.sim_quality(degrade={"sim-cheap": "refusal"})
    # no judge: the windows are the samples' (sample_rate) failures alone
    d = Q.start("drift-fail", alerts="  sample_rate: 1\n" + alerts())
    try:
        send(d, 5)
        Q.wait_metric(d, GAUGE, {"kind": "model", "name": "cheap", "reason": "failure_rate"}, 1.0)
        m = Q.metrics(d)
        eq(Q.metric(m, "llmrouter_quality_failures_total", {"model": "cheap", "reason": "refusal"}),
           5.0, "refusals counted")
        eq(Q.metric(m, GAUGE, {"kind": "model", "name": "cheap", "reason": "mean_score"}), 0.0,
           "no scores, no mean alert")
        for how, reason, extra in (("length", "truncated", {}),
                                   ("badjson", "invalid_json",
                                    {"response_format": {"type": "json_object"}})):
            Q.sim_quality(degrade={"sim-cheap": how})
            send(d, 2, **extra)
            Q.wait_metric(d, "llmrouter_quality_failures_total",
                          {"model": "cheap", "reason": reason}, 2.0)
        # invalid JSON only counts where JSON was asked
        send(d, 1)
        eq(Q.metric(Q.metrics(d), "llmrouter_quality_failures_total",
                    {"model": "cheap", "reason": "invalid_json"}), 2.0, "plain text is fine")
    finally:
        Q.stop(d)


@test
def test_demote_skips_model_then_recovers():
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 2})
    hooks = Q.Hooks()
    d = Q.start("drift-demote", judge=JUDGE, alerts=alerts(hooks.port, demote=True, cooldown=2))
    try:
        send(d, 5)
        Q.wait_metric(d, "llmrouter_quality_demoted", {"model": "cheap"}, 1.0)
        b = hooks.wait(lambda b: b["event"] == "raised" and b["kind"] == "model")["body"]
        eq(b["demoted"], True, "webhook says demoted")
        Q.wait_log(d, "demoted: skipped in chains")
        r = send(d, 1, "after")[0]
        eq(r.json["model"], "sim-big", "answered by the next model")
        check("cheap (demoted (quality alert))" in (r.h("x-router-skipped") or ""),
              f"x-router-skipped: {r.h('x-router-skipped')}")
        eq(r.h("x-router-attempts"), "2", "attempts (the skip is one)")
        rz = R.http_request(d.port, "GET", "/readyz")
        eq(rz.status, 200, "still ready: another model serves")
        eq(rz.json.get("demoted"), ["cheap"], f"/readyz demoted: {rz.json}")
        m = Q.metrics(d)
        check('reason="demoted"' in m, "a demoted skip among /metrics' failover reasons")
        # recovery: the cooldown ends, cheap gets traffic again, good scores clear
        Q.sim_quality(scores={"sim-cheap": 9})
        time.sleep(2.2)
        r = send(d, 1, "probe")[0]
        eq(r.json["model"], "sim-cheap", "cheap gets traffic after the cooldown")
        check(r.h("x-router-skipped") is None, "not skipped")
        Q.wait_log(d, "demotion cooldown over")
        send(d, 4, "good")
        Q.wait_metric(d, GAUGE, {"kind": "model", "name": "cheap", "reason": "mean_score"}, 0.0)
        eq(Q.metric(Q.metrics(d), "llmrouter_quality_demoted", {"model": "cheap"}), 0.0,
           "not demoted")
        hooks.wait(lambda b: b["event"] == "cleared" and b["kind"] == "model")
        rz = R.http_request(d.port, "GET", "/readyz")
        check("demoted" not in rz.json, f"/readyz: {rz.json}")
    finally:
        Q.stop(d)
        hooks.close()


@test
def test_demote_still_failing_after_cooldown_demotes_again():
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 2})
    d = Q.start("drift-again", judge=JUDGE, alerts=alerts(demote=True, cooldown=1))
    try:
        send(d, 5)
        Q.wait_metric(d, "llmrouter_quality_demoted", {"model": "cheap"}, 1.0)
        time.sleep(1.2)
        rs = send(d, 5, "still bad")
        eq(rs[0].json["model"], "sim-cheap", "traffic after the cooldown")
        Q.wait_log(d, "still in alert after its cooldown: demoted again")
        Q.wait_metric(d, "llmrouter_quality_demoted", {"model": "cheap"}, 1.0)
        r = send(d, 1, "skipped again")[0]
        eq(r.json["model"], "sim-big", "skipped again")
    finally:
        Q.stop(d)


@test
def test_demoted_only_model_is_the_last_resort():
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 2})
    d = Q.start("drift-solo", judge=JUDGE, alerts=alerts(demote=True, cooldown=60),
                tiers="  budget: [cheap]\n  premium: [big]\n")
    try:
        send(d, 5)
        Q.wait_metric(d, "llmrouter_quality_demoted", {"model": "cheap"}, 1.0)
        r = send(d, 1, "nobody else")[0]
        eq(r.json["model"], "sim-cheap", "the demoted model answers when it is the only one")
    finally:
        Q.stop(d)


@test
def test_dead_webhook_is_harmless():
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 2})
    d0 = Q.start("hook-base", judge=JUDGE)
    try:
        send(d0, 2, "warm")
        base = sorted(r.elapsed for r in send(d0, 6, "base"))[3]
    finally:
        Q.stop(d0)
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 2})
    port = R.free_port()  # nobody listens there
    d = Q.start("hook-dead", judge=JUDGE, alerts=alerts(port).replace("retries: 2", "retries: 1"))
    try:
        rs = send(d, 12)
        Q.wait_metric(d, GAUGE, {"kind": "model", "name": "cheap", "reason": "mean_score"}, 1.0)
        Q.wait_metric(d, "llmrouter_alert_webhook_total", {"result": "failed"}, lambda v: v >= 1)
        # the alert is raised by the 5th request's sample; what comes after
        # goes while the webhook fails and retries in the background
        med = sorted(r.elapsed for r in rs[6:])[3]
        check(med < base + 0.05, f"median latency {med:.4f}s vs {base:.4f}s")
        worst = max(r.elapsed for r in rs[4:])
        check(worst < base + 0.3, f"slowest request {worst:.4f}s vs a median {base:.4f}s")
        check(all(r.json["choices"][0]["message"]["content"].startswith("Simulated reply")
                  for r in rs), "answers")
        Q.wait_log(d, "alert webhook: giving up after 2 tries")
    finally:
        Q.stop(d)


@test
def test_dashboard_shows_quality_and_banner():
    import re
    import shutil
    import subprocess
    import tempfile
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
    check(exe is not None, "chromium is not installed (apt-get install -y chromium)")
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 3})
    d = Q.start("drift-dash", judge=JUDGE, alerts=alerts())
    try:
        send(d, 5)
        Q.wait_metric(d, GAUGE, {"kind": "model", "name": "cheap", "reason": "mean_score"}, 1.0)
        profile = tempfile.mkdtemp(prefix="drift-chromium-", dir=E.tmp)
        p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--disable-dev-shm-usage",
                            f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                            "--dump-dom", f"http://127.0.0.1:{d.port}/dashboard"],
                           capture_output=True, timeout=90)
        dom = p.stdout.decode("utf-8", "replace")
        check(p.returncode == 0 and "<html" in dom, f"chromium failed: {p.stderr[-300:]}")
        m = re.search(r'id="quality-alerts"[^>]*>([^<]*)<', dom)
        check(m and "model cheap (mean_score)" in m.group(1), f"banner: {m and m.group(0)}")
        check('id="quality-alerts" class="err" hidden' not in dom, "banner hidden")
        row = re.search(r'<tr data-name="tier budget">(.*?)</tr>', dom)
        check(row, "no tier budget row in table#quality")
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
        eq(cells[:3], ["tier budget", "5", "3.00"], "quality row: name, judged, mean")
        check(cells[3].startswith("$"), f"cost next to quality: {cells}")
        eq(cells[4], "", "tiers have no alerts")
        row = re.search(r'<tr data-name="model cheap">(.*?)</tr>', dom)
        check(row, "no model cheap row in table#quality")
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
        eq((cells[1], cells[4]), ("5", "mean_score"), "model row: judged, alert")
    finally:
        Q.stop(d)


BAD = [
    ("  alerts: {window: 5, min_samples: 10}\n", "min_samples (10) is larger than window (5)"),
    ("  alerts: {min_mean_score: 11}\n", "expected a score from 0 to 10"),
    ("  alerts: {webhook: {url: \"ftp://x\"}}\n", "expected an http:// or https:// URL"),
    ("  alerts: {webhook: {headers: {A: b}}}\n", "url is required"),
    ("  alerts: {demot: true}\n", "did you mean \"demote\""),
]


@test
def test_config_errors_have_positions():
    import subprocess
    for a, msg in BAD:
        text, _ = Q.config_text(E.tmp, "bad", alerts=a)
        path = os.path.join(E.tmp, "bad-alerts.yaml")
        with open(path, "w") as f:
            f.write(text)
        line = text.splitlines().index(a.rstrip("\n")) + 1
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True,
                             text=True, timeout=20, env=dict(os.environ, SIM_URL="http://x"))
        check(out.returncode != 0, f"{a!r}: accepted")
        check(f"{path}:{line}:" in out.stderr and msg in out.stderr,
              f"{a!r}: expected {path}:{line}:COL and {msg!r} in {out.stderr!r}")


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__], Q)))
