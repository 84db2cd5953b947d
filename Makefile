# The two commands of the README: `make run` and `make test`. Both install
# what is missing from Debian's archive (as root), then build.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Every package the build, the tests and the examples need, by Debian name.
PACKAGES := build-essential meson ninja-build pkgconf python3 python3-pytest \
	libcurl4-openssl-dev libssl-dev libsimdjson-dev libfmt-dev libabsl-dev liblmdb-dev lmdb-utils \
	libhiredis-dev libmicrohttpd-dev doctest-dev redis-server openssl curl \
	dpkg-dev binutils ca-certificates

BUILD ?= build
MESON_TEST := meson test --print-errorlogs --num-processes 2
SAN_OPTS := -Db_lundef=false -Dpython_tests=false -Dexamples=false

export ASAN_OPTIONS := detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS := halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS := halt_on_error=1:second_deadlock_stack=1

.PHONY: all deps build test test-main test-asan test-tsan run bench clean

all: build

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

# meson setup only when the directory is not configured yet.
define setup
	@if [ ! -f "$(1)/build.ninja" ]; then meson setup "$(1)" $(2); fi
endef

build: deps
	$(call setup,$(BUILD),)
	meson compile -C $(BUILD)

test-main: build
	$(MESON_TEST) -C $(BUILD)
	tests/integration/install_check.sh $(BUILD)

# Unit, store and fuzz-replay suites under ASan+UBSan.
test-asan: deps
	$(call setup,build-asan,-Db_sanitize=address,undefined $(SAN_OPTS))
	meson compile -C build-asan
	$(MESON_TEST) -C build-asan --suite unit --suite store --suite fuzz --suite capi

# The concurrency suite under TSan.
test-tsan: deps
	$(call setup,build-tsan,-Db_sanitize=thread $(SAN_OPTS))
	meson compile -C build-tsan
	$(MESON_TEST) -C build-tsan --suite concurrency --suite store

test: test-main test-asan test-tsan
	@echo "all suites passed (main, asan+ubsan, tsan)"

# Until the daemon lands, run the CLI's self-check on the embedded LMDB store
# (the daemon's default, ./var/xg2g).
run: build
	$(BUILD)/examples/cli/xg2g version
	$(BUILD)/examples/cli/xg2g selfcheck --store lmdb:./var/xg2g

# Benchmarks (tests/bench): numbers and ratios against a baseline measured
# in the same run; never part of pass/fail.
bench: build
	meson test -C $(BUILD) --benchmark --verbose

clean:
	rm -rf $(BUILD) build-asan build-tsan
