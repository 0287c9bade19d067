#!/usr/bin/env python3
"""Integration tests of operating the daemon: readiness, the admin key, and
configuration messages. The real daemon over real sockets, the simulated
provider behind it.

    python3 tests/integration/test_ops.py [-k SUBSTRING]... [-v] [--keep-logs]
    LLMROUTER_BIN=build/asan/llmrouter python3 tests/integration/test_ops.py

Covers: GET /readyz 200 listing every tier's usable models; 503 naming the
tier and the unset provider key variable (and still 503 after SIGHUP: a
reload keeps the environment, which the warning now says); /dashboard,
/v1/router/stats and /metrics behind the admin key once proxy keys are
configured (401 in OpenAI's shape for no key and for a plain proxy key;
Bearer or Basic admin key; the metrics token opens /metrics only; a key with
admin: true), open without keys; the dashboard rendered by headless
Chromium with the admin key; "did you mean" for a mistyped key, tabs named,
the relative default -c path explained; --listen 127.0.0.1:0 serving on one
printed port from every thread.

Prints "ok - name" / "not ok - name: reason" per test and one closing line
"N passed, M failed". Reuses tests/integration/run.py. Python 3 standard
library only (plus chromium for the dashboard test).
"""
import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
from run import Fail, check, eq, chat_body  # noqa: E402

BASE_CONFIG = os.path.join(HERE, "llmrouter-test.yaml")
TESTS = []
E = None

ADMIN_KEY = "sk-admin-ops-0123456789"
OPS_KEY = "sk-ops-team-admin-flag-42"    # a proxy key with admin: true
USER_KEY = "sk-plain-user-key-777"        # a plain proxy key
METRICS_TOKEN = "prom-scrape-token-xyz"   # given as its SHA-256


def test(fn):
    TESTS.append(fn)
    return fn


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def base_text():
    with open(BASE_CONFIG) as f:
        return f.read()


