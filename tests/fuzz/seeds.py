#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/NAME/)
from the project's own fixtures (tests/unit/*/fixtures, the example
configs) and a few hand-written inputs. Re-run after adding fixtures; the
files are named by content hash, so re-running adds nothing twice.
Each harness's input format is described at the top of its .c file: most
take a control byte first (which function, which options)."""
import glob
import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def files(*patterns):
    for pat in patterns:
        for p in sorted(glob.glob(os.path.join(ROOT, pat), recursive=True)):
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    yield f.read()


def put(name, data):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    h = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, "seed-" + h), "wb") as f:
        f.write(data)


CHAT = [
    b'{"model":"auto","messages":[{"role":"user","content":"What is the capital of France?"}]}',
    b'{"model":"auto","temperature":0,"messages":[{"role":"system","content":"Be brief."},'
    b'{"role":"user","content":"Please review this code: ```int main(){}``` any bug?"}]}',
    b'{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":'
    b'[{"role":"user","content":[{"type":"text","text":"Describe"},{"type":"image_url",'
    b'"image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}',
    b'{"model":"premium","tools":[{"type":"function","function":{"name":"get","parameters":'
    b'{"type":"object","properties":{"q":{"type":"string"}}}}}],"tool_choice":"required",'
    b'"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,'
    b'"tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{\\"q\\":1}"}}]},'
    b'{"role":"tool","tool_call_id":"c1","content":"sunny"}]}',
    b'{"model":"auto","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":'
    b'{"type":"object"}}},"messages":[{"role":"user","content":"\\u65e5\\u672c\\u8a9e\\u3067"}],'
    b'"max_tokens":5000,"stop":["\\n"],"seed":3,"user":"u1","reasoning_effort":"high"}',
    b'{"model":"my-app","n":2,"logprobs":true,"messages":[{"role":"developer","content":"x"},'
    b'{"role":"user","content":"Bonjour, pouvez-vous m\'aider ?"}]}',
]
LEGACY = [b'{"model":"auto","prompt":"Say hi","max_tokens":5}',
          b'{"model":"auto","prompt":["a","b"],"stream":true}']
EMB = [b'{"model":"embeddings","input":"hello"}',
       b'{"model":"emb","input":["a","b"],"encoding_format":"base64"}']


def main():
    jsons = list(files("tests/unit/**/fixtures/**/*.json"))
    sses = list(files("tests/unit/**/fixtures/**/*.sse"))
    for j in jsons + CHAT + LEGACY + EMB:
        put("fuzz_json", j)
        put("fuzz_json_tree", j)
    for body in CHAT:
        for ctl in (0x00, 0x04, 0x08, 0x18, 0x20, 0x44, 0xe0):
            put("fuzz_request", bytes([ctl]) + body)
    for body in files("tests/unit/http/fixtures/**/expected_chat.json"):
        put("fuzz_request", b"\x00" + body)
    for body in LEGACY:
        put("fuzz_request", b"\x02" + body)
    for body in EMB:
        put("fuzz_request", b"\x03" + body)
    # answers: chat answers of the fixtures, plus embeddings and legacy ones
    answers = list(files("tests/unit/http/fixtures/**/answer.json"))
    answers += [
        b'{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"text":"hi",'
        b'"index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,'
        b'"completion_tokens":1,"total_tokens":2}}',
        b'{"object":"list","model":"e","data":[{"object":"embedding","index":0,"embedding":[0.5,-1e-3]}],'
        b'"usage":{"prompt_tokens":1,"total_tokens":1}}',
        b'{"error":{"message":"x","type":"server_error"}}',
    ]
    for a in answers:
        for ctl in (0x00, 0x08, 0x10, 0x2c, 0x48):
            put("fuzz_answer", bytes([ctl]) + a)
    for s in sses:
        for ctl in (0x00, 0x0e, 0x13):
            put("fuzz_stream", bytes([ctl]) + s)
        put("fuzz_sse", b"\x01\x07\x03\x20\x00\x3f\x02\x09" + s)
        put("fuzz_sse", s)
    put("fuzz_sse", b": keep-alive\r\n\r\ndata: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]\n\n")
    # the Anthropic upstream's fixtures: req_* in.json (chat), ans_* in.json,
    # err_* in.txt, st_* in.sse
    ant = os.path.join("tests", "unit", "upstream", "fixtures", "anthropic")
    for d in sorted(glob.glob(os.path.join(ROOT, ant, "*"))):
        base = os.path.basename(d)
        for f in sorted(glob.glob(os.path.join(d, "in.*"))):
            data = open(f, "rb").read()
            mode = {"req": 0, "ans": 1, "err": 2, "st": 3}.get(base.split("_")[0])
            if mode is None:
                continue
            for opt in (0, 1, 2):
                put("fuzz_anthropic", bytes([mode | (opt << 2)]) + data)
    # the doors' fixtures
    for door, name in (("messages", "fuzz_messages"), ("responses", "fuzz_responses")):
        base = os.path.join("tests", "unit", "http", "fixtures", door)
        for f in files(base + "/**/request.json"):
            if door == "messages":
                put(name, b"\x00" + f)
                put(name, b"\x01" + f)
                put(name, b"\x02" + f)
            else:
                put(name, b"\x00" + f)
                put(name, b"\x01" + f)
        for f in files(base + "/**/answer.json"):
            put(name, (b"\x03" if door == "messages" else b"\x02") + f)
        for f in files(base + "/**/stream.sse"):
            put(name, (b"\x05" if door == "messages" else b"\x03") + f)
            put(name, (b"\x0d" if door == "messages" else b"\x07") + f)
    put("fuzz_messages", b"\x04" + b'{"error":{"message":"rate limited","type":"rate_limit_error"}}')
    # configuration files
    for y in files("config/*.yaml", "tests/**/*.yaml"):
        put("fuzz_config", y)
    rules = [
        b"    - {name: a, when: {keywords: [bug, \"stack trace\"]}, tier: premium}\n"
        b"    - {name: b, when: {regex: '(?i)^\\s*(what|who)\\b', max_tokens: 60}, tier: budget}\n",
        b"    - {name: c, when: {any: [{language: [de, fr]}, {script: [cjk]}]}, tier: budget}\n"
        b"    - {name: d, when: {not: {complexity: {min: 0.3}}}, chain: [small, big]}\n",
        b"    - {name: e, when: {classify: hard}, tier: premium}\n"
        b"    - {name: f, when: {all: [{tools: true}, {min_messages: 2}]}, classify: true}\n",
        b"    - {name: g, when: {header: {x-app: fuzz}, response_format: text}, tier: budget}\n",
    ]
    prompts = [b"What is 2+2?", b"Please find the bug in this stack trace", b"Wie spaet ist es?",
               "日本語で説明してください".encode(), b"```py\nprint(1)\n``` review bug", b""]
    for r in rules:
        for p in prompts:
            put("fuzz_rules", r + b"\x00" + p)
    schemas = [
        (b'{"type":"object","properties":{"a":{"type":"integer","minimum":0}},"required":["a"],'
         b'"additionalProperties":false}', b'{"a":3}'),
        (b'{"$defs":{"n":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/n"}]}},"$ref":"#/$defs/n"}', b"null"),
        (b'{"type":"array","items":{"enum":[1,"x",null]},"minItems":1,"maxItems":3,"uniqueItems":true}',
         b'[1,"x"]'),
        (b'{"oneOf":[{"type":"string","minLength":2},{"not":{"type":"number"}}],"allOf":[{}]}', b'"ab"'),
    ]
    for s, d in schemas:
        put("fuzz_jsonschema", s + b"\x00" + d)
    heads = [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"POST /v1/responses HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET /metrics?x=1&y=2 HTTP/1.1\r\nCookie: a=b; c=d\r\nX: y\r\n z\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    ]
    for h in heads:
        for ctl in (0x00, 0x01, 0x06, 0x13):
            put("fuzz_gate_head", bytes([ctl]) + h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
