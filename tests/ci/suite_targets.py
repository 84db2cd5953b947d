#!/usr/bin/env python3
"""Prints the ninja targets that the tests of the given suites need.

Usage: suite_targets.py BUILDDIR SUITE...

The sanitizer runs of `make test` build only these (and then run the suites
with `meson test --no-rebuild`) instead of everything the project has.
"""
import json
import os
import subprocess
import sys


def introspect(build, what):
    out = subprocess.run(["meson", "introspect", build, what], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    build, suites = argv[1], set(argv[2:])
    files = {t["id"]: t["filename"] for t in introspect(build, "--targets")}
    wanted = set()
    for test in introspect(build, "--tests"):
        names = {s.split(":", 1)[-1] for s in test["suite"]}
        if not names & suites:
            continue
        for target_id in test["depends"]:
            for path in files.get(target_id, []):
                wanted.add(os.path.relpath(path, os.path.abspath(build)))
    if not wanted:
        print(f"suite_targets.py: no test in {sorted(suites)}", file=sys.stderr)
        return 1
    print("\n".join(sorted(wanted)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
