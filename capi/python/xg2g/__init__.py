"""Python bindings of libxg2g over its C ABI (ctypes, no compiled code).

The library is found through the XG2G_LIBRARY environment variable (a path to
libxg2g.so), else the system's library search path.

Every handle owner (Session, Store, Config, Engine) has close() and works as a
context manager; garbage collection closes it too. A failed call raises the
subclass of Error for its status.
"""
from __future__ import annotations

import collections
import ctypes
import dataclasses
import enum
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, Union

from . import _ffi
from ._ffi import (LEASE_LIST_P, LIST_P, SCAN_FN, SESSION_P, STORE_P, STORE_REPORT_P, UPDATE_FN,
                   TlsCheckOptions, lib)

__all__ = [
    "Error", "InvalidArgument", "OutOfMemory", "VersionMismatch", "NotFound", "AlreadyExists",
    "Conflict", "Busy", "InvalidState", "Unavailable", "Corrupt", "StoreFull", "Timeout",
    "Cancelled", "IOFailure", "Unsupported", "InternalError", "InFlight", "CircuitOpen", "State",
    "Reason", "Event",
    "Session", "Store", "Lease", "StoreReport", "tls_check", "version", "library_version",
    "Config", "Engine", "PipelineCommand", "StartResult", "StopResult", "EngineStats",
]

_T = TypeVar("_T")

# A file system path as the functions taking one accept it.
StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class Error(Exception):
    """A failed libxg2g call: `status` is the xg2g_status, `message` the last error."""

    status: Optional[int] = None

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} ({_status_name(status)})")
        self.status = status
        self.message = message


class InvalidArgument(Error, ValueError):
    """XG2G_EINVAL: an argument is invalid; the message names it."""
    status = -1


class OutOfMemory(Error, MemoryError):
    """XG2G_ENOMEM: the library ran out of memory."""
    status = -2


class VersionMismatch(Error):
    """XG2G_EVERSION: a versioned struct or option has a version the library does not know."""
    status = -3


class NotFound(Error, LookupError):
    """XG2G_ENOTFOUND: the session, key or lease does not exist (or expired)."""
    status = -4


class AlreadyExists(Error):
    """XG2G_EEXISTS: the object already exists."""
    status = -5


class Conflict(Error):
    """XG2G_ECONFLICT: a concurrent change or an owner mismatch; nothing was written."""
    status = -6


class Busy(Error):
    """Busy lease or no free tuner. `busy_session_id` names the session that
    already serves the service (engine starts), else it is None."""
    status = -7
    busy_session_id: Optional[str] = None


class InvalidState(Error):
    """XG2G_ESTATE: the transition is not allowed from the current state."""
    status = -8


class Unavailable(Error):
    """XG2G_EUNAVAILABLE: the store or an upstream is unreachable; nothing was written."""
    status = -9


class Corrupt(Error):
    """XG2G_ECORRUPT: a stored record (or given JSON) failed to decode."""
    status = -10


class StoreFull(Error):
    """XG2G_ESTOREFULL: the store is out of space."""
    status = -11


class Timeout(Error, TimeoutError):
    """XG2G_ETIMEOUT: a deadline passed."""
    status = -12


class Cancelled(Error):
    """XG2G_ECANCELLED: the operation was cancelled (also: a Python callback gave up)."""
    status = -13


class IOFailure(Error, OSError):
    """XG2G_EIO: an operating-system I/O error."""
    status = -14


class Unsupported(Error):
    """XG2G_EUNSUPPORTED: the feature or URI scheme is not supported."""
    status = -15


class InternalError(Error):
    """XG2G_EINTERNAL: a bug in libxg2g; the message names the function."""
    status = -16


class InFlight(Error):
    """The idempotency key's first request is still being created; retry.
    `busy_session_id` names the session it is creating (engine starts)."""
    status = -17
    busy_session_id: Optional[str] = None


