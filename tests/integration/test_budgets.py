#!/usr/bin/env python3
"""Integration tests of proxy keys, budgets and limits: the real daemon over
real sockets, the simulated provider, and a real redis-server started here on
a free loopback port that two daemons share (one budget for both).

    python3 tests/integration/test_budgets.py [-k SUBSTRING]...

Covers: 401 in OpenAI's error shape for an absent or wrong key (keys from the
environment and from a SHA-256); 429 rate_limit_rpm with Retry-After; a key's
daily budget exhausted through two daemons sharing Redis (429
daily_budget_exceeded, x-should-retry: false, seen by both); a model over its
daily cap skipped in its chain (x-router-model falls to the next model), on
both daemons; no keys + a public listen address refused at start-up.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py and the Redis fixture
of tests/integration/test_cache.py. Python 3 standard library only.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402
from test_cache import Redis  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None

KEY_A = "sk-test-team-a-0123456789"        # given through TEST_BUDGET_KEY_A
KEY_B = "sk-test-team-b-9876543210"        # given as its SHA-256
KEY_RPM = "sk-test-rpm-limited"
KEY_POOR = "sk-test-small-budget"
PREFIX = "llmrouter-it:budget:"


def test(fn):
    TESTS.append(fn)
    return fn


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


# Models with prices high enough that a few requests spend dollars:
# 0.1 USD per token in and out.
EXTRA_MODELS = """\
  pricey:      {provider: good, model: sim-pricey, input_per_mtok: 100000, output_per_mtok: 100000}
  capped:      {provider: good, model: sim-capped, input_per_mtok: 100000, output_per_mtok: 100000, daily_cap_usd: 8}
"""
EXTRA_TIERS = """\
  pricey-tier: [pricey, good-mini]
  capped-tier: [capped, good-mini]
