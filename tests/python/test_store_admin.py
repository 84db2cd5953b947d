"""Store.leases() and Store.check(): the listing of leases and the
consistency report, on the memory store and on LMDB (where a record written
behind the store's back with mdb_load must show up as a problem)."""
import shutil
import subprocess

import pytest

import xg2g

T0 = 1_700_000_000_000


def _mdb_load(directory, table, key, value):
    """Writes one raw record into an LMDB table, bypassing the store."""
    program = shutil.which("mdb_load")
    if program is None:
        pytest.skip("mdb_load (lmdb-utils) is not installed")
    done = subprocess.run([program, "-T", "-s", table, str(directory)],
                          input=f"{key}\n{value}\n", capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_a_new_store_has_no_leases_and_a_consistent_empty_report():
    with xg2g.Store() as store:
        assert store.leases() == []
        report = store.check()
        assert report == xg2g.StoreReport(sessions=0, leases=0, idempotency_keys=None,
                                          problems=())
        assert report.consistent


def test_leases_are_listed_by_key_with_owner_token_and_time_left():
    with xg2g.Store() as store:
        token_b = store.acquire_lease("tuner:1", "engine-b", 60_000)
        token_a = store.acquire_lease("tuner:0", "engine-a", 30_000)
        leases = store.leases()
        assert [(l.key, l.owner, l.fencing_token) for l in leases] == [
            ("tuner:0", "engine-a", token_a), ("tuner:1", "engine-b", token_b)]
        assert 0 < leases[0].expires_in_ms <= 30_000
        assert 30_000 < leases[1].expires_in_ms <= 60_000
        assert all(isinstance(l, xg2g.Lease) for l in leases)

        store.release_lease("tuner:0", "engine-a")
        assert [l.key for l in store.leases()] == ["tuner:1"]
        # A listing is a snapshot: frozen values, not live views.
        with pytest.raises(AttributeError):
            leases[0].owner = "someone else"


def test_the_engine_s_service_and_tuner_leases_are_listed_until_the_session_stops():
    cfg = xg2g.Config(tuner_slots="3", manual_clock=T0)
    cfg.use_simulated_pipeline()
    with xg2g.Store() as store, xg2g.Engine(cfg, store) as engine:
        result = engine.start("1:0:1:LEASE")
        held = store.leases()
        # docs/engine.md: service:<ref> and tuner:<slot>, both owned by the session id.
        assert [l.key for l in held] == ["service:1:0:1:LEASE", "tuner:3"]
        assert all(l.owner == result.session_id for l in held)
        assert all(l.fencing_token > 0 and l.expires_in_ms > 0 for l in held)
        report = store.check()
        assert (report.sessions, report.leases) == (1, 2) and report.consistent
        engine.stop(result.session_id)
        engine.poll()
        assert store.get(result.session_id).state is xg2g.State.STOPPED
        assert store.leases() == []
        assert store.check().leases == 0


def test_the_memory_store_counts_sessions_and_leases_but_not_idempotency_keys():
    with xg2g.Store() as store:
        store.put(xg2g.Session("1:0:1:A", session_id="s1"))
        assert store.put_idempotent(xg2g.Session("1:0:1:B", session_id="s2"), "k", "fp",
                                    60_000) is None
        store.acquire_lease("tuner:0", "me", 60_000)
        report = store.check()
        assert (report.sessions, report.leases, report.idempotency_keys) == (2, 1, None)
        assert report.problems == () and report.consistent


def test_lmdb_counts_idempotency_keys_and_reports_a_record_that_does_not_decode(tmp_path):
    path = tmp_path / "store"
    with xg2g.Store(f"lmdb:{path}") as store:
        store.put(xg2g.Session("1:0:1:A", session_id="good1"))
        store.put_idempotent(xg2g.Session("1:0:1:B", session_id="good2"), "k1", "fp", 60_000)
        store.acquire_lease("tuner:0", "me", 60_000)
        report = store.check()
        assert (report.sessions, report.leases, report.idempotency_keys) == (2, 1, 1)
        assert report.consistent

    _mdb_load(path, "sessions", "broken7", "{not json")
    with xg2g.Store(f"lmdb:{path}") as store:
        report = store.check()
        assert not report.consistent
        assert all(isinstance(p, str) and p for p in report.problems)
        assert any("broken7" in p for p in report.problems), report.problems
        assert not any("good1" in p or "good2" in p for p in report.problems)


def test_a_lease_record_that_does_not_decode_is_corrupt_naming_its_key(tmp_path):
    path = tmp_path / "store"
    with xg2g.Store(f"lmdb:{path}") as store:
        store.acquire_lease("tuner:0", "me", 60_000)
    _mdb_load(path, "leases", "tuner:9", "garbage")
    with xg2g.Store(f"lmdb:{path}") as store:
        with pytest.raises(xg2g.Corrupt) as err:
            store.leases()
        assert "tuner:9" in err.value.message
        assert err.value.status == -10


def test_a_closed_store_refuses_leases_and_check_with_invalid_argument():
    store = xg2g.Store()
    store.close()
    with pytest.raises(xg2g.InvalidArgument):
        store.leases()
    with pytest.raises(xg2g.InvalidArgument):
        store.check()
