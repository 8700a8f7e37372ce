# Thin wrapper over CMake. The two commands a newcomer needs:
#   make demo   build, then run the four reference flows and print each exchange
#   make test   install missing Debian packages, check formatting, build with gcc and
#               run every test; rebuild with clang under ASan+UBSan and run them all
#               again; run the threaded tests under ThreadSanitizer.
# and for measurements (never pass/fail):
#   make bench  install the peers' Debian packages, build, run every (server x workload)
#               pair and write bench/results/REPORT.md with its JSON and charts
#               (make bench-quick: fewer workloads and short runs, under 2 minutes)
# and for the reliability runs that do not fit in make test:
#   make fuzz   every libFuzzer target for FUZZ_SECONDS each (make test replays corpora)
#   make soak   ten minutes of mixed load; says whether memory, fds or threads grew
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE ?= cmake
CTEST_FLAGS = --output-on-failure -j $(JOBS)
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find include src tests examples cli -name '*.[ch]')

.PHONY: all build demo test fuzz soak bench bench-quick bench-deps bench-build deps format format-check test-plain test-asan test-tsan install clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/plain/Makefile:
	$(CMAKE) -S . -B $(BUILD)/plain -DCMAKE_C_COMPILER=gcc -DSOCKIT_FAULT_INJECTION=ON

build: $(BUILD)/plain/Makefile
	$(CMAKE) --build $(BUILD)/plain -j $(JOBS)

# The build's own output is held back (shown in full if it fails), so the demo is
# what a newcomer sees.
demo: deps
	@scripts/quiet.sh "building sockit in $(BUILD)/plain" $(MAKE) --no-print-directory build
	@scripts/demo.sh $(BUILD)/plain

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

# The fault runs (label faults) run in the ASan build, where a partial path handled
# wrong also shows as a memory error; the gcc build compiles them and skips them, so
# make test stays within 20 minutes on two cores.
test-plain: build
	cd $(BUILD)/plain && ctest $(CTEST_FLAGS) -LE faults

test-asan:
	$(CMAKE) -S . -B $(BUILD)/asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSOCKIT_SANITIZE=ON -DSOCKIT_FAULT_INJECTION=ON
	$(CMAKE) --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && ctest $(CTEST_FLAGS)

test-tsan:
	$(CMAKE) -S . -B $(BUILD)/tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSOCKIT_TSAN=ON -DSOCKIT_FAULT_INJECTION=ON
	$(CMAKE) --build $(BUILD)/tsan -j $(JOBS)
	cd $(BUILD)/tsan && ctest $(CTEST_FLAGS) -L threads

test: deps
	$(MAKE) format-check
	$(MAKE) test-plain
	$(MAKE) test-asan
	$(MAKE) test-tsan

# Fuzzing (not part of make test, which replays each target's corpus): every
# libFuzzer target for FUZZ_SECONDS (default 60) each; scripts/fuzz.sh says more.
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD=$(BUILD) scripts/fuzz.sh

# Ten minutes of mixed load (not part of make test): echo, one-shot, UDP and the proxy
# with random toxics, each server's memory, descriptors and threads sampled every
# second; the report (BUILD/plain/soak.md) says whether any grew. SOAK_SECONDS=60
# for a shorter one.
soak: build
	python3 scripts/soak.py $(BUILD)/plain

# Benchmarks are measurements, never pass/fail: see bench/README.md for what each
# compares. cmake runs again so that peers whose libraries (libuv, libevent) bench-deps
# has just installed are configured into an existing build. BENCH_FLAGS passes more
# options to the driver, e.g. make bench BENCH_FLAGS="--only rate --repeats 5".
BENCH_FLAGS ?=
bench-deps:
	@scripts/deps.sh --bench

bench-build: bench-deps
	$(CMAKE) -S . -B $(BUILD)/plain -DCMAKE_C_COMPILER=gcc
	$(CMAKE) --build $(BUILD)/plain -j $(JOBS)

bench: bench-build
	python3 bench/run_bench.py --build $(BUILD)/plain $(BENCH_FLAGS)
	bench/run_loop_bench.sh $(BUILD)/plain bench/results
	python3 bench/netcat_bench.py --build $(BUILD)/plain --json bench/results/netcat.json \
	    | tee bench/results/netcat.txt
	bench/report_section.sh bench/results/REPORT.md "The netcat under many connections" \
	    bench/results/netcat.txt --code
	python3 bench/idle_memory.py --build $(BUILD)/plain --out bench/results/idle_memory.md
	bench/report_section.sh bench/results/REPORT.md "Memory per idle connection" \
	    bench/results/idle_memory.md
	bench/spin_bench.sh $(BUILD)/plain > bench/results/spin.md
	bench/report_section.sh bench/results/REPORT.md "The spin option at 1 connection" \
	    bench/results/spin.md
	python3 bench/loops_bench.py $(BUILD)/plain 5 > bench/results/loops.md
	bench/report_section.sh bench/results/REPORT.md "Several loops (SOCKIT_EVENTS loops = N)" \
	    bench/results/loops.md
	python3 bench/proxy_bench.py $(BUILD)/plain 3 > bench/results/proxy.md
	bench/report_section.sh bench/results/REPORT.md "The proxy beside socat (sockit proxy)" \
	    bench/results/proxy.md
	python3 bench/tls_bench.py $(BUILD)/plain 3 > bench/results/tls.md
	bench/report_section.sh bench/results/REPORT.md "TLS servers beside socat, ncat and asyncio" \
	    bench/results/tls.md

bench-quick: bench-build
	python3 bench/run_bench.py --build $(BUILD)/plain --quick $(BENCH_FLAGS)
	bench/run_loop_bench.sh $(BUILD)/plain bench/results --quick --repeats 3

# Installed from a build of its own, without the test builds' SOCKIT_FAULT_INJECTION:
# an installed library never reads SOCKIT_FAULTS.
install:
	$(CMAKE) -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DSOCKIT_FAULT_INJECTION=OFF -DSOCKIT_TESTS=OFF
	$(CMAKE) --build $(BUILD)/release -j $(JOBS)
	$(CMAKE) --install $(BUILD)/release

clean:
	rm -rf $(BUILD)
