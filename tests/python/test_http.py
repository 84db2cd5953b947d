"""The HTTP handler's declarations in the ctypes table, exercised through a
request cycle: the package has no Pythonic wrapper for the handler yet, so
this drives the raw functions (xg2g._ffi) over a Python-made engine."""
import ctypes
import json

import xg2g
from xg2g import _ffi

T0 = 1_700_000_000_000
TOKEN = b"python-admin-token-0123456789"


def _request(handler, method, target, body=b"", token=TOKEN):
    headers = (_ffi.HttpHeader * 1)(_ffi.HttpHeader(b"Authorization", b"Bearer " + token))
    req = _ffi.HttpRequest()
    assert _ffi.lib.xg2g_http_request_init(ctypes.byref(req), _ffi.HTTP_REQUEST_VERSION) == 0
    req.method, req.target = method, target
    req.headers, req.header_count = headers, 1
    req.body, req.body_size = body, len(body)
    req.peer_ip = b"192.0.2.1"
    resp = _ffi.HTTP_RESPONSE_P()
    assert _ffi.lib.xg2g_http_handler_handle(ctypes.byref(resp), handler, ctypes.byref(req)) == 0
    try:
        size = ctypes.c_size_t()
        ptr = _ffi.lib.xg2g_http_response_get_body(resp, ctypes.byref(size))
        body = ctypes.string_at(ptr, size.value)
        return (_ffi.lib.xg2g_http_response_get_status(resp),
                _ffi.lib.xg2g_http_response_get_header(resp, b"X-Request-ID"), body)
    finally:
        _ffi.lib.xg2g_http_response_destroy(resp)


def test_a_start_and_a_read_through_the_raw_handler_functions():
    lines = []
    audit = _ffi.AUDIT_FN(lambda line, _: lines.append(line))
    with xg2g.Store("memory:") as store:
        engine = xg2g.Engine(xg2g.Config(tuner_slots="0", manual_clock=T0), store)
        cfg = _ffi.HTTP_CONFIG_P()
        assert _ffi.lib.xg2g_http_config_create(ctypes.byref(cfg)) == 0
        assert _ffi.lib.xg2g_http_config_set_tokens(cfg, TOKEN + b"=v3:admin") == 0
        assert _ffi.lib.xg2g_http_config_set_audit_callback(cfg, audit, None, _ffi.NO_DESTROY) == 0
        handler = _ffi.HTTP_HANDLER_P()
        try:
            assert _ffi.lib.xg2g_http_handler_create(ctypes.byref(handler), engine._h, cfg) == 0
            status, request_id, body = _request(
                handler, b"POST", b"/api/v3/intents",
                json.dumps({"type": "stream.start", "serviceRef": "1:0:1:PY"}).encode())
            assert status == 202 and request_id
            session_id = json.loads(body)["sessionId"]
            status, _, body = _request(handler, b"GET", b"/api/v3/sessions/" + session_id.encode())
            assert status == 200 and json.loads(body)["serviceRef"] == "1:0:1:PY"
            status, _, body = _request(handler, b"GET", b"/api/v3/sessions", token=b"wrong")
            assert status == 401 and json.loads(body)["code"] == "UNAUTHORIZED"
        finally:
            _ffi.lib.xg2g_http_handler_destroy(handler)
            _ffi.lib.xg2g_http_config_destroy(cfg)
            engine.close()
    assert lines and not any(TOKEN in line for line in lines)
