#!/usr/bin/env python3
"""Operating the daemon when things go wrong (issue 14): SIGTERM with open
streams and requests, reload (SIGHUP) under load with valid and invalid
files, server.user (privilege drop), and the proof that provider and proxy
keys never reach what a client or an operator sees. The real daemon over
real sockets, the simulated provider behind it (its echo_key option makes a
provider repeat the credential in its errors).

    python3 tests/integration/test_resilience_ops.py [-k SUBSTRING]... [-v] [--keep-logs]
    LLMROUTER_BIN=build/asan/llmrouter python3 tests/integration/test_resilience_ops.py

The privilege tests need root (the CI machine runs as root); run as another
user they print "skipped - NAME: skipped (not root)" and are not counted.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only.
"""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None
IS_ROOT = os.geteuid() == 0
SKIPPED = []  # (name, reason): printed, never counted as passed


def test(fn):
    TESTS.append(fn)
    return fn


def root_test(fn):
    if IS_ROOT:
        TESTS.append(fn)
    else:
        SKIPPED.append(fn.__name__[5:])
    return fn


def base_text():
    with open(BASE_CONFIG) as f:
        return f.read()


def write(name, text, mode=None):
    path = os.path.join(E.tmp, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)  # a reload never reads half a file
    return path


def with_extra(providers="", models="", tiers="", server="", tail="", text=None):
    """The test configuration with lines added to its sections."""
    head, _, _ = (text or base_text()).partition("\ncache:\n")
    if server:
        head = head.replace("\nserver:\n", "\nserver:\n" + server, 1)
    if providers:
        head = head.replace("\nproviders:\n", "\nproviders:\n" + providers, 1)
    if models:
        head = head.replace("\nmodels:\n", "\nmodels:\n" + models, 1)
    if tiers:
        head = head.replace("\ntiers:\n", "\ntiers:\n" + tiers, 1)
    if "\ncache:" not in tail:
        tail = "\ncache:\n  backend: off\n" + tail
    return head + tail


class Proc:
    """The daemon started by hand: own port, arguments and user; stderr kept."""

    def __init__(self, tag, config, port=None, args=(), env=None, user=None):
        self.tag = tag
        self.port = port or R.free_port()
        self.err_path = os.path.join(E.tmp, f"{tag}.stderr")
        self.out_path = os.path.join(E.tmp, f"{tag}.stdout")
        e = dict(os.environ, SIM_URL=f"http://127.0.0.1:{E.sim_port}", SIM_KEY_GOOD=R.GOOD_KEY)
        e.update(env or {})
        pre = None
        if user is not None:
            uid, gid = user

            def pre():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
        with open(self.err_path, "wb") as ef, open(self.out_path, "wb") as of:
            self.proc = subprocess.Popen(
                [E.bin, "-c", config, "--listen", f"127.0.0.1:{self.port}", *args],
                stdout=of, stderr=ef, stdin=subprocess.DEVNULL, cwd=R.ROOT, env=e,
                preexec_fn=pre)

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, probe="/healthz", timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail(f"{self.tag} exited with {self.proc.returncode}: {self.stderr()[-800:]}")
            try:
                if R.http_request(self.port, "GET", probe, timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise Fail(f"{self.tag}: not ready within {timeout} s: {self.stderr()[-800:]}")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=8):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
            raise Fail(f"{self.tag} did not exit within {timeout} s of SIGTERM")
        eq(rc, 0, f"{self.tag} exit status after SIGTERM ({self.stderr()[-400:]})")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def no_sanitizer_report(self):
        t = self.stderr()
        check("AddressSanitizer" not in t and "LeakSanitizer" not in t and "runtime error" not in t,
              f"{self.tag}: sanitizer report:\n{t[-1500:]}")


def post(port, body, headers=None, path="/v1/chat/completions", timeout=20):
    return R.http_request(port, "POST", path, json.dumps(body).encode(), headers=headers,
                          timeout=timeout)


def sse_events(s):
    """[(event name or None, data text)] of the rest of a stream, until the
    daemon ends it (chunked terminator or close)."""
    out = []
    while True:
        ev = s.next_event()
        if ev is None:
            return out
        name = None
        for ln in ev:
            if ln.startswith("event:"):
                name = ln[6:].strip()
        data = R.event_data(ev)
        if data is not None:
            out.append((name, data))


