# cowdag build.  `make run` serves the default config, `make test` runs every
# unit and integration test; both first install missing Debian packages (see
# the `deps` target).  Everything built lands under build/ (build/asan/ for
# the sanitizer build).

CC      ?= cc
PKGS    := libmicrohttpd jansson fmt simdjson libsystemd ncursesw
TESTPKG := cmocka
DEBS    := build-essential pkg-config libmicrohttpd-dev libjansson-dev libcmocka-dev libfmt-dev libsimdjson-dev libsystemd-dev libncurses-dev systemd tmux prometheus
BENCH_DEBS := jq time wrk gnuplot-nox
# nginx: tests/test_deploy checks and runs deploy/nginx/cowdag.conf, and
# `make cluster-demo` serves through it.
DEBS    += nginx
# chromium: the dashboard's test loads GET /dashboard in it, headless.
DEBS    += chromium
DOC_DEBS := graphviz
# The peers of `make bench-peers` (bench/peers/): CPython under gunicorn, and
# node's cluster (Debian's nodejs, unless a `node` is already on the PATH).
PEER_DEBS  := python3 gunicorn

BUILD   ?= build
# OPTFLAGS and SANFLAGS are what `make asan` changes; CFLAGS/LDFLAGS given
# on the command line are added, not substituted.
OPTFLAGS ?= -O2 -g -fvect-cost-model=cheap
SANFLAGS ?=
override CFLAGS  := $(OPTFLAGS) $(SANFLAGS) -pthread -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP -I. $(CFLAGS)
override CXXFLAGS := $(OPTFLAGS) $(SANFLAGS) -std=c++17 -Wall -Wextra -Werror -MMD -MP -I. $(CXXFLAGS)
override LDFLAGS := $(SANFLAGS) -pthread $(LDFLAGS)
LDLIBS  += -lstdc++ -lm -ldl

# pkg-config is asked only once the packages are there (see deps).
PC_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PC_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PC_TEST   = $(shell pkg-config --cflags --libs $(TESTPKG) 2>/dev/null)

# --- sources, one folder per concern -----------------------------------------

