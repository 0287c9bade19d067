#!/usr/bin/env python3
"""Integration tests of observability.judge (issue 15 §1): sampled answers
judged in the background by the simulator's scripted judge (sim-qjudge,
tests/sim/simprovider.py "quality judge" block), the real daemon over real
sockets.

    python3 tests/integration/test_judge.py [-k SUBSTRING]...

Covers: scores reach the sample file, /metrics (histogram per tier, model,
rule), /v1/router/stats and `llmrouter report --samples`; the judge's cost
is judge spend, not the request's; a "Score: N" text answer; a garbage
answer is a judge error, not a score; streams are judged on their assembled
text after they end; a full queue and the daily cap drop and count; a dead,
slow or garbage judge changes neither the client's answer nor its latency;
configuration errors with file:line:column; two instances sharing one Redis
(the shared cache) each judge their own answers, a hit is not judged again,
and the report merges their samples files.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq  # noqa: E402
import qtest as Q  # noqa: E402

TESTS = []
E = None


def test(fn):
    TESTS.append(fn)
    return fn


JUDGE_ALL = "  judge: {model: judge, rate: 1, timeout_ms: 2000}\n"


@test
def test_scores_reach_samples_metrics_stats():
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 4}, default=8)
    d = Q.start("scores", judge=JUDGE_ALL)
    try:
        costs = []
        for i in range(3):
            r = Q.chat(d, f"What is {i} plus one?")
            eq(r.status, 200, "status")
            costs.append(float(r.h("x-router-cost-usd")))
        r = Q.chat(d, "please compile this def foo(): pass")
        eq(r.status, 200, "code status")
        lines = Q.samples(d, 4, pred=lambda x: x.get("judge") is not None)
        budget = [x for x in lines if x["tier"] == "budget"]
        eq(len(budget), 3, "budget samples")
        for x in budget:
            j = x["judge"]
            eq(j["model"], "judge", "judge model")
            eq(j["score"], 4, "score")
            eq(j["reason"], "simulated judge (scores set by /_sim/quality)", "reason")
            check(j["cost_usd"] > 0 and j["ms"] >= 0, f"judge cost/ms {j}")
            for k in ("request_id", "rule", "tier", "score", "model", "provider", "status",
                      "request", "response"):
                check(k in x, f"sample lacks {k}: {x.keys()}")
        code = [x for x in lines if x["tier"] == "premium"][0]
        eq(code["judge"]["score"], 8, "premium judged with the default score")
        eq(code["rule"], "code", "rule")
        m = Q.metrics(d)
        lab = {"tier": "budget", "model": "cheap", "rule": "default"}
        eq(Q.metric(m, "llmrouter_judge_score_count", lab), 3.0, "count")
        eq(Q.metric(m, "llmrouter_judge_score_sum", lab), 12.0, "sum")
        eq(Q.metric(m, "llmrouter_judge_score_bucket", dict(lab, le="3")), 0.0, "le 3")
        eq(Q.metric(m, "llmrouter_judge_score_bucket", dict(lab, le="4")), 3.0, "le 4")
        eq(Q.metric(m, "llmrouter_judge_score_count",
                    {"tier": "premium", "model": "big", "rule": "code"}), 1.0, "code count")
        spend = sum(x["judge"]["cost_usd"] for x in lines)
        got = Q.metric(m, "llmrouter_judge_cost_usd_total")
        check(abs(got - spend) < 1e-9, f"judge spend {got} != {spend}")
        # the judge's cost is not the requests': the access log has the header's
        with open(os.path.join(E.tmp, "scores-access.log")) as f:
            logged = [json.loads(ln) for ln in f]
        for c, j in zip(costs, logged):
            check(abs(j["cost_usd"] - c) < 1e-12, f"request cost {j['cost_usd']} != {c}")
        req_total = Q.metric(m, "llmrouter_cost_usd_total") or sum(x["cost_usd"] for x in logged)
        check(req_total < spend, f"requests' cost {req_total} includes the judge's {spend}?")
        q = Q.stats(d)["quality"]
        eq(q["tiers"]["budget"], {"n": 3, "mean": 4.0}, "stats tier")
        eq(q["models"]["big"]["n"], 1, "stats model")
        eq(q["rules"]["code"]["mean"], 8.0, "stats rule")
        eq(q["judge"]["judged"], 4, "stats judged")
        # the report reads the samples (two files merge)
        other = os.path.join(E.tmp, "scores-other.jsonl")
        with open(other, "w") as f:
            f.write(json.dumps({"tier": "budget", "model": "cheap", "rule": "default",
                                "judge": {"model": "judge", "score": 8, "reason": "x",
                                          "cost_usd": 0.001, "ms": 3}}) + "\n")
            f.write(json.dumps({"tier": "budget", "model": "cheap", "rule": "default",
                                "judge": None}) + "\n")
        out = subprocess.run([E.bin, "report", "--samples", d.samples, other],
                             capture_output=True, text=True, timeout=20)
        eq(out.returncode, 0, f"report: {out.stderr}")
        check("judged quality" in out.stdout, f"report: {out.stdout}")
        # budget: 3 x 4 + 1 x 8 = 5.00 over 4
        check(any(ln.split()[:4] == ["tier", "budget", "4", "5.00"]
                  for ln in out.stdout.splitlines()), f"report tier line: {out.stdout}")
        outj = subprocess.run([E.bin, "report", "--json", "--samples", d.samples, other],
                              capture_output=True, text=True, timeout=20)
        rj = json.loads(outj.stdout)
        eq(rj["quality"]["tiers"]["budget"]["n"], 4, "report json n")
        check(abs(rj["quality"]["tiers"]["budget"]["mean"] - 5.0) < 1e-9, f"report json {rj}")
        eq(rj["quality"]["unjudged"], 1, "unjudged")
    finally:
        Q.stop(d)


@test
def test_text_score_and_garbage_answer():
    E.sim_reset()
    Q.sim_quality(mode="text", default=7)
    d = Q.start("text", judge=JUDGE_ALL)
    try:
        eq(Q.chat(d).status, 200, "status")
        x = Q.samples(d, 1, pred=lambda x: x.get("judge") is not None)[0]
        eq(x["judge"]["score"], 7, "Score: N parsed")
        Q.sim_quality(mode="garbage")
        eq(Q.chat(d, "again").status, 200, "status")
        lines = Q.samples(d, 2, pred=lambda x: x.get("judge") is not None)
        eq(lines[1]["judge"]["error"], "unparsable", "garbage is an error")
        check("score" not in lines[1]["judge"], f"no score: {lines[1]['judge']}")
        m = Q.metrics(d)
        eq(Q.metric(m, "llmrouter_judge_errors_total", {"reason": "unparsable"}), 1.0, "errors")
        eq(Q.metric(m, "llmrouter_judge_score_count", {"tier": "budget"}), 1.0, "one score only")
    finally:
        Q.stop(d)


@test
def test_stream_judged_after_it_ends():
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 6})
    d = Q.start("stream", judge=JUDGE_ALL)
    try:
        r = Q.chat(d, "Stream me a story", stream=True)
        eq(r.status, 200, "status")
        check(b"[DONE]" in r.body, "stream ended")
        x = Q.samples(d, 1, pred=lambda x: x.get("judge") is not None)[0]
        eq(x["judge"]["score"], 6, "stream judged")
        msg = x["response"]["choices"][0]["message"]["content"]
        check(msg.startswith("Simulated reply from sim-cheap"), f"assembled text: {msg!r}")
        # the judge saw the assembled answer, not raw events
        judged = [y for y in E.sim_requests() if (y.get("body") or {}).get("model") == "sim-qjudge"]
        eq(len(judged), 1, "one judge call")
        prompt = judged[0]["body"]["messages"][-1]["content"]
        check("Answer:\nSimulated reply from sim-cheap" in prompt, f"judge prompt {prompt!r}")
        check("data:" not in prompt, "no raw events in the judge's prompt")
    finally:
        Q.stop(d)


@test
def test_queue_full_drops_and_counts():
    E.sim_reset()
    Q.sim_quality(delay_ms=1500)
    d = Q.start("queue", judge="  judge: {model: judge, rate: 1, queue: 1, concurrency: 1, "
                               "timeout_ms: 5000}\n")
    try:
        for i in range(5):
            eq(Q.chat(d, f"q {i}").status, 200, "status")
        Q.wait_metric(d, "llmrouter_judge_dropped_total", {"reason": "queue_full"}, 3.0)
        # dropped samples are written at once, unjudged
        lines = Q.samples(d, 3, timeout=2, pred=lambda x: x.get("judge") is None)
        eq(len(lines), 3, "unjudged lines")
        Q.samples(d, 5, timeout=8)
        eq(Q.stats(d)["quality"]["judge"]["judged"], 2, "two judged")
    finally:
        Q.stop(d)


@test
def test_daily_cap_drops_and_counts():
    E.sim_reset()
    Q.sim_quality()
    # one judge call costs 1000 x 1 + 20 x 2 per mtok = 0.00104 USD
    d = Q.start("cap", judge="  judge: {model: judge, rate: 1, daily_spend_usd: 0.001}\n")
    try:
        eq(Q.chat(d, "one").status, 200, "status")
        Q.samples(d, 1, pred=lambda x: x.get("judge") is not None)
        for i in range(3):
            eq(Q.chat(d, f"more {i}").status, 200, "status")
        Q.wait_metric(d, "llmrouter_judge_dropped_total", {"reason": "daily_cap"}, 3.0)
        eq(Q.judge_calls(), 1, "the judge was called once")
        st = Q.stats(d)["quality"]["judge"]
        check(abs(st["spend_today_usd"] - 0.00104) < 1e-9, f"spend {st}")
    finally:
        Q.stop(d)


def timed(d, n=6):
    lat, bodies = [], []
    for i in range(n):
        r = Q.chat(d, f"latency {i}")
        eq(r.status, 200, "status")
        lat.append(r.elapsed)
        bodies.append(r.json["choices"][0]["message"]["content"])
    lat.sort()
    return lat[len(lat) // 2], bodies


@test
def test_dead_slow_garbage_judge_change_nothing_for_clients():
    E.sim_reset()
    d0 = Q.start("lat-off")
    try:
        base, want = timed(d0)
    finally:
        Q.stop(d0)
    cases = [("slow", {"delay_ms": 3000}, "timeout"), ("dead", {"mode": "status"}, "http_503"),
             ("garbage", {"mode": "garbage"}, "unparsable")]
    for tag, state, err in cases:
        E.sim_reset()
        Q.sim_quality(**state)
        d = Q.start("lat-" + tag, judge="  judge: {model: judge, rate: 1, timeout_ms: 500}\n")
        try:
            med, got = timed(d)
            eq(got, want, f"{tag}: answers")
            check(med < base + 0.05, f"{tag}: median latency {med:.4f}s vs {base:.4f}s without a judge")
            lines = Q.samples(d, 6, timeout=10, pred=lambda x: x.get("judge") is not None)
            check(all(x["judge"].get("error") == err for x in lines),
                  f"{tag}: errors {[x['judge'] for x in lines]}")
        finally:
            Q.stop(d)
    # a judge whose provider cannot even be reached
    E.sim_reset()
    d = Q.start("lat-unreach", judge="  judge: {model: nojudge, rate: 1, timeout_ms: 500}\n",
                extra_models="  nojudge: {provider: closed, model: sim-qjudge}\n")
    try:
        med, got = timed(d)
        eq(got, want, "unreachable: answers")
        check(med < base + 0.05, f"unreachable: median latency {med:.4f}s vs {base:.4f}s")
    finally:
        Q.stop(d)


@test
def test_rate_overrides_per_tier_and_rule_and_truncation():
    E.sim_reset()
    Q.sim_quality()
    d = Q.start("rates", judge="  judge: {model: judge, rate: 1, max_input_bytes: 64, "
                               "rates: {tier: {budget: 0, premium: 0}, rule: {code: 1}}}\n"
                               "  sample_rate: 1\n")
    try:
        eq(Q.chat(d, "plain question " + "x" * 200).status, 200, "budget")
        eq(Q.chat(d, "please compile this " + "y" * 200).status, 200, "code")
        lines = Q.samples(d, 2)
        by_tier = {x["tier"]: x for x in lines}
        check(by_tier["budget"]["judge"] is None, f"budget judged: {by_tier['budget']['judge']}")
        eq(by_tier["premium"]["judge"]["score"], 8, "the code rule's rate wins over its tier's")
        judged = [y for y in E.sim_requests() if (y.get("body") or {}).get("model") == "sim-qjudge"]
        eq(len(judged), 1, "one judge call")
        prompt = judged[0]["body"]["messages"][-1]["content"]
        check(prompt.count(" [truncated]") == 2, f"question and answer cut: {prompt!r}")
        check("y" * 100 not in prompt, "max_input_bytes bounds what the judge sees")
        eq(judged[0]["body"]["messages"][0]["role"], "system", "the rubric is the system prompt")
        check("1 (useless or wrong) to 10" in judged[0]["body"]["messages"][0]["content"],
              "the built-in rubric")
    finally:
        Q.stop(d)


@test
def test_reload_changes_the_judge_for_new_requests():
    import signal
    E.sim_reset()
    Q.sim_quality()
    d = Q.start("reload", judge=JUDGE_ALL + "  sample_rate: 1\n")
    try:
        eq(Q.chat(d, "before").status, 200, "status")
        Q.samples(d, 1, pred=lambda x: x.get("judge") is not None)
        text, _ = Q.config_text(E.tmp, "reload",
                                judge="  judge: {model: judge, rate: 0, rubric: \"Grade it.\"}\n"
                                      "  sample_rate: 1\n")
        with open(d.config, "w") as f:
            f.write(text)
        d.proc.send_signal(signal.SIGHUP)
        Q.wait_metric(d, "llmrouter_config_reloads_total", None, 1.0)
        time.sleep(0.2)  # each shard takes the new snapshot at its next iteration
        eq(Q.chat(d, "after").status, 200, "status")
        lines = Q.samples(d, 2)
        check(lines[1]["judge"] is None, f"rate 0 after the reload: {lines[1]['judge']}")
        eq(Q.judge_calls(), 1, "no judge call after the reload")
    finally:
        Q.stop(d)


def redis_server():
    """A throw-away redis-server on a free loopback port (the daemons share it)."""
    import shutil
    import socket
    exe = shutil.which("redis-server")
    check(exe is not None, "redis-server is not installed (config/install-deps.sh test installs it)")
    port = R.free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", E.tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise Fail("redis-server did not start")


@test
def test_two_instances_sharing_redis_each_judge_their_own():
    """Two instances with one Redis (the shared cache): each judges the answers
    it produced, into its own samples file; a hit on the other's answer is not
    judged again; the report merges both files."""
    E.sim_reset()
    Q.sim_quality(scores={"sim-cheap": 6}, default=8)
    proc, port = redis_server()
    ds = []
    try:
        for tag in ("ra", "rb"):
            text, samples = Q.config_text(E.tmp, tag, judge=JUDGE_ALL)
            text += f"\ncache:\n  backend: redis\n  redis_url: \"redis://127.0.0.1:{port}/0\"\n"
            path = os.path.join(E.tmp, f"{tag}.yaml")
            with open(path, "w") as f:
                f.write(text)
            d = E.new_daemon(tag=tag, config=path).start()
            d.samples = samples
            ds.append(d)
        a, b = ds
        ids = {"ra": [], "rb": []}
        for i in range(3):
            for d, tag in ((a, "ra"), (b, "rb")):
                r = Q.chat(d, f"{tag} question {i}?", temperature=0)
                eq(r.status, 200, "status")
                ids[tag].append(r.h("x-request-id"))
        # b asks a's first question again: the shared cache answers it
        r = Q.chat(b, "ra question 0?", temperature=0)
        eq((r.status, r.h("x-cache")), (200, "HIT"), "shared cache hit on b")
        hit_id = r.h("x-request-id")
        la = Q.samples(a, 3, pred=lambda x: x.get("judge") is not None)
        lb = Q.samples(b, 3, pred=lambda x: x.get("judge") is not None)
        eq(sorted(x["request_id"] for x in la), sorted(ids["ra"]), "a judged exactly its own answers")
        eq(sorted(x["request_id"] for x in lb), sorted(ids["rb"]), "b judged exactly its own answers")
        for x in la + lb:
            eq(x["judge"]["score"], 6, "score of sim-cheap")
        time.sleep(0.3)
        with open(b.samples) as f:
            hit = [json.loads(ln) for ln in f if hit_id in ln]
        check(all(h.get("judge") is None for h in hit), f"the cache hit was judged: {hit}")
        eq(Q.judge_calls(), 6, "judge calls: one per answer a provider gave")
        out = subprocess.run([E.bin, "report", "--json", "--samples", a.samples, b.samples],
                             capture_output=True, text=True, timeout=20)
        eq(out.returncode, 0, f"report: {out.stderr}")
        q = json.loads(out.stdout)["quality"]
        eq(q["tiers"]["budget"]["n"], 6, "merged report: judged samples of both instances")
        check(abs(q["tiers"]["budget"]["mean"] - 6.0) < 1e-9, f"merged mean {q}")
    finally:
        for d in ds:
            Q.stop(d)
        proc.kill()
        proc.wait()


BAD = [
    ("  judge: {model: nope}\n", "no model named \"nope\""),
    ("  judge: {model: judge, rate: 2}\n", "expected a fraction from 0 to 1"),
    ("  judge: {model: judge, rates: {tier: {nosuch: 0.5}}}\n", "no tier named \"nosuch\""),
    ("  judge: {model: judge, rates: {rule: {nosuch: 0.5}}}\n", "no rule named \"nosuch\""),
    ("  judge: {model: judge, queus: 3}\n", "unknown key \"queus\""),
    ("  judge: {rate: 0.5}\n", "model is required"),
]


@test
def test_config_errors_have_positions():
    for judge, msg in BAD:
        text, _ = Q.config_text(E.tmp, "bad", judge=judge)
        path = os.path.join(E.tmp, "bad-judge.yaml")
        with open(path, "w") as f:
            f.write(text)
        line = text.splitlines().index(judge.rstrip("\n")) + 1
        out = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True,
                             text=True, timeout=20, env=dict(os.environ, SIM_URL="http://x"))
        check(out.returncode != 0, f"{judge!r}: accepted")
        check(f"{path}:{line}:" in out.stderr and msg in out.stderr,
              f"{judge!r}: expected {path}:{line}:COL and {msg!r} in {out.stderr!r}")


if __name__ == "__main__":
    sys.exit(R.run_suite(TESTS, modules=(sys.modules[__name__], Q), setup=None))
