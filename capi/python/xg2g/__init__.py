"""Python bindings of libxg2g over its C ABI (ctypes, no compiled code).

The library is found through the XG2G_LIBRARY environment variable (a path to
libxg2g.so), else the system's library search path.
"""
import collections
import ctypes
import dataclasses
import enum
import json

from . import _ffi
from ._ffi import (LIST_P, SCAN_FN, SESSION_P, STORE_P, UPDATE_FN, TlsCheckOptions, lib)

__all__ = [
    "Error", "InvalidArgument", "OutOfMemory", "VersionMismatch", "NotFound", "AlreadyExists",
    "Conflict", "Busy", "InvalidState", "Unavailable", "Corrupt", "StoreFull", "Timeout",
    "Cancelled", "IOFailure", "Unsupported", "InternalError", "InFlight", "CircuitOpen", "State",
    "Reason", "Event",
    "Session", "Store", "tls_check", "version", "library_version",
    "Config", "Engine", "PipelineCommand", "StartResult", "StopResult", "EngineStats",
]


class Error(Exception):
    """A failed libxg2g call: `status` is the xg2g_status, `message` the last error."""

    status = None

    def __init__(self, status, message):
        super().__init__(f"{message} ({_status_name(status)})")
        self.status = status
        self.message = message


class InvalidArgument(Error, ValueError): status = -1
class OutOfMemory(Error, MemoryError): status = -2
class VersionMismatch(Error): status = -3
class NotFound(Error, LookupError): status = -4
class AlreadyExists(Error): status = -5
class Conflict(Error): status = -6
class Busy(Error):
    """Busy lease or no free tuner. `busy_session_id` names the session that
    already serves the service (engine starts), else it is None."""
    status = -7
    busy_session_id = None
class InvalidState(Error): status = -8
class Unavailable(Error): status = -9
class Corrupt(Error): status = -10
class StoreFull(Error): status = -11
class Timeout(Error, TimeoutError): status = -12
class Cancelled(Error): status = -13
class IOFailure(Error, OSError): status = -14
class Unsupported(Error): status = -15
class InternalError(Error): status = -16
class InFlight(Error):
    """The idempotency key's first request is still being created; retry.
    `busy_session_id` names the session it is creating (engine starts)."""
    status = -17
    busy_session_id = None
class CircuitOpen(Error):
    """A circuit breaker is open: the upstream (the receiver) failed repeatedly
    and is not called until the breaker's open timeout passes (HTTP 503
    CIRCUIT_OPEN)."""
    status = -18


_BY_STATUS = {cls.status: cls for cls in Error.__subclasses__()}


def _status_name(status):
    return lib.xg2g_status_str(status).decode()


def _check(status):
    if status != 0:
        message = lib.xg2g_last_error().decode("utf-8", "replace")
        raise _BY_STATUS.get(status, Error)(status, message)


def _b(text):
    return None if text is None else text.encode("utf-8")


def _s(raw):
    return None if raw is None else raw.decode("utf-8")


def _take_string(ptr):
    """Copies a library-allocated string and frees it."""
    if not ptr.value:
        return None
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.xg2g_free(ptr)


class State(enum.IntEnum):
    NEW = 0
    STARTING = 1
    READY = 2
    DRAINING = 3
    STOPPING = 4
    FAILED = 5
    CANCELLED = 6
    STOPPED = 7

    @property
    def terminal(self):
        return bool(lib.xg2g_session_state_is_terminal(self))


class Reason(enum.IntEnum):
    R_NONE = 0
    R_UNKNOWN = 1
    R_BAD_REQUEST = 2
    R_NOT_FOUND = 3
    R_LEASE_BUSY = 4
    R_TUNE_TIMEOUT = 5
    R_LEASE_EXPIRED = 6
    R_TUNE_FAILED = 7
    R_INVARIANT_VIOLATION = 8
    R_FFMPEG_START_FAILED = 9
    R_PROCESS_ENDED = 10
    R_PACKAGER_FAILED = 11
    R_CANCELLED = 12
    R_IDLE_TIMEOUT = 13
    R_CLIENT_STOP = 14
    R_UPSTREAM_CORRUPT = 15


