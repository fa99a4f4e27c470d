# cowdag build.  `make run` serves the default config, `make test` runs every
# unit and integration test; both first install missing Debian packages (see
# the `deps` target).  Everything built lands under build/ (build/asan/ for
# the sanitizer build).

CC      ?= cc
PKGS    := libmicrohttpd jansson fmt
TESTPKG := cmocka
DEBS    := build-essential pkg-config libmicrohttpd-dev libjansson-dev libcmocka-dev libfmt-dev prometheus
BENCH_DEBS := jq time wrk gnuplot-nox
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
LDLIBS  += -lstdc++ -lm

# pkg-config is asked only once the packages are there (see deps).
PC_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PC_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PC_TEST   = $(shell pkg-config --cflags --libs $(TESTPKG) 2>/dev/null)

# --- sources, one folder per concern -----------------------------------------

MAIN_SRC := server/main.c
LIB_SRC  := $(sort $(wildcard base/*.c heap/*.c memstats/*.c dag/*.c load/*.c handlers/*.c) \
                   $(filter-out $(MAIN_SRC),$(wildcard server/*.c)))
# One C++ file: the shim over {fmt} for number formatting (dag/dtoa.h).
LIB_CXX  := dag/dtoa.cc
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cc=$(BUILD)/%.o)
BIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)

# Every tests/test_*.c is a cmocka suite; test_cowtest runs the binary.
UNIT_TESTS := $(filter-out test_cowtest,$(patsubst tests/%.c,%,$(wildcard tests/test_*.c)))
TEST_BINS  := $(UNIT_TESTS:%=$(BUILD)/tests/%)

BENCH_BINS := $(BUILD)/bench/bench_heap $(BUILD)/bench/bench_dag $(BUILD)/bench/bare_server

.PHONY: all deps deps-bench deps-peers install-debs test asan run bench bench-cow bench-peers clean

all: deps $(BUILD)/cowdag

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

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(PC_CFLAGS) -c $< -o $@

$(BUILD)/cowdag: $(BIN_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(PC_LIBS) $(LDLIBS)

# What the suites share (tests/support.h), linked into each of them; the
# harness of the suites that run the server (tests/server_support.h) and the
# checker of the Prometheus text format (tests/exposition.h), linked into the
# suites that use them.  A suite links every object among its prerequisites.
TEST_SUPPORT_OBJ := $(BUILD)/tests-support/support.o
SERVER_SUPPORT_OBJ := $(BUILD)/tests-support/server_support.o
EXPOSITION_OBJ := $(BUILD)/tests-support/exposition.o
PC_TEST_CFLAGS = $(shell pkg-config --cflags $(TESTPKG) 2>/dev/null)

$(BUILD)/tests-support/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) $(PC_TEST_CFLAGS) -c $< -o $@

$(BUILD)/tests/test_server $(BUILD)/tests/test_master $(BUILD)/tests/test_conns: $(SERVER_SUPPORT_OBJ)
$(BUILD)/tests/test_stats $(BUILD)/tests/test_exposition: $(EXPOSITION_OBJ)

$(BUILD)/tests/%: tests/%.c $(LIB_OBJ) $(TEST_SUPPORT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) $< $(filter %.o,$^) -o $@ $(LDFLAGS) $(PC_TEST) $(PC_LIBS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PC_CFLAGS) $< $(LIB_OBJ) -o $@ $(LDFLAGS) $(PC_LIBS) $(LDLIBS)

# --- tests --------------------------------------------------------------------
# Unit and integration suites, then the heap and collector suites again with
# a collection on every allocation, then the copy-on-write bounds of
# `cowdag cowtest`.  tests/run.sh runs every one even when one fails, names
# each failed test and ends with the line "N passed, N failed"; each suite's
# output is also kept in $(BUILD)/test-logs/.

COWTEST_RECORDS ?= 300000
STRESS_BINS := $(BUILD)/tests/test_heap $(BUILD)/tests/test_gc
TEST_RUNS = $(foreach t,$(TEST_BINS),COWDAG=$(BUILD)/cowdag+$(t)) \
            $(foreach t,$(STRESS_BINS),COWDAG_GC_STRESS=1+$(t)) \
            COWDAG=$(BUILD)/cowdag+COWTEST_RECORDS=$(COWTEST_RECORDS)+$(BUILD)/tests/test_cowtest

test: all $(TEST_BINS) $(BUILD)/tests/test_cowtest
	@sh tests/run.sh $(BUILD)/test-logs $(TEST_RUNS)

# The sanitizer build: the same tests under ASan and UBSan.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPTFLAGS="-O1 -g -fno-omit-frame-pointer -DCOWDAG_GC_DEBUG" \
	  SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" COWTEST_RECORDS=20000 test

run: all
	$(BUILD)/cowdag serve -c config/cowdag.json

bench: deps-bench $(BUILD)/cowdag $(BENCH_BINS)
	@sh bench/run.sh $(BUILD)

# The copy-on-write matrix: every collector mode under customer_score + graph
# load; results in bench/results/ (cow_matrix.csv, .md, cow_*.png).
# Parameters from the environment or the command line: RECORDS=300000
# WORKERS=2 SECONDS=30 (per mode), PORT=18183.
bench-cow: deps-bench $(BUILD)/cowdag
	@sh bench/cow_matrix.sh $(BUILD)

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