def write(name, text):
    path = os.path.join(E.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def admin_config(name="admin.yaml"):
    return write(name, base_text() + (
        "\nobservability:\n"
        "  admin_key_env: TEST_OPS_ADMIN\n"
        f"  metrics_token_sha256: \"{sha(METRICS_TOKEN)}\"\n"
        "\nkeys:\n"
        "  user: {key_env: TEST_OPS_USER}\n"
        f"  ops: {{key_sha256: \"{sha(OPS_KEY)}\", admin: true}}\n"))


def admin_env():
    os.environ["TEST_OPS_ADMIN"] = ADMIN_KEY
    os.environ["TEST_OPS_USER"] = USER_KEY


def get(d, path, headers=None):
    return R.http_request(d.port, "GET", path, headers=headers)


def bearer(k):
    return {"Authorization": f"Bearer {k}"}


def basic(user, k):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{k}".encode()).decode()}


def stop(d):
    ok, msg = d.stop()
    check(ok, f"{d.tag}: {msg}")


class Proc:
    """The daemon started by hand (the harness's Daemon waits for /readyz
    200, which a not-ready daemon never gives): waits for /healthz, or for a
    line on stderr."""

    def __init__(self, tag, args, env=None, cwd=None):
        self.tag = tag
        self.err_path = os.path.join(E.tmp, f"{tag}.stderr")
        self.errf = open(self.err_path, "wb")
        e = dict(os.environ, SIM_URL=f"http://127.0.0.1:{E.sim_port}", SIM_KEY_GOOD=R.GOOD_KEY)
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        self.proc = subprocess.Popen([E.bin] + args, stdout=subprocess.DEVNULL, stderr=self.errf,
                                     stdin=subprocess.DEVNULL, cwd=cwd or R.ROOT, env=e)
        self.port = None

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pred, what, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail(f"{self.tag} exited with {self.proc.returncode} while waiting for {what}: "
                           f"{self.stderr()[-600:]}")
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        raise Fail(f"{self.tag}: no {what} within {timeout} s: {self.stderr()[-600:]}")

    def wait_healthz(self):
        def up():
            try:
                return R.http_request(self.port, "GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False
        self.wait_for(up, "/healthz 200")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Fail(f"{self.tag} did not stop within 10 s of SIGTERM")
            eq(rc, 0, f"{self.tag} exit status after SIGTERM")
        self.errf.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.errf.closed:
            self.errf.close()


def start_on_port(tag, config, env=None):
    port = R.free_port()
    p = Proc(tag, ["-c", config, "--listen", f"127.0.0.1:{port}"], env=env)
    p.port = port
    p.wait_healthz()
    return p


def readyz_json(r, what):
    R.check_json_ct(r, what + " ")
    try:
        return json.loads(r.body)
    except ValueError:
        raise Fail(f"{what}: body is not JSON: {R.short(r.body)}")


# ------------------------------------------------------------------ item 10: readiness

@test
def test_readyz_lists_usable_models():
    d = E.new_daemon(tag="ops-ready").start()
    try:
        r = get(d, "/readyz")
        eq(r.status, 200, "/readyz with every key set")
        j = readyz_json(r, "/readyz")
        eq(j.get("status"), "ready", "status")
        tiers = {t["name"]: t for t in j.get("tiers") or []}
        check("standard" in tiers and "keyless" in tiers, f"tiers listed: {sorted(tiers)}")
        eq(tiers["standard"].get("ready"), True, "tier standard ready")
        eq(tiers["standard"].get("usable_models"), ["good-mini", "good-large"], "standard's usable models")
        check(all(t.get("ready") for t in tiers.values()), "every tier ready")
        rules = {x["name"]: x for x in j.get("rules") or []}
        eq(rules.get("custom-chain", {}).get("usable_models"), ["good-large", "good-mini"],
           "the rule's explicit chain is listed")
        check("error" not in j, "no error when ready")
        check(R.GOOD_KEY not in r.body.decode(), "the key's value is not shown")
        eq(get(d, "/healthz").status, 200, "/healthz")
        stop(d)
    finally:
        d.kill()


@test
def test_readyz_503_names_unset_key_and_reload_keeps_it():
    p = start_on_port("ops-notready", BASE_CONFIG, env={"SIM_KEY_GOOD": None})
    try:
        r = R.http_request(p.port, "GET", "/readyz")
        eq(r.status, 503, "/readyz with SIM_KEY_GOOD unset")
        j = readyz_json(r, "/readyz")
        eq(j.get("status"), "not_ready", "status")
        err = j.get("error") or {}
        for k in ("message", "type", "param", "code"):
            check(k in err, f"error.{k} missing: {R.short(r.body)}")
        eq(err.get("code"), "not_ready", "error.code")
        check("tier standard has no usable model" in err["message"], f"message: {err['message'][:300]}")
        tiers = {t["name"]: t for t in j.get("tiers") or []}
        st = tiers.get("standard") or {}
        eq(st.get("ready"), False, "tier standard not ready")
        eq(st.get("usable_models"), [], "standard has no usable model")
        check("model good-mini: provider good's api_key_env SIM_KEY_GOOD is not set" in (st.get("missing") or []),
              f"standard's missing: {st.get('missing')}")
        eq(tiers.get("keyless", {}).get("ready"), True, "a keyless tier is ready")
        # a tier with one usable model is ready and still names the missing one
        f500 = tiers.get("f500") or {}
        eq(f500.get("ready"), True, "f500 (m500 keyless) ready")
        check(any("SIM_KEY_GOOD" in m for m in f500.get("missing") or []), f"f500 missing: {f500}")
        rules = {x["name"]: x for x in j.get("rules") or []}
        eq(rules.get("custom-chain", {}).get("ready"), False, "the rule's chain is not ready")
        # liveness is not readiness
        eq(R.http_request(p.port, "GET", "/healthz").status, 200, "/healthz stays 200")
        # the advice is true: a reload keeps the environment, still not ready
        err_text = p.stderr()
        check("SIM_KEY_GOOD" in err_text and "restart" in err_text,
              f"the warning says to restart: {err_text[-500:]}")
        check("until it is set and the configuration reloaded" not in err_text,
              "the warning still promises a reload helps")
        check('tier "standard" has no usable model' in err_text, "a warning names the tier")
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        eq(R.http_request(p.port, "GET", "/readyz").status, 503, "still 503 after SIGHUP")
        p.stop()
    finally:
        p.kill()


# ------------------------------------------------------------------ item 11: admin key

def check_401(r, what, www=True):
    err = R.check_error(r, 401, "invalid_api_key", what + ": ")
    eq(err["type"], "invalid_request_error", f"{what}: error.type")
    if www:
        check((r.h("www-authenticate") or "").startswith("Basic "),
              f"{what}: WWW-Authenticate {r.h('www-authenticate')!r}")


ADMIN_PATHS = ("/dashboard", "/v1/router/stats", "/router/stats", "/metrics")


@test
def test_admin_endpoints_need_the_admin_key():
    admin_env()
    d = E.new_daemon(tag="ops-admin", config=admin_config()).start()
    try:
        for path in ADMIN_PATHS:
            check_401(get(d, path), f"{path} without a key")
            check_401(get(d, path, bearer(USER_KEY)), f"{path} with a plain proxy key")
            check_401(get(d, path, bearer(ADMIN_KEY[:-1])), f"{path} with a wrong key")
            check_401(get(d, path, {"Authorization": ADMIN_KEY}), f"{path} without a scheme")
            eq(get(d, path, bearer(ADMIN_KEY)).status, 200, f"{path} with the admin key")
            eq(get(d, path, basic("anyone", ADMIN_KEY)).status, 200, f"{path} with Basic admin key")
            eq(get(d, path, bearer(OPS_KEY)).status, 200, f"{path} with a key with admin: true")
            eq(R.http_request(d.port, "HEAD", path, headers=bearer(ADMIN_KEY)).status, 200, f"HEAD {path}")
        # the metrics token opens /metrics only
        r = get(d, "/metrics", bearer(METRICS_TOKEN))
        eq(r.status, 200, "/metrics with the metrics token")
        check("llmrouter_requests_total" in r.body.decode(), "metrics body")
        check_401(get(d, "/v1/router/stats", bearer(METRICS_TOKEN)), "stats with the metrics token")
        check_401(get(d, "/dashboard", bearer(METRICS_TOKEN)), "dashboard with the metrics token")
        # the admin key is not a proxy key; proxy keys still work
        body = json.dumps(chat_body("auto", "admin is not a proxy key")).encode()
        r = R.http_request(d.port, "POST", "/v1/chat/completions", body, headers=bearer(ADMIN_KEY))
        check_401(r, "chat with the admin key", www=False)
        r = R.http_request(d.port, "POST", "/v1/chat/completions", body, headers=bearer(USER_KEY))
        eq(r.status, 200, "chat with a proxy key")
        r = R.http_request(d.port, "POST", "/v1/chat/completions", body, headers=bearer(OPS_KEY))
        eq(r.status, 200, "chat with the admin: true key")
        # the stats are the real ones
        s = json.loads(get(d, "/v1/router/stats", bearer(ADMIN_KEY)).body)
        check(s["totals"]["requests"] >= 2, f"stats count the requests: {s['totals']}")
        # probes stay open (orchestrators cannot send keys)
        eq(get(d, "/healthz").status, 200, "/healthz without a key")
        eq(get(d, "/readyz").status, 200, "/readyz without a key")
        # a key in the query string is not a credential
        check_401(get(d, f"/v1/router/stats?key={ADMIN_KEY}"), "?key= in the URL")
        stop(d)
        text = d.stderr_text()
        for secret in (ADMIN_KEY, OPS_KEY, USER_KEY, METRICS_TOKEN):
            check(secret not in text, "a secret reached the log")
    finally:
        d.kill()


@test
def test_admin_endpoints_open_without_keys():
    d = E.new_daemon(tag="ops-open").start()
    try:
        for path in ADMIN_PATHS:
            eq(get(d, path).status, 200, f"{path} without keys (loopback-only mode)")
        stop(d)
    finally:
        d.kill()


@test
def test_keys_without_admin_key_warns():
    cfg = write("nokeyadmin.yaml", base_text() + "\nkeys:\n  user: {key_env: TEST_OPS_USER}\n")
    admin_env()
    p = subprocess.run([E.bin, "-c", cfg, "--check-config"], capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, SIM_URL="http://127.0.0.1:9", SIM_KEY_GOOD="k"))
    eq(p.returncode, 0, "a warning, not an error")
    check("no usable admin key" in p.stderr and "observability.admin_key_env" in p.stderr,
          f"the warning says how to open the admin endpoints: {p.stderr[-400:]}")


@test
def test_dashboard_renders_with_the_admin_key_in_chromium():
    exe = None
    for n in ("chromium", "chromium-browser", "google-chrome"):
        exe = exe or R.shutil.which(n)
    if exe is None:
        raise Fail("chromium is not installed (apt-get install -y chromium)")
    admin_env()
    d = E.new_daemon(tag="ops-dash", config=admin_config("dash.yaml")).start()
    try:
        body = json.dumps(chat_body("auto", "one request for the dashboard")).encode()
        eq(R.http_request(d.port, "POST", "/v1/chat/completions", body, headers=bearer(USER_KEY)).status,
           200, "a request")
        profile = tempfile.mkdtemp(prefix="ops-chromium-", dir=E.tmp)
        # the browser's Basic credentials, as after its password prompt
        url = f"http://admin:{ADMIN_KEY}@127.0.0.1:{d.port}/dashboard"
        p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                            f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
                           capture_output=True, timeout=90)
        dom = p.stdout.decode("utf-8", "replace")
        check(p.returncode == 0 and "<html" in dom, f"chromium --dump-dom failed ({p.returncode})")
        m = re.search(r'id="total-requests"[^>]*>([^<]*)<', dom)
        check(m and m.group(1).strip() == "1", f"total-requests shows {m and m.group(1)!r}: "
              "the page's fetch of /v1/router/stats did not carry the key")
        m = re.search(r'id="status"[^>]*>([^<]*)<', dom)
        check(m and m.group(1).startswith("updated"), f"status line {m and m.group(1)!r}")
        stop(d)
        check(ADMIN_KEY not in d.stderr_text(), "the admin key reached the log")
    finally:
        d.kill()


