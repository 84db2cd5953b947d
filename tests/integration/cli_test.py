#!/usr/bin/env python3
"""The example CLI: every subcommand's exit codes and --json output.

Runs the built `xg2g` against stores in a temporary directory (memory: and
lmdb:), so nothing outside it is touched.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

CLI = None
FAILURES = []
CHECKS = 0

SERVICE = "1:0:19:2B66:3F3:1:C00000:0:0:0:"


def run(*args, store=None, env=None):
    cmd = [CLI]
    if store is not None:
        cmd += ["--store", store]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60,
                          env=env)


def check(cond, what, result=None):
    global CHECKS
    CHECKS += 1
    if not cond:
        detail = ""
        if result is not None:
            detail = (f" (exit {result.returncode}, stdout {result.stdout!r}, "
                      f"stderr {result.stderr!r})")
        FAILURES.append(what + detail)


def as_json(result, what):
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        check(False, f"{what}: stdout is not JSON", result)
        return None


def test_version():
    version = run("version")
    lib_version = version.stdout.split("(libxg2g ")[-1].rstrip(")\n")
    check(re.fullmatch(r"\d+\.\d+\.\d+", lib_version) is not None, "version format", version)
    expected = f"xg2g {lib_version} (libxg2g {lib_version})\n"
    check(version.returncode == 0 and version.stdout == expected, "version text", version)
    doc = as_json(run("version", "--json"), "version --json")
    check(doc == {"version": lib_version, "library": lib_version}, f"version --json {doc!r}")
    check(run("version", "extra").returncode == 2, "version with an argument is a usage error")


def test_help_and_usage():
    top = run("--help")
    check(top.returncode == 0 and "exit codes:" in top.stdout, "--help lists exit codes", top)
    for words in (["sessions", "list"], ["sessions", "show"], ["sessions", "stop"],
                  ["leases", "list"], ["start"], ["store", "check"], ["token", "new"],
                  ["tls", "check"],
                  ["selfcheck"], ["version"]):
        result = run(*words, "--help")
        check(result.returncode == 0 and result.stdout.startswith("usage: xg2g " + words[0]),
              f"{' '.join(words)} --help", result)
        check("--json" in result.stdout, f"{' '.join(words)} --help mentions --json", result)
    group = run("sessions", "--help")
    check(group.returncode == 0 and group.stdout.count("usage:") == 3, "sessions --help", group)
    nothing = run()
    check(nothing.returncode == 2 and "usage:" in nothing.stderr, "no command", nothing)
    unknown = run("frobnicate")
    check(unknown.returncode == 2 and "'frobnicate'" in unknown.stderr, "unknown command", unknown)
    sub = run("sessions", "frob")
    check(sub.returncode == 2 and "'frob'" in sub.stderr, "unknown subcommand", sub)
    missing = run("sessions")
    check(missing.returncode == 2 and "subcommand" in missing.stderr, "missing subcommand", missing)
    no_uri = run("--store")
    check(no_uri.returncode == 2 and "--store" in no_uri.stderr, "--store without URI", no_uri)


def test_store_errors(tmp):
    bad = run("selfcheck", store="nosuch://x")
    check(bad.returncode == 2 and "nosuch" in bad.stderr, "an unknown store scheme", bad)
    malformed = run("sessions", "list", store="redis://:s3cret@127.0.0.1:99x/0")
    check(malformed.returncode == 2 and "s3cret" not in malformed.stderr,
          "a malformed redis URI is a usage error and hides the password", malformed)
    # A directory the store cannot be created in.
    blocker = os.path.join(tmp, "file")
    open(blocker, "w").close()
    unusable = run("sessions", "list", store=f"lmdb:{blocker}/store")
    check(unusable.returncode == 5 and unusable.stderr.startswith("xg2g: open store:"),
          "an unusable store directory", unusable)


def test_selfcheck(tmp):
    check_mem = run("selfcheck", store="memory:")
    check(check_mem.returncode == 0 and "selfcheck: ok" in check_mem.stdout, "selfcheck memory",
          check_mem)
    # The embedded LMDB store passes again on the store the first run left behind.
    for attempt in (1, 2):
        on_disk = run("selfcheck", store=f"lmdb:{tmp}/selfcheck")
        check(on_disk.returncode == 0 and "selfcheck: ok" in on_disk.stdout,
              f"selfcheck on LMDB, run {attempt}", on_disk)
    doc = as_json(run("--json", "selfcheck", store="memory:"), "selfcheck --json")
    check(doc is not None and doc.get("ok") is True and doc.get("fencing_token", 0) > 0,
          f"selfcheck --json {doc!r}")
    # XG2G_STORE is the default store.
    env = dict(os.environ, XG2G_STORE=f"lmdb:{tmp}/from-env")
    from_env = run("selfcheck", env=env)
    check(from_env.returncode == 0 and f"lmdb:{tmp}/from-env" in from_env.stdout,
          "XG2G_STORE selects the store", from_env)


def test_sessions_and_leases(tmp):
    store = f"lmdb:{tmp}/sessions"
    empty = as_json(run("sessions", "list", "--json", store=store), "empty list")
    check(empty == {"sessions": [], "pagination": {"offset": 0, "limit": 100, "total": 0,
                                                   "count": 0}}, f"empty list {empty!r}")

    started = run("start", SERVICE, "--once", "--json", "--idempotency-key", "k1",
                  "--profile", "hd", store=store)
    doc = as_json(started, "start --json")
    check(started.returncode == 0 and doc is not None and doc["state"] == "READY" and
          doc["replay"] is False and set(doc) == {"sessionId", "state", "correlationId",
                                                  "replay"}, "start --once --json", started)
    first_id = doc["sessionId"] if doc else ""
    replay = as_json(run("start", SERVICE, "--once", "--json", "--idempotency-key", "k1",
                         "--profile", "hd", store=store), "replay")
    check(replay is not None and replay["sessionId"] == first_id and replay["replay"] is True
          and replay["state"] == "STOPPED", f"a replay answers the first session {replay!r}")
    reused = run("start", "1:0:1:99", "--once", "--idempotency-key", "k1", store=store)
    check(reused.returncode == 4 and "xg2g: start:" in reused.stderr,
          "an idempotency key reused for another request", reused)

    shown = as_json(run("sessions", "show", first_id, "--json", store=store), "show --json")
    check(shown is not None and shown.get("sessionId") == first_id and
          shown.get("serviceRef") == SERVICE and shown.get("state") == "STOPPED",
          f"sessions show --json {shown!r}")
    text = run("sessions", "show", first_id, store=store)
    check(text.returncode == 0 and re.search(r"^state +STOPPED$", text.stdout, re.M) is not None,
          "sessions show text", text)
    missing = run("sessions", "show", "0123456789abcdef0123456789abcdef", store=store)
    check(missing.returncode == 3 and "not found" in missing.stderr, "show of no session",
          missing)
    unsafe = run("sessions", "show", "../etc", store=store)
    check(unsafe.returncode in (2, 3) and unsafe.stderr.startswith("xg2g:"), "show of an unsafe id",
          unsafe)
    check(run("sessions", "show", store=store).returncode == 2, "show without an id")

    # A host holding a session: leases, a busy second start, a stop from elsewhere.
    host = subprocess.Popen([CLI, "--store", store, "start", "1:0:1:7", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = host.stdout.readline()
        held = json.loads(line)
        check(held["state"] == "READY", f"a hosted start is READY {line!r}")
        leases = as_json(run("leases", "list", "--json", store=store), "leases --json")
        keys = sorted(lease["key"] for lease in leases or [])
        check(keys == ["service:1:0:1:7", "tuner:0"], f"leases of the hosted session {leases!r}")
        for lease in leases or []:
            check(lease["owner"] == held["sessionId"] and lease["fencing_token"] > 0 and
                  0 < lease["expires_in_ms"] <= 30000, f"lease fields {lease!r}")
        text = run("leases", "list", store=store)
        check(text.returncode == 0 and "2 leases held" in text.stdout, "leases list text", text)
        busy = run("start", "1:0:1:7", "--once", store=store)
        check(busy.returncode == 4 and held["sessionId"] in busy.stderr,
              "a second start of the held service names its session", busy)
        listing = as_json(run("sessions", "list", "--json", "--limit", "1", "--offset", "1",
                              store=store), "paged list")
        check(listing is not None and listing["pagination"] == {
            "offset": 1, "limit": 1, "total": listing["pagination"]["total"], "count": 1} and
            listing["pagination"]["total"] >= 3, f"a page of one {listing!r}")
        stopped = as_json(run("sessions", "stop", held["sessionId"], "--json", store=store),
                          "stop --json")
        check(stopped is not None and stopped["sessionId"] == held["sessionId"] and
              stopped["state"] in ("STOPPING", "STOPPED"), f"sessions stop --json {stopped!r}")
        host.wait(timeout=30)
        check(host.returncode == 0, f"the host ends when its session is stopped ({host.returncode})")
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        host.stdout.close()
        host.stderr.close()
    after = as_json(run("leases", "list", "--json", store=store), "leases after stop")
    check(after == [], f"no lease left after the stop {after!r}")
    none = run("sessions", "stop", "0123456789abcdef0123456789abcdef", store=store)
    check(none.returncode == 3, "stop of no session", none)

    # A hosted session ends with SIGTERM, stopped and its leases released.
    host = subprocess.Popen([CLI, "--store", store, "start", "1:0:1:8", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        held = json.loads(host.stdout.readline())
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=30)
        check(host.returncode == 0, f"SIGTERM ends the host cleanly ({host.returncode})")
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        host.stdout.close()
        host.stderr.close()
    final = as_json(run("sessions", "show", held["sessionId"], "--json", store=store), "final")
    check(final is not None and final["state"] == "STOPPED", f"stopped on SIGTERM {final!r}")

    for bad in (["--limit", "0"], ["--limit", "1001"], ["--offset", "-1"], ["--limit", "x"],
                ["--bogus"]):
        result = run("sessions", "list", *bad, store=store)
        check(result.returncode == 2 and result.stderr.startswith("xg2g sessions list:"),
              f"sessions list {bad}", result)

    report = as_json(run("store", "check", "--json", store=store), "store check --json")
    check(report is not None and report["consistent"] is True and report["problems"] == [] and
          report["sessions"] >= 4 and report["leases"] == 0 and
          isinstance(report["idempotency_keys"], int) and report["idempotency_keys"] >= 1,
          f"store check --json {report!r}")
    text = run("store", "check", store=store)
    check(text.returncode == 0 and text.stdout.rstrip().endswith("consistent"), "store check",
          text)


def test_token():
    made = run("token", "new", "--scopes", "v3:read,v3:write")
    lines = made.stdout.splitlines()
    check(made.returncode == 0 and len(lines) == 2, "token new prints two lines", made)
    if len(lines) == 2:
        token = lines[0]
        check(re.fullmatch(r"xg2g_[A-Za-z0-9_-]{44}", token) is not None, f"token shape {token!r}")
        check(lines[1] == f"XG2G_API_TOKENS='{token}=v3:read,v3:write'", f"config {lines[1]!r}")
    doc = as_json(run("token", "new", "--scopes", "v3:admin", "--json"), "token --json")
    check(doc is not None and doc["scopes"] == "v3:admin" and
          doc["config"] == f"XG2G_API_TOKENS={doc['token']}=v3:admin", f"token --json {doc!r}")
    other = as_json(run("token", "new", "--scopes", "*", "--json"), "token --json")
    check(doc is not None and other is not None and doc["token"] != other["token"],
          "two tokens differ")
    for bad in (["--scopes", "v3:bogus"], ["--scopes", ""], ["--scopes", "v3:read,"], [],
                ["--scopes"]):
        result = run("token", "new", *bad)
        check(result.returncode == 2 and result.stderr.startswith("xg2g token new:"),
              f"token new {bad}", result)


def test_tls(tmp):
    fixtures = os.path.join(tmp, "tls")
    os.mkdir(fixtures)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tls",
                          "make-fixtures.sh")
    made = subprocess.run(["sh", script, fixtures], capture_output=True, text=True, timeout=120)
    check(made.returncode == 0, "TLS fixtures generated", made)
    if made.returncode != 0:
        return

    def tls(cert, key, *extra):
        return run("tls", "check", "--cert", os.path.join(fixtures, cert),
                   "--key", os.path.join(fixtures, key), *extra)

    def codes(doc, kind):
        return [f["code"] for f in doc[kind]] if doc is not None else None

    clean = tls("chain.pem", "leaf.key")
    check(clean.returncode == 0 and clean.stdout.startswith(os.path.join(fixtures, "chain.pem") +
                                                            ": valid\n"), "tls check clean", clean)
    check(re.search(r"^subject +CN=localhost,O=libxg2g tests$", clean.stdout, re.M) is not None and
          re.search(r"^key +RSA 2048 bits$", clean.stdout, re.M) is not None and
          "2049-12-31T23:59:59Z" in clean.stdout, "tls check facts", clean)
    doc = as_json(tls("chain.pem", "leaf.key", "--json"), "tls check --json")
    check(doc is not None and doc["valid"] is True and doc["errors"] == [] and
          doc["warnings"] == [] and doc["sans"] == ["localhost", "xg2g.test", "127.0.0.1", "::1"]
          and doc["not_after"] == "2049-12-31T23:59:59Z" and doc["key_type"] == "RSA" and
          doc["key_bits"] == 2048 and isinstance(doc["days_left"], int), f"tls --json {doc!r}")

    for cert, key, code in (("selfsigned.pem", "selfsigned.key", "SELF_SIGNED"),
                            ("rsa1024.pem", "rsa1024.key", "KEY_WEAK")):
        warned = tls(cert, key)
        check(warned.returncode == 1 and re.search(rf"^warning +{code} ", warned.stdout, re.M),
              f"tls check {cert}: warning {code}", warned)
        doc = as_json(tls(cert, key, "--json"), f"tls check {cert} --json")
        check(doc is not None and doc["valid"] is True and code in codes(doc, "warnings"),
              f"tls check {cert} --json {doc!r}")

    # (certificate, key, error code, the file the error names)
    for cert, key, code, named in (("expired.pem", "leaf.key", "CERT_EXPIRED", "expired.pem"),
                                   ("notyet.pem", "leaf.key", "CERT_NOT_YET_VALID", "notyet.pem"),
                                   ("chain-reversed.pem", "leaf.key", "CHAIN_ORDER",
                                    "chain-reversed.pem"),
                                   ("leaf.pem", "other.key", "KEY_MISMATCH", "other.key"),
                                   ("leaf.der", "leaf.key", "FILE_NOT_PEM", "leaf.der"),
                                   ("no-such.pem", "leaf.key", "FILE_NOT_FOUND", "no-such.pem"),
                                   ("chain.pem", "encrypted.key", "KEY_ENCRYPTED",
                                    "encrypted.key")):
        bad = tls(cert, key)
        line = rf"^error +{code} +{re.escape(os.path.join(fixtures, named))}: \S"
        check(bad.returncode == 2 and ": invalid," in bad.stdout and
              re.search(line, bad.stdout, re.M) is not None,
              f"tls check {cert}/{key}: error {code} naming {named}", bad)
        doc = as_json(tls(cert, key, "--json"), f"tls check {cert} --json")
        check(doc is not None and doc["valid"] is False and code in codes(doc, "errors"),
              f"tls check {cert}/{key} --json {doc!r}")

    # Expiry: a fresh 365-day certificate warns only when both limits allow.
    quiet = tls("current.pem", "leaf.key", "--warn-days", "400")
    check(quiet.returncode == 0, "365 days left, 0.33 of the lifetime: no warning", quiet)
    expiring = as_json(tls("current.pem", "leaf.key", "--warn-days", "400", "--warn-fraction", "1",
                           "--json"), "tls check expiring")
    check(expiring is not None and codes(expiring, "warnings") == ["CERT_EXPIRING"],
          f"365 days left within 400 days and the whole lifetime {expiring!r}")

    secret = os.path.join(tmp, "passphrase")
    with open(secret, "w") as f:
        f.write("secret\n")
    unlocked = tls("chain.pem", "encrypted.key", "--passphrase-file", secret)
    check(unlocked.returncode == 0 and "secret" not in unlocked.stdout + unlocked.stderr,
          "tls check with a passphrase file", unlocked)
    with open(secret, "w") as f:
        f.write("not it\n")
    wrong = as_json(tls("chain.pem", "encrypted.key", "--passphrase-file", secret, "--json"),
                    "wrong passphrase")
    check(wrong is not None and codes(wrong, "errors") == ["KEY_PASSPHRASE_WRONG"],
          f"wrong passphrase {wrong!r}")

    for bad in (["tls", "check", "--key", "k.pem"], ["tls", "check", "--cert", "c.pem"],
                ["tls", "check", "--cert", "c", "--key", "k", "--warn-days", "x"],
                ["tls", "check", "--cert", "c", "--key", "k", "--warn-days", "0"],
                ["tls", "check", "--cert", "c", "--key", "k", "--warn-fraction", "1.5"],
                ["tls", "check", "--cert", "c", "--key", "k", "--warn-fraction", "nan"],
                ["tls", "check", "--cert", "c", "--key", "k", "--passphrase-file",
                 os.path.join(tmp, "none")],
                ["tls", "check", "--cert", "c", "--key", "k", "--bogus"]):
        result = run(*bad)
        check(result.returncode == 2 and result.stderr.startswith("xg2g tls check:") and
              result.stdout == "", f"usage {bad[2:]}", result)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        test_version()
        test_help_and_usage()
        test_store_errors(tmp)
        test_selfcheck(tmp)
        test_sessions_and_leases(tmp)
        test_token()
        test_tls(tmp)
    for f in FAILURES:
        print("FAIL: " + f)
    print(f"{CHECKS - len(FAILURES)} passed, {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    CLI = sys.argv[1]
    sys.exit(main())
