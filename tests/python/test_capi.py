"""The Python package over the C ABI: sessions, store, errors."""
import threading

import pytest

import xg2g


def test_version_matches_the_loaded_library():
    major, minor, patch = xg2g.library_version()
    assert xg2g.version() == f"{major}.{minor}.{patch}"


def test_a_new_session_starts_in_new_with_a_random_id():
    a = xg2g.Session("1:0:1:AA", now_ms=1_700_000_000_000)
    b = xg2g.Session("1:0:1:AA")
    assert a.state is xg2g.State.NEW
    assert len(a.id) == 32 and a.id != b.id
    assert a.profile == "default"
    assert a.created_at_unix == 1_700_000_000


def test_unsafe_session_ids_raise_invalid_argument_naming_the_field():
    with pytest.raises(xg2g.InvalidArgument) as err:
        xg2g.Session("1:0:1", session_id="../../etc")
    assert "session_id" in err.value.message
    assert err.value.status == -1


def test_illegal_transitions_raise_and_change_nothing():
    s = xg2g.Session("1:0:1")
    with pytest.raises(xg2g.InvalidState):
        s.apply(xg2g.Event.HOST_READY)
    assert s.state is xg2g.State.NEW
    s.apply(xg2g.Event.LEASES_ACQUIRED)
    s.apply(xg2g.Event.HOST_READY)
    s.apply(xg2g.Event.STOP)
    assert s.state is xg2g.State.STOPPING
    s.apply(xg2g.Event.HOST_FAILED, xg2g.Reason.R_PROCESS_ENDED)
    # The stop's reason survives the later failure report.
    assert s.reason is xg2g.Reason.R_CLIENT_STOP
    assert s.state.terminal


def test_json_round_trip_keeps_every_field():
    s = xg2g.Session("1:0:19:2B66", session_id="abc_123", profile="hd")
    s.set_context("tuner_slot", "0")
    s.correlation_id = "corr-7"
    s.expires_at_unix = 1_800_000_000
    back = xg2g.Session.from_json(s.to_json())
    assert back.to_dict() == s.to_dict()
    assert back.to_dict()["contextData"] == {"tuner_slot": "0"}
    assert back.to_dict()["profile"]["name"] == "hd"


def test_malformed_json_is_corrupt_not_a_crash():
    for text in ["", "{", "[]", '{"sessionId":1}', "\x00\xff", '{"sessionId":"a","state":"NOPE"}']:
        with pytest.raises(xg2g.Corrupt):
            xg2g.Session.from_json(text)


def test_store_put_get_update_delete():
    with xg2g.Store("memory:") as st:
        s = xg2g.Session("1:0:1", session_id="s1")
        st.put(s)
        assert st.get("s1").service_ref == "1:0:1"
        with pytest.raises(xg2g.NotFound) as err:
            st.get("nope")
        assert "nope" in err.value.message

        def start(sess):
            sess.apply(xg2g.Event.LEASES_ACQUIRED)
            sess.set_context("tuner_slot", "2")

        updated = st.update("s1", start)
        assert updated.state is xg2g.State.STARTING
        assert st.get("s1").context("tuner_slot") == "2"

        def boom(sess):
            sess.set_context("tuner_slot", "9")
            raise RuntimeError("caller gave up")

        with pytest.raises(RuntimeError):
            st.update("s1", boom)
        assert st.get("s1").context("tuner_slot") == "2"

        st.delete("s1")
        with pytest.raises(xg2g.NotFound):
            st.delete("s1")


def test_store_list_pages_in_id_order_and_scan_sees_all():
    with xg2g.Store() as st:
        for i in range(7):
            st.put(xg2g.Session("1:0:1", session_id=f"id{i}"))
        page, total = st.list(offset=2, limit=3)
        assert total == 7
        assert [s.id for s in page] == ["id2", "id3", "id4"]
        assert sorted(s.id for s in st.scan()) == [f"id{i}" for i in range(7)]
        with pytest.raises(xg2g.InvalidArgument):
            st.list(limit=1001)


def test_idempotent_put_replays_and_rejects_a_different_request():
    with xg2g.Store() as st:
        first = xg2g.Session("1:0:1", session_id="first")
        assert st.put_idempotent(first, "p1:key", "fp-a", 60_000) is None
        again = xg2g.Session("1:0:1", session_id="second")
        assert st.put_idempotent(again, "p1:key", "fp-a", 60_000) == "first"
        with pytest.raises(xg2g.Conflict):
            st.put_idempotent(again, "p1:key", "fp-b", 60_000)
        with pytest.raises(xg2g.NotFound):
            st.get("second")


def test_leases_are_exclusive_and_tokens_increase():
    with xg2g.Store() as st:
        t1 = st.acquire_lease("tuner:0", "daemon-a", 30_000)
        with pytest.raises(xg2g.Busy):
            st.acquire_lease("tuner:0", "daemon-b", 30_000)
        with pytest.raises(xg2g.Conflict):
            st.release_lease("tuner:0", "daemon-b")
        st.renew_lease("tuner:0", "daemon-a", 30_000)
        st.release_lease("tuner:0", "daemon-a")
        t2 = st.acquire_lease("tuner:0", "daemon-b", 30_000)
        assert t2 > t1


def test_threads_racing_for_one_lease_have_one_winner():
    with xg2g.Store() as st:
        winners, errors = [], []
        barrier = threading.Barrier(16)

        def race(n):
            barrier.wait()
            try:
                winners.append(st.acquire_lease("tuner:1", f"owner-{n}", 30_000))
            except xg2g.Busy:
                pass
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=race, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(winners) == 1


def test_an_unknown_store_scheme_is_unsupported():
    with pytest.raises(xg2g.Unsupported) as err:
        xg2g.Store("cassette://x")
    assert "cassette" in err.value.message