# ====================================================================== SIGTERM

DRAIN_PROVIDERS = """\
  slowplain: {type: openai, base_url: "${SIM_URL}/sim/delay_ms=20000/v1", first_byte_timeout_ms: 60000}
  halfsec:   {type: openai, base_url: "${SIM_URL}/sim/delay_ms=700/v1"}
"""
DRAIN_MODELS = """\
  mslowplain: {provider: slowplain, model: sim-slow-plain}
  mhalfsec:   {provider: halfsec, model: sim-half-second}
"""
DRAIN_TIERS = """\
  slowplain: [mslowplain]
  halfsec:   [mhalfsec]
"""
GRACE_MS = 1500


def open_stream(port, path, body):
    s = R.RawHTTP(port, "POST", path, json.dumps(body).encode(), timeout=15).read_head()
    eq(s.status, 200, f"{path} stream status")
    n = 0
    while n < 2:  # it runs: two data events arrived
        ev = s.next_event()
        check(ev is not None, f"{path}: the stream ended early")
        n += R.event_data(ev) is not None
    return s


@test
def test_sigterm_drain_streams_end_with_error_event():
    """SIGTERM with three streams open (chat, Messages door, Responses door,
    each 20 s long), a plain request waiting for a slow provider and a
    short one in flight: /readyz answers 503 at once while /healthz stays
    200, a new request gets 503 server_shutting_down, the short request
    finishes normally, and when the grace period ends every stream ends with
    its door's error event, the slow request gets a 503, and the process
    exits 0 soon after."""
    cfg = write("drain.yaml", with_extra(
        providers=DRAIN_PROVIDERS, models=DRAIN_MODELS, tiers=DRAIN_TIERS,
        text=base_text().replace("shutdown_grace_ms: 2000", f"shutdown_grace_ms: {GRACE_MS}")))
    d = Proc("drain", cfg).wait_ready("/readyz")
    streams, got = {}, {}
    try:
        streams["chat"] = open_stream(d.port, "/v1/chat/completions",
                                      chat_body("slowstream", "drain chat", stream=True))
        streams["messages"] = open_stream(d.port, "/v1/messages", {
            "model": "slowstream", "max_tokens": 500, "stream": True,
            "messages": [{"role": "user", "content": "drain messages"}]})
        streams["responses"] = open_stream(d.port, "/v1/responses", {
            "model": "slowstream", "input": "drain responses", "stream": True})

        def call(name, body):
            try:
                got[name] = post(d.port, body, timeout=20)
            except OSError as e:
                got[name] = e

        slow = threading.Thread(target=call, args=("slow", chat_body("slowplain", "drain slow")))
        slow.start()
        half = threading.Thread(target=call, args=("half", chat_body("halfsec", "drain half")))
        half.start()
        time.sleep(0.3)  # both reached the provider
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)

        r = R.http_request(d.port, "GET", "/readyz", timeout=3)
        eq(r.status, 503, "/readyz during the drain")
        eq(r.json, {"status": "draining"}, "/readyz body during the drain")
        eq(r.h("connection"), "close", "Connection: close while draining")
        eq(R.http_request(d.port, "GET", "/healthz", timeout=3).status, 200, "/healthz during the drain")
        r = post(d.port, chat_body("budget", "after SIGTERM"), timeout=5)
        R.check_error(r, 503, "server_shutting_down", "a new request during the drain: ")
        eq(r.h("retry-after"), "1", "Retry-After of the refused request")
        r = post(d.port, {"model": "budget", "max_tokens": 10,
                          "messages": [{"role": "user", "content": "x"}]}, path="/v1/messages",
                 timeout=5)
        eq(r.status, 503, "a new /v1/messages request during the drain")
        eq(r.json.get("type"), "error", f"Anthropic's error shape: {R.short(r.body)}")

        half.join(10)
        r = got.get("half")
        check(isinstance(r, R.Resp), f"the request in flight at SIGTERM: {r!r}")
        eq(r.status, 200, "the request in flight at SIGTERM finishes")

        ends = {}
        for name, s in streams.items():
            evs = sse_events(s)
            ends[name] = time.monotonic() - t0
            check(evs, f"{name}: no event after SIGTERM")
            last_name, last = evs[-1]
            datas = [x for _, x in evs]
            check("[DONE]" not in datas, f"{name}: [DONE] after a cut")
            if name == "chat":
                j = json.loads(last)
                check("error" in j and "choices" not in j, f"chat: last event is not an error: {last[:200]}")
                eq(j["error"].get("type"), "server_error", "chat error type")
                check("shutting down" in j["error"].get("message", ""),
                      f"chat: the error says why: {last[:200]}")
            elif name == "messages":
                eq(last_name, "error", f"messages: last event {[n for n, _ in evs][-3:]}")
                eq(json.loads(last).get("type"), "error", "messages: error event data")
                check("message_stop" not in [n for n, _ in evs], "messages: no message_stop")
            else:
                names = [n for n, _ in evs]
                check(last_name in ("response.failed", "error"),
                      f"responses: last event {names[-3:]}")
                check("response.failed" in names, f"responses: no response.failed in {names[-4:]}")
                check("response.completed" not in names, "responses: no response.completed")
            # not cut before the grace period; well before the stream's own 20 s
            check(ends[name] >= GRACE_MS / 1000 - 0.3, f"{name} ended {ends[name]:.2f} s after SIGTERM")
            check(ends[name] < GRACE_MS / 1000 + 3, f"{name} ended {ends[name]:.2f} s after SIGTERM")
        slow.join(10)
        r = got.get("slow")
        check(isinstance(r, R.Resp), f"the slow plain request: {r!r}")
        R.check_error(r, 503, "server_shutting_down", "the slow request at the end of the grace period: ")
        rc = d.wait_exit(GRACE_MS / 1000 + 5)
        took = time.monotonic() - t0
        check(rc is not None, f"the daemon did not exit within {GRACE_MS / 1000 + 5:.1f} s")
        eq(rc, 0, f"exit status ({d.stderr()[-400:]})")
        check(took < GRACE_MS / 1000 + 3, f"exit {took:.2f} s after SIGTERM (grace {GRACE_MS} ms)")
        print(f"# streams ended {', '.join(f'{k} {v:.2f} s' for k, v in ends.items())} after "
              f"SIGTERM; exit after {took:.2f} s (grace {GRACE_MS} ms)", flush=True)
        cut = re.findall(r"grace period ended with (\d+) streams? and (\d+) requests? still open",
                         d.stderr())
        eq((sum(int(a) for a, _ in cut), sum(int(b) for _, b in cut)), (3, 1),
           "streams and requests the shards say they cut")
        d.no_sanitizer_report()
    finally:
        for s in streams.values():
            s.close()
        d.kill()


