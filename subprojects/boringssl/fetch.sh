#!/bin/sh
# Fetches, verifies and unpacks Debian's BoringSSL source package into
# subprojects/boringssl/cache/ (git-ignored), for the private static build.
#
# The apt configuration used here is private to the cache folder: its deb-src
# entries are derived from the machine's own apt sources, so no mirror address
# is ever written into the repository and the system configuration is left
# untouched. The downloaded files are checked against SHA256SUMS (committed)
# before anything is unpacked. A stamp makes a second run a no-op.
#
# Usage: fetch.sh                 fetch if needed; prints the unpacked source dir
#        fetch.sh --force         fetch and unpack again
#        fetch.sh --sources SET   fetch if needed; prints the files of one source
#                                 set of the package's android-sources.cmake
#                                 (crypto_sources, crypto_sources_linux_x86_64,
#                                 ...), one a line, relative to the unpacked
#                                 source dir
set -eu

PKG=android-platform-external-boringssl
VERSION=13.0.0+r24-2

here=$(cd "$(dirname "$0")" && pwd)
cache="$here/cache"
sums="$here/SHA256SUMS"
src="$cache/src"
stamp="$cache/stamp"
dl="$cache/download"
aptdir="$cache/apt"

force=no
list_set=""
case "${1:-}" in
  --force) force=yes ;;
  --sources) list_set="${2:?--sources needs a set name}" ;;
  "") ;;
  *) echo "usage: $0 [--force | --sources SET]" >&2; exit 2 ;;
esac

log() { echo "boringssl/fetch.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$cache"

# Several build directories may configure at the same time: one fetch at once.
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

stamp_ok() {
  [ -f "$stamp" ] && [ -d "$src" ] && cmp -s "$stamp" "$sums"
}

# Prints the files of set($1 ...) from android-sources.cmake.
print_sources() {
  awk -v want="set($1" '
    $1 == want { on = 1; next }
    on && $1 == ")" { exit }
    on && NF { sub(/^\$\{BORINGSSL_ROOT\}/, "", $1); print $1; n++ }
    END { if (n == 0) exit 1 }' "$src/android-sources.cmake" ||
    die "no source set '$1' in android-sources.cmake"
}

done_ok() {
  if [ -n "$list_set" ]; then
    print_sources "$list_set"
  else
    echo "$src"
  fi
  exit 0
}

if [ "$force" = no ] && stamp_ok; then
  done_ok
fi

[ -f "$sums" ] || die "missing $sums"

verify_downloads() {
  [ -d "$dl" ] || return 1
  (cd "$dl" && sha256sum --quiet --strict -c "$sums" >/dev/null 2>&1)
}

# --- deb-src entries derived from the machine's apt sources -----------------
codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
[ -n "$codename" ] || die "cannot tell the Debian release (VERSION_CODENAME in /etc/os-release)"

# One-line format: "deb [options] URI SUITE COMPONENTS...". Only entries of this
# release's suites (bookworm, bookworm-updates, bookworm-security, ...) whose
# key, if named, is Debian's archive key are taken.
derive_list() {
  awk -v cn="$codename" '
    /^[ \t]*#/ || NF == 0 { next }
    $1 != "deb" { next }
    {
      line = $0
      opts = ""
      if (match(line, /\[[^]]*\]/)) {
        opts = substr(line, RSTART, RLENGTH)
        line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
      }
      n = split(line, f, /[ \t]+/)
      # f[1] = deb, f[2] = URI, f[3] = suite
      if (n < 3) next
      if (f[3] != cn && index(f[3], cn "-") != 1) next
      if (opts ~ /signed-by=/ && opts !~ /debian-archive/) next
      out = "deb-src"
      if (opts != "") out = out " " opts
      for (i = 2; i <= n; i++) if (f[i] != "") out = out " " f[i]
      print out
    }' "$1"
}