class Event(enum.IntEnum):
    LEASES_ACQUIRED = 0
    HOST_READY = 1
    DRAIN = 2
    STOP = 3
    HOST_STOPPED = 4
    HOST_FAILED = 5
    LEASE_LOST = 6
    NO_TUNER = 7
    DEADLINE = 8
    IDLE_TIMEOUT = 9
    CANCEL = 10


def version():
    """The loaded library's version as "MAJOR.MINOR.PATCH"."""
    return lib.xg2g_version_string().decode()


def library_version():
    major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    lib.xg2g_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    return (major.value, minor.value, patch.value)


class _Closing:
    """A handle owner: close() frees it, also at garbage collection and at the
    end of a with block."""

    __slots__ = ()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Session(_Closing):
    """A session record. Owns its handle; not thread-safe."""

    __slots__ = ("_h", "_owned")

    def __init__(self, service_ref, *, session_id=None, profile=None, now_ms=0):
        h = SESSION_P()
        _check(lib.xg2g_session_create(ctypes.byref(h), _b(session_id), _b(service_ref),
                                       _b(profile), now_ms))
        self._h, self._owned = h, True

    @classmethod
    def _adopt(cls, handle):
        obj = cls.__new__(cls)
        obj._h, obj._owned = handle, True
        return obj

    @classmethod
    def _borrow(cls, handle):
        obj = cls.__new__(cls)
        obj._h, obj._owned = handle, False
        return obj

    @classmethod
    def from_json(cls, text):
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        h = SESSION_P()
        _check(lib.xg2g_session_from_json(ctypes.byref(h), data, len(data)))
        return cls._adopt(h)

    def close(self):
        if self._owned and self._h:
            lib.xg2g_session_destroy(self._h)
        self._h = SESSION_P()

    def clone(self):
        h = SESSION_P()
        _check(lib.xg2g_session_clone(ctypes.byref(h), self._h))
        return Session._adopt(h)

    def to_json(self):
        out = ctypes.c_void_p()
        _check(lib.xg2g_session_to_json(ctypes.byref(out), self._h))
        return _take_string(out)

    def to_dict(self):
        return json.loads(self.to_json())

    id = property(lambda self: _s(lib.xg2g_session_get_id(self._h)))
    service_ref = property(lambda self: _s(lib.xg2g_session_get_service_ref(self._h)))
    profile = property(lambda self: _s(lib.xg2g_session_get_profile(self._h)))
    state = property(lambda self: State(lib.xg2g_session_get_state(self._h)))
    reason = property(lambda self: Reason(lib.xg2g_session_get_reason(self._h)))
    reason_detail = property(lambda self: _s(lib.xg2g_session_get_reason_detail(self._h)))
    created_at_unix = property(lambda self: lib.xg2g_session_get_created_at_unix(self._h))
    updated_at_unix = property(lambda self: lib.xg2g_session_get_updated_at_unix(self._h))

    @property
    def correlation_id(self):
        return _s(lib.xg2g_session_get_correlation_id(self._h))

    @correlation_id.setter
    def correlation_id(self, value):
        _check(lib.xg2g_session_set_correlation_id(self._h, _b(value)))

    @property
    def expires_at_unix(self):
        return lib.xg2g_session_get_expires_at_unix(self._h)

    @expires_at_unix.setter
    def expires_at_unix(self, value):
        _check(lib.xg2g_session_set_expires_at_unix(self._h, value))

    def context(self, key):
        return _s(lib.xg2g_session_get_context(self._h, _b(key)))

    def set_context(self, key, value):
        _check(lib.xg2g_session_set_context(self._h, _b(key), _b(value)))

    def apply(self, event, reason=Reason.R_NONE, detail=None, now_ms=0):
        _check(lib.xg2g_session_apply(self._h, int(event), int(reason), _b(detail), now_ms))


