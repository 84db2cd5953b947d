#!/usr/bin/env python3
"""Runs clang-tidy (configured by the top-level .clang-tidy) over lib/ and capi/.

Usage: tests/lint/clang_tidy.py BUILD_DIR [--jobs N] [--show-suppressed] [FILE ...]

BUILD_DIR holds the compile_commands.json of a configured meson build. Without
FILE arguments every lib/ and capi/ translation unit in it is checked. A
finding listed in tests/lint/clang-tidy-suppressions.txt is not reported.
Exit status: 0 when nothing is left to report, 1 when something is, 2 on a
usage or tool error.
"""

import argparse
import concurrent.futures
import fnmatch
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUPPRESSIONS = os.path.join(ROOT, "tests", "lint", "clang-tidy-suppressions.txt")
CHECKED_DIRS = ("lib/", "capi/")
# file:line:col: severity: message [check]
DIAG = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?P<col>\d+): "
                  r"(?P<sev>warning|error): (?P<msg>.*?)(?: \[(?P<check>[^\]]+)\])?$")


def rel(path, directory):
    full = os.path.normpath(os.path.join(directory, path))
    return os.path.relpath(full, ROOT)


def load_suppressions():
    rules = []
    with open(SUPPRESSIONS, encoding="utf-8") as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                sys.exit(f"{SUPPRESSIONS}: expected 'FILE-GLOB CHECK-GLOB': {raw.rstrip()}")
            rules.append((parts[0], parts[1]))
    return rules


def suppressed(rules, path, checks):
    return any(fnmatch.fnmatch(path, fglob) and any(fnmatch.fnmatch(c, cglob) for c in checks)
               for fglob, cglob in rules)


def run_one(build_dir, entry_file):
    proc = subprocess.run(
        ["clang-tidy", "-p", build_dir, "--quiet", "--extra-arg=-Wno-unknown-warning-option",
         entry_file],
        cwd=build_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return entry_file, proc.returncode, proc.stdout


def parse(output, build_dir):
    """Splits clang-tidy output into (key, text) diagnostics with their notes."""
    diags = []
    current = None
    for line in output.splitlines():
        m = DIAG.match(line)
        if m:
            path = rel(m.group("file"), build_dir)
            checks = (m.group("check") or "clang-diagnostic-error").split(",")
            key = (path, int(m.group("line")), int(m.group("col")), tuple(checks))
            current = [key, [f"{path}:{m.group('line')}:{m.group('col')}: {m.group('sev')}: "
                             f"{m.group('msg')} [{','.join(checks)}]"]]
            diags.append(current)
        elif current is not None and not line.endswith("warnings generated.") \
                and not line.startswith("Suppressed ") and not line.startswith("Use -header-filter"):
            current[1].append(line)
    return diags


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("build_dir")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--show-suppressed", action="store_true",
                        help="also print the suppressed findings (not counted as failures)")
    parser.add_argument("files", nargs="*")
    args = parser.parse_intermixed_args()

    build_dir = os.path.abspath(args.build_dir)
    db_path = os.path.join(build_dir, "compile_commands.json")
    if not os.path.isfile(db_path):
        print(f"clang-tidy: no {db_path}; configure the build first", file=sys.stderr)
        return 2
    with open(db_path, encoding="utf-8") as f:
        db = json.load(f)
    units = {}
    for entry in db:
        path = rel(entry["file"], entry["directory"])
        if path.startswith(CHECKED_DIRS) and path.endswith(".cc"):
            units[path] = os.path.join(ROOT, path)
    wanted = [os.path.relpath(os.path.abspath(f), ROOT) for f in args.files] or sorted(units)
    missing = [f for f in wanted if f not in units]
    if missing:
        print(f"clang-tidy: not in {db_path}: {' '.join(missing)}", file=sys.stderr)
        return 2

    rules = load_suppressions()
    seen = set()
    reported = 0
    hidden = 0
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(lambda f: run_one(build_dir, units[f]), wanted)
        for unit, rc, output in results:
            diags = parse(output, build_dir)
            if rc != 0 and not diags:
                failed.append(unit)
                print(output, file=sys.stderr)
            for key, text in diags:
                if key in seen:
                    continue
                seen.add(key)
                if suppressed(rules, key[0], key[3]):
                    hidden += 1
                    if args.show_suppressed:
                        print("suppressed: " + text[0])
                    continue
                reported += 1
                print("\n".join(text))
    print(f"clang-tidy: {len(wanted)} files, {reported} findings, "
          f"{hidden} suppressed by {os.path.relpath(SUPPRESSIONS, ROOT)}")
    if failed:
        print(f"clang-tidy: failed on {' '.join(failed)}", file=sys.stderr)
        return 2
    return 1 if reported else 0


if __name__ == "__main__":
    sys.exit(main())
