"""The engine through the Python package: cycles, busy answers, replays,
host callbacks written in Python, and concurrent starts from Python threads.

Time moves by hand (manual clock mode) except in the one test of the engine's
own thread, which waits for states with a deadline.
"""
import json
import threading
import time

import pytest

import xg2g

T0 = 1_700_000_000_000


def manual_config(slots="0", **kwargs):
    return xg2g.Config(tuner_slots=slots, manual_clock=T0, **kwargs)


def state(store, session_id):
    return store.get(session_id).state


class CountingHost:
    """A host pipeline that counts calls and optionally reports back itself."""

    def __init__(self, report_inside=False):
        self.engine = None
        self.report_inside = report_inside
        self.lock = threading.Lock()
        self.tunes, self.starts, self.stops = [], [], []
        self.fail_tune = None

    def tune(self, cmd):
        with self.lock:
            self.tunes.append(cmd)
        if self.fail_tune is not None:
            raise self.fail_tune

    def start(self, cmd):
        with self.lock:
            self.starts.append(cmd)
        if self.report_inside:
            self.engine.report_ready(cmd.session_id, cmd.fencing_token)

    def stop(self, cmd):
        with self.lock:
            self.stops.append(cmd)
        if self.report_inside:
            self.engine.report_stopped(cmd.session_id, cmd.fencing_token)


def test_config_setters_reject_bad_values_naming_them():
    cfg = xg2g.Config()
    with pytest.raises(xg2g.InvalidArgument) as err:
        cfg.set_tuner_slots("0,x7")
    assert "x7" in err.value.message
    with pytest.raises(xg2g.InvalidArgument):
        cfg.set_tuner_slots("")
    with pytest.raises(xg2g.InvalidArgument):
        cfg.set_lease_ttl_ms(0)
    with pytest.raises(xg2g.InvalidArgument):
        cfg.set_owner_id("has space")
    with pytest.raises(xg2g.InvalidArgument):
        cfg.set_manual_clock(0)
    cfg.set_idle_timeout_ms(0)
    cfg.set_requeue_on_recovery(True)
    cfg.close()
    cfg.close()  # idempotent


def test_heartbeat_not_shorter_than_the_lease_is_refused_at_creation():
    cfg = manual_config(lease_ttl_ms=5000, heartbeat_ms=5000)
    with pytest.raises(xg2g.InvalidArgument) as err:
        xg2g.Engine(cfg, xg2g.Store())
    assert "heartbeat" in err.value.message


def test_a_session_goes_through_start_ready_stop_with_the_simulated_pipeline():
    events = []
    cfg = manual_config()
    cfg.use_simulated_pipeline(tune_delay_ms=100, ready_delay_ms=200, stop_delay_ms=50)
    cfg.set_audit_callback(events.append)
    store = xg2g.Store()
    with xg2g.Engine(cfg, store) as engine:
        first = engine.start("1:0:19:2B66", correlation_id="corr-1")
        assert first.state is xg2g.State.STARTING and not first.replay
        assert first.correlation_id == "corr-1"
        assert store.get(first.session_id).context("tuner_slot") == "0"

        engine.poll()  # the host hears of it
        engine.advance_clock(299)
        assert state(store, first.session_id) is xg2g.State.STARTING
        engine.advance_clock(1)
        assert state(store, first.session_id) is xg2g.State.READY

        stopped = engine.stop(first.session_id)
        assert stopped == xg2g.StopResult(first.session_id, xg2g.State.STOPPING)
        engine.poll()
        engine.advance_clock(49)
        assert state(store, first.session_id) is xg2g.State.STOPPING
        engine.advance_clock(1)
        assert state(store, first.session_id) is xg2g.State.STOPPED
        # A second stop is harmless.
        assert engine.stop(first.session_id).state is xg2g.State.STOPPED

        stats = engine.stats()
        assert stats.start_intents == 1 and stats.stop_intents == 2
        assert stats.active_sessions == 0 and stats.transitions >= 4

    starts = [e for e in events if e["type"] == "session_start"]
    stops = [e for e in events if e["type"] == "session_stop"]
    assert [e["session_id"] for e in starts] == [first.session_id]
    assert [e["session_id"] for e in stops] == [first.session_id] * 2
    assert not cfg.callback_errors


def test_busy_answers_name_the_active_session_when_there_is_one():
    cfg = manual_config("0")
    cfg.use_simulated_pipeline()
    store = xg2g.Store()
    with xg2g.Engine(cfg, store) as engine:
        first = engine.start("1:0:1:A")
        with pytest.raises(xg2g.Busy) as same:
            engine.start("1:0:1:A")
        assert same.value.busy_session_id == first.session_id
        with pytest.raises(xg2g.Busy) as other:
            engine.start("1:0:1:B")
        assert other.value.busy_session_id is None
        assert "tuner" in other.value.message
        assert engine.stats().busy == 2