class Store(_Closing):
    """A session store opened by URI ("memory:"). Thread-safe."""

    def __init__(self, uri="memory:"):
        h = STORE_P()
        _check(lib.xg2g_store_open(ctypes.byref(h), _b(uri)))
        self._h = h

    def close(self):
        if getattr(self, "_h", None):
            lib.xg2g_store_close(self._h)
        self._h = STORE_P()

    def put(self, session):
        _check(lib.xg2g_store_put_session(self._h, session._h))

    def get(self, session_id):
        h = SESSION_P()
        _check(lib.xg2g_store_get_session(ctypes.byref(h), self._h, _b(session_id)))
        return Session._adopt(h)

    def update(self, session_id, fn):
        """Calls fn(session) on a private copy; the store retries it on a race.

        An exception raised by fn aborts the update (nothing is written) and is
        re-raised here.
        """
        raised = []

        def trampoline(handle, _user_data):
            try:
                fn(Session._borrow(handle))
                return 0
            except Error as e:
                raised.append(e)
                return e.status
            except BaseException as e:  # noqa: BLE001 - re-raised below
                raised.append(e)
                return -13  # XG2G_ECANCELLED: the callback gave up

        callback = UPDATE_FN(trampoline)
        h = SESSION_P()
        status = lib.xg2g_store_update_session(ctypes.byref(h), self._h, _b(session_id), callback,
                                               None)
        if raised:
            raise raised[-1]
        _check(status)
        return Session._adopt(h)

    def delete(self, session_id):
        _check(lib.xg2g_store_delete_session(self._h, _b(session_id)))

    def scan(self):
        """All sessions (a snapshot), as Session objects."""
        found = []

        def visit(handle, _user_data):
            h = SESSION_P()
            if lib.xg2g_session_clone(ctypes.byref(h), handle) == 0:
                found.append(Session._adopt(h))
            return 0

        _check(lib.xg2g_store_scan_sessions(self._h, SCAN_FN(visit), None))
        return found

    def list(self, offset=0, limit=100):
        """(sessions, total): one page ordered by id."""
        h = LIST_P()
        total = ctypes.c_size_t()
        _check(lib.xg2g_store_list_sessions(ctypes.byref(h), ctypes.byref(total), self._h, offset,
                                            limit))
        try:
            sessions = []
            for i in range(lib.xg2g_session_list_count(h)):
                copy = SESSION_P()
                _check(lib.xg2g_session_clone(ctypes.byref(copy), lib.xg2g_session_list_at(h, i)))
                sessions.append(Session._adopt(copy))
            return sessions, total.value
        finally:
            lib.xg2g_session_list_destroy(h)

    def put_idempotent(self, session, key, fingerprint, ttl_ms):
        """None when stored now; else the id of the session stored first under key."""
        out = ctypes.c_void_p()
        _check(lib.xg2g_store_put_session_idempotent(ctypes.byref(out), self._h, session._h,
                                                     _b(key), _b(fingerprint), ttl_ms))
        return _take_string(out)

    def acquire_lease(self, key, owner, ttl_ms):
        """Returns the fencing token."""
        token = ctypes.c_uint64()
        _check(lib.xg2g_store_lease_acquire(ctypes.byref(token), self._h, _b(key), _b(owner),
                                            ttl_ms))
        return token.value

    def renew_lease(self, key, owner, ttl_ms):
        _check(lib.xg2g_store_lease_renew(self._h, _b(key), _b(owner), ttl_ms))

    def release_lease(self, key, owner):
        _check(lib.xg2g_store_lease_release(self._h, _b(key), _b(owner)))


def tls_check(cert_path, key_path, *, warn_days=30, warn_fraction=0.33, now_unix=0):
    """The certificate report (a dict in the `xg2g tls check --json` shape)."""
    opts = TlsCheckOptions()
    _check(lib.xg2g_tls_check_options_init(ctypes.byref(opts), 1))
    opts.warn_days, opts.warn_fraction, opts.now_unix = warn_days, warn_fraction, now_unix
    out = ctypes.c_void_p()
    _check(lib.xg2g_tls_check(ctypes.byref(out), _b(cert_path), _b(key_path), ctypes.byref(opts)))
    return json.loads(_take_string(out))


# ---------------------------------------------------------------------------
# Engine


@dataclasses.dataclass(frozen=True)
class PipelineCommand:
    """What the engine asks the host pipeline to do for one session."""
    session_id: str
    service_ref: str
    profile: str
    slot: int
    fencing_token: int