# ------------------------------------------------------------------ item 14: configuration messages

def check_config(text, name):
    path = write(name, text)
    p = subprocess.run([E.bin, "-c", path, "--check-config"], capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, SIM_URL="http://127.0.0.1:9", SIM_KEY_GOOD="k"))
    check(p.returncode != 0, f"{name} must be refused")
    return p.stderr


@test
def test_unknown_key_did_you_mean():
    text = base_text().replace("  threads: 2\n", "  thraeds: 2\n", 1)
    check(text != base_text(), "test bug: no threads line")
    err = check_config(text, "typo.yaml")
    line = 1 + text[:text.index("thraeds")].count("\n")
    check(re.search(r'typo\.yaml:%d:3: unknown key "thraeds" in server \(expected one of: [^)]*\); '
                    r'did you mean "threads"\?' % line, err), f"message: {err[-500:]}")
    err = check_config(base_text().replace("\ncache:\n", "\ncahce:\n", 1), "typo2.yaml")
    check('did you mean "cache"?' in err, f"top-level suggestion: {err[-400:]}")


@test
def test_tab_indentation_named():
    text = base_text().replace("\n  threads: 2\n", "\n\tthreads: 2\n", 1)
    line = 1 + text[:text.index("\tthreads")].count("\n")
    err = check_config(text, "tab.yaml")
    check(f"tab.yaml:{line}:1: YAML syntax error: tabs are not allowed for indentation in YAML "
          f"(line {line} column 1)" in err, f"message: {err[-400:]}")