def test_an_idempotency_key_replays_and_refuses_another_request():
    cfg = manual_config("0-3")
    cfg.use_simulated_pipeline()
    store = xg2g.Store()
    with xg2g.Engine(cfg, store) as engine:
        first = engine.start("1:0:1:I", principal="alice", idempotency_key="k1",
                             params={"audio": "de", "bitrate": "4000"})
        again = engine.start("1:0:1:I", principal="alice", idempotency_key="k1",
                             correlation_id="other",
                             params={"bitrate": "4000", "audio": "de"})
        assert again.replay and again.session_id == first.session_id
        assert again.correlation_id == first.correlation_id
        with pytest.raises(xg2g.Conflict) as err:
            engine.start("1:0:1:I", principal="alice", idempotency_key="k1",
                         params={"audio": "en", "bitrate": "4000"})
        assert "k1" in err.value.message
        assert engine.stats().replays == 1


def test_inflight_maps_to_its_own_exception_class():
    assert xg2g._BY_STATUS[-17] is xg2g.InFlight
    assert issubclass(xg2g.InFlight, xg2g.Error)
    assert xg2g.InFlight.busy_session_id is None


def test_python_host_callbacks_receive_the_command_and_can_report_back():
    host = CountingHost(report_inside=True)
    cfg = manual_config("2,5")
    cfg.set_pipeline(host)
    store = xg2g.Store()
    engine = xg2g.Engine(cfg, store)
    host.engine = engine
    cfg.close()  # the engine keeps the callbacks alive

    result = engine.start("1:0:1:PY", profile="hd")
    assert host.tunes == []
    engine.poll()
    [cmd] = host.tunes
    assert cmd.session_id == result.session_id
    assert (cmd.service_ref, cmd.profile, cmd.slot) == ("1:0:1:PY", "hd", 2)
    assert cmd.fencing_token > 0
    assert state(store, result.session_id) is xg2g.State.READY

    # A stale token is refused.
    with pytest.raises(xg2g.Conflict):
        engine.report_ready(result.session_id, cmd.fencing_token + 1)

    engine.stop(result.session_id)
    engine.poll()
    assert len(host.stops) == 1
    assert state(store, result.session_id) is xg2g.State.STOPPED
    engine.close()


def test_an_exception_in_a_python_callback_fails_the_session():
    host = CountingHost()
    host.fail_tune = RuntimeError("no signal on the dish")
    cfg = manual_config("0")
    cfg.set_pipeline(host)
    store = xg2g.Store()
    with xg2g.Engine(cfg, store) as engine:
        result = engine.start("1:0:1:FAIL")
        engine.poll()
        session = store.get(result.session_id)
        assert session.state is xg2g.State.FAILED
        assert session.reason is xg2g.Reason.R_TUNE_FAILED
        assert "XG2G_ECANCELLED" in session.reason_detail
        assert host.starts == []
        assert [str(e) for e in engine.callback_errors] == ["no signal on the dish"]

        # An xg2g.Error raised by the host keeps its status.
        host.fail_tune = xg2g.Unavailable(-9, "receiver down")
        result = engine.start("1:0:1:FAIL2")
        engine.poll()
        assert "XG2G_EUNAVAILABLE" in store.get(result.session_id).reason_detail


def test_ten_threads_one_service_one_slot_exactly_one_winner_and_one_tune():
    host = CountingHost()
    cfg = manual_config("0")
    cfg.set_pipeline(host)
    store = xg2g.Store()
    with xg2g.Engine(cfg, store) as engine:
        barrier = threading.Barrier(10)
        winners, busy, other = [], [], []

        def run():
            barrier.wait()
            try:
                winners.append(engine.start("1:0:1:RACE").session_id)
            except xg2g.Busy as e:
                busy.append(e.busy_session_id)
            except BaseException as e:  # noqa: BLE001 - asserted below
                other.append(e)

        threads = [threading.Thread(target=run) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert other == []
        assert len(winners) == 1 and len(busy) == 9
        assert busy == winners * 9
        engine.poll()
        assert len(host.tunes) == 1 and host.tunes[0].session_id == winners[0]
        stats = engine.stats()
        assert stats.start_intents == 10 and stats.busy == 9 and stats.active_sessions == 1


def test_advance_clock_needs_the_manual_clock_and_the_engine_thread_does_the_work():
    cfg = xg2g.Config(tuner_slots="0")
    cfg.use_simulated_pipeline()
    cfg.set_audit_callback(lambda event: None)
    store = xg2g.Store()
    with xg2g.Engine(cfg, store) as engine:
        with pytest.raises(xg2g.InvalidArgument):
            engine.advance_clock(10)
        engine.poll()  # a no-op with the engine's own thread

        result = engine.start("1:0:1:THREAD")
        deadline = time.monotonic() + 10
        delay = 0.001
        while state(store, result.session_id) is not xg2g.State.READY:
            assert time.monotonic() < deadline, "the engine thread never reported ready"
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        engine.stop(result.session_id)
        while state(store, result.session_id) is not xg2g.State.STOPPED:
            assert time.monotonic() < deadline, "the engine thread never reported stopped"
            time.sleep(delay)


def test_the_audit_file_receives_json_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    cfg = manual_config("0")
    cfg.set_audit_path(path)
    store = xg2g.Store()
    with xg2g.Engine(cfg, store) as engine:
        result = engine.start("1:0:1:AUDIT")
        engine.stop(result.session_id)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["type"], e["session_id"]) for e in lines] == [
        ("session_start", result.session_id), ("session_stop", result.session_id)]