@test
def test_sigterm_idle_exits_at_once():
    """Nothing in flight: SIGTERM ends the process at once, whatever the
    grace period."""
    cfg = write("drain-idle.yaml", base_text().replace("shutdown_grace_ms: 2000",
                                                          "shutdown_grace_ms: 30000"))
    d = Proc("drain-idle", cfg).wait_ready("/readyz")
    try:
        eq(post(d.port, chat_body("budget", "before stop")).status, 200, "a request")
        t0 = time.monotonic()
        d.stop(timeout=10)
        took = time.monotonic() - t0
        check(took < 3, f"an idle daemon took {took:.2f} s to stop (grace 30 s)")
        d.no_sanitizer_report()
    finally:
        d.kill()


# ====================================================================== reload

class Load:
    """Client threads posting plain chat requests until stopped."""

    def __init__(self, port, n=3):
        self.port = port
        self.results = []
        self.lock = threading.Lock()
        self.stop_flag = False
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]

    def run(self, i):
        n = 0
        while not self.stop_flag:
            n += 1
            try:
                r = post(self.port, chat_body("budget", f"reload load t{i} n{n}"), timeout=15)
                res = (r.status, r.body[:200])
            except OSError as e:
                res = (0, repr(e))
            with self.lock:
                self.results.append(res)
            time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag = True
        for t in self.threads:
            t.join(20)
        return False


def model_ids(port):
    r = R.http_request(port, "GET", "/v1/models")
    eq(r.status, 200, "/v1/models")
    return {m["id"] for m in r.json["data"]}