@dataclasses.dataclass(frozen=True)
class StartResult:
    session_id: str
    state: State
    correlation_id: str
    replay: bool


@dataclasses.dataclass(frozen=True)
class StopResult:
    session_id: str
    state: State


EngineStats = collections.namedtuple("EngineStats", _ffi.ENGINE_STATS_FIELDS)
EngineStats.__doc__ = "The engine's counters (see xg2g_engine_stats)."

_ECANCELLED = -13


def _command(pointer):
    c = pointer.contents
    return PipelineCommand(_s(c.session_id), _s(c.service_ref), _s(c.profile), c.slot,
                           c.fencing_token)


def _init_struct(init, struct_type, version):
    value = struct_type()
    _check(init(ctypes.byref(value), version))
    return value


class Config(_Closing):
    """Engine configuration (xg2g_config): typed setters, copied by Engine().

    Not thread-safe. Callbacks installed here are Python callables; the
    Config and every Engine created from it keep them alive.
    """

    def __init__(self, *, tuner_slots=None, owner_id=None, lease_ttl_ms=None, heartbeat_ms=None,
                 start_deadline_ms=None, stop_deadline_ms=None, idle_timeout_ms=None,
                 retention_ms=None, idempotency_ttl_ms=None, requeue_on_recovery=None,
                 manual_clock=None):
        h = _ffi.CONFIG_P()
        _check(lib.xg2g_config_create(ctypes.byref(h)))
        self._h = h
        # Python objects the C side points at: kept while the config may use them.
        self._keep = {}
        # Exceptions raised by this config's Python callbacks (newest last).
        self.callback_errors = collections.deque(maxlen=100)
        for name, value in (("tuner_slots", tuner_slots), ("owner_id", owner_id),
                            ("lease_ttl_ms", lease_ttl_ms), ("heartbeat_ms", heartbeat_ms),
                            ("start_deadline_ms", start_deadline_ms),
                            ("stop_deadline_ms", stop_deadline_ms),
                            ("idle_timeout_ms", idle_timeout_ms), ("retention_ms", retention_ms),
                            ("idempotency_ttl_ms", idempotency_ttl_ms),
                            ("requeue_on_recovery", requeue_on_recovery),
                            ("manual_clock", manual_clock)):
            if value is not None:
                getattr(self, "set_" + name)(value)

    def close(self):
        if getattr(self, "_h", None):
            lib.xg2g_config_destroy(self._h)
        self._h = _ffi.CONFIG_P()
        self._keep = {}

    def set_tuner_slots(self, spec):
        """"0-3", "0,2,5", "0" (one slot numbered 0); InvalidArgument names a bad part."""
        _check(lib.xg2g_config_set_tuner_slots(self._h, _b(spec)))

    def set_owner_id(self, owner_id):
        _check(lib.xg2g_config_set_owner_id(self._h, _b(owner_id)))

    def set_lease_ttl_ms(self, ms):
        _check(lib.xg2g_config_set_lease_ttl_ms(self._h, ms))

    def set_heartbeat_ms(self, ms):
        _check(lib.xg2g_config_set_heartbeat_ms(self._h, ms))

    def set_start_deadline_ms(self, ms):
        _check(lib.xg2g_config_set_start_deadline_ms(self._h, ms))

    def set_stop_deadline_ms(self, ms):
        _check(lib.xg2g_config_set_stop_deadline_ms(self._h, ms))

    def set_idle_timeout_ms(self, ms):
        _check(lib.xg2g_config_set_idle_timeout_ms(self._h, ms))

    def set_retention_ms(self, ms):
        _check(lib.xg2g_config_set_retention_ms(self._h, ms))

    def set_idempotency_ttl_ms(self, ms):
        _check(lib.xg2g_config_set_idempotency_ttl_ms(self._h, ms))

    def set_requeue_on_recovery(self, enabled):
        _check(lib.xg2g_config_set_requeue_on_recovery(self._h, 1 if enabled else 0))

    def set_manual_clock(self, start_unix_ms):
        """Manual clock mode: no engine thread; time moves with Engine.advance_clock()."""
        _check(lib.xg2g_config_set_manual_clock(self._h, start_unix_ms))

    def _guarded(self, fn, what):
        """A C callback body around fn: exceptions become a failed status."""
        errors = self.callback_errors

        def call(pointer, _user_data):
            try:
                fn(_command(pointer))
                return 0
            except Error as e:
                errors.append(e)
                return e.status
            except BaseException as e:  # noqa: BLE001 - reported through callback_errors
                errors.append(e)
                return _ECANCELLED

        call.__name__ = what
        return call

    def set_pipeline(self, pipeline=None, *, tune=None, start=None, stop=None):
        """Installs the host pipeline: an object with tune/start/stop methods, or
        the functions themselves. Each gets a PipelineCommand. tune and start
        fail the session by raising (an xg2g.Error subclass gives its status,
        anything else XG2G_ECANCELLED; the exception lands in
        callback_errors). They run on the engine's thread, or inside
        Engine.poll()/advance_clock() in manual clock mode. set_pipeline(None)
        removes the pipeline."""
        if pipeline is not None:
            tune = tune or getattr(pipeline, "tune", None)
            start = start or getattr(pipeline, "start", None)
            stop = stop or getattr(pipeline, "stop", None)
        if pipeline is None and tune is None and start is None and stop is None:
            _check(lib.xg2g_config_set_pipeline(self._h, None, None, _ffi.NO_DESTROY))
            self._keep.pop("pipeline", None)
            return
        cbs = _init_struct(lib.xg2g_pipeline_callbacks_init, _ffi.PipelineCallbacks,
                           _ffi.PIPELINE_CALLBACKS_VERSION)
        keep = [cbs]
        if tune is not None:
            cbs.tune = _ffi.PIPELINE_FN(self._guarded(tune, "tune"))
            keep.append(cbs.tune)
        if start is not None:
            cbs.start = _ffi.PIPELINE_FN(self._guarded(start, "start"))
            keep.append(cbs.start)
        if stop is not None:
            errors = self.callback_errors

            def stop_call(pointer, _user_data):
                try:
                    stop(_command(pointer))
                except BaseException as e:  # noqa: BLE001 - reported through callback_errors
                    errors.append(e)

            cbs.stop = _ffi.PIPELINE_STOP_FN(stop_call)
            keep.append(cbs.stop)
        _check(lib.xg2g_config_set_pipeline(self._h, ctypes.byref(cbs), None, _ffi.NO_DESTROY))
        self._keep["pipeline"] = keep

    def use_simulated_pipeline(self, *, tune_delay_ms=0, ready_delay_ms=0, stop_delay_ms=0,
                               fail_tune=False, fail_start=False, fail_after_ready_ms=0):
        opts = _init_struct(lib.xg2g_simulated_pipeline_options_init,
                            _ffi.SimulatedPipelineOptions,
                            _ffi.SIMULATED_PIPELINE_OPTIONS_VERSION)
        opts.tune_delay_ms, opts.ready_delay_ms = tune_delay_ms, ready_delay_ms
        opts.stop_delay_ms, opts.fail_after_ready_ms = stop_delay_ms, fail_after_ready_ms
        opts.fail_tune, opts.fail_start = int(bool(fail_tune)), int(bool(fail_start))
        _check(lib.xg2g_config_use_simulated_pipeline(self._h, ctypes.byref(opts)))
        self._keep.pop("pipeline", None)

    def set_audit_callback(self, fn):
        """fn(event: dict) for every audit event, from any thread; None restores
        the default sink. Exceptions are kept in callback_errors."""
        if fn is None:
            _check(lib.xg2g_config_set_audit_callback(self._h, _ffi.NO_AUDIT, None, _ffi.NO_DESTROY))
            self._keep.pop("audit", None)
            return
        errors = self.callback_errors

        def audit(json_line, _user_data):
            try:
                fn(json.loads(json_line.decode("utf-8")))
            except BaseException as e:  # noqa: BLE001 - reported through callback_errors
                errors.append(e)

        callback = _ffi.AUDIT_FN(audit)
        _check(lib.xg2g_config_set_audit_callback(self._h, callback, None, _ffi.NO_DESTROY))
        self._keep["audit"] = callback

    def set_audit_path(self, path):
        """Appends audit events as JSON lines to the file at path."""
        _check(lib.xg2g_config_set_audit_path(self._h, _b(str(path))))
        self._keep.pop("audit", None)


