# Thin wrapper over CMake. The two commands a newcomer needs:
#   make demo   build, then run the four reference flows and print each exchange
#   make test   install missing Debian packages, check formatting, build with gcc and
#               run every test; rebuild with clang under ASan+UBSan and run them all
#               again; run the threaded tests under ThreadSanitizer.
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE ?= cmake
CTEST_FLAGS = --output-on-failure -j $(JOBS)
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find include src tests examples cli -name '*.[ch]')

.PHONY: all build demo test bench deps format format-check test-plain test-asan test-tsan install clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/plain/Makefile:
	$(CMAKE) -S . -B $(BUILD)/plain -DCMAKE_C_COMPILER=gcc

build: $(BUILD)/plain/Makefile
	$(CMAKE) --build $(BUILD)/plain -j $(JOBS)

demo: deps build
	@scripts/demo.sh $(BUILD)/plain

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

test-plain: build
	cd $(BUILD)/plain && ctest $(CTEST_FLAGS)

test-asan:
	$(CMAKE) -S . -B $(BUILD)/asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSOCKIT_SANITIZE=ON
	$(CMAKE) --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && ctest $(CTEST_FLAGS)

test-tsan:
	$(CMAKE) -S . -B $(BUILD)/tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSOCKIT_TSAN=ON
	$(CMAKE) --build $(BUILD)/tsan -j $(JOBS)
	cd $(BUILD)/tsan && ctest $(CTEST_FLAGS) -L threads

test: deps
	$(MAKE) format-check
	$(MAKE) test-plain
	$(MAKE) test-asan
	$(MAKE) test-tsan

# Benchmarks are measurements, never pass/fail: see bench/ for what each compares.
bench: deps build
	bench/server_modes.sh $(BUILD)/plain

install: build
	$(CMAKE) --install $(BUILD)/plain

clean:
	rm -rf $(BUILD)
