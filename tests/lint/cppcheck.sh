#!/usr/bin/env bash
# Runs cppcheck over the lib/ and capi/ translation units of a configured
# meson build (its compile_commands.json). Exits non-zero on any finding that
# tests/lint/cppcheck-suppressions.txt does not list.
# Usage: tests/lint/cppcheck.sh BUILD_DIR   (JOBS=N for parallel runs, default 2)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: tests/lint/cppcheck.sh BUILD_DIR}
cd "$root"
if [ ! -f "$build/compile_commands.json" ]; then
  echo "cppcheck: no $build/compile_commands.json; configure the build first" >&2
  exit 2
fi
# Results are cached per file in the build directory; a changed file or
# header is checked again.
mkdir -p "$build/cppcheck-cache"
cppcheck --project="$build/compile_commands.json" \
  --file-filter='lib/*' --file-filter='capi/*' -i subprojects \
  --enable=warning,performance,portability \
  --inline-suppr --suppressions-list=tests/lint/cppcheck-suppressions.txt \
  --cppcheck-build-dir="$build/cppcheck-cache" -j "${JOBS:-2}" --quiet \
  --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
  --error-exitcode=1
echo "cppcheck: no findings"