def metric(port, name):
    r = R.http_request(port, "GET", "/metrics")
    eq(r.status, 200, "/metrics")
    for ln in r.body.decode().splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    raise Fail(f"{name} not in /metrics")


INVALID = [
    # (what, the file's text, a piece of the message that must be logged)
    ("yaml syntax", "server:\n  threads: [1\n", "YAML syntax error"),
    ("unknown key", None, 'unknown key "tierz"'),
    ("bad reference", None, 'no model named "nope"'),
]


@test
def test_reload_under_load_valid_and_invalid():
    """Ten reloads under load, alternating a valid file (a new tier each
    time, visible in /v1/models) and an invalid one: no request fails; an
    invalid file keeps the configuration running and the log says why,
    with file, line and column; the counters in /metrics agree."""
    path = os.path.join(E.tmp, "reload.yaml")
    write("reload.yaml", base_text())
    d = Proc("reload", path).wait_ready("/readyz")
    bad_seen = 0
    try:
        with Load(d.port) as load:
            for i in range(5):
                write("reload.yaml", with_extra(tiers=f"  reload-{i}: [good-mini]\n"))
                d.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while f"reload-{i}" not in model_ids(d.port):
                    check(time.monotonic() < deadline, f"reload {i}: the new tier never appeared")
                    time.sleep(0.05)
                what, text, needle = INVALID[i % len(INVALID)]
                if text is None and what == "unknown key":
                    text = with_extra(tiers="  tierz: [good-mini]\n").replace("\ntiers:\n", "\ntierz: {}\ntiers:\n", 1)
                elif text is None:
                    text = with_extra(tiers="  broken: [nope]\n")
                write("reload.yaml", text)
                before = d.stderr().count("reload failed; keeping the running configuration")
                d.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while d.stderr().count("reload failed; keeping the running configuration") == before:
                    check(time.monotonic() < deadline, f"reload {i} ({what}): no 'reload failed' line")
                    time.sleep(0.05)
                bad_seen += 1
                err = d.stderr()
                check(needle in err, f"reload {i} ({what}): the reason is not logged: {err[-600:]}")
                check(re.search(r"reload\.yaml:\d+:\d+: ", err),
                      f"reload {i} ({what}): no file:line:col in {err[-600:]}")
                ids = model_ids(d.port)
                check(f"reload-{i}" in ids, f"reload {i} ({what}): the running configuration changed")
                time.sleep(0.1)
        bad = [r for r in load.results if r[0] != 200]
        check(len(load.results) > 50, f"only {len(load.results)} requests during the reloads")
        check(not bad, f"{len(bad)} of {len(load.results)} requests failed during reloads: {bad[:3]}")
        eq(metric(d.port, "llmrouter_config_reload_errors_total"), bad_seen, "reload errors counted")
        eq(metric(d.port, "llmrouter_config_reloads_total"), 5, "reloads counted")
        d.stop()
        d.no_sanitizer_report()
    finally:
        d.kill()


# ====================================================================== privileges

def nobody():
    import pwd
    import grp
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid, grp.getgrgid(pw.pw_gid).gr_name


def free_low_port():
    for p in range(900, 1020):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise Fail("no free port below 1024")


