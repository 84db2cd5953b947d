"""The one declaration table of the C ABI, and the loader.

Every exported function is declared here exactly once: name, result type and
argument types. The rest of the package calls through `lib`.
"""
import ctypes
import ctypes.util
import os

c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
c_size_t = ctypes.c_size_t
c_double = ctypes.c_double
POINTER = ctypes.POINTER


class SessionHandle(ctypes.Structure):
    """Opaque xg2g_session."""


class StoreHandle(ctypes.Structure):
    """Opaque xg2g_store."""


class SessionListHandle(ctypes.Structure):
    """Opaque xg2g_session_list."""


class TlsCheckOptions(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("warn_days", c_int),
        ("warn_fraction", c_double),
        ("now_unix", c_int64),
    ]


SESSION_P = POINTER(SessionHandle)
STORE_P = POINTER(StoreHandle)
LIST_P = POINTER(SessionListHandle)

# Callback types (see xg2g_store.h).
UPDATE_FN = ctypes.CFUNCTYPE(c_int, SESSION_P, c_void_p)
SCAN_FN = ctypes.CFUNCTYPE(c_int, SESSION_P, c_void_p)

STATUS = c_int

# name: (restype, [argtypes])
DECLARATIONS = {
    "xg2g_status_str": (c_char_p, [STATUS]),
    "xg2g_last_error": (c_char_p, []),
    "xg2g_free": (None, [c_void_p]),
    "xg2g_version": (None, [POINTER(c_int), POINTER(c_int), POINTER(c_int)]),
    "xg2g_version_string": (c_char_p, []),
    "xg2g_check_version": (STATUS, [c_int, c_int]),
    # sessions
    "xg2g_session_state_str": (c_char_p, [c_int]),
    "xg2g_reason_str": (c_char_p, [c_int]),
    "xg2g_session_state_is_terminal": (c_int, [c_int]),
    "xg2g_session_create": (STATUS, [POINTER(SESSION_P), c_char_p, c_char_p, c_char_p, c_int64]),
    "xg2g_session_destroy": (None, [SESSION_P]),
    "xg2g_session_clone": (STATUS, [POINTER(SESSION_P), SESSION_P]),
    "xg2g_session_from_json": (STATUS, [POINTER(SESSION_P), c_char_p, c_size_t]),
    "xg2g_session_to_json": (STATUS, [POINTER(c_void_p), SESSION_P]),
    "xg2g_session_get_id": (c_char_p, [SESSION_P]),
    "xg2g_session_get_service_ref": (c_char_p, [SESSION_P]),
    "xg2g_session_get_profile": (c_char_p, [SESSION_P]),
    "xg2g_session_get_state": (c_int, [SESSION_P]),
    "xg2g_session_get_reason": (c_int, [SESSION_P]),
    "xg2g_session_get_reason_detail": (c_char_p, [SESSION_P]),
    "xg2g_session_get_correlation_id": (c_char_p, [SESSION_P]),
    "xg2g_session_get_created_at_unix": (c_int64, [SESSION_P]),
    "xg2g_session_get_updated_at_unix": (c_int64, [SESSION_P]),
    "xg2g_session_get_expires_at_unix": (c_int64, [SESSION_P]),
    "xg2g_session_get_context": (c_char_p, [SESSION_P, c_char_p]),
    "xg2g_session_set_context": (STATUS, [SESSION_P, c_char_p, c_char_p]),
    "xg2g_session_set_correlation_id": (STATUS, [SESSION_P, c_char_p]),
    "xg2g_session_set_expires_at_unix": (STATUS, [SESSION_P, c_int64]),
    "xg2g_session_apply": (STATUS, [SESSION_P, c_int, c_int, c_char_p, c_int64]),
    # store
    "xg2g_store_open": (STATUS, [POINTER(STORE_P), c_char_p]),
    "xg2g_store_close": (None, [STORE_P]),
    "xg2g_store_put_session": (STATUS, [STORE_P, SESSION_P]),
    "xg2g_store_get_session": (STATUS, [POINTER(SESSION_P), STORE_P, c_char_p]),
    "xg2g_store_update_session": (STATUS, [POINTER(SESSION_P), STORE_P, c_char_p, UPDATE_FN,
                                           c_void_p]),
    "xg2g_store_delete_session": (STATUS, [STORE_P, c_char_p]),
    "xg2g_store_scan_sessions": (STATUS, [STORE_P, SCAN_FN, c_void_p]),
    "xg2g_store_list_sessions": (STATUS, [POINTER(LIST_P), POINTER(c_size_t), STORE_P, c_size_t,
                                          c_size_t]),
    "xg2g_session_list_count": (c_size_t, [LIST_P]),
    "xg2g_session_list_at": (SESSION_P, [LIST_P, c_size_t]),
    "xg2g_session_list_destroy": (None, [LIST_P]),
    "xg2g_store_put_session_idempotent": (STATUS, [POINTER(c_void_p), STORE_P, SESSION_P, c_char_p,
                                                   c_char_p, c_int64]),
    "xg2g_store_lease_acquire": (STATUS, [POINTER(c_uint64), STORE_P, c_char_p, c_char_p, c_int64]),
    "xg2g_store_lease_renew": (STATUS, [STORE_P, c_char_p, c_char_p, c_int64]),
    "xg2g_store_lease_release": (STATUS, [STORE_P, c_char_p, c_char_p]),
    # tls
    "xg2g_tls_check_options_init": (STATUS, [POINTER(TlsCheckOptions), ctypes.c_uint]),
    "xg2g_tls_check": (STATUS, [POINTER(c_void_p), c_char_p, c_char_p, POINTER(TlsCheckOptions)]),
}


def _find_library():
    explicit = os.environ.get("XG2G_LIBRARY")
    if explicit:
        return explicit
    found = ctypes.util.find_library("xg2g")
    return found or "libxg2g.so.0"


def _load():
    library = ctypes.CDLL(_find_library())
    for name, (restype, argtypes) in DECLARATIONS.items():
        fn = getattr(library, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return library


lib = _load()
