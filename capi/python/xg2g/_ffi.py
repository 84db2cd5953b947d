"""The one declaration table of the C ABI, and the loader.

Every exported function is declared here exactly once: name, result type and
argument types. The rest of the package calls through `lib`.
"""
from __future__ import annotations

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


class LeaseListHandle(ctypes.Structure):
    """Opaque xg2g_lease_list."""


class StoreReportHandle(ctypes.Structure):
    """Opaque xg2g_store_report."""


# Version 2 appends passphrase; the package always passes version 2.
TLS_CHECK_OPTIONS_VERSION = 2


class TlsCheckOptions(ctypes.Structure):
    """xg2g_tls_check_options, version 2."""
    _fields_ = [
        ("version", ctypes.c_uint),
        ("warn_days", c_int),
        ("warn_fraction", c_double),
        ("now_unix", c_int64),
        ("passphrase", c_char_p),
    ]


class ConfigHandle(ctypes.Structure):
    """Opaque xg2g_config."""


class EngineHandle(ctypes.Structure):
    """Opaque xg2g_engine."""


# Versions of the engine's structs this package was written against.
PIPELINE_CALLBACKS_VERSION = 1
SIMULATED_PIPELINE_OPTIONS_VERSION = 1
START_REQUEST_VERSION = 1
START_RESULT_VERSION = 1
STOP_RESULT_VERSION = 1
ENGINE_STATS_VERSION = 1
SESSION_ID_SIZE = 65
CORRELATION_ID_SIZE = 129


class PipelineCommand(ctypes.Structure):
    """xg2g_pipeline_command: borrowed for the duration of a callback."""
    _fields_ = [
        ("session_id", c_char_p),
        ("service_ref", c_char_p),
        ("profile", c_char_p),
        ("slot", c_int),
        ("fencing_token", c_uint64),
    ]


# Callback types (see xg2g_engine.h).
PIPELINE_FN = ctypes.CFUNCTYPE(c_int, POINTER(PipelineCommand), c_void_p)
PIPELINE_STOP_FN = ctypes.CFUNCTYPE(None, POINTER(PipelineCommand), c_void_p)
AUDIT_FN = ctypes.CFUNCTYPE(None, c_char_p, c_void_p)
DESTROY_FN = ctypes.CFUNCTYPE(None, c_void_p)
# NULL function pointers of those types (ctypes refuses None for them).
NO_DESTROY = DESTROY_FN()
NO_AUDIT = AUDIT_FN()


class PipelineCallbacks(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("tune", PIPELINE_FN),
        ("start", PIPELINE_FN),
        ("stop", PIPELINE_STOP_FN),
    ]


class SimulatedPipelineOptions(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("tune_delay_ms", c_int64),
        ("ready_delay_ms", c_int64),
        ("stop_delay_ms", c_int64),
        ("fail_tune", c_int),
        ("fail_start", c_int),
        ("fail_after_ready_ms", c_int64),
    ]


class StartRequest(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("service_ref", c_char_p),
        ("profile", c_char_p),
        ("principal", c_char_p),
        ("idempotency_key", c_char_p),
        ("correlation_id", c_char_p),
        ("params", POINTER(c_char_p)),
        ("param_count", c_size_t),
    ]


class StartResult(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("session_id", ctypes.c_char * SESSION_ID_SIZE),
        ("state", c_int),
        ("replay", c_int),
        ("correlation_id", ctypes.c_char * CORRELATION_ID_SIZE),
        ("busy_session_id", ctypes.c_char * SESSION_ID_SIZE),
    ]


class StopResult(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("session_id", ctypes.c_char * SESSION_ID_SIZE),
        ("state", c_int),
    ]


ENGINE_STATS_FIELDS = (
    "start_intents", "stop_intents", "replays", "busy", "store_failures", "lease_losses",
    "transitions", "deadline_expiries", "recovered", "retention_deletes", "active_sessions",
)


class EngineStats(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint)] + [(name, c_uint64) for name in ENGINE_STATS_FIELDS]


SESSION_P = POINTER(SessionHandle)
STORE_P = POINTER(StoreHandle)
LIST_P = POINTER(SessionListHandle)
LEASE_LIST_P = POINTER(LeaseListHandle)
STORE_REPORT_P = POINTER(StoreReportHandle)
CONFIG_P = POINTER(ConfigHandle)
ENGINE_P = POINTER(EngineHandle)

# Callback types (see xg2g_store.h).
UPDATE_FN = ctypes.CFUNCTYPE(c_int, SESSION_P, c_void_p)
SCAN_FN = ctypes.CFUNCTYPE(c_int, SESSION_P, c_void_p)

STATUS = c_int


# The HTTP handler (xg2g_http.h).
class HttpConfigHandle(ctypes.Structure):
    """Opaque xg2g_http_config."""


