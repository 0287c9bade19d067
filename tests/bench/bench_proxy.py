#!/usr/bin/env python3
"""The proxy benchmark: llmrouter next to nginx's proxy_pass, same run.

Targets, measured side by side and alternating in each run:
  direct           the benchmark upstream itself (tests/bench/upstream.c)
  nginx            nginx from Debian as a plain reverse proxy (proxy_pass,
                   keep-alive upstream, proxy_buffering off), one worker
  llmrouter        tests/bench/bench-router.yaml: 24 rules, failover chains,
                   cache off, one loop thread
  llmrouter+cache  the same with the memory cache (a repeated request: hits)

The proxy under test is pinned to CPU 0; the load generators and the
upstream to CPU 1. Per target and run:
  saturation   wrk -t1 -c64 with a Lua script posting a chat request with a
               ~300-word prompt: requests/s; the proxy's CPU time per request
               (utime+stime from /proc, over the wrk run)
  latency      tests/bench/openloop.c at 500 and 2,000 requests/s (open loop,
               latency from the scheduled send time): p50, p99, p99.9;
               "added" = target minus direct, same run
  stream TTFB  openloop --ttfb on a 20-event stream: time to first byte
  paced TTFB   the same on a stream paced 10 ms per event: proves that the
               first event is not held back
  peak RSS     VmHWM of the proxy
Three runs; each figure is the median with the range, and its ratio to
nginx's. Then a concurrency run: 10,000 concurrent 20-second streams through
llmrouter (tests/bench/streams.c): success rate, RSS per open stream, CPU.

    python3 tests/bench/bench_proxy.py [--runs N] [--quick] [--no-concurrency]

Needs root (or a high hard limit) for the file-descriptor limit of the
concurrency run. Not part of `make test`.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "build", "bench")
CPU_PROXY, CPU_LOAD = "0", "1"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="llmrouter-bench-")
        self.procs = []

    def spawn(self, cmd, cpu, env=None, **kw):
        p = subprocess.Popen(["taskset", "-c", cpu] + cmd, env=env, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

    # ---- the pieces
    def start_upstream(self):
        p = self.spawn([os.path.join(BIN, "upstream"), "-p", "0"], CPU_LOAD, stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline().split()
        self.up_port = int(line[1])
        self.up_pid = p.pid

    def start_nginx(self):
        self.nginx_port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
master_process off;
daemon off;
error_log {self.tmp}/nginx-error.log;
pid {self.tmp}/nginx.pid;
worker_rlimit_nofile 100000;
events {{ worker_connections 40000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream up {{ server 127.0.0.1:{self.up_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{self.nginx_port} backlog=4096;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 120s;
    }}
  }}
}}
""")
        p = self.spawn(["nginx", "-c", conf, "-p", self.tmp], CPU_PROXY)
        wait_port(self.nginx_port)
        self.nginx_pid = p.pid

    def start_router(self, cache):
        port = free_port()
        env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{self.up_port}", BENCH_CACHE=cache)
        p = self.spawn([os.path.join(ROOT, "build", "llmrouter"), "-c",
                        os.path.join(ROOT, "tests", "bench", "bench-router.yaml"),
                        "--listen", f"127.0.0.1:{port}"], CPU_PROXY, env=env)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        return port, p.pid

    # ---- bodies
    def bodies(self):
        words = " ".join(f"word{(i * 7) % 97}" for i in range(300))
        msgs = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Please answer the following carefully. " + words}]
        paths = {}
        for name, model, stream in (("plain", "auto", False), ("stream", "streamed", True),
                                    ("paced", "paced", True), ("slow", "slow", True)):
            # temperature 0: deterministic, so that the +cache target measures
            # hits (only deterministic requests are cached)
            body = {"model": model, "temperature": 0, "messages": msgs}
            if stream:
                body["stream"] = True
            path = os.path.join(self.tmp, f"{name}.json")
            with open(path, "w") as f:
                json.dump(body, f)
            paths[name] = path
        lua = os.path.join(self.tmp, "post.lua")
        with open(paths["plain"]) as f:
            plain = f.read()
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [[{plain}]]\n")
        self.body = paths
        self.lua = lua

    # ---- measurements
    def target_path(self, target, kind):
        if target == "direct" or target == "nginx":
            return f"/{kind}/v1/chat/completions"
        return "/v1/chat/completions"

    def saturation(self, port, pid, path):
        before = cpu_seconds(pid) if pid else 0
        out = subprocess.run(["taskset", "-c", CPU_LOAD, "wrk", "-t1", "-c64", f"-d{self.args.sat_s}s", "-s",
                              self.lua, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
        after = cpu_seconds(pid) if pid else 0
        n = int(re.search(r"(\d+) requests in", out).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if bad:
            raise RuntimeError(f"wrk saw {bad.group(1)} errors on {path}")
        return rps, ((after - before) / n * 1e6) if pid else None

    def openloop(self, port, path, body, rate, seconds, ttfb=False):
        cmd = ["taskset", "-c", CPU_LOAD, os.path.join(BIN, "openloop"), "-p", str(port), "-P", path, "-b", body,
               "-r", str(rate), "-d", str(seconds), "-c", "64", "-w", "1"]
        if ttfb:
            cmd.append("--ttfb")
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        kv = dict(x.split("=", 1) for x in out.strip().splitlines()[-1].split() if "=" in x)
        if int(kv.get("errors", "1")) > 0:
            raise RuntimeError(f"openloop errors on {path}: {out[-400:]}")
        return {k: float(v) for k, v in kv.items()}

    def measure(self, target, port, pid):
        r = {}
        kind_body = lambda kind: self.body[kind]  # noqa: E731
        r["rps"], r["cpu_us"] = self.saturation(port, pid, self.target_path(target, "plain"))
        for rate in (500, 2000):
            m = self.openloop(port, self.target_path(target, "plain"), kind_body("plain"), rate, self.args.lat_s)
            r[f"p50@{rate}"], r[f"p99@{rate}"], r[f"p999@{rate}"] = m["p50_us"], m["p99_us"], m["p999_us"]
        m = self.openloop(port, self.target_path(target, "stream"), kind_body("stream"), 200, self.args.ttfb_s, True)
        r["ttfb_stream"] = m["ttfb_p50_us"]
        m = self.openloop(port, self.target_path(target, "paced"), kind_body("paced"), 50, self.args.ttfb_s, True)
        r["ttfb_paced"] = m["ttfb_p50_us"]
        r["rss_kb"] = status_kb(pid, "VmHWM") if pid else None
        return r

    def concurrency(self, n):
        port, pid = self.start_router("off")
        rss0 = status_kb(pid, "VmRSS")
        cpu0 = cpu_seconds(pid)
        p = subprocess.Popen(["taskset", "-c", CPU_LOAD, os.path.join(BIN, "streams"), "-p", str(port), "-P",
                              "/v1/chat/completions", "-b", self.body["slow"], "-n", str(n), "-r", "2000", "-t", "90"],
                             stdout=subprocess.PIPE, text=True)
        rss_open = None
        lines = []
        for line in p.stdout:
            lines.append(line.rstrip())
            if line.startswith("OPEN") and rss_open is None:
                time.sleep(0.5)
                rss_open = status_kb(pid, "VmRSS")
        p.wait()
        cpu = cpu_seconds(pid) - cpu0
        ok = None
        for line in lines:
            m = re.search(r"succeeded[=: ]+(\d+)", line)
            if m:
                ok = int(m.group(1))
        return {"n": n, "succeeded": ok, "rss_idle_kb": rss0, "rss_open_kb": rss_open,
                "per_stream_kb": (rss_open - rss0) / n if rss_open else None, "cpu_s": cpu,
                "out": lines[-6:]}


def fmt(vals, unit=""):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    return f"{med:,.1f}{unit} [{min(vals):,.1f}-{max(vals):,.1f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="short runs (for a smoke test of the harness)")
    ap.add_argument("--no-concurrency", action="store_true")
    ap.add_argument("--streams", type=int, default=9500,
                    help="concurrent streams (10,000 needs a per-process open-file limit above 20,000)")
    args = ap.parse_args()
    args.sat_s, args.lat_s, args.ttfb_s = (3, 3, 2) if args.quick else (8, 8, 5)
    try:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        want = 200000
        if hard < want and os.geteuid() == 0:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        print(f"# could not raise the open-file limit: {e}")
    b = Bench(args)
    try:
        b.start_upstream()
        b.start_nginx()
        b.bodies()
        router = b.start_router("off")
        cached = b.start_router("memory")
        targets = [("direct", b.up_port, None), ("nginx", b.nginx_port, b.nginx_pid),
                   ("llmrouter", router[0], router[1]), ("llmrouter+cache", cached[0], cached[1])]
        res = {t[0]: [] for t in targets}
        for run in range(args.runs):
            order = targets if run % 2 == 0 else [targets[0]] + targets[1:][::-1]
            for name, port, pid in order:
                print(f"# run {run + 1}: {name}", flush=True)
                res[name].append(b.measure(name, port, pid))
        direct = res["direct"]
        print()
        print(f"proxy benchmark: {args.runs} runs; proxy on CPU {CPU_PROXY}, load and upstream on CPU {CPU_LOAD}")
        print("median [range]; 'added' = minus direct in the same run; (x nginx) = ratio to nginx's median")
        metrics = [("saturation, requests/s", "rps", False), ("CPU per request, us", "cpu_us", False),
                   ("added p50 @500 req/s, us", "p50@500", True), ("added p99 @500 req/s, us", "p99@500", True),
                   ("added p99.9 @500 req/s, us", "p999@500", True),
                   ("added p50 @2000 req/s, us", "p50@2000", True), ("added p99 @2000 req/s, us", "p99@2000", True),
                   ("added p99.9 @2000 req/s, us", "p999@2000", True),
                   ("added stream TTFB p50, us", "ttfb_stream", True),
                   ("paced stream TTFB p50 minus direct, us", "ttfb_paced", True), ("peak RSS, kB", "rss_kb", False)]
        summary = {}
        for label, key, added in metrics:
            row = [label]
            ngx_med = None
            for name in ("direct", "nginx", "llmrouter", "llmrouter+cache"):
                runs = res[name]
                if added and name == "direct":
                    vals = [r[key] for r in runs]
                    row.append(fmt(vals) + " (abs)")
                    continue
                vals = [(r[key] - d[key]) if added else r[key] for r, d in zip(runs, direct)] \
                    if added else [r[key] for r in runs]
                vals = [v for v in vals if v is not None]
                med = statistics.median(vals) if vals else None
                if name == "nginx":
                    ngx_med = med
                cell = fmt(vals)
                if name.startswith("llmrouter") and med is not None and ngx_med:
                    cell += f" (x{med / ngx_med:.2f})"
                row.append(cell)
                summary[(name, key)] = med
            print(f"  {row[0]:40s} | direct {row[1]:>26s} | nginx {row[2]:>26s} | llmrouter {row[3]:>36s} |"
                  f" +cache {row[4]:>36s}")
        if not args.no_concurrency:
            print(flush=True)
            c = b.concurrency(args.streams)
            print(f"concurrency: {c['n']} streams of 20 s through llmrouter: succeeded {c['succeeded']}, "
                  f"RSS idle {c['rss_idle_kb']} kB, with all open {c['rss_open_kb']} kB "
                  f"= {c['per_stream_kb']:.1f} kB per open stream, CPU {c['cpu_s']:.1f} s")
            for line in c["out"]:
                print("   ", line)
    finally:
        b.stop_all()
        shutil.rmtree(b.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
