#!/usr/bin/env python3
"""`make demo`: llmrouter end to end, offline.

Starts the simulated provider and llmrouter with config/demo.yaml, sends a
few requests with curl, and prints where each was routed and what it cost.
Python standard library + curl only.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASELINE = ("gpt-4o", 2.50, 10.00)  # what an application without routing would use

REQUESTS = [
    ("auto: a quick question (temperature 0, so its answer may be cached)", {"model": "auto", "temperature": 0, "messages": [
        {"role": "user", "content": "What is the capital of France?"}]}, False, {"status": 200, "x-router-tier": "budget", "x-cache": "MISS"}),
    ("hard-coded gpt-4o, routed like auto", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Translate 'good morning' into Spanish."}]}, False, {"status": 200, "x-router-rule": "translation"}),
    ("tier by name: budget", {"model": "budget", "messages": [
        {"role": "user", "content": "Summarise: the cat sat on the mat."}]}, False, {"status": 200, "x-router-tier": "budget"}),
    ("auto: a proof goes to premium (whose first provider is down: failover)", {"model": "auto", "messages": [
        {"role": "system", "content": "You are a careful reviewer."},
        {"role": "user", "content": "Review this proof that there are infinitely many primes."}]}, False, {"status": 200, "x-router-tier": "premium", "x-router-attempts": "2"}),
    ("streamed answer", {"model": "auto", "stream": True, "stream_options": {"include_usage": True}, "messages": [
        {"role": "user", "content": "Write a haiku about routers."}]}, True, {"status": 200}),
    ("the quick question again: answered from the cache", {"model": "auto", "temperature": 0, "messages": [
        {"role": "user", "content": "What is the capital of France?"}]}, False, {"status": 200, "x-cache": "HIT"}),
    ("a model that does not exist", {"model": "gpt-7", "messages": [
        {"role": "user", "content": "hi"}]}, False, {"status": 404}),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curl(port, body):
    """Runs curl, returns (status, headers dict, body text)."""
    with tempfile.NamedTemporaryFile("w+", suffix=".hdr") as hdr:
        out = subprocess.run(
            ["curl", "-sS", "-N", "-D", hdr.name, "-H", "Content-Type: application/json",
             "-H", "Authorization: Bearer demo-client-key",
             "--data-binary", json.dumps(body), f"http://127.0.0.1:{port}/v1/chat/completions"],
            capture_output=True, text=True, timeout=30)
        hdr.seek(0)
        lines = hdr.read().splitlines()
    status = int(lines[0].split()[1]) if lines else 0
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, out.stdout


def usage_of(text, streamed):
    if not streamed:
        try:
            return json.loads(text).get("usage") or {}
        except ValueError:
            return {}
    return {}


def show_judged(path, problems):
    """Waits (3 s at most) for the judge to score the sampled answers in the
    background, and prints one judged sample line (docs/quality.md)."""
    judged = []
    for _ in range(60):
        try:
            with open(path) as f:
                judged = [j for j in map(json.loads, f) if j.get("judge") and "score" in j["judge"]]
        except OSError:
            judged = []
        if judged:
            break
        time.sleep(0.05)
    if not judged:
        problems.append("no judged sample in the samples file")
        return
    j = judged[0]
    print(f"== A judged sample (observability.judge, after the request ended)")
    print(f"   request {j['request_id']}: rule {j['rule']} -> tier {j['tier']} -> model {j['model']}")
    print(f"   judge: {json.dumps(j['judge'])}")
    print()


# The experiment part: each user sends these; the simulated judge is
# scripted so that gpt-4o-mini's answers to the harder questions score 4.
EXPERIMENT_PROMPTS = [
    "Write a haiku about autumn.", "Summarise the plot of Hamlet in two sentences.",
    "List three uses of copper.", "Write a short thank-you note to a colleague.",
    "Explain the difference between TCP and UDP in detail, with examples of when to use each.",
    "Write a Python function that merges two sorted lists and analyse its complexity.",
    "Given a weighted graph with negative edges, explain why Dijkstra fails and design an algorithm.",
    "Derive the closed form of the Fibonacci sequence using generating functions.",
    "Solve for x: 3x^2 - 12x + 9 = 0, and show each step.",
    "Design a rate limiter for a distributed API gateway; discuss failure modes in 5 numbered points.",
    "Implement an LRU cache in C with O(1) get and put, and explain the data structures.",
    "Analyse the time complexity of quicksort in the average and worst case, with a recurrence.",
]
EXPERIMENT_USERS = 12
JUDGE_SCRIPT = {"scores": {"gpt-4o": 9, "gpt-4o-mini": 8, "deepseek-chat": 8},
                "when": [{"question": "(?i)design|derive|implement|analy[sz]e|solve|explain",
                          "model": "gpt-4o-mini", "score": 4}]}


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def run_experiment(port, sim_port, samples, problems):
    """Traffic for the A/B experiment of config/demo.yaml: every user asks
    every question; the users split between the arms by a hash of `user`."""
    post_json(f"http://127.0.0.1:{sim_port}/_sim/quality", JUDGE_SCRIPT)
    before = count_judged(samples)
    n = 0
    for u in range(EXPERIMENT_USERS):
        for p in EXPERIMENT_PROMPTS:
            post_json(f"http://127.0.0.1:{port}/v1/chat/completions",
                      {"model": "auto", "user": f"user-{u}", "messages": [{"role": "user", "content": p}]})
            n += 1
    deadline = time.time() + 15
    while count_judged(samples) < before + n and time.time() < deadline:
        time.sleep(0.1)
    if count_judged(samples) < before + n:
        problems.append(f"only {count_judged(samples) - before} of {n} experiment answers judged")
    print(f"\n== An A/B experiment: {n} requests from {EXPERIMENT_USERS} users (experiments: lean-premium)")
    print("   arm control: the configured policy; arm lean: premium decisions go to standard;")
    print("   every answer judged in the background (the simulated judge scores gpt-4o 9, gpt-4o-mini 8,")
    print("   but 4 on the harder questions)")


def count_judged(path):
    try:
        with open(path) as f:
            return sum(1 for ln in f if '"judge":{' in ln and '"score"' in ln)
    except OSError:
        return 0


def show_experiment_and_tune(log, samples, problems):
    bin_ = os.path.join(ROOT, "build/llmrouter")
    print("\nThe experiment's arms compared (llmrouter report --experiment lean-premium):\n")
    sys.stdout.flush()
    subprocess.run([bin_, "report", "--experiment", "lean-premium", log, samples])
    r = subprocess.run([bin_, "report", "--experiment", "lean-premium", "--json", log, samples],
                       capture_output=True, text=True)
    try:
        arms = {a["arm"]: a for a in json.loads(r.stdout)["arms"]}
        c, l = arms["control"], arms["lean"]
        if not (c["requests"] > 0 and l["requests"] > 0):
            problems.append("experiment: an arm got no requests")
        if not l["cost_per_request"]["value"] < c["cost_per_request"]["value"]:
            problems.append("experiment: the lean arm is not the cheaper one")
        if not l["quality"]["value"] < c["quality"]["value"]:
            problems.append("experiment: the lean arm's judged quality is not the lower one")
    except (ValueError, KeyError, TypeError) as e:
        problems.append(f"experiment: report --json unreadable ({e}): {r.stdout[:200]} {r.stderr[:200]}")
    tune = [bin_, "tune", "--tiers", "standard,premium", "--bucket", "0.02", "--min-samples", "3"]
    print("\nWhat the judged traffic suggests (llmrouter tune --tiers standard,premium --bucket 0.02 --min-samples 3):\n")
    sys.stdout.flush()
    subprocess.run(tune + [log, samples])
    r = subprocess.run(tune + [log, samples], capture_output=True, text=True)
    if "complexity: {min:" not in r.stdout:
        problems.append(f"tune: no threshold proposed: {r.stdout[:300]} {r.stderr[:200]}")


def main():
    py = sys.executable
    sim = subprocess.Popen([py, os.path.join(ROOT, "tests/sim/simprovider.py"), "--port", "0"],
                           stdout=subprocess.PIPE, text=True)
    sim_port = int(sim.stdout.readline().split()[1])
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="llmrouter-demo-", suffix=".jsonl", delete=False)
    log.close()
    samples = log.name + ".samples"
    env = dict(os.environ, LLMROUTER_SIM_URL=f"http://127.0.0.1:{sim_port}", LLMROUTER_DEMO_LOG=log.name,
               LLMROUTER_DEMO_SAMPLES=samples)
    daemon = subprocess.Popen([os.path.join(ROOT, "build/llmrouter"), "-c", os.path.join(ROOT, "config/demo.yaml"),
                               "--listen", f"127.0.0.1:{port}"], env=env)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        print(f"llmrouter is listening on http://127.0.0.1:{port}/v1 (simulated providers on port {sim_port})\n")
        total = base_total = 0.0
        problems = []
        for title, body, streamed, want in REQUESTS:
            status, h, text = curl(port, body)
            got = dict(h, status=status)
            for k, v in want.items():
                if str(got.get(k)) != str(v):
                    problems.append(f"{title}: {k} is {got.get(k)!r}, expected {v!r}")
            print(f"== {title}")
            print(f"   asked for model \"{body['model']}\"{' (stream)' if streamed else ''} -> HTTP {status}")
            if status != 200:
                try:
                    print(f"   error: {json.loads(text)['error']['message'][:110]}")
                except (ValueError, KeyError):
                    print(f"   body: {text[:110]}")
                print()
                continue
            print(f"   routed: rule {h.get('x-router-rule')} -> tier {h.get('x-router-tier')} -> model "
                  f"{h.get('x-router-model')} (provider {h.get('x-router-provider')}), "
                  f"attempts {h.get('x-router-attempts')}, cache {h.get('x-cache')}")
            if streamed:
                events = [l for l in text.splitlines() if l.startswith("data: ")]
                content = "".join(
                    (json.loads(e[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                    for e in events if e != "data: [DONE]")
                usage = {}
                for e in events:
                    if e != "data: [DONE]":
                        usage = json.loads(e[6:]).get("usage") or usage
                print(f"   {len(events)} events streamed; text: {content[:90]!r}")
                print(f"   tokens (from the final usage chunk): {usage.get('prompt_tokens')} in / "
                      f"{usage.get('completion_tokens')} out")
            else:
                answer = json.loads(text)["choices"][0]["message"]["content"]
                u = usage_of(text, False)
                cost = float(h.get("x-router-cost-usd", "0"))
                base = (u.get("prompt_tokens", 0) * BASELINE[1] + u.get("completion_tokens", 0) * BASELINE[2]) / 1e6
                total += cost
                base_total += base
                print(f"   answer: {answer[:90]!r}")
                print(f"   tokens: {u.get('prompt_tokens')} in / {u.get('completion_tokens')} out; "
                      f"cost ${cost:.8f} (on {BASELINE[0]}: ${base:.8f})")
            print()
        if base_total > 0:
            print(f"Total for the plain requests: ${total:.8f} routed vs ${base_total:.8f} all on {BASELINE[0]} "
                  f"({100 * (1 - total / base_total):.0f}% saved).")
        show_judged(samples, problems)
        run_experiment(port, sim_port, samples, problems)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)
        sim.terminate()
        sim.wait(timeout=5)
    print("\nThe savings report for these requests (llmrouter report on the daemon's access log):\n")
    sys.stdout.flush()
    subprocess.run([os.path.join(ROOT, "build/llmrouter"), "report", log.name])
    print("\nJudged quality of the samples (llmrouter report --samples):\n")
    sys.stdout.flush()
    subprocess.run([os.path.join(ROOT, "build/llmrouter"), "report", "--samples", samples])
    show_experiment_and_tune(log.name, samples, problems)
    os.unlink(log.name)
    if os.path.exists(samples):
        os.unlink(samples)
    # the demo checks what it shows, so that `make test` notices a broken demo
    for p in problems:
        print(f"demo: not as shown: {p}")
    checks = sum(len(r[3]) for r in REQUESTS) + 1 + 5  # + the judged sample, experiment, tune
    print(f"demo: {checks - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
