#!/usr/bin/env python3
"""Integration tests of what a request body must be, and of what the cache
may store (issue 10, items 4, 5, 6 and 8): the real daemon over real
sockets, the simulated provider, a raw recorder upstream (run.py's) for
answers the simulator cannot make, and a real redis-server for a shared
entry that does not replay.

    python3 tests/integration/test_strict_body.py [-k SUBSTRING]...

Covers: bodies that are not strict RFC 8259 JSON (control bytes between
tokens, invalid UTF-8, lone surrogate escapes, \\u0000) or that repeat a key
(top level, stream_options, a message; escaped spellings) are refused with
400 invalid_json naming the problem and the byte, on every endpoint, and
never reach the provider; valid but unusual bodies still pass untouched;
only explicit temperature 0 or a seed is cached; an upstream answer the
replay would refuse (overflowing created, no message) is not stored; a Redis
entry that does not replay is a miss.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py and the Redis fixture
of tests/integration/test_cache.py. Python 3 standard library only.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import check, eq, chat_body  # noqa: E402
from test_cache import Redis  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None
D = None  # the daemon of most tests: memory cache

MSGS = b'"messages":[{"role":"user","content":"strict"}]'


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, cache_yaml):
    with open(BASE_CONFIG) as f:
        text = f.read()
    head, _, _ = text.partition("\ncache:\n")
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(head + "\ncache:\n" + cache_yaml)
    return path


MEM = "  backend: memory\n  ttl_s: 600\n"


def setup():
    global D
    D = E.new_daemon(tag="strict-mem", config=write_config("strict-mem.yaml", MEM)).start()


def teardown():
    if D is not None:
        D.kill()  # already stopped by the last test unless it failed


def post_raw(body, path="/v1/chat/completions", d=None, headers=None):
    d = d or D
    return R.http_request(d.port, "POST", path, body, headers=headers)


def post(body, path="/v1/chat/completions", d=None, headers=None):
    return post_raw(json.dumps(body).encode(), path, d, headers)


def sim_count():
    return E.sim_stats()["requests"]


def expect_refused(body, path="/v1/chat/completions", *needles):
    """400 invalid_json in OpenAI's shape, param null, the message containing
    every needle, and nothing sent upstream."""
    n0 = sim_count()
    r = post_raw(body, path)
    err = R.check_error(r, 400, "invalid_json", what=f"{path} {body[:70]!r}: ")
    eq(err["type"], "invalid_request_error", "error.type")
    eq(err["param"], None, "error.param")
    for s in needles:
        check(s in err["message"], f"message {err['message']!r} lacks {s!r}")
    eq(sim_count() - n0, 0, f"requests sent upstream for {body[:70]!r}")
    return err


# ------------------------------------------------------------ item 5: strict JSON

@test
def test_control_bytes_between_tokens_refused():
    # cJSON took \x01 for whitespace; the model splice did not, and sent
    # {"model" :"sim-mini" "auto" ,...} upstream
    expect_refused(b'{"model" :\x01\x01 "auto", ' + MSGS + b'}', "/v1/chat/completions",
                   "control character", "0x01", "byte 10")
    expect_refused(b'{"model":"auto",\x0b' + MSGS + b'}', "/v1/chat/completions", "0x0B")
    expect_refused(b'{"model":"auto",' + MSGS + b'}\x00', "/v1/chat/completions", "0x00")
    expect_refused(b'\xef\xbb\xbf{"model":"auto",' + MSGS + b'}', "/v1/chat/completions", "byte 0")
    expect_refused(b'{"model":"embed-small","input":"x"\x1f}', "/v1/embeddings", "0x1F")
    expect_refused(b'{"model":"auto","prompt":"x",\x7f"max_tokens":3}', "/v1/completions", "0x7F")
    expect_refused(b'{"model":"auto","messages":[{"role":"user","content":"raw\ttab"}]}',
                   "/v1/chat/completions", "control character in a string")


@test
def test_duplicate_keys_refused():
    # first-wins here, last-wins at most providers: the router collected a
    # stream it took for a plain answer and failed over the whole chain
    expect_refused(b'{"model":"auto",' + MSGS + b',"stream":false,"stream":true}', "/v1/chat/completions",
                   'repeats the key "stream"')
    # or cached a temperature-1.5 answer as deterministic
    expect_refused(b'{"model":"auto",' + MSGS + b',"temperature":0,"temperature":1.5}',
                   "/v1/chat/completions", '"temperature"')
    expect_refused(b'{"model":"auto",' + MSGS + b',"stream":false,"str\\u0065am":true}',
                   "/v1/chat/completions", "str\\u0065am")
    expect_refused(b'{"model":"auto",' + MSGS + b',"model":"premium"}', "/v1/chat/completions", '"model"')
    expect_refused(b'{"model":"auto",' + MSGS + b',"stream":true,'
                   b'"stream_options":{"include_usage":false,"include_usage":true}}',
                   "/v1/chat/completions", "include_usage")
    expect_refused(b'{"model":"auto","messages":[{"role":"user","content":"a","content":"b"}]}',
                   "/v1/chat/completions", '"content"')
    expect_refused(b'{"model":"auto","prompt":"a","prompt":"b"}', "/v1/completions", '"prompt"')
    expect_refused(b'{"model":"embed-small","input":"a","encoding_format":"float",'
                   b'"encoding_format":"base64"}', "/v1/embeddings", "encoding_format")
    expect_refused(b'{"model":"auto","messages":[{"role":"user","content":"x"}],"x":{"a":1,"\\u0061":2}}',
                   "/chat/completions", '"\\u0061"')


# ------------------------------------------------------------ item 6: invalid UTF-8

@test
def test_invalid_utf8_refused_no_cache_collision():
    # both became U+FFFD in the cache key: the second was answered from the
    # first's entry
    for raw in (b"secret \xff", b"secret \xfe"):
        body = b'{"model":"auto","temperature":0,"messages":[{"role":"user","content":"' + raw + b'"}]}'
        expect_refused(body, "/v1/chat/completions", "invalid UTF-8", "byte 77")
    for raw in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"):
        expect_refused(b'{"model":"auto",' + MSGS + b',"x":"' + raw + b'"}', "/v1/chat/completions",
                       "invalid UTF-8")
    expect_refused(b'{"model":"embed-small","input":["ok","\xff"]}', "/v1/embeddings", "invalid UTF-8")
    expect_refused(b'{"model":"auto","prompt":"\xfe"}', "/v1/completions", "invalid UTF-8")
    expect_refused(b'{"model":"auto",' + MSGS + b',"\xff":1}', "/v1/chat/completions", "invalid UTF-8")
    # lone surrogate escapes have no UTF-8 form; \u0000 would cut cJSON's string
    expect_refused(b'{"model":"auto",' + MSGS + b',"x":"\\ud800"}', "/v1/chat/completions", "surrogate")
    expect_refused(b'{"model":"auto",' + MSGS + b',"x":"\\udc00\\ud800"}', "/v1/chat/completions", "surrogate")
    expect_refused(b'{"model":"auto","temperature":0,"messages":[{"role":"user","content":"a\\u0000b"}]}',
                   "/v1/chat/completions", "\\u0000")


@test
def test_valid_unusual_bodies_pass_untouched():
    E.sim_reset()
    text = "caf\u00e9 \u20ac \U0001F600 \U0010FFFF \ud7ff"
    body = ('\r\n\t{ "model" :\t"auto" ,\n "temperature" : 0,'
            ' "messages" : [ {"role":"user","content":"' + text + ' \\ud83d\\ude00 \\u00e9 \\" \\\\ \\/"} ] ,'
            ' "x": {"deep": ' + "[" * 200 + "1" + "]" * 200 + '} }\r\n').encode("utf-8", "surrogatepass")
    r = post_raw(body)
    eq(r.status, 200, f"status ({R.short(r.body)})")
    reqs = E.sim_requests()
    got = reqs[-1]["body"]["messages"][0]["content"]
    eq(got, text + ' \U0001F600 \u00e9 " \\ /', "content the provider got")
    # two characters apart: two entries (they used to be keyed apart only if valid)
    a = post(chat_body("auto", "secret \u00e9", temperature=0))
    b = post(chat_body("auto", "secret \u00e8", temperature=0))
    eq((a.h("x-cache"), b.h("x-cache")), ("MISS", "MISS"), "distinct texts, distinct entries")
    check(R.reply_content(a) != R.reply_content(b), "distinct answers")


@test
def test_fuzzed_bodies_get_json_errors():
    # a bad byte anywhere in the body: 400 invalid_json, never forwarded
    import random
    rng = random.Random(10)
    base = json.dumps(chat_body("auto", "fuzz strict", temperature=0, stream_options={"include_usage": True},
                                tools=[{"type": "function", "function": {"name": "f"}}])).encode()
    n0 = sim_count()
    for i in range(200):
        b = bytearray(base)
        pos = rng.randrange(1, len(b) - 1)
        b[pos:pos] = rng.choice([b"\x01", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\\ud800", b"\x00", b"\x1b"])
        r = post_raw(bytes(b))
        # none of these bytes is legal anywhere in this body (it has no
        # escapes a \ud800 could complete)
        R.check_error(r, 400, "invalid_json", what=f"#{i}: ")
    eq(sim_count() - n0, 0, "none of the corrupted bodies went upstream")


# ------------------------------------------------------------ item 4: determinism

@test
def test_only_deterministic_requests_cached():
    absent = chat_body("auto", "invent a random name")
    n0 = sim_count()
    r1, r2 = post(absent), post(absent)
    check(r1.h("x-cache") != "HIT" and r2.h("x-cache") != "HIT",
          f"no temperature (OpenAI's default is 1): {r1.h('x-cache')}, {r2.h('x-cache')}")
    eq(r2.h("x-cache"), "BYPASS", "not looked up")
    eq(sim_count() - n0, 2, "both went upstream (nothing stored)")
    eq(post(dict(absent, temperature=None)).h("x-cache"), "BYPASS", "temperature null is the default")
    eq(post(dict(absent, temperature=0.7)).h("x-cache"), "BYPASS", "temperature 0.7")
    eq(post(dict(absent, top_p=0.1)).h("x-cache"), "BYPASS", "top_p alone does not make it deterministic")
    zero = dict(absent, temperature=0)
    eq((post(zero).h("x-cache"), post(zero).h("x-cache")), ("MISS", "HIT"), "explicit temperature 0")
    seeded = dict(absent, seed=12345, temperature=1.2)
    eq((post(seeded).h("x-cache"), post(seeded).h("x-cache")), ("MISS", "HIT"), "a seed")
    two = dict(absent, n=2, temperature=0.0)
    eq((post(two).h("x-cache"), post(two).h("x-cache")), ("MISS", "HIT"), "n=2 at temperature 0")
    eq(post(dict(zero, logprobs=True)).h("x-cache"), "BYPASS", "logprobs")
    eq(post({"model": "embed-small", "input": "vec"}, "/v1/embeddings").h("x-cache"), "MISS", "embeddings")


@test
def test_seed_not_deterministic_when_configured_off():
    d = E.new_daemon(tag="strict-noseed",
                     config=write_config("strict-noseed.yaml", MEM + "  seed_is_deterministic: false\n")).start()
    try:
        seeded = chat_body("auto", "seeded but not trusted", seed=7)
        eq(post(seeded, d=d).h("x-cache"), "BYPASS", "seed with seed_is_deterministic: false")
        zero = dict(seeded, temperature=0)
        eq((post(zero, d=d).h("x-cache"), post(zero, d=d).h("x-cache")), ("MISS", "HIT"), "temperature 0")
        ok, msg = d.stop()
        check(ok, msg)
    finally:
        d.kill()


# ------------------------------------------------------------ item 8: store only what replays

def _answer(created=1700000000, choice=None):
    choice = choice if choice is not None else {
        "index": 0, "message": {"role": "assistant", "content": "recorded reply"}, "finish_reason": "stop"}
    return ('{"id":"chatcmpl-rec","object":"chat.completion","created":%s,"model":"recorded","choices":[%s],'
            '"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
            % (created, json.dumps(choice))).encode()


@test
def test_unreplayable_answers_not_stored():
    cases = [
        ("created overflows", _answer(created="1" + "0" * 400)),
        ("created 1e400", _answer(created="1e400")),
        ("no message", _answer(choice={"index": 0, "finish_reason": "stop"})),
        ("message not an object", _answer(choice={"index": 0, "message": "hi", "finish_reason": "stop"})),
    ]
    rec = R.Recorder()
    d = E.new_daemon(sim_url=f"http://127.0.0.1:{rec.port}", tag="strict-recorder",
                     config=write_config("strict-rec.yaml", MEM))
    try:
        d.start()
        # a sound answer from the same upstream is stored: the test can fail
        rec.REPLY = _answer()
        body = chat_body("auto", "sound answer", temperature=0)
        eq((post(body, d=d).h("x-cache"), post(body, d=d).h("x-cache")), ("MISS", "HIT"), "sound answer")
        for i, (what, reply) in enumerate(cases):
            rec.REPLY = reply
            body = chat_body("auto", f"unreplayable {i}", temperature=0)
            n0 = len(rec.requests)
            r1 = post(body, d=d)
            eq(r1.status, 200, f"{what}: first answer ({R.short(r1.body)})")
            r2 = post(body, d=d)
            check(r2.h("x-cache") != "HIT", f"{what}: stored and served: {R.short(r2.body)}")
            eq(len(rec.requests) - n0, 2, f"{what}: both went upstream")
            r3 = post(dict(body, stream=True), d=d)
            check(r3.h("x-cache") != "HIT", f"{what}: streamed hit")
        ok, msg = d.stop()
        check(ok, msg)
    finally:
        rec.close()
        d.kill()


@test
def test_redis_entry_that_does_not_replay_is_a_miss():
    rd = Redis(E.tmp).start()
    cache = (f"  backend: redis\n  ttl_s: 60\n  redis_url: \"redis://127.0.0.1:{rd.port}/0\"\n"
             f"  key_prefix: \"strict:\"\n")
    d = E.new_daemon(tag="strict-redis", config=write_config("strict-redis.yaml", cache)).start()
    try:
        body = chat_body("auto", "shared entry", temperature=0)
        first = post(body, d=d)
        eq(first.h("x-cache"), "MISS", "miss")
        time.sleep(0.1)  # the store is fire-and-forget
        eq(post(body, d=d).h("x-cache"), "HIT", "hit")
        keys = rd.cmd("KEYS", "strict:*")
        eq(len(keys), 1, f"one entry: {keys}")
        meta, _, stored = rd.cmd("GET", keys[0]).partition("\n")
        # what another instance could have stored: created overflowed to null
        bad = json.loads(stored)
        bad["created"] = None
        rd.cmd("SET", keys[0], meta + "\n" + json.dumps(bad, separators=(",", ":")))
        r = post(body, d=d)
        eq(r.h("x-cache"), "MISS", "an entry that does not replay is a miss")
        eq(R.reply_content(r), R.reply_content(first), "answered upstream")
        check(isinstance(r.json["created"], int), f"created {r.json['created']!r}")
        ok, msg = d.stop()
        check(ok, msg)
    finally:
        d.kill()
        rd.kill()


@test
def test_daemon_clean_shutdown():
    """Last: the shared daemon exits cleanly (under ASan: no leak report)."""
    ok, msg = D.stop()
    if not ok:
        print(D.stderr_tail(), file=sys.stderr)
    check(ok, msg)


def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]), setup=setup, teardown=teardown,
                       always=("daemon_clean_shutdown",))


if __name__ == "__main__":
    sys.exit(main())