class CircuitOpen(Error):
    """A circuit breaker is open: the upstream (the receiver) failed repeatedly
    and is not called until the breaker's open timeout passes (HTTP 503
    CIRCUIT_OPEN)."""
    status = -18


_BY_STATUS = {cls.status: cls for cls in Error.__subclasses__()}
_ECANCELLED = -13


def _status_name(status: int) -> str:
    return lib.xg2g_status_str(status).decode()


def _error(status: int) -> Error:
    message = lib.xg2g_last_error().decode("utf-8", "replace")
    return _BY_STATUS.get(status, Error)(status, message)


def _check(status: int) -> None:
    if status != 0:
        raise _error(status)


def _b(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else text.encode("utf-8")


def _s(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else raw.decode("utf-8")


def _path(path: StrPath) -> bytes:
    return os.fsencode(path)


def _take_string(ptr: ctypes.c_void_p) -> Optional[str]:
    """Copies a library-allocated string and frees it."""
    if not ptr.value:
        return None
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.xg2g_free(ptr)


class State(enum.IntEnum):
    """A session's state (xg2g_session_state)."""
    NEW = 0
    STARTING = 1
    READY = 2
    DRAINING = 3
    STOPPING = 4
    FAILED = 5
    CANCELLED = 6
    STOPPED = 7

    @property
    def terminal(self) -> bool:
        """True for the states a session never leaves (FAILED, CANCELLED, STOPPED)."""
        return bool(lib.xg2g_session_state_is_terminal(self))


class Reason(enum.IntEnum):
    """Why a session ended or failed (xg2g_reason)."""
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
    """An input of the session state machine (xg2g_event), for Session.apply()."""
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


def version() -> str:
    """The loaded library's version as "MAJOR.MINOR.PATCH"."""
    return lib.xg2g_version_string().decode()


def library_version() -> Tuple[int, int, int]:
    """The loaded library's version as a (major, minor, patch) tuple."""
    major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    lib.xg2g_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    return (major.value, minor.value, patch.value)


class _Closing:
    """A handle owner: close() frees it, also at garbage collection and at the
    end of a with block."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __del__(self) -> None:
        self.close()

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session(_Closing):
    """A session record. Owns its handle; not thread-safe.

    The state only changes through apply(), which uses the library's
    transition table.
    """

    __slots__ = ("_h", "_owned")

    def __init__(self, service_ref: str, *, session_id: Optional[str] = None,
                 profile: Optional[str] = None, now_ms: int = 0) -> None:
        """A NEW session for service_ref; session_id None draws a random id,
        profile None means "default", now_ms 0 means the current time."""
        h = SESSION_P()
        _check(lib.xg2g_session_create(ctypes.byref(h), _b(session_id), _b(service_ref),
                                       _b(profile), now_ms))
        self._h, self._owned = h, True

    @classmethod
    def _adopt(cls, handle: Any) -> Session:
        obj = cls.__new__(cls)
        obj._h, obj._owned = handle, True
        return obj

    @classmethod
    def _borrow(cls, handle: Any) -> Session:
        obj = cls.__new__(cls)
        obj._h, obj._owned = handle, False
        return obj

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> Session:
        """Decodes a session from its JSON form; Corrupt when it does not decode."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        h = SESSION_P()
        _check(lib.xg2g_session_from_json(ctypes.byref(h), data, len(data)))
        return cls._adopt(h)

    def close(self) -> None:
        """Frees the handle (a borrowed one is only forgotten). Idempotent."""
        if getattr(self, "_owned", False) and self._h:
            lib.xg2g_session_destroy(self._h)
        self._h = SESSION_P()

    def clone(self) -> Session:
        """An independent copy."""
        h = SESSION_P()
        _check(lib.xg2g_session_clone(ctypes.byref(h), self._h))
        return Session._adopt(h)

    def to_json(self) -> str:
        """The session as JSON text (the stored form)."""
        out = ctypes.c_void_p()
        _check(lib.xg2g_session_to_json(ctypes.byref(out), self._h))
        text = _take_string(out)
        assert text is not None
        return text

    def to_dict(self) -> Dict[str, Any]:
        """The session's JSON form, decoded."""
        return json.loads(self.to_json())

    @property
    def id(self) -> str:
        """The session id."""
        return _s(lib.xg2g_session_get_id(self._h)) or ""

    @property
    def service_ref(self) -> str:
        """The service reference the session streams."""
        return _s(lib.xg2g_session_get_service_ref(self._h)) or ""

    @property
    def profile(self) -> str:
        """The transcoding profile's name."""
        return _s(lib.xg2g_session_get_profile(self._h)) or ""

    @property
    def state(self) -> State:
        """The current state."""
        return State(lib.xg2g_session_get_state(self._h))

    @property
    def reason(self) -> Reason:
        """Why the session ended or failed (R_NONE while it runs)."""
        return Reason(lib.xg2g_session_get_reason(self._h))

    @property
    def reason_detail(self) -> Optional[str]:
        """Free text about the reason, when there is any."""
        return _s(lib.xg2g_session_get_reason_detail(self._h))

    @property
    def created_at_unix(self) -> int:
        """Creation time in seconds since the epoch."""
        return lib.xg2g_session_get_created_at_unix(self._h)

    @property
    def updated_at_unix(self) -> int:
        """Time of the last change in seconds since the epoch."""
        return lib.xg2g_session_get_updated_at_unix(self._h)

    @property
    def correlation_id(self) -> Optional[str]:
        """The correlation id tying the session to its request."""
        return _s(lib.xg2g_session_get_correlation_id(self._h))

    @correlation_id.setter
    def correlation_id(self, value: Optional[str]) -> None:
        _check(lib.xg2g_session_set_correlation_id(self._h, _b(value)))

    @property
    def expires_at_unix(self) -> int:
        """When the record may be deleted (seconds since the epoch; 0: never)."""
        return lib.xg2g_session_get_expires_at_unix(self._h)

    @expires_at_unix.setter
    def expires_at_unix(self, value: int) -> None:
        _check(lib.xg2g_session_set_expires_at_unix(self._h, value))

    def context(self, key: str) -> Optional[str]:
        """The context value under key, None when absent."""
        return _s(lib.xg2g_session_get_context(self._h, _b(key)))

    def set_context(self, key: str, value: Optional[str]) -> None:
        """Sets (or, with None, removes) a context value."""
        _check(lib.xg2g_session_set_context(self._h, _b(key), _b(value)))

    def apply(self, event: Event, reason: Reason = Reason.R_NONE, detail: Optional[str] = None,
              now_ms: int = 0) -> None:
        """Feeds event to the state machine; InvalidState (and no change) when
        the transition is not allowed."""
        _check(lib.xg2g_session_apply(self._h, int(event), int(reason), _b(detail), now_ms))


@dataclasses.dataclass(frozen=True)
class Lease:
    """An unexpired lease as Store.leases() lists it."""
    key: str
    owner: str
    fencing_token: int
    expires_in_ms: int  # time left by the store's clock when the list was read


@dataclasses.dataclass(frozen=True)
class StoreReport:
    """What Store.check() found. Problems are sentences naming the key they are
    about; none means the store is consistent."""
    sessions: int
    leases: int
    idempotency_keys: Optional[int]  # None when the backend does not count them
    problems: Tuple[str, ...]

    @property
    def consistent(self) -> bool:
        """True when the check found no problem."""
        return not self.problems


class Store(_Closing):
    """A session store opened by URI ("memory:", "lmdb:DIR", "redis://...").
    Thread-safe."""

    def __init__(self, uri: str = "memory:") -> None:
        """Opens the store; Unsupported for an unknown scheme, Unavailable
        when it cannot be reached."""
        h = STORE_P()
        _check(lib.xg2g_store_open(ctypes.byref(h), _b(uri)))
        self._h = h

    def close(self) -> None:
        """Closes the store. Idempotent."""
        if getattr(self, "_h", None):
            lib.xg2g_store_close(self._h)
        self._h = STORE_P()

    def put(self, session: Session) -> None:
        """Writes the session (insert or overwrite)."""
        _check(lib.xg2g_store_put_session(self._h, session._h))

    def get(self, session_id: str) -> Session:
        """A copy of the stored session; NotFound when there is none."""
        h = SESSION_P()
        _check(lib.xg2g_store_get_session(ctypes.byref(h), self._h, _b(session_id)))
        return Session._adopt(h)

    def update(self, session_id: str, fn: Callable[[Session], None]) -> Session:
        """Calls fn(session) on a private copy; the store retries it on a race.
        Returns the session as written.

        An exception raised by fn aborts the update (nothing is written) and is
        re-raised here.
        """
        raised: List[BaseException] = []

        def trampoline(handle: Any, _user_data: Any) -> int:
            try:
                fn(Session._borrow(handle))
                return 0
            except Error as e:
                raised.append(e)
                return e.status if e.status is not None else _ECANCELLED
            except BaseException as e:  # noqa: BLE001 - re-raised below
                raised.append(e)
                return _ECANCELLED  # the callback gave up

        callback = UPDATE_FN(trampoline)
        h = SESSION_P()
        status = lib.xg2g_store_update_session(ctypes.byref(h), self._h, _b(session_id), callback,
                                               None)
        if raised:
            raise raised[-1]
        _check(status)
        return Session._adopt(h)

    def delete(self, session_id: str) -> None:
        """Deletes the session; NotFound when there is none."""
        _check(lib.xg2g_store_delete_session(self._h, _b(session_id)))

    def scan(self) -> List[Session]:
        """All sessions (a snapshot), as Session objects."""
        found: List[Session] = []

        def visit(handle: Any, _user_data: Any) -> int:
            h = SESSION_P()
            if lib.xg2g_session_clone(ctypes.byref(h), handle) == 0:
                found.append(Session._adopt(h))
            return 0

        _check(lib.xg2g_store_scan_sessions(self._h, SCAN_FN(visit), None))
        return found

    def list(self, offset: int = 0, limit: int = 100) -> Tuple[List[Session], int]:
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

    def put_idempotent(self, session: Session, key: str, fingerprint: str,
                       ttl_ms: int) -> Optional[str]:
        """None when stored now; else the id of the session stored first under key.
        Conflict when key exists with another fingerprint."""
        out = ctypes.c_void_p()
        _check(lib.xg2g_store_put_session_idempotent(ctypes.byref(out), self._h, session._h,
                                                     _b(key), _b(fingerprint), ttl_ms))
        return _take_string(out)

    def acquire_lease(self, key: str, owner: str, ttl_ms: int) -> int:
        """Takes (or renews) the lease key for owner; returns the fencing token.
        Busy when another owner holds it."""
        token = ctypes.c_uint64()
        _check(lib.xg2g_store_lease_acquire(ctypes.byref(token), self._h, _b(key), _b(owner),
                                            ttl_ms))
        return token.value

    def renew_lease(self, key: str, owner: str, ttl_ms: int) -> None:
        """Extends a lease owner holds; NotFound when not held, Conflict when
        another owner holds it."""
        _check(lib.xg2g_store_lease_renew(self._h, _b(key), _b(owner), ttl_ms))

    def release_lease(self, key: str, owner: str) -> None:
        """Releases a lease owner holds; NotFound when not held, Conflict when
        another owner holds it."""
        _check(lib.xg2g_store_lease_release(self._h, _b(key), _b(owner)))

    def leases(self) -> List[Lease]:
        """The unexpired leases, ordered by key. Corrupt names a lease record
        that does not decode."""
        h = LEASE_LIST_P()
        _check(lib.xg2g_store_list_leases(ctypes.byref(h), self._h))
        try:
            return [Lease(key=_s(lib.xg2g_lease_list_key(h, i)) or "",
                          owner=_s(lib.xg2g_lease_list_owner(h, i)) or "",
                          fencing_token=lib.xg2g_lease_list_fencing_token(h, i),
                          expires_in_ms=lib.xg2g_lease_list_expires_in_ms(h, i))
                    for i in range(lib.xg2g_lease_list_count(h))]
        finally:
            lib.xg2g_lease_list_destroy(h)

    def check(self) -> StoreReport:
        """Reads the whole store and reports what does not add up (records that
        do not decode, listings that disagree, leases without owner or token;
        LMDB also its counters). Problems are in the report, not raised; writes
        nothing. Unavailable when the store cannot be read at all."""
        h = STORE_REPORT_P()
        _check(lib.xg2g_store_check(ctypes.byref(h), self._h))
        try:
            keys = lib.xg2g_store_report_idempotency_keys(h)
            problems = []
            for i in range(lib.xg2g_store_report_problem_count(h)):
                raw = lib.xg2g_store_report_problem(h, i)
                problems.append(raw.decode("utf-8", "replace") if raw is not None else "")
            return StoreReport(sessions=lib.xg2g_store_report_sessions(h),
                               leases=lib.xg2g_store_report_leases(h),
                               idempotency_keys=None if keys < 0 else keys,
                               problems=tuple(problems))
        finally:
            lib.xg2g_store_report_destroy(h)


def tls_check(cert_path: StrPath, key_path: StrPath, *, warn_days: int = 30,
              warn_fraction: float = 0.33, now_unix: int = 0,
              passphrase: Union[str, bytes, None] = None) -> Dict[str, Any]:
    """Checks a certificate file and its private key file (PEM; may be the same
    file) and returns the report as a dict in the `xg2g tls check --json`
    shape: "valid", "errors" and "warnings" (lists of {"code", "file",
    "message"}), "subject", "sans", "not_before", "not_after", "days_left",
    "key_type", "key_bits".

    passphrase decrypts an encrypted private key (str as UTF-8, or bytes);
    without it an encrypted key is the error KEY_ENCRYPTED, a wrong one
    KEY_PASSPHRASE_WRONG. A certificate that fails the check is a report with
    "valid": false, not an exception; InvalidArgument means a bad argument
    (warn_fraction over 1, a NUL byte in the passphrase).
    """
    secret: Optional[bytes] = None
    if passphrase is not None:
        secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
        if b"\0" in secret:
            raise InvalidArgument(-1, "tls_check: passphrase contains a NUL byte")
    opts = TlsCheckOptions()
    _check(lib.xg2g_tls_check_options_init(ctypes.byref(opts), _ffi.TLS_CHECK_OPTIONS_VERSION))
    opts.warn_days, opts.warn_fraction, opts.now_unix = warn_days, warn_fraction, now_unix
    # secret stays referenced until the call returns: the library reads it only then.
    opts.passphrase = secret
    out = ctypes.c_void_p()
    _check(lib.xg2g_tls_check(ctypes.byref(out), _path(cert_path), _path(key_path),
                              ctypes.byref(opts)))
    text = _take_string(out)
    assert text is not None
    return json.loads(text)


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
    """The answer to Engine.start(): the session, its state, and whether the
    answer replays an earlier request with the same idempotency key."""
    session_id: str
    state: State
    correlation_id: str
    replay: bool


@dataclasses.dataclass(frozen=True)
class StopResult:
    """The answer to Engine.stop(): the session and its state after the stop intent."""
    session_id: str
    state: State


EngineStats = collections.namedtuple("EngineStats", _ffi.ENGINE_STATS_FIELDS)  # type: ignore[misc]
EngineStats.__doc__ = "The engine's counters (see xg2g_engine_stats)."

# A host pipeline callback: gets the command; raising fails the session.
PipelineFn = Callable[[PipelineCommand], None]


def _command(pointer: Any) -> PipelineCommand:
    c = pointer.contents
    return PipelineCommand(_s(c.session_id) or "", _s(c.service_ref) or "", _s(c.profile) or "",
                           c.slot, c.fencing_token)


def _init_struct(init: Any, struct_type: Any, version: int) -> Any:
    value = struct_type()
    _check(init(ctypes.byref(value), version))
    return value


class Config(_Closing):
    """Engine configuration (xg2g_config): typed setters, copied by Engine().

    Not thread-safe. Callbacks installed here are Python callables; the
    Config and every Engine created from it keep them alive.
    """

    def __init__(self, *, tuner_slots: Optional[str] = None, owner_id: Optional[str] = None,
                 lease_ttl_ms: Optional[int] = None, heartbeat_ms: Optional[int] = None,
                 start_deadline_ms: Optional[int] = None, stop_deadline_ms: Optional[int] = None,
                 idle_timeout_ms: Optional[int] = None, retention_ms: Optional[int] = None,
                 idempotency_ttl_ms: Optional[int] = None,
                 requeue_on_recovery: Optional[bool] = None,
                 manual_clock: Optional[int] = None) -> None:
        """The library's defaults, changed by each keyword given (see the set_* methods)."""
        h = _ffi.CONFIG_P()
        _check(lib.xg2g_config_create(ctypes.byref(h)))
        self._h = h
        # Python objects the C side points at: kept while the config may use them.
        self._keep: Dict[str, Any] = {}
        # Exceptions raised by this config's Python callbacks (newest last).
        self.callback_errors: collections.deque = collections.deque(maxlen=100)
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

    def close(self) -> None:
        """Frees the configuration (engines made from it keep their copy). Idempotent."""
        if getattr(self, "_h", None):
            lib.xg2g_config_destroy(self._h)
        self._h = _ffi.CONFIG_P()
        self._keep = {}

    def set_tuner_slots(self, spec: str) -> None:
        """"0-3", "0,2,5", "0" (one slot numbered 0); InvalidArgument names a bad part."""
        _check(lib.xg2g_config_set_tuner_slots(self._h, _b(spec)))

    def set_owner_id(self, owner_id: str) -> None:
        """The engine's identity: the owner of its leases ("" restores a random
        id; at most 128 printable ASCII characters without white space)."""
        _check(lib.xg2g_config_set_owner_id(self._h, _b(owner_id)))

    def set_lease_ttl_ms(self, ms: int) -> None:
        """How long a tuner lease lasts without renewal (> 0)."""
        _check(lib.xg2g_config_set_lease_ttl_ms(self._h, ms))

    def set_heartbeat_ms(self, ms: int) -> None:
        """Lease renewal interval (> 0, shorter than the lease TTL at engine creation)."""
        _check(lib.xg2g_config_set_heartbeat_ms(self._h, ms))

    def set_start_deadline_ms(self, ms: int) -> None:
        """Deadline of NEW + STARTING (> 0): past it the session fails with R_TUNE_TIMEOUT."""
        _check(lib.xg2g_config_set_start_deadline_ms(self._h, ms))

    def set_stop_deadline_ms(self, ms: int) -> None:
        """Deadline of STOPPING and DRAINING (> 0): past it a stopping session is STOPPED."""
        _check(lib.xg2g_config_set_stop_deadline_ms(self._h, ms))

    def set_idle_timeout_ms(self, ms: int) -> None:
        """Stops a READY session without Engine.touch() for this long (0: off)."""
        _check(lib.xg2g_config_set_idle_timeout_ms(self._h, ms))

    def set_retention_ms(self, ms: int) -> None:
        """How long terminal sessions stay in the store before they are deleted (> 0)."""
        _check(lib.xg2g_config_set_retention_ms(self._h, ms))

    def set_idempotency_ttl_ms(self, ms: int) -> None:
        """Lifetime of idempotency keys (> 0)."""
        _check(lib.xg2g_config_set_idempotency_ttl_ms(self._h, ms))

    def set_requeue_on_recovery(self, enabled: bool) -> None:
        """What start-up recovery does with sessions whose lease is gone: False
        (the default) fails them with R_LEASE_EXPIRED, True starts them again."""
        _check(lib.xg2g_config_set_requeue_on_recovery(self._h, 1 if enabled else 0))

    def set_manual_clock(self, start_unix_ms: int) -> None:
        """Manual clock mode: no engine thread; time moves with Engine.advance_clock()."""
        _check(lib.xg2g_config_set_manual_clock(self._h, start_unix_ms))

    def _guarded(self, fn: PipelineFn, what: str) -> Callable[[Any, Any], int]:
        """A C callback body around fn: exceptions become a failed status."""
        errors = self.callback_errors

        def call(pointer: Any, _user_data: Any) -> int:
            try:
                fn(_command(pointer))
                return 0
            except Error as e:
                errors.append(e)
                return e.status if e.status is not None else _ECANCELLED
            except BaseException as e:  # noqa: BLE001 - reported through callback_errors
                errors.append(e)
                return _ECANCELLED

        call.__name__ = what
        return call

    def set_pipeline(self, pipeline: Any = None, *, tune: Optional[PipelineFn] = None,
                     start: Optional[PipelineFn] = None,
                     stop: Optional[PipelineFn] = None) -> None:
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
            stop_fn = stop

            def stop_call(pointer: Any, _user_data: Any) -> None:
                try:
                    stop_fn(_command(pointer))
                except BaseException as e:  # noqa: BLE001 - reported through callback_errors
                    errors.append(e)

            cbs.stop = _ffi.PIPELINE_STOP_FN(stop_call)
            keep.append(cbs.stop)
        _check(lib.xg2g_config_set_pipeline(self._h, ctypes.byref(cbs), None, _ffi.NO_DESTROY))
        self._keep["pipeline"] = keep

    def use_simulated_pipeline(self, *, tune_delay_ms: int = 0, ready_delay_ms: int = 0,
                               stop_delay_ms: int = 0, fail_tune: bool = False,
                               fail_start: bool = False, fail_after_ready_ms: int = 0) -> None:
        """Installs the library's simulated pipeline: it reports ready
        tune_delay_ms + ready_delay_ms after a start and stopped stop_delay_ms
        after a stop, on the engine's clock; fail_* make it fail instead."""
        opts = _init_struct(lib.xg2g_simulated_pipeline_options_init,
                            _ffi.SimulatedPipelineOptions,
                            _ffi.SIMULATED_PIPELINE_OPTIONS_VERSION)
        opts.tune_delay_ms, opts.ready_delay_ms = tune_delay_ms, ready_delay_ms
        opts.stop_delay_ms, opts.fail_after_ready_ms = stop_delay_ms, fail_after_ready_ms
        opts.fail_tune, opts.fail_start = int(bool(fail_tune)), int(bool(fail_start))
        _check(lib.xg2g_config_use_simulated_pipeline(self._h, ctypes.byref(opts)))
        self._keep.pop("pipeline", None)

    def set_audit_callback(self, fn: Optional[Callable[[Dict[str, Any]], None]]) -> None:
        """fn(event: dict) for every audit event, from any thread; None restores
        the default sink. Exceptions are kept in callback_errors."""
        if fn is None:
            _check(lib.xg2g_config_set_audit_callback(self._h, _ffi.NO_AUDIT, None, _ffi.NO_DESTROY))
            self._keep.pop("audit", None)
            return
        errors = self.callback_errors
        sink = fn

        def audit(json_line: bytes, _user_data: Any) -> None:
            try:
                sink(json.loads(json_line.decode("utf-8")))
            except BaseException as e:  # noqa: BLE001 - reported through callback_errors
                errors.append(e)

        callback = _ffi.AUDIT_FN(audit)
        _check(lib.xg2g_config_set_audit_callback(self._h, callback, None, _ffi.NO_DESTROY))
        self._keep["audit"] = callback

    def set_audit_path(self, path: StrPath) -> None:
        """Appends audit events as JSON lines to the file at path."""
        _check(lib.xg2g_config_set_audit_path(self._h, _path(path)))
        self._keep.pop("audit", None)


def _fixed(raw: bytes) -> Optional[str]:
    return raw.decode("utf-8") if raw else None


class Engine(_Closing):
    """The engine (xg2g_engine): start/stop intents, reports, the clock. Thread-safe.

    The store must stay open while the engine lives (the engine keeps a
    reference to the Store object). close() must not be called from one of
    the engine's callbacks.
    """

    def __init__(self, config: Config, store: Store) -> None:
        """An engine over store with a copy of config; InvalidArgument names an
        inconsistent setting (a heartbeat not shorter than the lease)."""
        h = _ffi.ENGINE_P()
        _check(lib.xg2g_engine_create(ctypes.byref(h), config._h, store._h))
        self._h = h
        self._store = store
        # The C callbacks the engine copied from the config stay alive with it.
        self._keep = dict(config._keep)
        self.callback_errors = config.callback_errors

    def close(self) -> None:
        """Stops the engine's thread, ends the sessions it drives (the host's stop
        callback runs for each started pipeline) and frees it. Idempotent."""
        if getattr(self, "_h", None):
            lib.xg2g_engine_destroy(self._h)
        self._h = _ffi.ENGINE_P()
        self._keep = {}

    def start(self, service_ref: str, *, profile: Optional[str] = None,
              principal: Optional[str] = None, idempotency_key: Optional[str] = None,
              correlation_id: Optional[str] = None,
              params: Optional[Mapping[str, str]] = None) -> StartResult:
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
            error = _error(status)
            if isinstance(error, (Busy, InFlight)):
                error.busy_session_id = _fixed(res.busy_session_id)
            raise error
        return StartResult(_fixed(res.session_id) or "", State(res.state),
                           _fixed(res.correlation_id) or "", bool(res.replay))

    def stop(self, session_id: str) -> StopResult:
        """Submits a stop intent (harmless for an ended session); NotFound when
        there is no such session."""
        res = _init_struct(lib.xg2g_stop_result_init, _ffi.StopResult, _ffi.STOP_RESULT_VERSION)
        _check(lib.xg2g_engine_stop(ctypes.byref(res), self._h, _b(session_id)))
        return StopResult(_fixed(res.session_id) or "", State(res.state))

    def report_ready(self, session_id: str, fencing_token: int) -> None:
        """The host pipeline reports the session streaming; Conflict for a stale token."""
        _check(lib.xg2g_engine_report_ready(self._h, _b(session_id), fencing_token))

    def report_failed(self, session_id: str, fencing_token: int,
                      reason: Reason = Reason.R_UNKNOWN, detail: Optional[str] = None) -> None:
        """The host pipeline reports the session failed; Conflict for a stale token."""
        _check(lib.xg2g_engine_report_failed(self._h, _b(session_id), fencing_token, int(reason),
                                             _b(detail)))

    def report_stopped(self, session_id: str, fencing_token: int) -> None:
        """The host pipeline reports the session's pipeline torn down (STOPPING ->
        STOPPED; a session not being stopped fails with R_PROCESS_ENDED)."""
        _check(lib.xg2g_engine_report_stopped(self._h, _b(session_id), fencing_token))

    def touch(self, session_id: str) -> None:
        """Marks the session used (postpones its idle timeout)."""
        _check(lib.xg2g_engine_touch(self._h, _b(session_id)))

    def poll(self) -> None:
        """Runs what is due (manual clock mode; a no-op otherwise)."""
        _check(lib.xg2g_engine_poll(self._h))

    def advance_clock(self, ms: int) -> None:
        """Manual clock mode: moves the clock by ms, then runs what is due."""
        _check(lib.xg2g_engine_advance_clock(self._h, ms))

    def stats(self) -> EngineStats:
        """The engine's counters."""
        out = _init_struct(lib.xg2g_engine_stats_init, _ffi.EngineStats,
                           _ffi.ENGINE_STATS_VERSION)
        _check(lib.xg2g_engine_get_stats(ctypes.byref(out), self._h))
        return EngineStats(*(getattr(out, name) for name in _ffi.ENGINE_STATS_FIELDS))