# deb822 format: stanzas separated by blank lines. A stanza is taken when it is
# enabled, has type deb, lists a suite of this release and its Signed-By (if
# any) is Debian's archive key; its Types become deb-src and foreign suites are
# dropped.
derive_sources() {
  awk -v cn="$codename" '
    function flush(   i, keep, suites, ns, s, good, out) {
      if (nl == 0) return
      keep = (types ~ /(^|[ \t])deb([ \t]|$)/) && (enabled !~ /^[ \t]*[Nn][Oo]/)
      if (signed != "" && signed !~ /debian-archive/) keep = 0
      good = ""
      ns = split(suitesv, suites, /[ \t]+/)
      for (i = 1; i <= ns; i++) {
        s = suites[i]
        if (s == cn || index(s, cn "-") == 1) good = good " " s
      }
      if (good == "") keep = 0
      if (keep) {
        for (i = 1; i <= nl; i++) {
          if (lines[i] ~ /^Types:/) print "Types: deb-src"
          else if (lines[i] ~ /^Suites:/) print "Suites:" good
          else if (lines[i] ~ /^Enabled:/) continue
          else print lines[i]
        }
        print ""
      }
      nl = 0; types = ""; enabled = ""; signed = ""; suitesv = ""; field = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { if (nl > 0) { lines[++nl] = $0; if (field == "signed-by") signed = signed $0 } next }
    {
      lines[++nl] = $0
      split($0, kv, ":")
      field = tolower(kv[1])
      value = substr($0, index($0, ":") + 1)
      if (field == "types") types = value
      else if (field == "enabled") enabled = value
      else if (field == "signed-by") signed = value
      else if (field == "suites") suitesv = value
    }
    END { flush() }' "$1"
}

fetch() {
  rm -rf "$aptdir" "$dl"
  mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" \
           "$aptdir/cache/archives/partial" "$dl"
  list="$aptdir/sources.list"
  parts="$aptdir/sources.list.d/derived.sources"
  : >"$list"
  : >"$parts"
  if [ -r /etc/apt/sources.list ]; then
    derive_list /etc/apt/sources.list >>"$list"
  fi
  for f in /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] && derive_list "$f" >>"$list"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] && derive_sources "$f" >>"$parts"
  done
  if [ ! -s "$list" ] && [ ! -s "$parts" ]; then
    die "no Debian '$codename' entry found in the machine's apt sources"
  fi

  set -- -o "Dir::Etc::SourceList=$list" \
         -o "Dir::Etc::SourceParts=$aptdir/sources.list.d" \
         -o "Dir::State::Lists=$aptdir/lists" \
         -o "Dir::Cache=$aptdir/cache" \
         -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" \
         -o "APT::Sandbox::User=root" \
         -o "Debug::NoLocking=1"

  log "updating the private package lists (deb-src entries derived from the system's)"
  # A failing third-party entry should not stop us; a missing package will.
  apt-get "$@" -q update >&2 || log "apt-get update reported errors; trying anyway"

  log "downloading $PKG=$VERSION"
  (cd "$dl" && apt-get "$@" -q source --download-only "$PKG=$VERSION" >&2) ||
    die "apt-get source failed (is a deb-src entry for Debian '$codename' reachable?)"
}

if [ "$force" = yes ] || ! verify_downloads; then
  fetch
fi

log "verifying SHA-256 sums"
if ! (cd "$dl" && sha256sum --strict -c "$sums" >&2); then
  die "checksum mismatch: the downloaded files do not match $sums"
fi

dsc="${PKG}_${VERSION}.dsc"
[ -f "$dl/$dsc" ] || die "no $dsc downloaded"

log "unpacking"
rm -rf "$cache/src.tmp" "$src" "$stamp"
# --no-check: the files were verified against our pinned sums above.
(cd "$dl" && dpkg-source -q --no-check -x "$dsc" "$cache/src.tmp" >&2) ||
  die "dpkg-source -x failed (is dpkg-dev installed?)"
mv "$cache/src.tmp" "$src"
# dpkg-source leaves a link to the orig tarball beside the target directory.
rm -f "$cache"/*.orig.tar.*
rm -rf "$aptdir"
cp "$sums" "$stamp"
done_ok
