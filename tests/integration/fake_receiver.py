#!/usr/bin/env python3
"""A fake Enigma2 receiver for the tests: serves the OpenWebIF JSON that
libxg2g's receiver client reads, on 127.0.0.1.

    fake_receiver.py [--port 0] [--slow-ms N] [--error STATUS] [--garbage]
                     [--wrong-service REF] [--no-lock] [--refuse-zap]
                     [--zap-delay-ms N] [--lock-delay-ms N] [--lock-field]
                     [--user U --password P] [--listen-delay-ms N] [--current REF]

Prints the port it listens on (one line) and serves until it is terminated.

API (HTTP/1.1, keep-alive):
  /api/zap?sRef=REF   {"result": true, "message": "Active service is now '...'"}
  /api/getcurrent     {"info": {"result": true, "ref": ..., "name": ..., ...}, "now": {}, "next": {}}
  /api/about          {"info": {"brand", "model", "webifver", ...}, "service": {...}}
  /api/signal         {"snr": 92, "snr_db": "14.29", "agc": 85, "ber": 0, "tunertype": "DVB-S2",
                       "tunernumber": 0, "inStandby": "false"} (+ "lock" with --lock-field)
Switches can also be changed while running, without auth, slowness or errors:
  /admin/set?slow_ms=&error=&garbage=&wrong_service=&no_lock=&refuse_zap=&zap_delay_ms=&lock_delay_ms=
  /admin/stats        {"requests", "api_requests", "connections", "zaps", "current", ...}
  /admin/reset_stats
A zap takes effect zap_delay_ms later (getcurrent shows the old service until
then); the signal locks lock_delay_ms after the zap.
"""
import argparse
import base64
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.slow_ms = args.slow_ms
        self.error = args.error
        self.garbage = args.garbage
        self.wrong_service = args.wrong_service
        self.no_lock = args.no_lock
        self.refuse_zap = args.refuse_zap
        self.zap_delay_ms = args.zap_delay_ms
        self.lock_delay_ms = args.lock_delay_ms
        self.lock_field = args.lock_field
        self.user = args.user
        self.password = args.password
        self.previous = ""
        self.target = args.current
        self.zapped_at = 0.0
        self.requests = 0
        self.api_requests = 0
        self.connections = 0
        self.zaps = 0

    def current(self, now):
        """(ref, locked) as the receiver shows them now."""
        if self.wrong_service:
            return self.wrong_service, not self.no_lock
        elapsed_ms = (now - self.zapped_at) * 1000.0
        ref = self.target if elapsed_ms >= self.zap_delay_ms else self.previous
        locked = bool(ref) and not self.no_lock and elapsed_ms >= self.lock_delay_ms
        return ref, locked


