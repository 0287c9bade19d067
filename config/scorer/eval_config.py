#!/usr/bin/env python3
"""Measures a whole routing configuration on the data in ../shared/data: every
prompt (one user message) is explained by a running llmrouter through
POST /v1/router/explain — no provider is called — and the tier it would use
decides whose result counts: the strong model's when the tier is `strong_tier`,
the weak model's otherwise. Prints the share routed strong and the PGR (random
routing at that share: PGR = share), per dataset.

  python3 config/scorer/eval_config.py config/llmrouter.yaml [--strong-tier premium]

The scorer's weights were trained on these same prompts, so for a configuration
using the scorer these are in-sample figures; the held-out ones come from
train.py --eval. Standard library only."""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--strong-tier", default="premium")
    ap.add_argument("--bin", default=os.path.join(train.ROOT, "build", "llmrouter"))
    ap.add_argument("--data", default=train.DEFAULT_DATA)
    a = ap.parse_args()
    port = free_port()
    d = subprocess.Popen([a.bin, "-c", a.config, "-l", "127.0.0.1:%d" % port, "-t", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", "/healthz")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        for name, rows in (("MMLU", train.load_mmlu(a.data)), ("nim", train.load_nim(a.data))):
            strong = []
            tiers = {}
            for r in rows:
                body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": r["prompt"]}]})
                c.request("POST", "/v1/router/explain", body, {"content-type": "application/json"})
                resp = c.getresponse()
                j = json.loads(resp.read())
                tier = j["decision"]["tier"]
                tiers[tier] = tiers.get(tier, 0) + 1
                strong.append(tier == a.strong_tier)
            q = sum(r["strong"] if s else r["weak"] for r, s in zip(rows, strong))
            qw = sum(r["weak"] for r in rows)
            qs = sum(r["strong"] for r in rows)
            share = sum(strong) / len(rows)
            p = (q - qw) / (qs - qw)
            print("%s: %d prompts, %.1f%% to %s, PGR %.3f, lift %+.3f; tiers: %s" % (
                name, len(rows), 100 * share, a.strong_tier, p, p - share,
                ", ".join("%s %d" % kv for kv in sorted(tiers.items()))))
    finally:
        d.terminate()
        d.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
