"""libxg2g's private BoringSSL next to Python's OpenSSL in one process.

Python's ssl module loads the system OpenSSL. The scenario below imports ssl
first, makes a CA-verified HTTPS request to a local `openssl s_server`, then
loads libxg2g through ctypes (path from XG2G_LIBRARY), checks a certificate
with xg2g_tls_check and makes a second HTTPS request. It runs in a fresh
interpreter so that the order really is "ssl first", whatever other tests
loaded into the pytest process before.
"""
import ssl  # noqa: I001  (first on purpose: OpenSSL is loaded before libxg2g)

import ctypes
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

LIBRARY_ENV = "XG2G_LIBRARY"


def _data_dir():
    base = os.environ.get("XG2G_TEST_DATA_DIR")
    if not base:
        base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    return os.path.join(base, "tls")


def _https_get(url, ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    with urllib.request.urlopen(url, context=context, timeout=20) as response:
        return response.status, len(response.read())


def _load_libxg2g(path):
    lib = ctypes.CDLL(path)
    lib.xg2g_tls_check.argtypes = [
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_void_p,
    ]
    lib.xg2g_tls_check.restype = ctypes.c_int
    lib.xg2g_free.argtypes = [ctypes.c_void_p]
    lib.xg2g_free.restype = None
    lib.xg2g_last_error.argtypes = []
    lib.xg2g_last_error.restype = ctypes.c_char_p
    return lib


def _tls_check(lib, cert, key):
    out = ctypes.c_void_p()
    status = lib.xg2g_tls_check(ctypes.byref(out), cert.encode(), key.encode(), None)
    if status != 0:
        raise RuntimeError(f"xg2g_tls_check: {status}: {lib.xg2g_last_error().decode()}")
    try:
        return json.loads(ctypes.string_at(out.value).decode())
    finally:
        lib.xg2g_free(out)


def _scenario(url, library, data):
    """Runs in a child interpreter; prints one JSON line with what it saw."""
    ca = os.path.join(data, "ca.pem")
    result = {"openssl": ssl.OPENSSL_VERSION}
    result["before"] = _https_get(url, ca)
    lib = _load_libxg2g(library)
    result["report"] = _tls_check(lib, os.path.join(data, "chain.pem"), os.path.join(data, "leaf.key"))
    result["weak"] = _tls_check(lib, os.path.join(data, "rsa1024.pem"), os.path.join(data, "rsa1024.key"))
    result["after"] = _https_get(url, ca)
    print(json.dumps(result))


@pytest.fixture(scope="module")
def library():
    path = os.environ.get(LIBRARY_ENV)
    if not path:
        pytest.skip(f"{LIBRARY_ENV} is not set (meson test sets it)")
    return path


@pytest.fixture(scope="module")
def https_url():
    """A local `openssl s_server` on a port the kernel picks; stopped by pid."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl program is not installed")
    data = _data_dir()
    server = subprocess.Popen(
        [openssl, "s_server", "-accept", "127.0.0.1:0", "-www", "-no_dhe",
         "-cert", os.path.join(data, "chain.pem"), "-key", os.path.join(data, "leaf.key")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        port = None
        seen = []
        deadline = time.monotonic() + 15
        with selectors.DefaultSelector() as sel:
            sel.register(server.stdout, selectors.EVENT_READ)
            while port is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    pytest.fail(f"openssl s_server did not start listening: {seen}")
                line = server.stdout.readline().decode(errors="replace").strip()
                if not line and server.poll() is not None:
                    pytest.fail(f"openssl s_server exited: {seen}")
                seen.append(line)
                if line.startswith("ACCEPT 127.0.0.1:"):
                    port = int(line.rsplit(":", 1)[1])
        yield f"https://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


def test_ssl_first_then_libxg2g_both_give_correct_answers(library, https_url):
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), https_url, library, _data_dir()],
        capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])

    assert result["openssl"].startswith("OpenSSL")
    assert result["before"][0] == 200 and result["before"][1] > 0
    assert result["after"][0] == 200 and result["after"][1] > 0

    report = result["report"]
    assert report["valid"] is True, report
    assert report["errors"] == [] and report["warnings"] == []
    assert report["key_type"] == "RSA"
    assert report["key_bits"] == 2048
    assert report["subject"] == "CN=localhost,O=libxg2g tests"
    assert "127.0.0.1" in report["sans"]

    weak = result["weak"]
    assert weak["key_bits"] == 1024
    assert [w["code"] for w in weak["warnings"]] == ["KEY_WEAK"]


def test_ssl_keeps_working_in_a_process_that_already_loaded_libxg2g(library, https_url):
    lib = _load_libxg2g(library)
    data = _data_dir()
    report = _tls_check(lib, os.path.join(data, "chain.pem"), os.path.join(data, "leaf.key"))
    assert report["valid"] is True and report["key_bits"] == 2048
    status, size = _https_get(https_url, os.path.join(data, "ca.pem"))
    assert status == 200 and size > 0


if __name__ == "__main__":
    _scenario(sys.argv[1], sys.argv[2], sys.argv[3])
