"""xg2gd end to end: the real daemon over HTTP on 127.0.0.1.

Run by meson (suite 'integration') as
    python3 -m pytest tests/integration/test_daemon.py --xg2gd=PATH --xg2g=PATH
Every daemon, redis-server and Prometheus server here is started by the test
on a spare port and stopped by pid.
"""
import http.client
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

ADMIN = "admin-token-0123456789"
WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
TOKENS = f"{ADMIN}=v3:admin;{WRITER}=v3:write;{READER}=v3:read"


def spare_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One xg2gd process; stop() ends it (SIGTERM, then SIGKILL) and returns its exit code."""

    def __init__(self, binary, tmp_path, env=None, args=(), wait_ready=True):
        self.port = spare_port()
        self.tmp = tmp_path
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", ""),
                "XG2G_LISTEN": f"127.0.0.1:{self.port}",
                "XG2G_STORE": f"lmdb:{tmp_path}/store",
                "XG2G_API_TOKENS": TOKENS,
                "XG2G_LOG_LEVEL": "info"}
        full.update(env or {})
        full = {k: v for k, v in full.items() if v is not None}
        self.stderr_path = tmp_path / f"xg2gd-{self.port}.log"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([binary, *args], env=full, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.ready_line = ""
        if wait_ready:
            self.ready_line = self.proc.stdout.readline()
            assert self.ready_line.startswith("xg2gd: ready on "), self.log()

    def log(self):
        self.stderr.flush()
        return self.stderr_path.read_text()

    def connection(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        if own:
            conn.close()
        doc = None
        if resp.getheader("Content-Type", "").startswith("application/json") and data:
            doc = json.loads(data)
        return resp.status, doc, resp, data

    def start(self, service, token=WRITER, key=None, conn=None):
        body = {"type": "stream.start", "serviceRef": service}
        headers = {"Idempotency-Key": key} if key else None
        return self.request("POST", "/api/v3/intents", body, token, headers, conn)

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode


@pytest.fixture
def xg2gd(request):
    return request.config.getoption("--xg2gd")


@pytest.fixture
def daemons(xg2gd, tmp_path):
    started = []

    def make(env=None, args=(), wait_ready=True, sub=None):
        where = tmp_path / (sub or f"d{len(started)}")
        where.mkdir(exist_ok=True)
        d = Daemon(xg2gd, where, env, args, wait_ready)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def test_help_lists_every_variable(xg2gd):
    out = subprocess.run([xg2gd, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for name in ("XG2G_LISTEN", "XG2G_STORE", "XG2G_TUNER_SLOTS", "XG2G_API_TOKENS",
                 "XG2G_ALLOW_QUERY_TOKENS", "XG2G_RATELIMIT_RPS", "XG2G_RATELIMIT_BURST",
                 "XG2G_RATELIMIT_WHITELIST", "XG2G_TRUSTED_PROXIES", "XG2G_RECEIVER_URL",
                 "XG2G_TLS_CERT", "XG2G_TLS_KEY", "XG2G_LOG_LEVEL", "XG2G_METRICS_SCOPE"):
        assert name in out.stdout


@pytest.mark.parametrize("env, needle", [
    ({"XG2G_RATELIMIT_WHITELIST": "10.0.0.0/33"}, "XG2G_RATELIMIT_WHITELIST"),
    ({"XG2G_TRUSTED_PROXIES": "not-an-ip"}, "XG2G_TRUSTED_PROXIES"),
    ({"XG2G_API_TOKENS": "justatoken"}, "XG2G_API_TOKENS"),
    ({"XG2G_API_TOKENS": "tok=v3:bogus"}, "XG2G_API_TOKENS"),
    ({"XG2G_STORE": "ftp://nowhere"}, "XG2G_STORE"),
    ({"XG2G_TUNER_SLOTS": ""}, "XG2G_TUNER_SLOTS"),
    ({"XG2G_TUNER_SLOTS": "3-1"}, "XG2G_TUNER_SLOTS"),
    ({"XG2G_RATELIMIT_RPS": "fast"}, "XG2G_RATELIMIT_RPS"),
    ({"XG2G_LISTEN": "localhost"}, "XG2G_LISTEN"),
    ({"XG2G_LOG_LEVEL": "loud"}, "XG2G_LOG_LEVEL"),
    ({"XG2G_TLS_CERT": "/nonexistent/cert.pem", "XG2G_TLS_KEY": "/nonexistent/key.pem"},
     "XG2G_TLS"),
])
def test_bad_configuration_stops_before_listening(daemons, env, needle):
    d = daemons(env, wait_ready=False)
    code = d.proc.wait(timeout=30)
    assert code == 2, d.log()
    lines = [l for l in d.log().splitlines() if " error: " in l]
    assert len(lines) == 1 and needle in lines[0], d.log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.port), timeout=1).close()


def test_config_file_keys_and_unknown_key(daemons, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"tuner_slots": "0", "ratelimit_rps": 100, "log_level": "warn"}))
    d = daemons(args=("--config", str(good)))
    assert d.start("1:0:1:A")[0] == 202
    assert d.start("1:0:1:B")[0] == 409  # one slot, from the file
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"listen": "127.0.0.1:1", "tuner_slotz": "0"}))
    e = daemons(args=("--config", str(bad)), wait_ready=False)
    assert e.proc.wait(timeout=30) == 2
    assert "unknown key 'tuner_slotz'" in e.log()


def test_auth_rules(daemons):
    d = daemons()
    status, doc, resp, _ = d.request("GET", "/api/v3/sessions")
    assert status == 401 and doc["code"] == "UNAUTHORIZED" and resp.getheader("X-Request-ID")
    assert d.request("GET", "/api/v3/sessions", token="wrong-token-0123456789")[0] == 401
    assert d.request("GET", "/api/v3/sessions", headers={"Authorization": "Bearer "})[0] == 401
    assert d.request("GET", "/api/v3/sessions", token=READER)[0] == 403
    assert d.request("GET", "/api/v3/sessions", token=ADMIN)[0] == 200
    assert d.start("1:0:1:1", token=READER)[0] == 403
    status, doc, _, _ = d.start("1:0:1:1", token=WRITER)
    assert status == 202
    sid = doc["sessionId"]
    # The cookie is the second way in; the query token is off by default.
    assert d.request("GET", f"/api/v3/sessions/{sid}",
                     headers={"Cookie": f"xg2g_session={READER}"})[0] == 200
    assert d.request("GET", f"/api/v3/sessions/{sid}?token={READER}")[0] == 401
    # No token ever reaches the log or the metrics.
    metrics = d.request("GET", "/metrics")[3].decode()
    assert "xg2g_v3_http_request_duration_seconds" in metrics
    for token in (ADMIN, WRITER, READER):
        assert token not in metrics and token not in d.log()


def test_rate_limit_then_recovery(daemons):
    d = daemons({"XG2G_RATELIMIT_RPS": "2", "XG2G_RATELIMIT_BURST": "3"})
    statuses = [d.request("GET", "/api/v3/sessions", token=ADMIN)[:3] for _ in range(5)]
    assert [s[0] for s in statuses[:3]] == [200, 200, 200]
    status, doc, resp = statuses[3]
    assert status == 429 and doc["code"] == "RATE_LIMIT_EXCEEDED"
    retry = int(resp.getheader("Retry-After"))
    assert 1 <= retry <= 2 and resp.getheader("RateLimit-Policy") and resp.getheader("RateLimit")
    # /healthz is never limited.
    assert d.request("GET", "/healthz")[0] == 200
    time.sleep(retry)
    assert d.request("GET", "/api/v3/sessions", token=ADMIN)[0] == 200


def test_idempotent_replay_and_busy_tuners(daemons):
    d = daemons({"XG2G_TUNER_SLOTS": "0"})
    first = d.start("1:0:1:10", key="key-1")
    again = d.start("1:0:1:10", key="key-1")
    assert first[0] == 202 and again[0] == 202
    assert first[1]["replay"] is False and again[1]["replay"] is True
    assert again[1]["sessionId"] == first[1]["sessionId"]
    assert d.start("1:0:1:11", key="key-1")[0] == 422
    status, doc, resp, _ = d.start("1:0:1:12")
    assert status == 409 and doc["code"] == "LEASE_BUSY" and resp.getheader("Retry-After")
    status, doc, _, _ = d.start("1:0:1:10")
    assert status == 409 and doc["details"]["sessionId"] == first[1]["sessionId"]
    # A stop frees the tuner.
    sid = first[1]["sessionId"]
    status, doc, _, _ = d.request("POST", "/api/v3/intents",
                                  {"type": "stream.stop", "sessionId": sid}, WRITER)
    assert status == 202 and doc["state"] in ("STOPPING", "STOPPED")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = d.start("1:0:1:12")[0]
        if status == 202:
            break
        time.sleep(0.05)
    assert status == 202


def test_many_keep_alive_connections_are_all_answered(daemons):
    # Hundreds of keep-alive connections, each sending request after request:
    # every one is answered (the daemon's connection limit is split over its
    # HTTP threads; too small a share once left connections unserved).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    connections, rounds = 600, 25
    if soft < connections + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 256), hard))
    d = daemons({})
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    sel = selectors.DefaultSelector()
    conns = []
    try:
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            conns.append(s)
            s.setblocking(False)
            s.send(request)
            sel.register(s, selectors.EVENT_READ, {"buf": bytearray(), "left": rounds})
        done = 0
        deadline = time.monotonic() + 60
        while done < connections and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                state = key.data
                data = key.fileobj.recv(65536)
                assert data, "the daemon closed a keep-alive connection"
                state["buf"].extend(data)
                # /healthz answers are small: one recv holds whole answers.
                while b"\r\n\r\n" in state["buf"]:
                    head, _, rest = bytes(state["buf"]).partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200"), head[:80]
                    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                    if len(rest) < length:
                        break
                    state["buf"] = bytearray(rest[length:])
                    state["left"] -= 1
                    if state["left"] == 0:
                        sel.unregister(key.fileobj)
                        done += 1
                    else:
                        key.fileobj.send(request)
        assert done == connections, (
            f"{connections - done} of {connections} connections were still waiting after 60 s")
    finally:
        sel.close()
        for s in conns:
            s.close()


def test_writes_answered_by_workers_on_keep_alive_connections(daemons):
    # On LMDB the daemon hands each write (and each listing) to a worker
    # thread and suspends its connection meanwhile. Many keep-alive
    # connections mixing starts, reads and stops: every answer comes back on
    # its own connection, in order, and the connection goes on serving
    # requests after a write.
    d = daemons({"XG2G_TUNER_SLOTS": "0-63", "XG2G_RATELIMIT_WHITELIST": "127.0.0.1"})
    clients, rounds = 16, 6
    failures = []

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        headers = {"Authorization": f"Bearer {WRITER}", "Content-Type": "application/json"}
        try:
            for r in range(rounds):
                ref = f"1:0:1:{n}:{r}"
                body = json.dumps({"type": "stream.start", "serviceRef": ref})
                conn.request("POST", "/api/v3/intents", body, headers)
                resp = conn.getresponse()
                doc = json.loads(resp.read())
                if resp.status != 202:
                    failures.append(f"{ref}: start {resp.status} {doc}")
                    return
                sid = doc["sessionId"]
                conn.request("GET", f"/api/v3/sessions/{sid}", headers=headers)
                resp = conn.getresponse()
                got = json.loads(resp.read())
                if resp.status != 200 or got.get("sessionId") != sid or got.get("serviceRef") != ref:
                    failures.append(f"{ref}: read {resp.status} {got}")
                    return
                body = json.dumps({"type": "stream.stop", "sessionId": sid})
                conn.request("POST", "/api/v3/intents", body, headers)
                resp = conn.getresponse()
                doc = json.loads(resp.read())
                if resp.status != 202 or doc.get("sessionId") != sid:
                    failures.append(f"{ref}: stop {resp.status} {doc}")
                    return
        except Exception as e:  # reported below with the others
            failures.append(f"client {n}: {e!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a client got no answer within 60 s"
    assert failures == []
    # A listing is handed over too: every session started above is on it.
    status, doc, _, _ = d.request("GET", "/api/v3/sessions?limit=1000", None, ADMIN)
    assert status == 200
    refs = {s["serviceRef"] for s in doc["sessions"]}
    assert {f"1:0:1:{n}:{r}" for n in range(clients) for r in range(rounds)} <= refs


def wait_for_log(d, pattern, timeout=10):
    """Waits until the daemon's log matches `pattern` (a regex); returns the match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, d.log())
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n{d.log()}")


