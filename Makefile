# crier: a thin wrapper around CMake.
#
#   make            build build/crier (optimised, with debug info)
#   make asan       build build-asan/ with AddressSanitizer + UBSan
#   make tsan       build build-tsan/ with ThreadSanitizer
#   make deb        build the crier binary alone in build-deb/ (Release, prefix
#                   /usr) and package it with CPack: prints the .deb's path
#   make check      install what is missing, check the layers, lint, build
#                   all three, start private services, lint the OpenAPI
#                   file, run every test in build/ and build-asan/ and the
#                   threaded ones in build-tsan/
#   make demo       run the event-planning demo on a private PostgreSQL with
#                   the sandbox transport (no credentials)
#   make bench      every benchmark below in turn, then a table of the figures
#                   against their targets (scripts/bench.sh; BENCH_SMOKE=1
#                   for seconds each, as make check runs it)
#   make bench-p1   email delivery: crier against smtp-source on the same smtp-sink
#   make bench-p2   SMS delivery: crier against wrk on the same provider stub
#   make bench-p3   intake benchmark: crier against pgbench (tests/bench/)
#   make bench-p5   policy cost: the Lua rules against the same policy in C
#                   (P5_ARGS="--seconds 1 --only lua" passes options)
#   make coverage   build build-cov/ with gcov counters, run the whole suite in
#                   it and print the line coverage of src/ (gcovr), naming
#                   every file under 60 % (scripts/coverage.sh)
#   make bench-analytics  the analytics summary over 1,000,000 communications:
#                   p50/p99 through the binary, answers checked against SQL
#   make format     clang-format -i on src/ and tests/
#   make layers     check that every #include points down (scripts/layers.sh)
#   make fuzz       build build-fuzz/ with clang (libFuzzer + ASan + UBSan) and
#                   run each harness of tests/fuzz/ for FUZZ_SECONDS (60) on a
#                   copy of its seed corpus; fails when one crashed
#                   (scripts/fuzz.sh; make check runs it with FUZZ_SECONDS=2
#                   as a smoke test)
#   make lint       clang-format check + cppcheck on src/ and tests/fuzz/ (the
#                   log API's NULL sentinels are fine on the platforms crier
#                   targets)
#   make clean      remove the build trees

BUILD_DIR ?= build
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
DEB_DIR ?= build-deb
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
CMAKE ?= cmake

C_FILES = $(shell find src tests -name '*.[ch]' -not -path '*/build*' 2>/dev/null)

.PHONY: all build asan tsan deb fuzz coverage layers check demo bench bench-p1 bench-p2 bench-p3 bench-p5 bench-analytics format lint clean

all: build

build:
	@if [ ! -f $(BUILD_DIR)/CMakeCache.txt ]; then \
		$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE); \
	fi
	$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)

asan:
	@if [ ! -f $(ASAN_DIR)/CMakeCache.txt ]; then \
		$(CMAKE) -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DCRIER_SANITIZE=ON; \
	fi
	$(CMAKE) --build $(ASAN_DIR) -j$(JOBS)

tsan:
	@if [ ! -f $(TSAN_DIR)/CMakeCache.txt ]; then \
		$(CMAKE) -S . -B $(TSAN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRIER_SANITIZE=thread; \
	fi
	$(CMAKE) --build $(TSAN_DIR) -j$(JOBS)

# Only the binary is built: the install step does not wait for the tests.
deb:
	@if [ ! -f $(DEB_DIR)/CMakeCache.txt ]; then \
		$(CMAKE) -S . -B $(DEB_DIR) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
			-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON; \
	fi
	$(CMAKE) --build $(DEB_DIR) -j$(JOBS) --target crier
	scripts/npm-deps.sh console uplot
	cd $(DEB_DIR) && cpack -G DEB
	@ls $(CURDIR)/$(DEB_DIR)/crier_*.deb
fuzz:
	@FUZZ_DIR=$(FUZZ_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) scripts/fuzz.sh

coverage:
	@JOBS=$(JOBS) scripts/coverage.sh

layers:
	@scripts/layers.sh

check:
	@scripts/check.sh

demo:
	@scripts/demo.sh

bench: build
	@scripts/bench.sh

bench-p1: build
	@tests/bench/p1_email.sh

bench-p2: build
	@tests/bench/p2_delivery.sh

bench-p3: build
	@tests/bench/p3_intake.sh

bench-p5:
	@P5_BUILD_DIR=$(BUILD_DIR) tests/bench/p5_policy.sh $(P5_ARGS)

bench-analytics: build
	@CRIER_BIN=$(BUILD_DIR)/crier tests/bench/analytics_summary.sh

format:
	clang-format -i $(C_FILES)

lint:
	clang-format --dry-run -Werror $(C_FILES)
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem \
		--suppress=varFuncNullUB -D_POSIX_C_SOURCE=200809L \
		-DCRIER_VERSION='"0"' -I src src tests/fuzz

clean:
	@for d in $(BUILD_DIR)/services $(BUILD_DIR)/demo/services $(BUILD_DIR)/bench/services build-cov/services; do \
		if [ -d $$d ]; then scripts/services.sh clean $$d; fi; \
	done
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(DEB_DIR) $(FUZZ_DIR) build-cov
