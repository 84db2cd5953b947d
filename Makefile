# The two commands of the README: `make run` and `make test`. Both install
# what is missing from Debian's archive (as root), then build.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Every package the build, the tests and the examples need, by Debian name.
PACKAGES := build-essential meson ninja-build pkgconf python3 python3-pytest python3-pip python3-venv \
	libcurl4-openssl-dev libssl-dev libsimdjson-dev libfmt-dev libabsl-dev liblmdb-dev lmdb-utils \
	libhiredis-dev libmicrohttpd-dev doctest-dev redis-server openssl curl \
	dpkg-dev binutils ca-certificates prometheus clang clang-tidy cppcheck

BUILD ?= build
MESON_TEST := meson test --print-errorlogs --num-processes 2
# After a failed run: the lines of the test log that say what failed, again at
# the very end of the output (a CI log is often read from its tail).
failure_tail = { echo "--- what failed, from $(1)/meson-logs/testlog.txt ---"; \
  grep -E -A3 "ERROR:|FAILED|runtime error:|Sanitizer|Traceback|AssertionError|^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT)" \
    $(1)/meson-logs/testlog.txt | tail -n 80; exit 1; }
SAN_OPTS := -Db_lundef=false -Dpython_tests=false -Dexamples=false -Dbenchmarks=false

export ASAN_OPTIONS := detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS := halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS := halt_on_error=1:second_deadlock_stack=1

.PHONY: all deps build test test-main test-asan test-tsan test-fuzz run bench bench-load soak lint clean

all: build

# Installs the Debian packages of the list $(1) that are not installed yet.
define install_missing
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(PACKAGES))

# meson setup only when the directory is not configured yet.
define setup
	@if [ ! -f "$(1)/build.ninja" ]; then meson setup "$(1)" $(2); fi
endef

build: deps
	$(call setup,$(BUILD),)
	meson compile -C $(BUILD)

test-main: build
	$(MESON_TEST) -C $(BUILD) || $(call failure_tail,$(BUILD))
	tests/integration/install_check.sh $(BUILD)

# The sanitizer builds compile only what their suites run
# (tests/ci/suite_targets.py), then run them without rebuilding the rest.
ASAN_SUITES := unit store fuzz capi concurrency integration soak
TSAN_SUITES := concurrency store

# Every C and C++ suite under ASan+UBSan: unit, store, fuzz replay, C API,
# concurrency, integration (its C and C++ tests; the examples and the Python
# suites are not built here) and the soak (one minute there: LeakSanitizer
# checks it at exit).
test-asan: deps
	$(call setup,build-asan,-Db_sanitize=address,undefined $(SAN_OPTS))
	ninja -C build-asan build.ninja  # regenerated first if meson files changed: the target list is current
	targets=$$(python3 tests/ci/suite_targets.py build-asan $(ASAN_SUITES)); ninja -C build-asan $$targets
	$(MESON_TEST) -C build-asan --no-rebuild $(addprefix --suite ,$(ASAN_SUITES)) \
	  || $(call failure_tail,build-asan)

# The concurrency and store suites under TSan.
test-tsan: deps
	$(call setup,build-tsan,-Db_sanitize=thread $(SAN_OPTS))
	ninja -C build-tsan build.ninja  # regenerated first if meson files changed: the target list is current
	targets=$$(python3 tests/ci/suite_targets.py build-tsan $(TSAN_SUITES)); ninja -C build-tsan $$targets
	$(MESON_TEST) -C build-tsan --no-rebuild $(addprefix --suite ,$(TSAN_SUITES)) \
	  || $(call failure_tail,build-tsan)