def service_json(ref):
    if not ref:
        return {"result": False, "name": "", "ref": "", "provider": ""}
    parts = ref.split(":")
    name = "Channel " + parts[3] if len(parts) > 3 else "Channel"
    return {"result": True, "name": name,
            "namespace": 12582912, "aspect": 3, "provider": "Fake", "width": 1280, "height": 720,
            "apid": 5102, "vpid": 5101, "pcrpid": 5101, "pmtpid": 5100, "txtpid": 5104,
            "tsid": 1019, "onid": 1, "sid": 10301, "ref": ref, "iswidescreen": True}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenWebif/1.0"

    def setup(self):
        super().setup()
        with self.server.state.lock:
            self.server.state.connections += 1

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_text(self, status, text, content_type="text/html"):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="OpenWebif"')
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        state = self.server.state
        with state.lock:
            state.requests += 1
        if url.path.startswith("/admin/"):
            return self.admin(url.path, query)

        with state.lock:
            state.api_requests += 1
            slow_ms, error, garbage = state.slow_ms, state.error, state.garbage
            user, password = state.user, state.password
        if user:
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self.send_text(401, "<html>Unauthorized</html>")
        if slow_ms > 0:
            time.sleep(slow_ms / 1000.0)
        if error:
            return self.send_text(error, f"<html>error {error}</html>")
        if garbage:
            return self.send_text(200, "<html>this is not JSON</html>")

        now = time.monotonic()
        if url.path == "/api/zap":
            ref = query.get("sRef", "")
            if not ref:
                return self.send_json(200, {"result": False,
                                            "message": "Missing mandatory parameter 'sRef'"})
            with state.lock:
                if state.refuse_zap:
                    return self.send_json(200, {"result": False,
                                                "message": "Service '%s' is not available" % ref})
                state.previous, _ = state.current(now)
                state.target = ref
                state.zapped_at = now
                state.zaps += 1
            return self.send_json(200, {"result": True,
                                        "message": "Active service is now '%s'" % ref})
        if url.path == "/api/getcurrent":
            with state.lock:
                ref, _ = state.current(now)
            return self.send_json(200, {"info": service_json(ref),
                                        "now": {"id": 0, "title": "", "sref": ref},
                                        "next": {"id": 0, "title": "", "sref": ref}})
        if url.path == "/api/about":
            with state.lock:
                ref, _ = state.current(now)
            return self.send_json(200, {"info": {"brand": "Fake", "model": "Receiver",
                                                 "boxtype": "fake", "webifver": "OWIF 1.5.2",
                                                 "tuners": [{"name": "Tuner A",
                                                             "type": "DVB-S2"}]},
                                        "service": service_json(ref)})
        if url.path == "/api/signal":
            with state.lock:
                ref, locked = state.current(now)
                lock_field = state.lock_field
            if not ref:
                body = {"tunertype": "", "tunernumber": "", "snr": "", "snr_db": "", "agc": "",
                        "ber": "", "inStandby": "false"}
            elif locked:
                body = {"tunertype": "DVB-S2", "tunernumber": 0, "snr": 92, "snr_db": "14.29",
                        "agc": 85, "ber": 0, "inStandby": "false"}
            else:
                body = {"tunertype": "DVB-S2", "tunernumber": 0, "snr": 0, "snr_db": "0.00",
                        "agc": 0, "ber": 0, "inStandby": "false"}
            if lock_field:
                body["lock"] = bool(ref) and locked
            return self.send_json(200, body)
        return self.send_text(404, "<html>not found</html>")

    def admin(self, path, query):
        state = self.server.state
        with state.lock:
            if path == "/admin/set":
                for key, value in query.items():
                    if key in ("slow_ms", "error", "zap_delay_ms", "lock_delay_ms"):
                        setattr(state, key, int(value or 0))
                    elif key in ("garbage", "no_lock", "refuse_zap", "lock_field"):
                        setattr(state, key, value in ("1", "true"))
                    elif key == "wrong_service":
                        state.wrong_service = value
                    elif key == "current":
                        state.previous = state.target = value
                        state.zapped_at = 0.0
                    else:
                        return self.send_json(400, {"error": "unknown switch " + key})
                return self.send_json(200, {"ok": True})
            if path == "/admin/stats":
                ref, locked = state.current(time.monotonic())
                return self.send_json(200, {"requests": state.requests,
                                            "api_requests": state.api_requests,
                                            "connections": state.connections,
                                            "zaps": state.zaps, "current": ref,
                                            "locked": locked})
            if path == "/admin/reset_stats":
                state.requests = state.api_requests = state.connections = state.zaps = 0
                return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": "unknown admin path"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slow-ms", type=int, default=0)
    parser.add_argument("--error", type=int, default=0, help="answer every API call with this HTTP status")
    parser.add_argument("--garbage", action="store_true", help="answer 200 with a body that is not JSON")
    parser.add_argument("--wrong-service", default="", help="getcurrent always shows this ref")
    parser.add_argument("--no-lock", action="store_true")
    parser.add_argument("--refuse-zap", action="store_true")
    parser.add_argument("--zap-delay-ms", type=int, default=0)
    parser.add_argument("--lock-delay-ms", type=int, default=0)
    parser.add_argument("--lock-field", action="store_true", help='add an explicit "lock" to /api/signal')
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--listen-delay-ms", type=int, default=0,
                        help="bind (and print the port) at once, accept connections only after this")
    parser.add_argument("--current", default="", help="the service playing at start")
    args = parser.parse_args(argv)

    server = Server((args.host, args.port), Handler, bind_and_activate=False)
    server.state = State(args)
    server.server_bind()
    if args.listen_delay_ms > 0:
        # The port is known (and refuses connections) before the listener starts.
        print(server.server_address[1], flush=True)
        time.sleep(args.listen_delay_ms / 1000.0)
        server.server_activate()
    else:
        server.server_activate()
        print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