MAIN_SRC := server/main.c
LIB_SRC  := $(sort $(wildcard base/*.c heap/*.c memstats/*.c dag/*.c load/*.c handlers/*.c) \
                   $(filter-out $(MAIN_SRC),$(wildcard server/*.c)))
# The C++ shims: {fmt} for number formatting (dag/dtoa.h), simdjson for
# request bodies (dag/json_in.h).
LIB_CXX  := dag/dtoa.cc dag/json_in.cc
# The dashboard's page (handlers/dashboard.html) becomes a C string at build
# time (handlers/dashboard.h), so the page stays a file one can open and edit.
GEN_OBJ := $(BUILD)/gen/dashboard_html.o
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cc=$(BUILD)/%.o) $(GEN_OBJ)
BIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)

# Every tests/test_*.c is a cmocka suite; test_cowtest runs the binary.
UNIT_TESTS := $(filter-out test_cowtest,$(patsubst tests/%.c,%,$(wildcard tests/test_*.c)))
TEST_BINS  := $(UNIT_TESTS:%=$(BUILD)/tests/%)

# Modules (README.md, "Writing a module"): the example, and the test modules: the ops tests/test_modules.c
# runs (spin, hog, crash, ...) in two versions, and modules that must not
# load.
EXAMPLE_MODULES := $(BUILD)/examples/score/libscore.so
TEST_MODULES := $(BUILD)/tests/modules/libtestops.so $(BUILD)/tests/modules/libtestops2.so \
                $(BUILD)/tests/modules/libbadversion.so $(BUILD)/tests/modules/libnoinit.so \
                $(BUILD)/tests/modules/libnoversion.so $(BUILD)/tests/modules/libtwice.so \
                $(BUILD)/tests/modules/libclash.so $(BUILD)/tests/modules/libundefined.so

# The fuzzing harnesses (tests/fuzz/fuzz_NAME.c): `make test` links each
# with tests/fuzz/replay.c and replays its checked-in corpus
# (tests/fuzz/corpus/NAME/); `make fuzz` links them with libFuzzer.
FUZZ_NAMES  := request dag config csv value
REPLAY_BINS := $(FUZZ_NAMES:%=$(BUILD)/tests/replay_%)
FUZZ_BINS   := $(FUZZ_NAMES:%=$(BUILD)/bin/fuzz_%)

BENCH_BINS := $(BUILD)/bench/bench_heap $(BUILD)/bench/bench_dag $(BUILD)/bench/bare_server

.PHONY: all modules deps deps-bench deps-peers install-debs test asan fuzz fuzz-bins soak run bench bench-cow bench-peers cluster-demo docs clean

all: deps $(BUILD)/cowdag $(EXAMPLE_MODULES)

# --- Debian packages ----------------------------------------------------------
# Installs what is missing when run as root; otherwise says what to install.
deps:
	@$(MAKE) --no-print-directory install-debs WANT="$(DEBS)"

deps-bench:
	@$(MAKE) --no-print-directory install-debs WANT="$(DEBS) $(BENCH_DEBS)"

# Best effort: bench/peers.sh skips, and names, a peer whose runtime is missing.
deps-peers: deps-bench
	@$(MAKE) --no-print-directory install-debs WANT="$(PEER_DEBS)" || echo "deps: the peers above will be skipped"
	@command -v node >/dev/null 2>&1 || $(MAKE) --no-print-directory install-debs WANT=nodejs \
	  || echo "deps: no node: the node cluster peer will be skipped"

install-debs:
	@missing=""; \
	for p in $(WANT); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "deps: missing Debian packages:$$missing"; \
	    echo "deps: run as root:  apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# --- build rules --------------------------------------------------------------
# Every compile waits for `deps` (order-only), so `make -j` never compiles
# before the headers are installed.

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) -c $< -o $@

$(BUILD)/gen/dashboard_html.c: handlers/dashboard.html
	@mkdir -p $(dir $@)
	@{ echo '#include "handlers/dashboard.h"'; echo 'const char h_dashboard_html[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo '    ;'; echo 'const size_t h_dashboard_len = sizeof h_dashboard_html - 1;'; } > $@

$(BUILD)/%.o: %.cc | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(PC_CFLAGS) -c $< -o $@

# --- modules (README.md, "Writing a module") -------------------------------
# Every binary that holds the op library exports the module API to the
# modules it loads, and nothing else: the dynamic list is the functions
# include/cowdag_module.h declares (all named cowdag_*), but the init a
# module defines itself.  Modules are built against that header alone.

DYNLIST := $(BUILD)/cowdag_module.dynlist
EXPORT_API = -Wl,--dynamic-list=$(DYNLIST)

$(DYNLIST): include/cowdag_module.h
	@mkdir -p $(dir $@)
	@{ echo '{'; grep -o '\bcowdag_[a-z0-9_]*(' $< | tr -d '(' | grep -vx 'cowdag_module_init' | sort -u | \
	  sed 's/.*/  &;/'; echo '};'; } > $@

MODULE_CFLAGS = $(OPTFLAGS) $(SANFLAGS) -std=c11 -Wall -Wextra -Werror -fPIC -shared -Iinclude


$(BUILD)/examples/score/libscore.so: examples/score/score.c include/cowdag_module.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(MODULE_CFLAGS) $< -o $@ -lm

$(BUILD)/tests/modules/libtestops.so: tests/modules/testops.c include/cowdag_module.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(MODULE_CFLAGS) -DTESTOPS_VERSION=1 $< -o $@

$(BUILD)/tests/modules/libtestops2.so: tests/modules/testops.c include/cowdag_module.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(MODULE_CFLAGS) -DTESTOPS_VERSION=2 $< -o $@

$(BUILD)/tests/modules/libclash.so: tests/modules/twice.c include/cowdag_module.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(MODULE_CFLAGS) -DCLASH_WITH_BUILTIN $< -o $@

$(BUILD)/tests/modules/lib%.so: tests/modules/%.c include/cowdag_module.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(MODULE_CFLAGS) $< -o $@

modules: $(EXAMPLE_MODULES)

$(BUILD)/cowdag: $(BIN_OBJ) $(LIB_OBJ) $(DYNLIST)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(EXPORT_API) $(LDFLAGS) $(PC_LIBS) $(LDLIBS)

# What the suites share (tests/support.h), linked into each of them; the
# harness of the suites that run the server (tests/server_support.h) and the
# checker of the Prometheus text format (tests/exposition.h), linked into the
# suites that use them.  A suite links every object among its prerequisites.
TEST_SUPPORT_OBJ := $(BUILD)/tests-support/support.o
SERVER_SUPPORT_OBJ := $(BUILD)/tests-support/server_support.o
EXPOSITION_OBJ := $(BUILD)/tests-support/exposition.o
PC_TEST_CFLAGS = $(shell pkg-config --cflags $(TESTPKG) 2>/dev/null)
# Kept once built: as files a pattern rule makes on the way, make would
# delete them after the run (and say so after the tests' closing line).
.SECONDARY: $(TEST_SUPPORT_OBJ) $(SERVER_SUPPORT_OBJ) $(EXPOSITION_OBJ)

$(BUILD)/tests-support/%.o: tests/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) $(PC_TEST_CFLAGS) -c $< -o $@

