#!/usr/bin/env python3
"""What the upstream receives, byte for byte: a recording TCP relay between
the daemon and the simulated provider (tests/sim/simprovider.py) keeps every
byte the daemon sends upstream, per connection. A fixed sequence of client
requests (plain and streamed chat, completions, embeddings, an Anthropic
upstream, Azure's preset with a deployment and query parameters, a base_url
with its own query string, extra headers, a keyless provider, failover from
a 500 and from a reset connection) is replayed one at a time on a one-thread
daemon, and the transcript — for each upstream request its connection's
ordinal (connection reuse), request line, headers in order and case, body;
for each client request its status and answer (ids and clocks masked) — must
equal tests/integration/fixtures/upstream_wire.txt, recorded from the code
before the per-transfer libcurl work was cut (issue #17).

    python3 tests/integration/test_upstream_wire.py [--write]

--write records the fixture instead (only from a binary known to be right).
Prints "ok - upstream_wire" or "not ok - ..." and "N passed, M failed".
"""
import json
import os
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402

FIXTURE = os.path.join(HERE, "fixtures", "upstream_wire.txt")

CONFIG = """\
server:
  listen: "127.0.0.1:18080"
  threads: 1
  log_level: warn
providers:
  oa:      {type: openai, base_url: "${SIM_URL}/v1", api_key_env: W_KEY}
  keyless: {type: openai, base_url: "${SIM_URL}"}
  hdrs:    {type: openai, base_url: "${SIM_URL}/v1", api_key_env: W_KEY,
            headers: {X-Org: acme, X-Two: "b c"}}
  ant:     {type: anthropic, base_url: "${SIM_URL}/v1", api_key_env: W_ANT}
  az:      {preset: azure, base_url: "${SIM_URL}/sim/quirk=azure/openai",
            headers: {X-Org: acme}, query: {tenant: "a b&c"}}
  azq:     {type: openai, base_url: "${SIM_URL}/sim/quirk=azure/openai/deployments/dq?api-version=2024-06-01",
            api_key_env: AZURE_OPENAI_API_KEY, auth_header: api-key}
  p500:    {type: openai, base_url: "${SIM_URL}/sim/status=500/v1"}
  reset:   {type: openai, base_url: "${SIM_URL}/sim/reset=1/v1"}
models:
  oa-m:      {provider: oa, model: sim-mini}
  oa-embed:  {provider: oa, model: sim-embed}
  keyless-m: {provider: keyless, model: sim-keyless}
  hdrs-m:    {provider: hdrs, model: sim-hdrs}
  ant-m:     {provider: ant, model: claude-3-5-haiku}
  az-4o:     {provider: az, model: gpt-4o, deployment: "prod 4o"}
  azq-m:     {provider: azq, model: gpt-4o}
  m500:      {provider: p500, model: sim-500}
  mreset:    {provider: reset, model: sim-reset}
tiers:
  standard:  [oa-m]
  f500:      [m500, oa-m]
  freset:    [mreset, oa-m]
routing:
  default_tier: standard
"""

ENV = {"W_KEY": "wire-key-0123", "W_ANT": "sk-ant-wire-4567", "AZURE_OPENAI_API_KEY": "az-wire-89ab"}


