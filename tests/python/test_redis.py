"""The Redis store through the Python package: opened by URI like any store.

A redis-server is started for this module on 127.0.0.1 on a spare port and
stopped by its pid; without redis-server the module is skipped.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import xg2g

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class _Server:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="redis-xg2g-py-")
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", "redis.log", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        pause = 0.001
        while not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def uri(self, query=""):
        return f"redis://127.0.0.1:{self.port}/0{query}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    s = _Server()
    yield s
    s.stop()


def _prefix(name):
    return f"?prefix=xg2g:py:{os.getpid()}:{name}:"


def test_a_redis_uri_opens_a_store_that_two_handles_share(server):
    with xg2g.Store(server.uri(_prefix("shared"))) as a, \
            xg2g.Store(server.uri(_prefix("shared"))) as b:
        a.put(xg2g.Session("1:0:1:AA", session_id="s1"))
        assert b.get("s1").service_ref == "1:0:1:AA"
        token = a.acquire_lease("tuner:0", "daemon-a", 30_000)
        with pytest.raises(xg2g.Busy):
            b.acquire_lease("tuner:0", "daemon-b", 30_000)
        b.release_lease("tuner:0", "daemon-a")  # owner-checked, not handle-bound
        assert b.acquire_lease("tuner:0", "daemon-b", 30_000) > token
        assert a.put_idempotent(xg2g.Session("1:0:1", session_id="s2"), "k", "fp", 60_000) is None
        assert b.put_idempotent(xg2g.Session("1:0:1", session_id="s3"), "k", "fp", 60_000) == "s2"
    with xg2g.Store(server.uri(_prefix("other"))) as other:
        with pytest.raises(xg2g.NotFound):
            other.get("s1")  # another prefix shares nothing


def test_an_engine_runs_on_a_redis_store(server):
    with xg2g.Store(server.uri(_prefix("engine"))) as st, \
            xg2g.Config(tuner_slots="0", manual_clock=1_700_000_000_000) as cfg:
        engine = xg2g.Engine(cfg, st)
        try:
            first = engine.start("1:0:1:ENGINE")
            with pytest.raises(xg2g.Busy) as busy:
                engine.start("1:0:1:ENGINE")
            assert busy.value.busy_session_id == first.session_id
            assert engine.stop(first.session_id).state is xg2g.State.STOPPED
            assert st.get(first.session_id).state is xg2g.State.STOPPED
        finally:
            engine.close()


def test_bad_redis_uris_and_credentials_fail_without_echoing_the_password(server):
    with pytest.raises(xg2g.InvalidArgument) as err:
        xg2g.Store("redis://:s3cret@127.0.0.1:notaport/0")
    assert "notaport" in err.value.message and "s3cret" not in err.value.message
    locked = _Server("--requirepass", "right-one")
    try:
        with pytest.raises(xg2g.Unavailable) as err:
            xg2g.Store(f"redis://:wr0ng-one@127.0.0.1:{locked.port}/0?timeout_ms=1000")
        assert "wr0ng-one" not in err.value.message
        with xg2g.Store(f"redis://:right-one@127.0.0.1:{locked.port}/0") as st:
            st.put(xg2g.Session("1:0:1", session_id="ok"))
    finally:
        locked.stop()
    with pytest.raises(xg2g.Unavailable):
        xg2g.Store(f"redis://127.0.0.1:{_free_port()}/0?timeout_ms=500")


def test_leases_and_the_check_see_what_another_handle_wrote(server):
    with xg2g.Store(server.uri(_prefix("admin"))) as a, \
            xg2g.Store(server.uri(_prefix("admin"))) as b:
        assert b.leases() == [] and b.check().consistent
        a.put(xg2g.Session("1:0:1:AA", session_id="s1"))
        token = a.acquire_lease("tuner:1", "daemon-a", 30_000)
        a.acquire_lease("service:1:0:1:AA", "s1", 30_000)
        leases = b.leases()
        assert [(l.key, l.owner) for l in leases] == [("service:1:0:1:AA", "s1"),
                                                     ("tuner:1", "daemon-a")]
        assert leases[1].fencing_token == token
        assert all(0 < l.expires_in_ms <= 30_000 for l in leases)
        report = b.check()
        assert (report.sessions, report.leases, report.problems) == (1, 2, ())
    with xg2g.Store(server.uri(_prefix("admin-other"))) as other:
        assert other.leases() == [] and other.check().sessions == 0