@test
def test_default_config_path_explained():
    cwd = tempfile.mkdtemp(prefix="ops-cwd-", dir=E.tmp)
    p = subprocess.run([os.path.abspath(E.bin), "--check-config"], capture_output=True, text=True, timeout=20,
                       cwd=cwd)
    check(p.returncode != 0, "no file: non-zero exit")
    check("config/llmrouter.yaml" in p.stderr, f"names the default path: {p.stderr!r}")
    check("relative to the current directory" in p.stderr and cwd in p.stderr,
          f"says it is relative to {cwd}: {p.stderr!r}")
    check("-c FILE" in p.stderr, f"suggests -c: {p.stderr!r}")


@test
def test_listen_port_zero():
    p = Proc("ops-port0", ["-c", BASE_CONFIG, "--listen", "127.0.0.1:0", "--threads", "2"])
    try:
        m = p.wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", p.stderr()),
                       "a 'listening on 127.0.0.1:PORT' line")
        port = int(m.group(1))
        check(port != 0, "a real port is printed")
        p.port = port
        # both threads listen on that port: with SO_REUSEPORT the kernel spreads
        # new connections over them, so many connections all answer
        for i in range(20):
            eq(R.http_request(port, "GET", "/readyz").status, 200, f"connection {i + 1}")
        out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
        if out.returncode == 0:
            eq(len(out.stdout.strip().splitlines()), 2, f"two listening sockets on :{port}: {out.stdout!r}")
        body = json.dumps(chat_body("auto", "on an ephemeral port")).encode()
        eq(R.http_request(port, "POST", "/v1/chat/completions", body).status, 200, "a chat request")
        # a reload of the same file is no listen change
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        eq(R.http_request(port, "GET", "/healthz").status, 200, "after SIGHUP")
        check("take effect only on restart" not in p.stderr(), f"false reload warning: {p.stderr()[-300:]}")
        p.stop()
    finally:
        p.kill()


# ------------------------------------------------------------------ main

def main():
    return R.run_suite(TESTS, modules=(R, sys.modules[__name__]))


if __name__ == "__main__":
    sys.exit(main())
