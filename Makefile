# Thin wrapper over CMake: every target installs what is missing first, so
# `make run` and `make test` work on a fresh Debian 12 machine.
#
#   make build   release build in build/ (the CLI is build/atolog)
#   make run     build, then the HTTP server on ./data (Ctrl-C stops it)
#   make tour    build, then the tour: concurrent agents capture, then query
#   make test    sanitizer build in build-test/, then the whole suite, then
#                make tsan
#   make bench   optimised build in build-bench/, then the benchmarks run
#                there (tables on stdout; CSV and PNG files land in
#                build-bench/); BENCH_ARGS=--quick for a smoke run
#   make valgrind  the suite under valgrind (no sanitizers), build-valgrind/
#   make stress  the crash loop: KILLS=n or SECONDS=s (default 600 s)
#   make tsan    ThreadSanitizer build (clang) in build-tsan/, then the tests
#                where threads meet: concurrency, recent set, compaction,
#                follow, snapshot, server, full disk, lock records, the
#                crash loop; suppressions (third-party code only, none
#                today) in tests/tsan.supp
#   make fuzz    libFuzzer build (clang) in build-fuzz/, then each target of
#                tests/fuzz for FUZZ_SECONDS (default 60) or FUZZ_RUNS
#                executions; FUZZ_TARGETS=... picks some. New inputs land in
#                build-fuzz/corpus/NAME, crashes in build-fuzz/artifacts
#   make fuzz-corpus  writes the seed corpora again (tests/fuzz/corpus)

JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
DATA   ?= ./data
CMAKE_FLAGS ?=
BENCH_ARGS ?=
SERVE_ARGS ?=

STRESS_ARGS = $(if $(KILLS),--kills $(KILLS),--seconds $(or $(SECONDS),600))

# The tests make tsan runs (ctest names), and what they need built.
TSAN_TESTS = test_concurrency test_recent test_compact test_follow test_snapshot \
	     test_server test_fulldisk test_stress test_lock
TSAN_TARGETS = $(filter-out test_stress,$(TSAN_TESTS)) atolog_stress atolog_cli
# The fuzz targets (tests/fuzz/fuzz_NAME.c), how long each runs.
FUZZ_TARGETS ?= json batch record frame scan store journal registry time http
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))
empty :=
space := $(empty) $(empty)

.PHONY: all deps build run tour test bench stress valgrind tsan fuzz fuzz-corpus clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	./build/atolog --data $(DATA) serve $(SERVE_ARGS)

tour: build
	./build/atolog --data $(DATA) tour

test: deps
	@cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DATOLOG_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-test -j $(JOBS)
	@cd build-test && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory tsan

bench:
	@./scripts/deps.sh bench
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-bench -j $(JOBS) --target atolog_bench_ingest atolog_bench_query atolog_bench_http atolog_bench_import atolog_cli
	cd build-bench && ./bench/atolog_bench_ingest $(BENCH_ARGS)
	cd build-bench && ./bench/atolog_bench_query $(BENCH_ARGS)
	cd build-bench && ./bench/atolog_bench_http $(BENCH_ARGS)
	cd build-bench && ./bench/atolog_bench_import $(BENCH_ARGS)

stress: build
	./build/tests/atolog_stress $(STRESS_ARGS)

valgrind: deps
	@command -v valgrind >/dev/null || apt-get install -y -qq valgrind
	@cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-valgrind -j $(JOBS)
	@./scripts/valgrind.sh build-valgrind

tsan:
	@./scripts/deps.sh tsan
	@cmake -S . -B build-tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DATOLOG_TSAN=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target $(TSAN_TARGETS)
	@cd build-tsan && ctest --output-on-failure -j $(JOBS) \
		-R '^($(subst $(space),|,$(strip $(TSAN_TESTS))))$$'

fuzz:
	@./scripts/deps.sh tsan
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DATOLOG_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build-fuzz/corpus/$$t build-fuzz/artifacts; \
		echo "fuzz: $$t" >&2; \
		./build-fuzz/tests/fuzz/fuzz_$$t $(FUZZ_LIMIT) -print_final_stats=1 \
			-artifact_prefix=build-fuzz/artifacts/$$t- \
			build-fuzz/corpus/$$t tests/fuzz/corpus/$$t \
			$$(test -d tests/fuzz/found/$$t && echo tests/fuzz/found/$$t); \
	done

fuzz-corpus: build
	@cmake --build build -j $(JOBS) --target fuzz_gen_corpus
	rm -rf tests/fuzz/corpus
	./build/tests/fuzz/fuzz_gen_corpus tests/fuzz/corpus

clean:
	rm -rf build build-test build-bench build-valgrind build-tsan build-fuzz