"""


def write_config(name, redis_port=None, with_keys=True):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    head = head.replace("\nmodels:\n", "\nmodels:\n" + EXTRA_MODELS, 1)
    head = head.replace("\ntiers:\n", "\ntiers:\n" + EXTRA_TIERS, 1)
    out = head + "\ncache:\n  backend: off\n"
    if with_keys:
        out += ("\nkeys:\n"
                "  team-a: {key_env: TEST_BUDGET_KEY_A}\n"
                f"  team-b: {{key_sha256: \"{sha(KEY_B)}\", daily_usd: 1000}}\n"
                f"  limited: {{key_sha256: \"{sha(KEY_RPM)}\", rpm: 3}}\n"
                f"  poor: {{key_sha256: \"{sha(KEY_POOR)}\", daily_usd: 10, monthly_usd: 1000}}\n")
    out += "\nbudgets:\n"
    if redis_port:
        out += f"  redis_url: \"redis://127.0.0.1:{redis_port}/0\"\n"
    out += f"  key_prefix: \"{PREFIX}\"\n  default_max_output_tokens: 20\n"
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(out)
    return path


def daemon(config, tag):
    os.environ["TEST_BUDGET_KEY_A"] = KEY_A
    return E.new_daemon(tag=tag, config=config).start()


def post(d, body, key=None, headers=None):
    h = dict(headers or {})
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    return R.http_request(d.port, "POST", "/v1/chat/completions", json.dumps(body).encode(), headers=h)


def stop(d):
    ok, msg = d.stop()
    check(ok, f"{d.tag}: {msg}")


def check_openai_error(r, status, code, etype=None, what=""):
    eq(r.status, status, f"{what} status")
    try:
        j = json.loads(r.body)
    except ValueError:
        raise Fail(f"{what}: body is not JSON: {R.short(r.body)}")
    check(isinstance(j, dict) and isinstance(j.get("error"), dict), f"{what}: no error object: {R.short(r.body)}")
    err = j["error"]
    for k in ("message", "type", "param", "code"):
        check(k in err, f"{what}: error.{k} missing: {R.short(r.body)}")
    eq(err["code"], code, f"{what} error.code")
    if etype is not None:
        eq(err["type"], etype, f"{what} error.type")
    return err


def away_from_minute_edge(margin=5):
    """Sleeps past the next minute boundary if it is less than margin s away."""
    s = time.time() % 60
    if s > 60 - margin:
        time.sleep(60 - s + 0.2)


# ------------------------------------------------------------------ tests

@test
def test_keys_401_and_accepted():
    d = daemon(write_config("keys.yaml"), "budget-keys")
    try:
        body = chat_body("auto", "hello with keys")
        r = post(d, body)
        check_openai_error(r, 401, "invalid_api_key", "invalid_request_error", "no key")
        check(json.loads(r.body)["error"]["param"] is None, "param is null")
        r = post(d, body, key="sk-wrong")
        check_openai_error(r, 401, "invalid_api_key", "invalid_request_error", "wrong key")
        r = post(d, body, key=KEY_A[:-1])
        check_openai_error(r, 401, "invalid_api_key", None, "key prefix")
        r = post(d, body, headers={"Authorization": f"Basic {KEY_A}"})
        check_openai_error(r, 401, "invalid_api_key", None, "not Bearer")
        r = post(d, body, key=KEY_A)
        eq(r.status, 200, "key from the environment")
        r = post(d, body, key=KEY_B)
        eq(r.status, 200, "key given as SHA-256")
        # the probes stay open (the harness polls /readyz)
        eq(R.http_request(d.port, "GET", "/healthz").status, 200, "/healthz without a key")
        check(KEY_A not in d.stderr_text(), "a key never reaches the log")
        stop(d)
    finally:
        d.kill()


@test
def test_rpm_limit_429():
    d = daemon(write_config("rpm.yaml"), "budget-rpm")
    try:
        away_from_minute_edge()
        body = chat_body("auto", "rate limited")
        for i in range(3):
            r = post(d, body, key=KEY_RPM)
            eq(r.status, 200, f"request {i + 1} of 3")
        r = post(d, body, key=KEY_RPM)
        check_openai_error(r, 429, "rate_limit_rpm", None, "4th request in the minute")
        ra = r.h("retry-after")
        check(ra is not None and ra.isdigit() and 1 <= int(ra) <= 60, f"Retry-After {ra!r}")
        check(r.h("x-should-retry") != "false", "rate limits may be retried")
        # another key is not affected
        eq(post(d, body, key=KEY_A).status, 200, "other key")
        stop(d)
    finally:
        d.kill()


@test
def test_daily_budget_shared_through_redis():
    rd = Redis(E.tmp).start()
    cfg = write_config("shared.yaml", redis_port=rd.port)
    d1 = d2 = None
    try:
        d1 = daemon(cfg, "budget-shared-1")
        d2 = daemon(cfg, "budget-shared-2")
        body = chat_body("pricey-tier", "spend money", max_tokens=20)
        first = None
        for i in range(12):
            d = (d1, d2)[i % 2]
            r = post(d, body, key=KEY_POOR)
            if r.status == 429:
                first = (i, d, r)
                break
            eq(r.status, 200, f"request {i + 1}")
        check(first is not None, "the 10 USD daily budget was never exhausted in 12 requests")
        i, d, r = first
        check(i >= 1, "at least one request fits the budget")
        check_openai_error(r, 429, "daily_budget_exceeded", None, "over the daily budget")
        eq(r.h("x-should-retry"), "false", "x-should-retry on a budget")
        ra = r.h("retry-after")
        check(ra is not None and ra.isdigit() and 1 <= int(ra) <= 86400, f"Retry-After {ra!r}")
        # the other daemon refuses too: one budget
        other = d2 if d is d1 else d1
        r = post(other, body, key=KEY_POOR)
        check_openai_error(r, 429, "daily_budget_exceeded", None, "the other daemon")
        # the counters are in Redis, under the prefix, with an expiry
        day = time.strftime("%Y%m%d", time.gmtime())
        k = f"{PREFIX}key:poor:day:{day}"
        v = rd.cmd("GET", k)
        check(v is not None and int(v) > 0, f"{k} = {v!r}")
        ttl = rd.cmd("TTL", k)
        check(ttl.startswith(":") and 0 < int(ttl[1:]) <= 2 * 86400, f"TTL {k} = {ttl!r}")
        # other keys are unaffected
        eq(post(d1, body, key=KEY_B).status, 200, "another key")
        stop(d1)
        stop(d2)
    finally:
        for d in (d1, d2):
            if d:
                d.kill()
        rd.kill()


@test
def test_model_cap_skipped_in_chain():
    rd = Redis(E.tmp).start()
    cfg = write_config("cap.yaml", redis_port=rd.port)
    d1 = d2 = None
    try:
        d1 = daemon(cfg, "budget-cap-1")
        d2 = daemon(cfg, "budget-cap-2")
        body = chat_body("capped-tier", "spend on the capped model", max_tokens=20)
        models = []
        for i in range(10):
            r = post(d1, body, key=KEY_B)
            eq(r.status, 200, f"request {i + 1}")
            models.append(r.h("x-router-model"))
            if models[-1] == "good-mini":
                break
        eq(models[0], "capped", "the capped model serves while under its cap")
        eq(models[-1], "good-mini", f"traffic falls to the next model once the cap is spent: {models}")
        r = post(d1, body, key=KEY_B)
        eq(r.h("x-router-model"), "good-mini", "the capped model stays skipped")
        # the second daemon learns the shared total when it settles on the model
        seen = []
        for _ in range(3):
            seen.append(post(d2, body, key=KEY_B).h("x-router-model"))
            # the settlement that tells d2 the shared total is written to Redis
            # after the answer went out; on a loaded machine the next request
            # can overtake it (the clean-clone run saw two on the capped model)
            time.sleep(0.3)
        eq(seen[-1], "good-mini", f"second daemon skips the model too: {seen}")
        check(seen.count("capped") <= 1, f"at most one more request on the capped model: {seen}")
        stop(d1)
        stop(d2)
    finally:
        for d in (d1, d2):
            if d:
                d.kill()
        rd.kill()


@test
def test_no_keys_public_listen_refused():
    cfg = write_config("nokeys.yaml", with_keys=False)
    port = R.free_port()
    p = subprocess.run([E.bin, "-c", cfg, "--listen", f"0.0.0.0:{port}"], cwd=R.ROOT,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10, env=dict(os.environ, SIM_URL="http://127.0.0.1:9"))
    check(p.returncode != 0, "a daemon without keys must refuse a public listen address")
    err = p.stderr.decode("utf-8", "replace")
    check("allow_unauthenticated_public" in err, f"the message names the setting: {err[-400:]}")


# ------------------------------------------------------------------ main

def main():
    import test_cache
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__], test_cache))


if __name__ == "__main__":
    sys.exit(main())
