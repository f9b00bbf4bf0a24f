# A thin wrapper over CMake. `make bench` and `make test` each install what is missing, configure,
# build, then run. The real build is CMakeLists.txt.
BUILD      ?= build
GENERATOR  := $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)
CMAKE_ARGS ?=
TSAN_OPTIONS_RUN := halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1

.PHONY: all bootstrap build bench bench-peers test test-all test-slurm sanitize asan tsan fuzz fuzz-npy format format-check clean

all: build

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DBRIGADE_WERROR=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD)

bench: build
	./$(BUILD)/brigade bench --limits
	./$(BUILD)/brigade bench --suite knn

# The catalogue and the knn suite with the Python frameworks beside brigade
# (scripts/bootstrap.sh --peers installs them; mpire goes into .venv-peers). SIZE=lecture takes
# the lecture's sizes (about an hour on 2 cores); BENCH_ARGS adds options to both commands.
SIZE       ?= quick
BENCH_ARGS ?=
bench-peers: build
	@scripts/bootstrap.sh --peers
	BRIGADE_PYTHON=$(CURDIR)/.venv-peers/bin/python ./$(BUILD)/brigade bench --size $(SIZE) \
	  --peers python --limits $(BENCH_ARGS)
	BRIGADE_PYTHON=$(CURDIR)/.venv-peers/bin/python ./$(BUILD)/brigade bench --suite knn \
	  --size $(SIZE) --peers python $(BENCH_ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -LE slow

test-all: build
	cd $(BUILD) && ctest --output-on-failure

# `brigade map` as a job array on a single-node Slurm started on this machine (root; installs
# Slurm and munge). Not part of `make test`: CI does not run daemons.
test-slurm: build
	@scripts/bootstrap.sh --slurm
	@scripts/slurm-local.sh start $(BUILD)/slurm
	SLURM_CONF=$(CURDIR)/$(BUILD)/slurm/slurm.conf tests/slurm/array.sh ./$(BUILD)/brigade \
	  ./$(BUILD)/tests/libspin.so; rc=$$?; scripts/slurm-local.sh stop $(BUILD)/slurm; exit $$rc

# ASan+UBSan on every test, then ThreadSanitizer on the stress tests. TSan is built with clang:
# its libomp carries Archer, which tells TSan about OpenMP's barriers; gcc's libgomp does not
# and reports false races (FIELD-NOTES).
sanitize: asan tsan

asan: bootstrap
	@cmake -S . -B build-asan $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRIGADE_WERROR=ON \
	  -DBRIGADE_SANITIZE=address,undefined >/dev/null
	@cmake --build build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -LE "slow|package"

tsan: bootstrap
	@CC=clang cmake -S . -B build-tsan $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DBRIGADE_WERROR=ON -DBRIGADE_SANITIZE=thread >/dev/null
	@cmake --build build-tsan
	cd build-tsan && TSAN_OPTIONS="$(TSAN_OPTIONS_RUN)" ctest --output-on-failure -L "stress|unit"

# libFuzzer (clang, ASan+UBSan) on the bench and knn option parsers for FUZZ_SECONDS; new
# inputs it finds go to build-fuzz/corpus, a crash to build-fuzz/crash-*.
FUZZ_SECONDS ?= 180
fuzz: bootstrap
	@CC=clang cmake -S . -B build-fuzz $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DBRIGADE_SANITIZE=address,undefined -DBRIGADE_FUZZ=ON >/dev/null
	@cmake --build build-fuzz --target fuzz_opts_libfuzzer
	@mkdir -p build-fuzz/corpus
	cd build-fuzz && ./tests/fuzz_opts_libfuzzer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  corpus ../tests/fuzz/corpus

# The same for the .npy reader (tests/fuzz/fuzz_npy.c); new inputs go to build-fuzz/corpus-npy.
fuzz-npy: bootstrap
	@CC=clang cmake -S . -B build-fuzz $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DBRIGADE_SANITIZE=address,undefined -DBRIGADE_FUZZ=ON >/dev/null
	@cmake --build build-fuzz --target fuzz_npy_libfuzzer
	@mkdir -p build-fuzz/corpus-npy
	cd build-fuzz && ./tests/fuzz_npy_libfuzzer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  corpus-npy ../tests/fuzz/corpus-npy

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

format-check: bootstrap
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h' '*.cu')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
