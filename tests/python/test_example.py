"""examples/python/start_stop.py against the built library: it starts one
session, reports each step on stdout and exits 0; on LMDB the session it
names is left STOPPED in the store."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import xg2g

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "start_stop.py"
LINES = [
    r"started (?P<id>[0-9a-f]{32}) service=(?P<ref>\S+) state=STARTING",
    r"session (?P<id>[0-9a-f]{32}) state=READY slot=0",
    r"stopping (?P<id>[0-9a-f]{32}) state=STOPPING",
    r"stopped (?P<id>[0-9a-f]{32}) state=STOPPED",
]


@pytest.fixture
def env():
    if not os.environ.get("XG2G_LIBRARY"):
        pytest.skip("XG2G_LIBRARY is not set (meson test sets it)")
    env = dict(os.environ)
    # The example imports xg2g from where the suite does (PYTHONPATH).
    env["PYTHONPATH"] = str(pathlib.Path(xg2g.__file__).resolve().parent.parent)
    return env


def _run(env, *args):
    return subprocess.run([sys.executable, str(EXAMPLE), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _steps(stdout):
    lines = stdout.splitlines()
    assert len(lines) == len(LINES), stdout
    matches = [re.fullmatch(pattern, line) for pattern, line in zip(LINES, lines)]
    assert all(matches), stdout
    ids = {m["id"] for m in matches}
    assert len(ids) == 1, stdout
    return ids.pop(), matches[0]["ref"]


def test_the_example_starts_and_stops_a_session_on_a_memory_store(env):
    done = _run(env)
    assert done.returncode == 0, done.stdout + done.stderr
    session_id, ref = _steps(done.stdout)
    assert ref == "1:0:19:2B66:3F3:1:C00000:0:0:0:"
    # The default audit sink: one start and one stop event for that session.
    assert '"type":"session_start"' in done.stderr and session_id in done.stderr
    assert "error" not in done.stderr.lower()


def test_the_example_leaves_its_session_stopped_in_the_store_it_was_given(env, tmp_path):
    uri = f"lmdb:{tmp_path / 'store'}"
    done = _run(env, uri, "--service-ref", "1:0:1:EXAMPLE", "--profile", "hd")
    assert done.returncode == 0, done.stdout + done.stderr
    session_id, ref = _steps(done.stdout)
    assert ref == "1:0:1:EXAMPLE"
    with xg2g.Store(uri) as store:
        session = store.get(session_id)
        assert session.state is xg2g.State.STOPPED
        assert (session.service_ref, session.profile) == ("1:0:1:EXAMPLE", "hd")
        assert store.leases() == []


def test_the_example_fails_with_the_library_s_message_for_a_bad_store(env):
    done = _run(env, "nosuchscheme:x")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "nosuchscheme" in done.stderr and "XG2G_EUNSUPPORTED" in done.stderr