def _fixed(raw):
    return raw.decode("utf-8") if raw else None


class Engine(_Closing):
    """The engine (xg2g_engine): start/stop intents, reports, the clock. Thread-safe.

    The store must stay open while the engine lives (the engine keeps a
    reference to the Store object). close() must not be called from one of
    the engine's callbacks.
    """

    def __init__(self, config, store):
        h = _ffi.ENGINE_P()
        _check(lib.xg2g_engine_create(ctypes.byref(h), config._h, store._h))
        self._h = h
        self._store = store
        # The C callbacks the engine copied from the config stay alive with it.
        self._keep = dict(config._keep)
        self.callback_errors = config.callback_errors

    def close(self):
        if getattr(self, "_h", None):
            lib.xg2g_engine_destroy(self._h)
        self._h = _ffi.ENGINE_P()
        self._keep = {}

    def start(self, service_ref, *, profile=None, principal=None, idempotency_key=None,
              correlation_id=None, params=None):
        """Submits a start intent. Raises Busy (with busy_session_id when the
        service is already active), Conflict (key reused for another request),
        InFlight, InvalidArgument, Unavailable."""
        req = _init_struct(lib.xg2g_start_request_init, _ffi.StartRequest,
                           _ffi.START_REQUEST_VERSION)
        req.service_ref, req.profile, req.principal = _b(service_ref), _b(profile), _b(principal)
        req.idempotency_key, req.correlation_id = _b(idempotency_key), _b(correlation_id)
        if params:
            flat = []
            for key, value in params.items():
                flat += [_b(key), _b(value)]
            array = (ctypes.c_char_p * len(flat))(*flat)
            req.params = ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p))
            req.param_count = len(params)
        res = _init_struct(lib.xg2g_start_result_init, _ffi.StartResult,
                           _ffi.START_RESULT_VERSION)
        status = lib.xg2g_engine_start(ctypes.byref(res), self._h, ctypes.byref(req))
        if status != 0:
            message = lib.xg2g_last_error().decode("utf-8", "replace")
            error = _BY_STATUS.get(status, Error)(status, message)
            if isinstance(error, (Busy, InFlight)):
                error.busy_session_id = _fixed(res.busy_session_id)
            raise error
        return StartResult(_fixed(res.session_id), State(res.state), _fixed(res.correlation_id),
                           bool(res.replay))

    def stop(self, session_id):
        res = _init_struct(lib.xg2g_stop_result_init, _ffi.StopResult, _ffi.STOP_RESULT_VERSION)
        _check(lib.xg2g_engine_stop(ctypes.byref(res), self._h, _b(session_id)))
        return StopResult(_fixed(res.session_id), State(res.state))

    def report_ready(self, session_id, fencing_token):
        _check(lib.xg2g_engine_report_ready(self._h, _b(session_id), fencing_token))

    def report_failed(self, session_id, fencing_token, reason=Reason.R_UNKNOWN, detail=None):
        _check(lib.xg2g_engine_report_failed(self._h, _b(session_id), fencing_token, int(reason),
                                             _b(detail)))

    def report_stopped(self, session_id, fencing_token):
        _check(lib.xg2g_engine_report_stopped(self._h, _b(session_id), fencing_token))

    def touch(self, session_id):
        _check(lib.xg2g_engine_touch(self._h, _b(session_id)))

    def poll(self):
        """Runs what is due (manual clock mode; a no-op otherwise)."""
        _check(lib.xg2g_engine_poll(self._h))

    def advance_clock(self, ms):
        """Manual clock mode: moves the clock by ms, then runs what is due."""
        _check(lib.xg2g_engine_advance_clock(self._h, ms))

    def stats(self):
        out = _init_struct(lib.xg2g_engine_stats_init, _ffi.EngineStats,
                           _ffi.ENGINE_STATS_VERSION)
        _check(lib.xg2g_engine_get_stats(ctypes.byref(out), self._h))
        return EngineStats(*(getattr(out, name) for name in _ffi.ENGINE_STATS_FIELDS))
