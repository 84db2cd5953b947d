#!/bin/sh
# Generates the TLS test certificates (make-fixtures.sh, next to this script)
# into a new temporary directory, runs PROGRAM ARGS... DIR and removes the
# directory again. Exits with PROGRAM's status.
#
# Usage: with-fixtures.sh PROGRAM [ARGS...]
set -eu

if [ $# -lt 1 ]; then
  echo "usage: with-fixtures.sh PROGRAM [ARGS...]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/xg2g-tls-XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

sh "$here/make-fixtures.sh" "$dir"
status=0
"$@" "$dir" || status=$?
exit "$status"