$(BUILD)/tests/test_server $(BUILD)/tests/test_master $(BUILD)/tests/test_conns $(BUILD)/tests/test_listen: $(SERVER_SUPPORT_OBJ)
$(BUILD)/tests/test_stats $(BUILD)/tests/test_exposition: $(EXPOSITION_OBJ)
$(BUILD)/tests/test_deploy: $(SERVER_SUPPORT_OBJ)

$(BUILD)/tests/test_modules: $(SERVER_SUPPORT_OBJ) $(EXAMPLE_MODULES) $(TEST_MODULES)

$(BUILD)/tests/%: tests/%.c $(LIB_OBJ) $(TEST_SUPPORT_OBJ) $(DYNLIST)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) $< $(filter %.o,$^) -o $@ $(EXPORT_API) $(LDFLAGS) $(PC_TEST) $(PC_LIBS) $(LDLIBS)

# A harness's object, and the replay driver (which takes the harness's name
# from its own: replay_NAME reads tests/fuzz/corpus/NAME/).
$(BUILD)/tests-fuzz/fuzz_%.o: tests/fuzz/fuzz_%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) -c $< -o $@

$(BUILD)/tests-fuzz/replay.o: tests/fuzz/replay.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) $(PC_TEST_CFLAGS) -c $< -o $@

.SECONDARY: $(FUZZ_NAMES:%=$(BUILD)/tests-fuzz/fuzz_%.o) $(BUILD)/tests-fuzz/replay.o

$(BUILD)/tests/replay_%: $(BUILD)/tests-fuzz/fuzz_%.o $(BUILD)/tests-fuzz/replay.o $(LIB_OBJ) $(TEST_SUPPORT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(PC_TEST) $(PC_LIBS) $(LDLIBS)

# libFuzzer's build of a harness (`make fuzz`, BUILD=build/fuzz), linked
# by the C++ driver, which brings UBSan's C++ runtime for the shims.
$(BUILD)/bin/fuzz_%: $(BUILD)/tests-fuzz/fuzz_%.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) $^ -fsanitize=fuzzer -o $@ $(LDFLAGS) $(PC_LIBS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB_OBJ) $(DYNLIST)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) $< $(LIB_OBJ) -o $@ $(EXPORT_API) $(LDFLAGS) $(PC_LIBS) $(LDLIBS)

# --- tests --------------------------------------------------------------------
# Unit and integration suites, then the heap and collector suites again with
# a collection on every allocation, then the copy-on-write bounds of
# `cowdag cowtest`.  tests/run.sh runs every one even when one fails, names
# each failed test and ends with the line "N passed, N failed"; each suite's
# output is also kept in $(BUILD)/test-logs/.

COWTEST_RECORDS ?= 300000
STRESS_BINS := $(BUILD)/tests/test_heap $(BUILD)/tests/test_gc
TEST_RUNS = $(foreach t,$(TEST_BINS),COWDAG=$(BUILD)/cowdag+$(t)) $(REPLAY_BINS) \
            $(foreach t,$(STRESS_BINS),COWDAG_GC_STRESS=1+$(t)) \
            COWDAG=$(BUILD)/cowdag+COWTEST_RECORDS=$(COWTEST_RECORDS)+$(BUILD)/tests/test_cowtest

test: all $(TEST_BINS) $(REPLAY_BINS) $(BUILD)/tests/test_cowtest
	@sh tests/run.sh $(BUILD)/test-logs $(TEST_RUNS)

