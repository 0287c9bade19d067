#!/usr/bin/env python3
"""The proxy benchmark: llmrouter next to nginx's proxy_pass, same run.

Targets, measured side by side and alternating in each run:
  direct           the benchmark upstream itself (tests/bench/upstream.c)
  nginx            nginx from Debian as a plain reverse proxy (proxy_pass,
                   keep-alive upstream, proxy_buffering off), one worker
  llmrouter        tests/bench/bench-router.yaml: 25 rules (the complexity
                   scorer among them), failover chains,
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
  saturation, two load threads  wrk -t2 -c64 (both threads on the load
               core): requests/s, the proxy's CPU per request, the
               CPU-normalised throughput (requests per CPU-second of the
               proxy: what stays comparable when the load core, not the
               proxy, is the cap) and how busy the load core (wrk and the
               upstream) was (from /proc/stat; near 100% means the load side
               was the cap, and only the CPU-normalised figure compares)
Three runs; each figure is the median with the range, and its ratio to
nginx's. Then a concurrency run: 9,500 concurrent 20-second streams through
llmrouter (tests/bench/streams.c): success rate, RSS per open stream in KiB
(VmRSS when streams.c says every live stream has its first event, minus
VmRSS idle, over the number open then: fewer than N if some failed), CPU.

    python3 tests/bench/bench_proxy.py [--runs N] [--quick] [--no-concurrency]
                                       [--streams N]
    python3 tests/bench/bench_proxy.py --only-concurrency [--streams N|max]
    python3 tests/bench/bench_proxy.py --growth [--runs N] [--quick]
    python3 tests/bench/bench_proxy.py --doors [--runs N] [--quick]
    python3 tests/bench/bench_proxy.py --scaling [--runs N] [--quick]

--streams N     concurrent streams of the concurrency run (default 9,500);
                `max`: the largest the open-file limit allows (two
                descriptors per stream in the router, plus 256 spare;
                at most 28,000, the loopback's ephemeral ports). The limit
                and the N it allows are printed.
--only-concurrency  only the upstream and the concurrency run (about 37 s
                for 9,872 streams: the ramp at 2,000 connections/s plus the
                20 s streams).
--growth        (alias --table) cost as work grows: CPU us per request
                (wrk -t1 -c64, as the saturation run; /proc utime+stime of
                the router over the run) for bodies of 2 KB, 20 KB and
                200 KB at 25 rules and for 25, 200 and 2,000 rules at the
                2.3 KB body. Configurations and bodies from bench_instr.py
                (config_text(rules), body_json(size): the same as the
                instruction-count --table), nginx at each
                body size for scale. One table: median [range], the slope
                per extra KB or per extra rule, the ratio to nginx.
--doors         CPU us per request by door (wrk -t1 -c64, llmrouter only,
                25 rules, the 2.3 KB prompt in each API's shape,
                bench_instr.body_json(size, door)): chat, messages
                (POST /v1/messages, translated), responses (POST
                /v1/responses, translated), anthropic-up (chat to a `type:
                anthropic` provider); each with its difference to chat
                (issue #17's target: <= 15 us over pass-through).
--scaling       two loop threads against one (`server.threads: 2`, one
                SO_REUSEPORT listener per thread): nothing pinned (router,
                upstream and wrk -t2 -c128 share both cores as the kernel
                schedules them). Per thread count: requests/s, the router's
                requests per CPU-second, and how the cores were shared (CPU
                seconds per second of the router, wrk, the upstream and
                everything else on the machine, and both cores' busy share
                from /proc/stat: "other" above ~0.05 means the run was
                shared with someone else's work); the ratio of
                two threads to one for both throughputs (target >= 1.8).

--access-log devnull|off   devnull (the default): every router writes its
                access log (one JSON line per request, the configuration's
                default `stdout`) and the harness sends its stdout to
                /dev/null: the formatting and the write() are paid, the
                bytes (about 500 B a request, over 1 GB in a full run) do
                not reach the terminal. off: `observability.access_log:
                "off"` (bench_instr.config_text's setting, as the
                instruction counts are taken). Every mode uses the same
                choice; nginx runs with access_log off either way.
Durations, --runs 3 (estimated from --quick --runs 1 runs: 81, 67, 13 and
7 s; the time spent under load scales, start-up does not): the main table
about 9.5 min plus 40 s of concurrency; --growth about 4.5 min; --doors
about 1.7 min; --scaling about 1 min. --quick cuts the wrk and openloop runs
to 3 s (2 s for TTFB). Each run prints its duration last.

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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_instr  # noqa: E402  (config_text, body_json, DOOR_PATHS)

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


def cpu_busy(cpus):
    """(busy, total) jiffies of the given CPUs (strings) from /proc/stat."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:] in cpus:
                v = [int(x) for x in vals[:8]]
                total += sum(v)
                busy += sum(v) - v[3] - v[4]
    return busy, total


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
    def start_upstream(self, cpu=CPU_LOAD):
        p = self.spawn([os.path.join(BIN, "upstream"), "-p", "0"], cpu, stdout=subprocess.PIPE, text=True)
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
  client_max_body_size 8m;
  client_body_buffer_size 1m;
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

    def router_config(self, rules=25, door="chat"):
        """bench_instr.config_text with the access log as --access-log says."""
        text = bench_instr.config_text(rules, door)
        if self.args.access_log != "off":
            off = 'access_log: "off"'
            if off not in text:
                raise RuntimeError("bench_instr.config_text no longer sets the access log off")
            text = text.replace(off, "access_log: stdout")
        return text

    def start_router(self, cache, config=None, cpu=CPU_PROXY, quiet=True):
        """config: the YAML text (default: bench-router.yaml as it is, with
        the access log off under --access-log off). quiet: stdout (the
        access log) to /dev/null."""
        if config is None and self.args.access_log == "off":
            config = self.router_config()
        port = free_port()
        env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{self.up_port}", BENCH_CACHE=cache)
        path = os.path.join(ROOT, "tests", "bench", "bench-router.yaml")
        if config is not None:
            path = os.path.join(self.tmp, f"router-{port}.yaml")
            with open(path, "w") as f:
                f.write(config)
        p = self.spawn([os.path.join(ROOT, "build", "llmrouter"), "-c", path,
                        "--listen", f"127.0.0.1:{port}"], cpu, env=env,
                       stdout=subprocess.DEVNULL if quiet else None)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"llmrouter on {port} never became ready")
        return port, p.pid

    def stop(self, pid):
        for p in self.procs:
            if p.pid == pid and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()

    def lua_for(self, body_text, name):
        path = os.path.join(self.tmp, f"{name}.lua")
        if "]]" in body_text:
            raise RuntimeError("a body with ]] does not fit a Lua long string")
        with open(path, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [[{body_text}]]\n")
        return path

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

    def wrk(self, port, path, threads=1, conns=64, lua=None, cpu=CPU_LOAD, watch=()):
        """One wrk run. Returns requests/s, requests, wall seconds, the CPU
        seconds of each pid in `watch` over the run, wrk's own CPU seconds,
        and the busy share of the load core (or of both cores when
        unpinned)."""
        cores = (cpu,) if cpu else tuple(str(c) for c in sorted(os.sched_getaffinity(0)))
        before = {pid: cpu_seconds(pid) for pid in watch}
        b0 = cpu_busy(cores)
        cmd = (["taskset", "-c", cpu] if cpu else []) + [
            "wrk", f"-t{threads}", f"-c{conns}", f"-d{self.args.sat_s}s", "-s", lua or self.lua,
            f"http://127.0.0.1:{port}{path}"]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = p.stdout.read()
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        b1 = cpu_busy(cores)
        after = {pid: cpu_seconds(pid) for pid in watch}
        m = re.search(r"(\d+) requests in", out)
        if status != 0 or m is None:
            raise RuntimeError(f"wrk failed on {path}: {out[-300:]} {err[-300:]}")
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if bad:
            raise RuntimeError(f"wrk saw {bad.group(1)} errors on {path}")
        sock = re.search(r"Socket errors: (.*)", out)
        if sock:
            raise RuntimeError(f"wrk socket errors on {path}: {sock.group(1)}")
        return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "n": int(m.group(1)),
                "wall": wall, "cpu": {pid: after[pid] - before[pid] for pid in watch},
                "wrk_cpu": ru.ru_utime + ru.ru_stime,
                "busy": (b1[0] - b0[0]) / max(1, b1[1] - b0[1]), "ncores": len(cores)}

    def saturation(self, port, pid, path, threads=1, lua=None):
        w = self.wrk(port, path, threads=threads, lua=lua, watch=(pid,) if pid else ())
        cpu = w["cpu"].get(pid)
        return (w["rps"], (cpu / w["n"] * 1e6) if pid else None, (w["n"] / cpu) if pid and cpu else None,
                w["busy"] * 100)

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
        r["rps"], r["cpu_us"], _, r["load_busy"] = self.saturation(port, pid, self.target_path(target, "plain"))
        r["rps2"], r["cpu_us2"], r["rps_cpu2"], r["load_busy2"] = self.saturation(
            port, pid, self.target_path(target, "plain"), threads=2)
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
        n_open = None
        lines = []
        for line in p.stdout:
            lines.append(line.rstrip())
            if line.startswith("OPEN") and rss_open is None:
                n_open = int(line.split()[1])
                time.sleep(0.5)
                rss_open = status_kb(pid, "VmRSS")
        p.wait()
        cpu = cpu_seconds(pid) - cpu0
        self.stop(pid)
        ok = None
        for line in lines:
            m = re.search(r"succeeded[=: ]+(\d+)", line)
            if m:
                ok = int(m.group(1))
        return {"n": n, "succeeded": ok, "rss_idle_kb": rss0, "rss_open_kb": rss_open, "n_open": n_open,
                "per_stream_kb": (rss_open - rss0) / n_open if rss_open and n_open else None, "cpu_s": cpu,
                "out": lines[-6:]}


