"""Python bindings of libxg2g over its C ABI (ctypes, no compiled code).

The library is found through the XG2G_LIBRARY environment variable (a path to
libxg2g.so), else the system's library search path.
"""
import ctypes
import enum
import json

from ._ffi import (LIST_P, SCAN_FN, SESSION_P, STORE_P, UPDATE_FN, TlsCheckOptions, lib)

__all__ = [
    "Error", "InvalidArgument", "OutOfMemory", "VersionMismatch", "NotFound", "AlreadyExists",
    "Conflict", "Busy", "InvalidState", "Unavailable", "Corrupt", "StoreFull", "Timeout",
    "Cancelled", "IOFailure", "Unsupported", "InternalError", "InFlight", "State", "Reason", "Event",
    "Session", "Store", "tls_check", "version", "library_version",
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
class Busy(Error): status = -7
class InvalidState(Error): status = -8
class Unavailable(Error): status = -9
class Corrupt(Error): status = -10
class StoreFull(Error): status = -11
class Timeout(Error, TimeoutError): status = -12
class Cancelled(Error): status = -13
class IOFailure(Error, OSError): status = -14
class Unsupported(Error): status = -15
class InternalError(Error): status = -16
class InFlight(Error): status = -17


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


class Session:
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

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

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


class Store:
    """A session store opened by URI ("memory:"). Thread-safe."""

    def __init__(self, uri="memory:"):
        h = STORE_P()
        _check(lib.xg2g_store_open(ctypes.byref(h), _b(uri)))
        self._h = h

    def close(self):
        if getattr(self, "_h", None):
            lib.xg2g_store_close(self._h)
        self._h = STORE_P()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

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
