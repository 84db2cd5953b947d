#!/usr/bin/env bash
# `meson install` puts the library, the headers and the pkg-config file in
# place, and a C program builds against them through pkg-config alone.
# Usage: install_check.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
stage="$build/install-check"
rm -rf "$stage"
meson install -C "$build" --destdir "$stage" --no-rebuild --quiet

prefix=$(meson introspect "$build" --buildoptions | python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
libdir=$(meson introspect "$build" --buildoptions | python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"))')
root="$stage$prefix"
fail=0
for f in "$root/include/xg2g/xg2g.h" "$root/include/xg2g/xg2g_version.h" \
         "$root/$libdir/libxg2g.so.0" "$root/$libdir/pkgconfig/libxg2g.pc"; do
  if [ ! -e "$f" ]; then echo "FAIL: not installed: ${f#$stage}"; fail=1; fi
done
[ "$fail" -eq 0 ] || exit 1

cat > "$stage/consumer.c" <<'C'
#include <stdio.h>
#include <xg2g/xg2g.h>
int main(void) {
  if (xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR) != XG2G_OK) return 1;
  printf("%s\n", xg2g_version_string());
  return 0;
}
C
export PKG_CONFIG_PATH="$root/$libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$stage"
# shellcheck disable=SC2046
cc -std=c99 -pedantic -Werror -o "$stage/consumer" "$stage/consumer.c" \
  $(pkg-config --cflags --libs libxg2g)
got=$(LD_LIBRARY_PATH="$root/$libdir" "$stage/consumer")
want=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
if [ "$got" != "$want" ]; then echo "FAIL: consumer printed '$got', expected '$want'"; exit 1; fi
echo "install check: 1 passed, 0 failed"