def chat(model, content, stream=False, **extra):
    b = {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": content}]}
    if stream:
        b["stream"] = True
    b.update(extra)
    return b


CASES = [
    ("/v1/chat/completions", chat("oa-m", "plain one")),
    ("/v1/chat/completions", chat("oa-m", "plain two", temperature=0.5, max_tokens=20)),
    ("/v1/chat/completions", chat("oa-m", "streamed", stream=True)),
    ("/v1/chat/completions", chat("oa-m", "streamed usage", stream=True,
                                  stream_options={"include_usage": True})),
    ("/v1/completions", {"model": "oa-m", "prompt": "legacy"}),
    ("/v1/completions", {"model": "oa-m", "prompt": "legacy streamed", "stream": True}),
    ("/v1/embeddings", {"model": "oa-embed", "input": ["a", "b"]}),
    ("/v1/chat/completions", chat("keyless-m", "no key")),
    ("/v1/chat/completions", chat("hdrs-m", "extra headers")),
    ("/v1/chat/completions", chat("ant-m", "to anthropic")),
    ("/v1/chat/completions", chat("ant-m", "to anthropic streamed", stream=True)),
    ("/v1/chat/completions", chat("az-4o", "azure deployment")),
    ("/v1/chat/completions", chat("az-4o", "azure streamed", stream=True)),
    ("/v1/chat/completions", chat("azq-m", "query in base_url")),
    ("/v1/chat/completions", chat("f500", "fails over")),
    ("/v1/chat/completions", chat("f500", "fails over streamed", stream=True)),
    ("/v1/chat/completions", chat("freset", "reset then over")),
    ("/v1/chat/completions", chat("oa-m", "after the faults")),
    ("/v1/chat/completions", chat("oa-m", "u" * 5000)),
]


class Relay:
    """Accepts the daemon's upstream connections, relays them to the
    simulator and records what the daemon sent on each, in order."""

    def __init__(self, target_port):
        self.target = target_port
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.conns = []  # bytearray per accepted connection, in accept order
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.srv.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = bytearray()
            with self.lock:
                self.conns.append(rec)
            u = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(c, u, rec), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, None), daemon=True).start()

    def _pump(self, a, b, rec):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if rec is not None:
                    with self.lock:
                        rec += d
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def requests(self):
        """[(connection ordinal, head bytes, body bytes)] in send order per
        connection (connections in accept order)."""
        out = []
        with self.lock:
            conns = [bytes(c) for c in self.conns]
        for i, buf in enumerate(conns):
            while buf:
                j = buf.find(b"\r\n\r\n")
                if j < 0:
                    out.append((i, buf, b"<incomplete head>"))
                    break
                head, rest = buf[:j], buf[j + 4:]
                m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                n = int(m.group(1)) if m else 0
                out.append((i, head, rest[:n]))
                buf = rest[n:]
        return out


def mask(text, relay_port):
    text = text.replace(f"127.0.0.1:{relay_port}", "UPSTREAM")
    text = re.sub(r'"created":\s*\d+', '"created":N', text)
    text = re.sub(r'"(id|system_fingerprint)":\s*"[^"]*"', r'"\1":"X"', text)
    return text


def transcript(bin_path):
    env = R.Env(type("A", (), {"k": [], "verbose": False, "keep_logs": False})())
    env.bin = bin_path
    env.start_sim()
    relay = Relay(env.sim_port)
    cfg = os.path.join(env.tmp, "wire.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    for k, v in ENV.items():
        os.environ[k] = v
    d = env.new_daemon(sim_url=f"http://127.0.0.1:{relay.port}", tag="wire", config=cfg)
    lines = []
    try:
        d.start()
        for path, body in CASES:
            r = R.http_request(d.port, "POST", path, json.dumps(body).encode())
            lines.append(f"== client {path} {body.get('model')} -> {r.status}")
            lines.append(mask(r.body.decode("utf-8", "replace"), relay.port))
            time.sleep(0.05)  # the relay has seen everything the daemon sent
        ok, msg = d.stop()
        if not ok:
            raise R.Fail(f"daemon: {msg}\n{d.stderr_tail()}")
    finally:
        d.kill()
        relay.close()
        env.stop_sim()
    lines.append("== upstream")
    for conn, head, body in relay.requests():
        lines.append(f"-- connection {conn}")
        lines.append(mask(head.decode("latin-1"), relay.port).replace("\r\n", "\\r\\n\n"))
        lines.append(body.decode("latin-1"))
    return "\n".join(lines) + "\n"


def main():
    bin_path = os.environ.get("LLMROUTER_BIN") or R.DEFAULT_BIN
    got = transcript(bin_path)
    if "--write" in sys.argv:
        with open(FIXTURE, "w") as f:
            f.write(got)
        print(f"wrote {FIXTURE}")
        return 0
    with open(FIXTURE) as f:
        want = f.read()
    if got == want:
        print("ok - upstream_wire\n1 passed, 0 failed")
        return 0
    gl, wl = got.splitlines(), want.splitlines()
    k = next((i for i in range(min(len(gl), len(wl))) if gl[i] != wl[i]), min(len(gl), len(wl)))
    print(f"not ok - upstream_wire: line {k + 1} differs:\n  want {wl[k] if k < len(wl) else '<end>'!r}\n"
          f"  got  {gl[k] if k < len(gl) else '<end>'!r}\n0 passed, 1 failed")
    return 1


if __name__ == "__main__":
    sys.exit(main())