def test_graceful_shutdown_finishes_requests_in_flight(daemons):
    d = daemons({"XG2G_LOG_LEVEL": "debug"})
    # Open requests whose bodies are still on their way when SIGTERM comes.
    socks = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        payload = json.dumps({"type": "stream.start", "serviceRef": f"1:0:1:2{i}"}).encode()
        s.sendall((f"POST /api/v3/intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITER}"
                   f"\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                   ).encode() + payload[:5])
        socks.append((s, payload))
    wait_for_log(d, r"request arrived \(3 in flight\)")  # the daemon has all three
    d.proc.send_signal(signal.SIGTERM)
    wait_for_log(d, r"listener closed; finishing 3 request\(s\) in flight")
    # New connections are refused once the listener closed...
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
    # ...but the requests in flight complete.
    for s, payload in socks:
        s.sendall(payload[5:])
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 202"), reply
        s.close()
    assert d.proc.wait(timeout=30) == 0
    assert "stopped" in d.log()


def test_sighup_reload_from_file(xg2gd, tmp_path):
    config = tmp_path / "reload.json"
    old = "first-token-0123456789"
    new = "second-token-0123456789"
    config.write_text(json.dumps({"api_tokens": f"{old}=v3:admin", "store": "memory:"}))
    d = Daemon(xg2gd, tmp_path, env={"XG2G_API_TOKENS": None}, args=("--config", str(config)))
    try:
        conn = d.connection()
        assert d.request("GET", "/api/v3/sessions", token=old, conn=conn)[0] == 200
        config.write_text(json.dumps({"api_tokens": f"{new}=v3:admin", "store": "memory:"}))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "config_reload" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "config_reload" in d.log()
        # The keep-alive connection survives; the old token no longer works.
        assert d.request("GET", "/api/v3/sessions", token=old, conn=conn)[0] == 401
        assert d.request("GET", "/api/v3/sessions", token=new, conn=conn)[0] == 200
        # A broken file is refused and the running configuration kept.
        config.write_text("{not json")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload refused" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "reload refused" in d.log()
        assert d.request("GET", "/api/v3/sessions", token=new, conn=conn)[0] == 200
        conn.close()
        assert old not in d.log() and new not in d.log()
    finally:
        assert d.stop() == 0


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(where):
    """A valid self-signed pair and an expired one (dates set through `openssl ca`)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "good.key", "-out",
            "good.pem", "-days", "365", "-subj", "/CN=localhost", "-addext",
            "subjectAltName=IP:127.0.0.1", cwd=where)
    (where / "index.txt").write_text("")
    (where / "serial").write_text("1000\n")
    (where / "ca.cnf").write_text(
        "[ ca ]\ndefault_ca = test\n[ test ]\ndatabase = index.txt\nnew_certs_dir = .\n"
        "serial = serial\ndefault_md = sha256\npolicy = any\n[ any ]\ncommonName = supplied\n")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "old.key", "-out",
            "old.csr", "-subj", "/CN=localhost", cwd=where)
    openssl("ca", "-batch", "-selfsign", "-notext", "-config", "ca.cnf", "-keyfile", "old.key",
            "-in", "old.csr", "-out", "expired.pem", "-startdate", "20200101000000Z",
            "-enddate", "20210101000000Z", cwd=where)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_and_refusal_of_an_expired_certificate(daemons, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    expired = daemons({"XG2G_TLS_CERT": str(certs / "expired.pem"),
                       "XG2G_TLS_KEY": str(certs / "old.key")}, wait_ready=False)
    assert expired.proc.wait(timeout=30) == 2
    assert "CERT_EXPIRED" in expired.log()

    d = daemons({"XG2G_TLS_CERT": str(certs / "good.pem"), "XG2G_TLS_KEY": str(certs / "good.key")})
    assert d.ready_line.startswith("xg2gd: ready on https://")
    assert "SELF_SIGNED" in d.log()  # a warning, not a refusal
    context = ssl.create_default_context(cafile=str(certs / "good.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=10, context=context)
    assert d.request("GET", "/api/v3/sessions", token=ADMIN, conn=conn)[0] == 200
    conn.close()


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs prometheus")
def test_metrics_scraped_by_prometheus(daemons, tmp_path):
    d = daemons()
    assert d.start("1:0:1:30")[0] == 202
    assert d.request("GET", "/api/v3/sessions", token=ADMIN)[0] == 200
    port = spare_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: xg2gd\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{d.port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path}/prometheus.yml",
                             f"--storage.tsdb.path={tmp_path}/tsdb",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=log)
    try:
        query = urllib.parse.quote(
            'xg2g_v3_http_request_duration_seconds_count{route="/api/v3/intents"}')
        found = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not found:
            time.sleep(0.5)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", f"/api/v1/query?query={query}")
                doc = json.loads(conn.getresponse().read())
                conn.close()
            except (OSError, ValueError):
                continue
            if doc.get("status") == "success" and doc["data"]["result"]:
                found = doc["data"]["result"]
        assert found, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert found[0]["metric"]["job"] == "xg2gd"
        assert found[0]["metric"]["method"] == "POST" and found[0]["metric"]["status"] == "202"
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_two_daemons_on_one_redis_share_tuners(daemons, tmp_path):
    port = spare_port()
    redis_log = open(tmp_path / "redis.log", "w")
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                             stdout=redis_log, stderr=redis_log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        store = f"redis://127.0.0.1:{port}/0?prefix=xg2g:test:"
        env = {"XG2G_STORE": store, "XG2G_TUNER_SLOTS": "0", "XG2G_HEARTBEAT_MS": "200",
               "XG2G_LEASE_TTL_MS": "2000"}
        a = daemons(env)
        b = daemons(env)
        status, doc, _, _ = a.start("1:0:1:40")
        assert status == 202
        sid = doc["sessionId"]
        # The one tuner is taken, whichever daemon is asked.
        status, busy, _, _ = b.start("1:0:1:41")
        assert status == 409 and busy["code"] == "LEASE_BUSY"
        assert b.start("1:0:1:40")[1]["details"]["sessionId"] == sid
        # B sees A's session and can stop it; A tears it down within a heartbeat.
        assert b.request("GET", f"/api/v3/sessions/{sid}", token=READER)[0] == 200
        status, doc, _, _ = b.request("POST", "/api/v3/intents",
                                      {"type": "stream.stop", "sessionId": sid}, WRITER)
        assert status == 202
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = b.start("1:0:1:41")[0]
            if status == 202:
                break
            time.sleep(0.1)
        assert status == 202
        state = a.request("GET", f"/api/v3/sessions/{sid}", token=READER)[1]["state"]
        assert state == "STOPPED"
    finally:
        redis.terminate()
        redis.wait(timeout=20)
        redis_log.close()


def test_receiver_backed_daemon(daemons, tmp_path):
    here = os.path.dirname(os.path.abspath(__file__))
    fake = subprocess.Popen([sys.executable, os.path.join(here, "fake_receiver.py"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(fake.stdout.readline())
        d = daemons({"XG2G_RECEIVER_URL": f"http://127.0.0.1:{port}", "XG2G_STORE": "memory:"})
        status, doc, _, _ = d.start("1:0:19:2B66:3F3:1:C00000:0:0:0:")
        assert status == 202
        sid = doc["sessionId"]
        deadline = time.monotonic() + 20
        state = None
        while time.monotonic() < deadline:
            state = d.request("GET", f"/api/v3/sessions/{sid}", token=READER)[1]["state"]
            if state in ("READY", "FAILED"):
                break
            time.sleep(0.1)
        assert state == "READY", d.log()
        assert d.request("GET", "/readyz")[0] == 200
        metrics = d.request("GET", "/metrics")[3].decode()
        # Once, from the library's handler: the host adds nothing.
        assert metrics.count('xg2g_circuit_breaker_state{name="receiver"} 0') == 1
        # The receiver goes away: /readyz says so.
        fake.terminate()
        fake.wait(timeout=20)
        status, doc, _, _ = d.request("GET", "/readyz")
        assert status == 503 and "receiver" in json.dumps(doc)
    finally:
        if fake.poll() is None:
            fake.terminate()
            fake.wait(timeout=20)
        fake.stdout.close()