# The sanitizer build: the same tests under ASan and UBSan.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPTFLAGS="-O1 -g -fno-omit-frame-pointer -DCOWDAG_GC_DEBUG" \
	  SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" COWTEST_RECORDS=20000 test

# Fuzzing: every harness of tests/fuzz/ built by clang with libFuzzer,
# ASan and UBSan into build/fuzz/, then run FUZZ_SECONDS each (niced) from
# its checked-in corpus; tests/fuzz/run.sh prints executions, corpus,
# coverage and crashes per harness and fails on any crash, leaving the
# reproducer in build/fuzz/crashes/NAME/.  FUZZ_SECONDS=60 FUZZ_HARNESSES="$(FUZZ_NAMES)".
FUZZ_DEBS    := clang libclang-rt-dev
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?= $(FUZZ_NAMES)
fuzz: deps
	@$(MAKE) --no-print-directory install-debs WANT="$(FUZZ_DEBS)"
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang CXX=clang++ \
	  OPTFLAGS="-O1 -g -fno-omit-frame-pointer -DCOWDAG_GC_DEBUG" \
	  SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" fuzz-bins
	@sh tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

fuzz-bins: $(FUZZ_BINS)

# The soak (bench/soak.sh): the default config served in each of
# SOAK_MODE="tuned freeze+immortal" for SOAK_SECONDS=600, under mixed load
# with a reload every SOAK_HUP=60 s; fails if memory grows, a good request
# fails or a worker dies.  Results in OUT (build/soak: soak.csv, soak.png,
# soak.md).
SOAK_DEBS := curl python3
soak: deps-bench $(BUILD)/cowdag
	@$(MAKE) --no-print-directory install-debs WANT="$(SOAK_DEBS)"
	@sh bench/soak.sh $(BUILD)

run: all
	$(BUILD)/cowdag serve -c config/cowdag.json

bench: deps-bench $(BUILD)/cowdag $(BENCH_BINS)
	@sh bench/run.sh $(BUILD)

# The copy-on-write matrix: every collector mode under customer_score + graph
# load, about 3 minutes with the defaults.  Parameters from the environment
# or the command line (`make bench-cow SECONDS=10`): RECORDS=300000
# WORKERS=2 SECONDS=30 (per mode) WARMUP=200 PORT=18183 MODES="tuned
# tuned-high disable freeze freeze+immortal" OUT=$(BUILD)/bench-cow.
# Results (cow_matrix.csv, .md, cow_*.png) go to OUT, and no tracked file
# changes; UPDATE_README=1 writes them to bench/results/ instead and rewrites
# README.md's table and its run line (bench/cow_matrix.sh says more).
bench-cow: deps-bench $(BUILD)/cowdag
	@sh bench/cow_matrix.sh $(BUILD)

# Two instances behind nginx (deploy/nginx/cowdag.conf) under wrk, one
# reloaded and the other's master killed mid-run: requests, errors and the
# requests nginx retried (bench/RESULTS.md).  DURATION=20 HUP_AT=4 KILL_AT=10
# PORT=18350 (nginx; the instances take the next two).
cluster-demo: deps-bench $(BUILD)/cowdag
	@sh bench/cluster.sh $(BUILD)

# The architecture diagram of README.md: docs/architecture.svg and .png,
# drawn by Graphviz from docs/architecture.dot (both committed).
docs: docs/architecture.svg docs/architecture.png

docs/architecture.%: docs/architecture.dot
	@$(MAKE) --no-print-directory install-debs WANT="$(DOC_DEBS)"
	dot -T$* $< -o $@

# cowdag beside its peers on the same job (bench/peers/: node's cluster,
# gunicorn + CPython with gthread and sync workers) and the bare ceiling,
# alternating in one run; then each one's total PSS at 1, 2, 4 and 8
# workers.  Results in bench/results/ (peers.md, peers_memory.csv,
# peers_memory.png); UPDATE_README=1 also rewrites README.md's tables.
# Parameters: ROUNDS=5 DURATION=8 WARMUP=2 WORKERS=2 MEMORY=1 MEM_WORKERS="1 2 4 8"
# MEM_REQUESTS=10000 (a worker), PORT_BASE=18195 (5 ports from there).
bench-peers: deps-peers $(BUILD)/cowdag $(BUILD)/bench/bare_server
	@sh bench/peers.sh $(BUILD)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
