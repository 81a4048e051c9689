# cmbench front door. See README.md and docs/architecture.md §6.
#   make            install missing packages, configure, build (build/bin/)
#   make test       build, then every CTest suite (unit, conformance, loadgen, bench end-to-end)
#   make bench      the default benchmark suite, charts and report (results/<timestamp>-<host>/)

SHELL      := /bin/bash
BUILD      ?= build
GENERATOR  ?= Ninja
JOBS       ?= $(shell nproc)
PY         := /usr/bin/python3
CTEST_ARGS ?= --output-on-failure
# Warnings are errors in CI (CI=true is set by the CI runner).
WERROR     ?= $(if $(CI),ON,OFF)

# Exactly the Debian packages the build, tests, benchmarks and charts need. The reference web
# servers are not among them (installing them starts system services): make deps-reference.
PACKAGES := g++ clang libclang-rt-14-dev cmake ninja-build pkg-config make \
            libboost-dev libboost-context-dev libevent-dev libuv1-dev liburing-dev \
            libgtest-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev linux-perf \
            python3 python3-matplotlib python3-psutil \
            python3-gevent python3-twisted python3-tornado python3-uvloop \
            curl wrk util-linux procps iproute2 git

.PHONY: all build configure deps test sanitize tsan fuzz bench bench-quick bench-full micro \
        plots report compare loadgen-vs-wrk soak clean deps-reference

all: deps build

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all packages present"; exit 0; fi; \
	echo "deps: missing:" $$missing; \
	if [ "$$(id -u)" != 0 ]; then echo "deps: run as root: apt-get update && apt-get install -y" $$missing; exit 1; fi; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

# nginx-light, lighttpd, apache2 for the reference rows (bench/reference/), with the system
# services Debian starts for them stopped and disabled: cmbench runs them in the foreground.
deps-reference:
	@bench/reference/deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DCMBENCH_WERROR=$(WERROR)

configure: $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: deps build
	cd $(BUILD) && ctest $(CTEST_ARGS) -j 1

# ASan+UBSan and TSan builds run the same suites against instrumented binaries.
sanitize: deps
	cmake -S . -B build-asan -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMBENCH_WERROR=$(WERROR) \
	  -DCMBENCH_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  CMBENCH_SANITIZED=1 ctest $(CTEST_ARGS) -j 1

tsan: deps
	cmake -S . -B build-tsan -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMBENCH_WERROR=$(WERROR) \
	  -DCMBENCH_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 CMBENCH_SANITIZED=1 ctest $(CTEST_ARGS) -j 1

# libFuzzer for FUZZ_SECONDS on each target, starting from the committed corpora: the servers'
# request parser and session (fuzz_parser, tests/fuzz/corpus/) and the load generator's response
# parser (fuzz_response, tests/fuzz/corpus-response/). New inputs go to build-fuzz/, crashes to
# build-fuzz/crash-*; a finding worth keeping is copied into the committed corpus by hand.
FUZZ_SECONDS ?= 60
fuzz: deps
	CXX=clang++ cmake -S . -B build-fuzz -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMBENCH_FUZZ=ON
	cmake --build build-fuzz --target fuzz_parser fuzz_response -j $(JOBS)
	mkdir -p build-fuzz/corpus build-fuzz/corpus-response
	cp tests/fuzz/corpus/* build-fuzz/corpus/
	cp tests/fuzz/corpus-response/* build-fuzz/corpus-response/
	cd build-fuzz && bin/fuzz_parser -max_total_time=$(FUZZ_SECONDS) -max_len=20000 corpus
	cd build-fuzz && bin/fuzz_response -max_total_time=$(FUZZ_SECONDS) -max_len=20000 corpus-response

# Benchmarks. RUN=<results folder>, RESUME=<results folder>, OUT=<new results folder>, MODELS=epoll,asio, EXPERIMENTS=scale,idle
BENCH_ARGS = $(if $(RESUME),--resume $(RESUME)) $(if $(OUT),--out $(OUT)) $(if $(MODELS),--models $(MODELS)) \
             $(if $(EXPERIMENTS),--experiments $(EXPERIMENTS)) $(if $(REPS),--reps $(REPS))
bench: all
	$(PY) bench/run.py --preset default $(BENCH_ARGS)
bench-quick: all
	$(PY) bench/run.py --preset quick $(BENCH_ARGS)
bench-full: all
	$(PY) bench/run.py --preset full $(BENCH_ARGS)
micro: all
	$(PY) bench/run.py --experiments micro $(BENCH_ARGS)
plots:
	@test -n "$(RUN)" || { echo "usage: make plots RUN=results/<folder>"; exit 2; }
	$(PY) plots/plot.py $(RUN)
report:
	@test -n "$(RUN)" || { echo "usage: make report RUN=results/<folder>"; exit 2; }
	$(PY) bench/report.py $(RUN)
# BASE=epoll: rates and CPU as ratios to that model within each run (machine-independent);
# BASE=all: to the geometric mean of every model both runs measured.
compare:
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make compare A=results/<a> B=results/<b> [BASE=epoll|all]"; exit 2; }
	$(PY) bench/compare.py $(A) $(B) $(if $(BASE),--base $(BASE))

loadgen-vs-wrk: all
	$(PY) bench/loadgen_vs_wrk.py

# Soak (not in make test or CI): MODEL at 80 % of its peak in open loop, with churn and 1000
# idle connections, for MINUTES; fails on any error, leaked descriptors or memory growth.
MINUTES ?= 10
soak: build
	@test -n "$(MODEL)" || { echo "usage: make soak MODEL=epoll [MINUTES=10]"; exit 2; }
	$(PY) bench/soak.py --model $(MODEL) --minutes $(MINUTES)

clean:
	rm -rf build build-asan build-tsan build-fuzz
