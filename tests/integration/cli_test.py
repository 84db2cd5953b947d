#!/usr/bin/env python3
"""The example CLI: `xg2g version` output shapes and the self-check."""
import json
import subprocess
import sys
import tempfile


def run(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)


def main():
    failures = []
    version = run("version")
    lib_version = version.stdout.split("(libxg2g ")[-1].rstrip(")\n")
    expected = f"xg2g {lib_version} (libxg2g {lib_version})\n"
    if version.returncode != 0 or version.stdout != expected:
        failures.append(f"version printed {version.stdout!r}, expected {expected!r}")
    as_json = run("version", "--json")
    try:
        doc = json.loads(as_json.stdout)
        if set(doc) != {"version", "library"} or doc["library"] != lib_version:
            failures.append(f"version --json printed {as_json.stdout!r}")
    except json.JSONDecodeError:
        failures.append(f"version --json is not JSON: {as_json.stdout!r}")
    check = run("selfcheck")
    if check.returncode != 0 or "selfcheck: ok" not in check.stdout:
        failures.append(f"selfcheck failed ({check.returncode}): {check.stdout}{check.stderr}")
    # The embedded LMDB store: the check passes again on the store the first
    # run left behind.
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in (1, 2):
            on_disk = run("selfcheck", "--store", f"lmdb:{tmp}/store")
            if on_disk.returncode != 0 or "selfcheck: ok" not in on_disk.stdout:
                failures.append(f"selfcheck on LMDB, run {attempt}, failed "
                                f"({on_disk.returncode}): {on_disk.stdout}{on_disk.stderr}")
    bad = run("selfcheck", "--store", "nosuch://x")
    if bad.returncode != 2 or "nosuch" not in bad.stderr:
        failures.append(f"a bad store URI gave exit {bad.returncode}: {bad.stderr!r}")
    unknown = run("frobnicate")
    if unknown.returncode != 2 or "frobnicate" not in unknown.stderr:
        failures.append(f"an unknown command gave exit {unknown.returncode}: {unknown.stderr!r}")
    for f in failures:
        print("FAIL: " + f)
    print(f"{7 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    CLI = sys.argv[1]
    sys.exit(main())