def proc_ids(pid):
    """{task id: (uids, gids, groups)} from /proc/PID/task/*/status."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            st = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
        out[tid] = (st["Uid"].split(), st["Gid"].split(), st.get("Groups", "").split())
    return out


def public_dir():
    """A directory the unprivileged user can read (E.tmp is 0700 root)."""
    d = tempfile.mkdtemp(prefix="llmrouter-priv-")
    os.chmod(d, 0o755)
    return d


@root_test
def test_server_user_drops_root_after_binding():
    """As root, with server.user: nobody, on a port below 1024: the port is
    bound (as root), then every thread of the process runs as nobody (real,
    effective, saved and filesystem ids; nobody's group; no supplementary
    root group), and it serves."""
    uid, gid, gname = nobody()
    port = free_low_port()
    cfg = write("priv.yaml", with_extra(server="  user: nobody\n"))
    d = Proc("priv", cfg, port=port).wait_ready("/readyz")
    try:
        r = post(d.port, chat_body("budget", "as nobody"))
        eq(r.status, 200, "a request served after the drop")
        ids = proc_ids(d.proc.pid)
        check(len(ids) >= 3, f"expected the shard threads, found {len(ids)} tasks")
        for tid, (uids, gids, groups) in ids.items():
            eq(uids, [str(uid)] * 4, f"task {tid}: Uid (real, effective, saved, fs)")
            eq(gids, [str(gid)] * 4, f"task {tid}: Gid")
            check("0" not in groups, f"task {tid}: still in group 0: {groups}")
        d.stop()
        d.no_sanitizer_report()
    finally:
        d.kill()
    # server.group: a group other than the user's own
    cfg = write("priv-group.yaml", with_extra(server="  user: nobody\n  group: daemon\n"))
    import grp
    dgid = grp.getgrnam("daemon").gr_gid
    d = Proc("priv-group", cfg).wait_ready("/readyz")
    try:
        for tid, (uids, gids, groups) in proc_ids(d.proc.pid).items():
            eq(uids, [str(uid)] * 4, f"task {tid}: Uid")
            eq(gids, [str(dgid)] * 4, f"task {tid}: Gid with server.group: daemon")
        d.stop()
    finally:
        d.kill()


@root_test
def test_server_user_unknown_refused():
    """A user (or group) that does not exist: --check-config and the start
    both refuse, naming file, line and column."""
    for key, val, needle in (("user", "no-such-user-llmr", 'server.user: no user named "no-such-user-llmr"'),
                             ("group", "no-such-group-llmr", 'server.group: no group named "no-such-group-llmr"')):
        extra = f"  {key}: {val}\n" if key == "user" else f"  user: nobody\n  group: {val}\n"
        cfg = write(f"priv-bad-{key}.yaml", with_extra(server=extra))
        p = subprocess.run([E.bin, "-c", cfg, "--check-config"], capture_output=True, text=True,
                           env=dict(os.environ, SIM_URL=f"http://127.0.0.1:{E.sim_port}",
                                    SIM_KEY_GOOD=R.GOOD_KEY), timeout=30)
        eq(p.returncode, 1, f"--check-config with server.{key}: {val}")
        check(re.search(r"priv-bad-%s\.yaml:\d+:\d+: " % key + re.escape(needle), p.stderr),
              f"message: {p.stderr[-500:]}")
        d = Proc(f"priv-bad-{key}", cfg)
        rc = d.wait_exit(10)
        if rc is None:
            d.kill()
            raise Fail(f"started with server.{key}: {val}")
        check(rc != 0, f"exit status {rc} with server.{key}: {val}")
        check(needle in d.stderr(), f"start message: {d.stderr()[-500:]}")
    cfg = write("priv-group-only.yaml", with_extra(server="  group: daemon\n"))
    p = subprocess.run([E.bin, "-c", cfg, "--check-config"], capture_output=True, text=True,
                       env=dict(os.environ, SIM_URL="http://127.0.0.1:1", SIM_KEY_GOOD="x"), timeout=30)
    eq(p.returncode, 1, "server.group without server.user")
    check("server.group needs server.user" in p.stderr, p.stderr[-300:])


@root_test
def test_unprivileged_runs_and_cannot_switch():
    """Started as nobody (no root at all): it serves without server.user;
    with server.user naming another user it refuses to start and says why."""
    uid, gid, _ = nobody()
    pub = public_dir()
    try:
        path = os.path.join(pub, "unpriv.yaml")
        with open(path, "w") as f:
            f.write(with_extra(tail="\nobservability:\n  access_log: \"off\"\n"))
        os.chmod(path, 0o644)
        d = Proc("unpriv", path, user=(uid, gid)).wait_ready("/readyz")
        try:
            eq(post(d.port, chat_body("budget", "unprivileged")).status, 200, "served as nobody")
            for tid, (uids, _, _) in proc_ids(d.proc.pid).items():
                eq(uids[0], str(uid), f"task {tid} runs as nobody")
            d.stop()
            d.no_sanitizer_report()
        finally:
            d.kill()
        path2 = os.path.join(pub, "unpriv-switch.yaml")
        with open(path2, "w") as f:
            f.write(with_extra(server="  user: root\n", tail="\nobservability:\n  access_log: \"off\"\n"))
        os.chmod(path2, 0o644)
        d = Proc("unpriv-switch", path2, user=(uid, gid))
        rc = d.wait_exit(10)
        if rc is None:
            d.kill()
            raise Fail("an unprivileged daemon with server.user: root started")
        check(rc != 0, f"exit status {rc}")
        check("only root can switch users" in d.stderr(), f"message: {d.stderr()[-500:]}")
        # the same user it already runs as: fine
        path3 = os.path.join(pub, "unpriv-same.yaml")
        with open(path3, "w") as f:
            f.write(with_extra(server="  user: nobody\n", tail="\nobservability:\n  access_log: \"off\"\n"))
        os.chmod(path3, 0o644)
        d = Proc("unpriv-same", path3, user=(uid, gid)).wait_ready("/readyz")
        try:
            d.stop()
        finally:
            d.kill()
    finally:
        for fn in os.listdir(pub):
            os.unlink(os.path.join(pub, fn))
        os.rmdir(pub)


# ====================================================================== secrets

SECRETS = {
    "TEST_SEC_PROV": "sk-prov-SECRET-a1b2c3d4e5f6",
    "TEST_SEC_ANT": "sk-ant-SECRET-0f9e8d7c6b5a",
    "TEST_SEC_PROXY": "sk-proxy-SECRET-77aa88bb99cc",
    "TEST_SEC_ADMIN": "sk-admin-SECRET-1234abcd5678",
    "TEST_SEC_REDIS": "redispw-SECRET-55ee66ff",
}
WRONG_KEY = "sk-wrong-SECRET-deadbeef0042"  # a client's mistyped key
ALL_SECRETS = list(SECRETS.values()) + [R.GOOD_KEY]

SEC_PROVIDERS = """\
  echo401:    {type: openai, base_url: "${SIM_URL}/sim/echo_key=1/v1", api_key_env: TEST_SEC_PROV}
  echo400:    {type: openai, base_url: "${SIM_URL}/sim/echo_key=1,status=400/v1", api_key_env: TEST_SEC_PROV}
  echo422:    {type: openai, base_url: "${SIM_URL}/sim/echo_key=1,status=422/v1", api_key_env: TEST_SEC_PROV}
  echo200:    {type: openai, base_url: "${SIM_URL}/sim/echo_key=1,status=200/v1", api_key_env: TEST_SEC_PROV}
  echomid:    {type: openai, base_url: "${SIM_URL}/sim/echo_key=1,echo_after=3/v1", api_key_env: TEST_SEC_PROV}
  antecho401: {type: anthropic, base_url: "${SIM_URL}/sim/echo_key=1/v1", api_key_env: TEST_SEC_ANT}
  antecho400: {type: anthropic, base_url: "${SIM_URL}/sim/echo_key=1,status=400/v1", api_key_env: TEST_SEC_ANT}
  antecho200: {type: anthropic, base_url: "${SIM_URL}/sim/echo_key=1,status=200/v1", api_key_env: TEST_SEC_ANT}
  antechomid: {type: anthropic, base_url: "${SIM_URL}/sim/echo_key=1,echo_after=3/v1", api_key_env: TEST_SEC_ANT}