# libFuzzer (clang, ASan+UBSan, build-fuzz): every target with a corpus in
# tests/fuzz/corpus/<target>/ runs FUZZ_SECONDS from that corpus. New inputs
# go to a scratch directory, never into the tree; a crash fails the target
# and leaves its reproducer (crash-*) in the current directory.
FUZZ_SECONDS ?= 10
FUZZ_TARGETS := $(sort $(notdir $(wildcard tests/fuzz/corpus/*)))
test-fuzz: deps
	@if [ ! -f build-fuzz/build.ninja ]; then \
	  CC=clang CXX=clang++ meson setup build-fuzz -Db_sanitize=address,undefined $(SAN_OPTS); \
	fi
	meson compile -C build-fuzz $(addprefix tests/fuzz/,$(addsuffix _fuzz,$(FUZZ_TARGETS)))
	@for t in $(FUZZ_TARGETS); do \
	  scratch=$$(mktemp -d); \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  if ! build-fuzz/tests/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	       "$$scratch" tests/fuzz/corpus/$$t; then rm -rf "$$scratch"; exit 1; fi; \
	  rm -rf "$$scratch"; \
	done

test: test-main test-asan test-tsan test-fuzz
	@echo "all suites passed (main, asan+ubsan, tsan, fuzz)"

# clang-tidy (.clang-tidy) and cppcheck over lib/ and capi/, from the
# compile_commands.json of build-lint; fails on any finding (docs/lint.md).
# Not part of `make test`. LINT_JOBS bounds the parallel clang-tidy runs.
LINT_JOBS ?= 2
lint: deps
	$(call setup,build-lint,-Dpython_tests=false)
	ninja -C build-lint build.ninja  # compile_commands.json follows new sources
	nice -n 10 tests/lint/cppcheck.sh build-lint
	nice -n 10 tests/lint/clang_tidy.py build-lint --jobs $(LINT_JOBS)

# The example daemon on the embedded LMDB store (./var/xg2g). Without
# XG2G_API_TOKENS in the environment a fresh admin token is made and printed
# once, with a curl line that starts a session.
SAMPLE_SERVICE := 1:0:19:2B66:3F3:1:C00000:0:0:0:
run: build
	@if [ -n "$${XG2G_API_TOKENS:-}" ]; then \
	  echo "using the tokens in XG2G_API_TOKENS"; \
	  exec $(BUILD)/examples/daemon/xg2gd; \
	fi; \
	token=$$($(BUILD)/examples/cli/xg2g token new --scopes v3:admin 2>/dev/null | head -n 1); \
	listen=$${XG2G_LISTEN:-127.0.0.1:8088}; \
	echo "admin token (shown once, not stored): $$token"; \
	echo "start a session:"; \
	echo "  curl -s -X POST -H 'Authorization: Bearer $$token' -H 'Content-Type: application/json' \\"; \
	echo "    -d '{\"type\":\"stream.start\",\"serviceRef\":\"$(SAMPLE_SERVICE)\"}' http://$$listen/api/v3/intents"; \
	XG2G_API_TOKENS="$$token=v3:admin" exec $(BUILD)/examples/daemon/xg2gd

# Benchmarks (tests/bench): numbers and ratios against a baseline measured
# in the same run; never part of pass/fail.
bench: build
	meson test -C $(BUILD) --benchmark --verbose

# The load benchmark of the daemon (tests/bench/load/run): xg2gd on the
# memory, LMDB and Redis stores beside nginx answering a fixed JSON 200 in
# the same run; about five minutes. Its two tools are installed here only,
# never by `make test`. LOAD_ARGS passes options (e.g. --seconds 5).
BENCH_PACKAGES := wrk nginx-light
LOAD_ARGS ?=
bench-load: build
	$(call install_missing,$(BENCH_PACKAGES))
	tests/bench/load/run $(BUILD) $(LOAD_ARGS)

# The soak (tests/soak/soak.cc) on demand in the main build, SOAK_SECONDS
# long (CI runs two minutes): starts, stops, replays, rejections and expiries
# on the memory and LMDB stores; prints the resident-memory slope and the
# peak table sizes against their bounds.
SOAK_SECONDS ?= 900
soak: build
	nice -n 10 $(BUILD)/tests/soak/soak --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