def fmt(vals, unit="", digits=1):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    return f"{med:,.{digits}f}{unit} [{min(vals):,.{digits}f}-{max(vals):,.{digits}f}]"


def stream_limit():
    """The open-file limit and the largest stream count it allows."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft, max(1, min(28000, (soft - 256) // 2))


def print_concurrency(b, n):
    soft, most = stream_limit()
    print(f"concurrency: open-file limit {soft:,}, which allows {most:,} streams "
          f"(2 descriptors each in the router, 256 spare, 28,000 at most); running {n:,}", flush=True)
    c = b.concurrency(n)
    per = f"{c['per_stream_kb']:.1f} KiB per open stream" if c["per_stream_kb"] is not None else \
        "KiB per open stream n/a (the streams never were all open)"
    print(f"concurrency: {c['n']:,} streams of 20 s through llmrouter: succeeded {c['succeeded']}, "
          f"RSS idle {c['rss_idle_kb']:,} KiB, with {c['n_open']} open {c['rss_open_kb']} KiB "
          f"= {per} (target <= 24 KiB), router CPU {c['cpu_s']:.1f} s")
    if c["n_open"] is not None and c["n_open"] < c["n"]:
        print(f"    WARNING: only {c['n_open']:,} of {c['n']:,} streams were open at once (the others had "
              "finished or failed): not the concurrency asked for")
    for line in c["out"]:
        print("   ", line)


def growth(b, args):
    """CPU us per request by body size and by rule count (see --growth)."""
    bodies = (2000, 20000, 200000)
    rules = (25, 200, 2000)
    rows = [(size, 25) for size in bodies] + [(2300, r) for r in rules]
    routers = {r: b.start_router("off", b.router_config(r)) for r in rules}
    luas = {size: b.lua_for(bench_instr.body_json(size), f"growth-{size}") for size in set(x[0] for x in rows)}
    res = {row: [] for row in rows}
    ngx = {size: [] for size in bodies}
    for run in range(args.runs):
        for size, r in rows:
            print(f"# growth run {run + 1}: llmrouter body {size} rules {r}", flush=True)
            port, pid = routers[r]
            res[(size, r)].append(b.saturation(port, pid, "/v1/chat/completions", lua=luas[size])[1])
        for size in bodies:
            print(f"# growth run {run + 1}: nginx body {size}", flush=True)
            ngx[size].append(b.saturation(b.nginx_port, b.nginx_pid, "/plain/v1/chat/completions",
                                          lua=luas[size])[1])
    for r in rules:
        b.stop(routers[r][1])
    print()
    print(f"cost as work grows: CPU us per request (wrk -t1 -c64, {args.sat_s} s, {args.runs} runs; router on "
          f"CPU {CPU_PROXY}, load and upstream on CPU {CPU_LOAD}; access log {args.access_log}); median [range]")
    print("| body | rules | llmrouter us/request | per extra KB | per extra rule | nginx us/request | x nginx |")
    print("|---|---|---|---|---|---|---|")
    prev = None
    for size, r in rows:
        med = statistics.median(res[(size, r)])
        slope_kb = slope_rule = ""
        if r == 25 and size in bodies:
            if prev and prev[1] == 25 and prev[0] in bodies:
                slope_kb = f"{(med - prev[2]) / ((size - prev[0]) / 1000):.2f}"
        elif prev and prev[0] == 2300:
            slope_rule = f"{(med - prev[2]) / (r - prev[1]) * 1000:.1f} ns"
        ncell = ratio = ""
        if size in ngx and r == 25:
            nmed = statistics.median(ngx[size])
            ncell = fmt(ngx[size])
            ratio = f"{med / nmed:.2f}"
        print(f"| {size:,} B | {r:,} | {fmt(res[(size, r)])} | {slope_kb} | {slope_rule} | {ncell} | {ratio} |")
        prev = (size, r, med)


def doors(b, args):
    """CPU us per request by door (see --doors)."""
    res = {}
    for door, path in bench_instr.DOOR_PATHS.items():
        port, pid = b.start_router("off", b.router_config(25, door))
        body = bench_instr.body_json(2300, door)
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            route = f"{r.headers.get('x-router-rule')} / {r.headers.get('x-router-tier')} / " \
                    f"{r.headers.get('x-router-model')}"
        lua = b.lua_for(body, f"door-{door}")
        vals = []
        for run in range(args.runs):
            print(f"# doors run {run + 1}: {door}", flush=True)
            vals.append(b.saturation(port, pid, path, lua=lua)[1])
        b.stop(pid)
        res[door] = (path, len(body), route, vals)
    print()
    print(f"doors: CPU us per request (wrk -t1 -c64, {args.sat_s} s, {args.runs} runs, 25 rules, the 2.3 KB "
          "prompt in each API's shape; access log "
          f"{args.access_log}); median [range]; target: <= 15 us over chat")
    print("| door | path | body bytes | rule / tier / model | us/request | minus chat |")
    print("|---|---|---|---|---|---|")
    chat = statistics.median(res["chat"][3])
    for door, (path, size, route, vals) in res.items():
        diff = "" if door == "chat" else f"{statistics.median(vals) - chat:+.1f}"
        print(f"| {door} | {path} | {size:,} | {route} | {fmt(vals)} | {diff} |")


def scaling(b, args):
    """One loop thread against two, nothing pinned (see --scaling)."""
    res = {1: [], 2: []}
    for run in range(args.runs):
        for threads in (1, 2) if run % 2 == 0 else (2, 1):
            cfg = b.router_config().replace("  threads: 1\n", f"  threads: {threads}\n", 1)
            if f"threads: {threads}" not in cfg:
                raise RuntimeError("bench-router.yaml: no 'threads: 1' to replace")
            port, pid = b.start_router("off", cfg, cpu="0,1")
            print(f"# scaling run {run + 1}: threads {threads}", flush=True)
            w = b.wrk(port, "/v1/chat/completions", threads=2, conns=128, cpu=None, watch=(pid, b.up_pid))
            b.stop(pid)
            res[threads].append({"rps": w["rps"], "rps_cpu": w["n"] / w["cpu"][pid],
                                 "router": w["cpu"][pid] / w["wall"], "upstream": w["cpu"][b.up_pid] / w["wall"],
                                 "wrk": w["wrk_cpu"] / w["wall"], "busy": w["busy"]})
            r = res[threads][-1]
            r["other"] = max(0.0, r["busy"] * w["ncores"] - r["router"] - r["upstream"] - r["wrk"])
    print()
    print(f"scaling: server.threads 1 against 2; router, upstream and wrk -t2 -c128 unpinned on both cores "
          f"({args.sat_s} s, {args.runs} runs; access log {args.access_log}); median [range]")
    print("| threads | requests/s | requests per router CPU-second | router cores | wrk cores | upstream cores |"
          " other processes' cores | both cores busy |")
    print("|---|---|---|---|---|---|---|---|")
    for t in (1, 2):
        g = lambda k: [r[k] for r in res[t]]  # noqa: E731
        print(f"| {t} | {fmt(g('rps'))} | {fmt(g('rps_cpu'))} | {fmt(g('router'), digits=2)} | {fmt(g('wrk'), digits=2)} |"
              f" {fmt(g('upstream'), digits=2)} | {fmt(g('other'), digits=2)} | {fmt([x * 100 for x in g('busy')], '%')} |")
    med = lambda t, k: statistics.median(r[k] for r in res[t])  # noqa: E731
    print(f"two threads / one: throughput x{med(2, 'rps') / med(1, 'rps'):.2f}, requests per router CPU-second "
          f"x{med(2, 'rps_cpu') / med(1, 'rps_cpu'):.2f} (target: throughput >= 1.8; 'cores' = CPU seconds per "
          f"second of wall time, of the {len(os.sched_getaffinity(0))} the machine has)")


def main():
    t_start = time.monotonic()
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="short runs (for a smoke test of the harness)")
    ap.add_argument("--no-concurrency", action="store_true")
    ap.add_argument("--only-concurrency", action="store_true")
    ap.add_argument("--streams", default="9500",
                    help="concurrent streams, or 'max' (10,000 needs a per-process open-file limit above 20,000)")
    ap.add_argument("--growth", "--table", action="store_true", dest="growth")
    ap.add_argument("--doors", action="store_true")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--access-log", choices=("devnull", "off"), default="devnull")
    args = ap.parse_args()
    args.sat_s, args.lat_s, args.ttfb_s = (3, 3, 2) if args.quick else (8, 8, 5)
    try:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        want = 200000
        raised = False
        if hard < want and os.geteuid() == 0:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
                raised = True
            except (ValueError, OSError) as e:
                print(f"# could not raise the open-file hard limit to {want}: {e}; using {hard}")
        if not raised:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        print(f"# could not raise the open-file limit: {e}")
    if args.streams == "max":
        streams = stream_limit()[1]
    else:
        try:
            streams = int(args.streams)
        except ValueError:
            ap.error("--streams takes a number or 'max'")
    b = Bench(args)
    try:
        b.start_upstream("0,1" if args.scaling else CPU_LOAD)
        b.bodies()
        if args.only_concurrency:
            print_concurrency(b, streams)
            return 0
        if args.scaling:
            scaling(b, args)
            return 0
        if args.doors:
            doors(b, args)
            return 0
        b.start_nginx()
        if args.growth:
            growth(b, args)
            return 0
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
        print(f"proxy benchmark: {args.runs} runs; proxy on CPU {CPU_PROXY}, load and upstream on CPU {CPU_LOAD}; "
              f"llmrouter's access log {args.access_log}")
        print("median [range]; 'added' = minus direct in the same run; (x nginx) = ratio to nginx's median")
        metrics = [("saturation, requests/s", "rps", False), ("CPU per request, us", "cpu_us", False),
                   ("load core busy, %", "load_busy", False),
                   ("saturation wrk -t2, requests/s", "rps2", False),
                   ("CPU per request wrk -t2, us", "cpu_us2", False),
                   ("requests per proxy CPU-second, wrk -t2", "rps_cpu2", False),
                   ("load core busy wrk -t2, %", "load_busy2", False),
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
                if name.startswith("llmrouter") and med is not None and ngx_med and not key.startswith("load_busy"):
                    cell += f" (x{med / ngx_med:.2f})"
                row.append(cell)
                summary[(name, key)] = med
            print(f"  {row[0]:40s} | direct {row[1]:>26s} | nginx {row[2]:>26s} | llmrouter {row[3]:>36s} |"
                  f" +cache {row[4]:>36s}")
        if not args.no_concurrency:
            print(flush=True)
            print_concurrency(b, streams)
    finally:
        b.stop_all()
        shutil.rmtree(b.tmp, ignore_errors=True)
        print(f"# bench_proxy.py took {time.monotonic() - t_start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