class HttpHandlerHandle(ctypes.Structure):
    """Opaque xg2g_http_handler."""


class HttpResponseHandle(ctypes.Structure):
    """Opaque xg2g_http_response."""


class HttpHeader(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


HTTP_REQUEST_VERSION = 1


class HttpRequest(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint),
        ("method", c_char_p),
        ("target", c_char_p),
        ("headers", POINTER(HttpHeader)),
        ("header_count", c_size_t),
        ("body", c_char_p),
        ("body_size", c_size_t),
        ("peer_ip", c_char_p),
    ]


HTTP_CONFIG_P = POINTER(HttpConfigHandle)
HTTP_HANDLER_P = POINTER(HttpHandlerHandle)
HTTP_RESPONSE_P = POINTER(HttpResponseHandle)
HTTP_READY_FN = ctypes.CFUNCTYPE(c_int, ctypes.c_void_p, c_size_t, c_void_p)

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
    "xg2g_store_list_leases": (STATUS, [POINTER(LEASE_LIST_P), STORE_P]),
    "xg2g_lease_list_count": (c_size_t, [LEASE_LIST_P]),
    "xg2g_lease_list_key": (c_char_p, [LEASE_LIST_P, c_size_t]),
    "xg2g_lease_list_owner": (c_char_p, [LEASE_LIST_P, c_size_t]),
    "xg2g_lease_list_fencing_token": (c_uint64, [LEASE_LIST_P, c_size_t]),
    "xg2g_lease_list_expires_in_ms": (c_int64, [LEASE_LIST_P, c_size_t]),
    "xg2g_lease_list_destroy": (None, [LEASE_LIST_P]),
    "xg2g_store_check": (STATUS, [POINTER(STORE_REPORT_P), STORE_P]),
    "xg2g_store_report_sessions": (c_size_t, [STORE_REPORT_P]),
    "xg2g_store_report_leases": (c_size_t, [STORE_REPORT_P]),
    "xg2g_store_report_idempotency_keys": (c_int64, [STORE_REPORT_P]),
    "xg2g_store_report_problem_count": (c_size_t, [STORE_REPORT_P]),
    "xg2g_store_report_problem": (c_char_p, [STORE_REPORT_P, c_size_t]),
    "xg2g_store_report_destroy": (None, [STORE_REPORT_P]),
    # tls
    "xg2g_tls_check_options_init": (STATUS, [POINTER(TlsCheckOptions), ctypes.c_uint]),
    "xg2g_tls_check": (STATUS, [POINTER(c_void_p), c_char_p, c_char_p, POINTER(TlsCheckOptions)]),
    # engine: struct initialisers
    "xg2g_pipeline_callbacks_init": (STATUS, [POINTER(PipelineCallbacks), ctypes.c_uint]),
    "xg2g_simulated_pipeline_options_init": (STATUS, [POINTER(SimulatedPipelineOptions),
                                                      ctypes.c_uint]),
    "xg2g_start_request_init": (STATUS, [POINTER(StartRequest), ctypes.c_uint]),
    "xg2g_start_result_init": (STATUS, [POINTER(StartResult), ctypes.c_uint]),
    "xg2g_stop_result_init": (STATUS, [POINTER(StopResult), ctypes.c_uint]),
    "xg2g_engine_stats_init": (STATUS, [POINTER(EngineStats), ctypes.c_uint]),
    # engine: configuration
    "xg2g_config_create": (STATUS, [POINTER(CONFIG_P)]),
    "xg2g_config_destroy": (None, [CONFIG_P]),
    "xg2g_config_set_tuner_slots": (STATUS, [CONFIG_P, c_char_p]),
    "xg2g_config_set_owner_id": (STATUS, [CONFIG_P, c_char_p]),
    "xg2g_config_set_lease_ttl_ms": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_heartbeat_ms": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_start_deadline_ms": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_stop_deadline_ms": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_idle_timeout_ms": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_retention_ms": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_idempotency_ttl_ms": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_requeue_on_recovery": (STATUS, [CONFIG_P, c_int]),
    "xg2g_config_set_manual_clock": (STATUS, [CONFIG_P, c_int64]),
    "xg2g_config_set_pipeline": (STATUS, [CONFIG_P, POINTER(PipelineCallbacks), c_void_p,
                                          DESTROY_FN]),
    "xg2g_config_use_simulated_pipeline": (STATUS, [CONFIG_P, POINTER(SimulatedPipelineOptions)]),
    "xg2g_config_set_audit_callback": (STATUS, [CONFIG_P, AUDIT_FN, c_void_p, DESTROY_FN]),
    "xg2g_config_set_audit_path": (STATUS, [CONFIG_P, c_char_p]),
    # engine
    "xg2g_engine_create": (STATUS, [POINTER(ENGINE_P), CONFIG_P, STORE_P]),
    "xg2g_engine_destroy": (None, [ENGINE_P]),
    "xg2g_engine_start": (STATUS, [POINTER(StartResult), ENGINE_P, POINTER(StartRequest)]),
    "xg2g_engine_stop": (STATUS, [POINTER(StopResult), ENGINE_P, c_char_p]),
    "xg2g_engine_report_ready": (STATUS, [ENGINE_P, c_char_p, c_uint64]),
    "xg2g_engine_report_failed": (STATUS, [ENGINE_P, c_char_p, c_uint64, c_int, c_char_p]),
    "xg2g_engine_report_stopped": (STATUS, [ENGINE_P, c_char_p, c_uint64]),
    "xg2g_engine_touch": (STATUS, [ENGINE_P, c_char_p]),
    "xg2g_engine_poll": (STATUS, [ENGINE_P]),
    "xg2g_engine_advance_clock": (STATUS, [ENGINE_P, c_int64]),
    "xg2g_engine_get_stats": (STATUS, [POINTER(EngineStats), ENGINE_P]),
    # http
    "xg2g_http_config_create": (STATUS, [POINTER(HTTP_CONFIG_P)]),
    "xg2g_http_config_destroy": (None, [HTTP_CONFIG_P]),
    "xg2g_http_config_set_tokens": (STATUS, [HTTP_CONFIG_P, c_char_p]),
    "xg2g_http_config_set_allow_query_tokens": (STATUS, [HTTP_CONFIG_P, c_int]),
    "xg2g_http_config_set_rate_limit": (STATUS, [HTTP_CONFIG_P, c_double, c_int64]),
    "xg2g_http_config_set_rate_limit_max_clients": (STATUS, [HTTP_CONFIG_P, c_size_t]),
    "xg2g_http_config_set_allow_list": (STATUS, [HTTP_CONFIG_P, c_char_p]),
    "xg2g_http_config_set_trusted_proxies": (STATUS, [HTTP_CONFIG_P, c_char_p]),
    "xg2g_http_config_set_metrics_scope": (STATUS, [HTTP_CONFIG_P, c_char_p]),
    "xg2g_http_config_set_audit_callback": (STATUS, [HTTP_CONFIG_P, AUDIT_FN, c_void_p, DESTROY_FN]),
    "xg2g_http_config_set_audit_path": (STATUS, [HTTP_CONFIG_P, c_char_p]),
    "xg2g_http_config_set_readiness_check": (STATUS, [HTTP_CONFIG_P, HTTP_READY_FN, c_void_p,
                                                      DESTROY_FN]),
    "xg2g_http_config_get_warnings": (c_char_p, [HTTP_CONFIG_P]),
    "xg2g_http_handler_create": (STATUS, [POINTER(HTTP_HANDLER_P), ENGINE_P, HTTP_CONFIG_P]),
    "xg2g_http_handler_reload": (STATUS, [HTTP_HANDLER_P, HTTP_CONFIG_P]),
    "xg2g_http_handler_destroy": (None, [HTTP_HANDLER_P]),
    "xg2g_http_request_init": (STATUS, [POINTER(HttpRequest), ctypes.c_uint]),
    "xg2g_http_handler_handle": (STATUS, [POINTER(HTTP_RESPONSE_P), HTTP_HANDLER_P,
                                          POINTER(HttpRequest)]),
    "xg2g_http_response_get_status": (c_int, [HTTP_RESPONSE_P]),
    "xg2g_http_response_get_header_count": (c_size_t, [HTTP_RESPONSE_P]),
    "xg2g_http_response_get_header_name": (c_char_p, [HTTP_RESPONSE_P, c_size_t]),
    "xg2g_http_response_get_header_value": (c_char_p, [HTTP_RESPONSE_P, c_size_t]),
    "xg2g_http_response_get_header": (c_char_p, [HTTP_RESPONSE_P, c_char_p]),
    "xg2g_http_response_get_body": (ctypes.c_void_p, [HTTP_RESPONSE_P, POINTER(c_size_t)]),
    "xg2g_http_response_destroy": (None, [HTTP_RESPONSE_P]),
}


def _find_library() -> str:
    """XG2G_LIBRARY when set, else what the system's search path finds."""
    explicit = os.environ.get("XG2G_LIBRARY")
    if explicit:
        return explicit
    found = ctypes.util.find_library("xg2g")
    return found or "libxg2g.so.0"


def _load() -> ctypes.CDLL:
    """Loads the library and gives every declared function its types."""
    library = ctypes.CDLL(_find_library())
    for name, (restype, argtypes) in DECLARATIONS.items():
        fn = getattr(library, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return library


lib = _load()