"""
SEC_MODELS = """\
  m-echo401:    {provider: echo401, model: sim-echo}
  m-echo400:    {provider: echo400, model: sim-echo}
  m-echo422:    {provider: echo422, model: sim-echo}
  m-echo200:    {provider: echo200, model: sim-echo}
  m-echomid:    {provider: echomid, model: sim-echo}
  m-antecho401: {provider: antecho401, model: claude-echo}
  m-antecho400: {provider: antecho400, model: claude-echo}
  m-antecho200: {provider: antecho200, model: claude-echo}
  m-antechomid: {provider: antechomid, model: claude-echo}
"""
SEC_TIERS = """\
  s-401:      [m-echo401]
  s-401-ok:   [m-echo401, good-mini]
  s-400:      [m-echo400]
  s-422:      [m-echo422]
  s-200:      [m-echo200]
  s-mid:      [m-echomid]
  a-401:      [m-antecho401]
  a-400:      [m-antecho400]
  a-200:      [m-antecho200]
  a-mid:      [m-antechomid]
  s-all:      [m-echo401, m-echo200, m-antecho401, m-antecho200]
"""


def sec_config(name, redis_port):
    tail = ("\ncache:\n  backend: redis\n"
            f"  redis_url: \"redis://:${{TEST_SEC_REDIS}}@127.0.0.1:{redis_port}/0\"\n"
            "\nkeys:\n  team: {key_env: TEST_SEC_PROXY, rpm: 100000}\n"
            "\nobservability:\n  admin_key_env: TEST_SEC_ADMIN\n"
            f"  access_log: \"{os.path.join(E.tmp, 'sec-access.log')}\"\n"
            "  sample_rate: 1\n"
            f"  sample_file: \"{os.path.join(E.tmp, 'sec-samples.jsonl')}\"\n")
    text = with_extra(providers=SEC_PROVIDERS, models=SEC_MODELS, tiers=SEC_TIERS, tail=tail,
                      text=base_text().replace("log_level: warn", "log_level: debug"))
    return write(name, text)


def leaks(text):
    return [k for k in ALL_SECRETS + [WRONG_KEY] if k in text]


class Seen:
    """Everything a client or an operator saw, in one place."""

    def __init__(self):
        self.parts = []

    def add(self, what, data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        self.parts.append((what, data))

    def resp(self, what, r):
        self.add(what + " headers", "\n".join(f"{k}: {v}" for k, v in r.headers.items()))
        self.add(what + " body", r.body)

    def check(self):
        found = []
        for what, text in self.parts:
            for k in leaks(text):
                i = text.find(k)
                found.append(f"{what}: {k[:12]}... in ...{text[max(0, i - 80):i + 40]!r}")
        check(not found, f"{len(found)} leaks:\n  " + "\n  ".join(found[:60]))


def stream_text(port, path, body, headers):
    s = R.RawHTTP(port, "POST", path, json.dumps(body).encode(), headers=headers, timeout=15)
    try:
        s.read_head()
        return s.status, "\n".join(f"{k}: {v}" for k, v in s.headers.items()) + "\n" + \
            s.read_all().decode("utf-8", "replace")
    finally:
        s.close()


@test
def test_secrets_never_leak():
    """Provider keys (OpenAI and Anthropic types), proxy keys, the admin
    key, a Redis password and a client's wrong key, all distinctive, with
    providers that repeat the key they were sent in their errors (401, a
    passed-through 400/422, a 200 that is an error, an error event first
    and mid-stream), through all three doors, plain and streamed; then
    /metrics, /dashboard, /v1/router/stats, /readyz, /v1/models, the access
    log, the sample file, stderr at debug level, --check-config and
    configuration errors: none of the values appears anywhere."""
    os.environ.update(SECRETS)
    redis_port = R.free_port()  # nobody there: the cache fails over to misses
    cfg = sec_config("secrets.yaml", redis_port)
    d = Proc("secrets", cfg).wait_ready("/readyz")
    seen = Seen()
    good = {"Authorization": f"Bearer {SECRETS['TEST_SEC_PROXY']}"}
    try:
        # the proxy key: missing, wrong, right (Bearer and x-api-key)
        for what, h in (("no key", {}), ("wrong key", {"Authorization": f"Bearer {WRONG_KEY}"}),
                        ("wrong x-api-key", {"x-api-key": WRONG_KEY})):
            for path in ("/v1/chat/completions", "/v1/messages", "/v1/responses"):
                r = post(d.port, {"model": "budget", "max_tokens": 20, "input": "x",
                                  "messages": [{"role": "user", "content": "x"}]},
                         headers=h, path=path)
                eq(r.status, 401, f"{what} on {path}")
                seen.resp(f"{what} {path}", r)
        tiers = ["s-401", "s-401-ok", "s-400", "s-422", "s-200", "s-mid", "a-401", "a-400",
                 "a-200", "a-mid", "s-all"]
        statuses = {}
        for tier in tiers:
            for stream in (False, True):
                bodies = {
                    "/v1/chat/completions": chat_body(tier, f"secrets {tier}", stream=stream),
                    "/v1/messages": {"model": tier, "max_tokens": 50, "stream": stream,
                                     "messages": [{"role": "user", "content": f"secrets {tier}"}]},
                    "/v1/responses": {"model": tier, "input": f"secrets {tier}", "stream": stream},
                }
                for path, body in bodies.items():
                    hdrs = dict(good)
                    if path == "/v1/messages":
                        hdrs = {"x-api-key": SECRETS["TEST_SEC_PROXY"]}
                    if stream:
                        st, text = stream_text(d.port, path, body, hdrs)
                        seen.add(f"{tier} {path} stream", text)
                    else:
                        r = post(d.port, body, headers=hdrs, path=path)
                        st = r.status
                        seen.resp(f"{tier} {path}", r)
                    statuses[(tier, path, stream)] = st
        # the providers did echo the keys (else this test proves nothing)
        sim = [json.dumps(x) for x in E.sim_requests()]
        check(any(SECRETS["TEST_SEC_PROV"] in x for x in sim), "the sim never saw the provider key")
        check(any(SECRETS["TEST_SEC_ANT"] in x for x in sim), "the sim never saw the Anthropic key")
        eq(statuses[("s-401-ok", "/v1/chat/completions", False)], 200, "failover past the 401")
        eq(statuses[("s-400", "/v1/chat/completions", False)], 400, "a 400 passed through")
        eq(statuses[("s-401", "/v1/chat/completions", False)], 502, "exhausted chain")
        eq(statuses[("s-mid", "/v1/chat/completions", True)], 200, "the mid-stream error's stream")
        admin = {"Authorization": f"Bearer {SECRETS['TEST_SEC_ADMIN']}"}
        for path in ("/metrics", "/dashboard", "/v1/router/stats", "/readyz", "/healthz", "/v1/models"):
            r = R.http_request(d.port, "GET", path, headers=good if path == "/v1/models" else admin)
            check(r.status in (200, 503), f"{path}: {r.status}")
            seen.resp(path, r)
        time.sleep(0.3)  # the access log and samples are written at completion
        d.stop()
        d.no_sanitizer_report()
        seen.add("stderr (debug)", d.stderr())
        seen.add("stdout", d.stdout())
        for fn in ("sec-access.log", "sec-samples.jsonl"):
            with open(os.path.join(E.tmp, fn), "rb") as f:
                data = f.read()
            check(len(data) > 100, f"{fn} is (nearly) empty")
            seen.add(fn, data)
        # --check-config, and configuration errors whose values come from
        # the environment
        env = dict(os.environ, SIM_URL=f"http://127.0.0.1:{E.sim_port}", SIM_KEY_GOOD=R.GOOD_KEY)
        p = subprocess.run([E.bin, "-c", cfg, "--check-config"], capture_output=True, text=True,
                           env=env, timeout=30)
        eq(p.returncode, 0, f"--check-config: {p.stderr[-300:]}")
        seen.add("--check-config", p.stdout + p.stderr)
        bad = write("secrets-bad.yaml", with_extra(
            server="  log_level: \"${TEST_SEC_PROXY}\"\n",
            providers='  oops: {type: openai, base_url: "${TEST_SEC_PROV}", api_key_env: TEST_SEC_PROV}\n'
                      '  oops2: {type: openai, base_url: "http://x", api_key: "${TEST_SEC_ANT}"}\n'
                      '  oops3: {type: openai, base_url: "http://x", api_key_env: "sk-ant-SECRET-0f9e8d7c6b5a"}\n',
            tail=f"\ncache:\n  backend: redis\n  redis_url: \"redis://:${{TEST_SEC_REDIS}}@bad host:1/x\"\n"
                 "\nkeys:\n  k1: {key_sha256: \"${TEST_SEC_ADMIN}\"}\n"))
        for args in (["--check-config"], []):
            p = subprocess.run([E.bin, "-c", bad, *args], capture_output=True, text=True, env=env,
                               timeout=30)
            check(p.returncode != 0, f"the bad file was accepted ({args})")
            check(p.stderr.count("secrets-bad.yaml:") >= 4, f"errors: {p.stderr[-800:]}")
            seen.add(f"config errors {args}", p.stdout + p.stderr)
        seen.check()
    finally:
        d.kill()


# ====================================================================== main

def main():
    for name in SKIPPED:
        print(f"skipped - {name}: skipped (not root)", flush=True)
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]))


if __name__ == "__main__":
    sys.exit(main())
