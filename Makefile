# libmp, its unit tests, the conformance harness and the benchmarks (GNU make).
# Targets: all check run-tests conformance gate compare reference reference-all
#          diff-reference sanitize tsan valgrind fuzz fuzz-seeds bench install
#          uninstall clean deps.  See README.md.
#
# Compilers: any C11 compiler that takes gcc's options (gcc and clang are
# tested: `make B=build-clang CC=clang check` builds into its own directory).
# CXX builds one test, which includes mp.h as C++11 (with CC=clang it
# defaults to clang++).  Variables: CC, CFLAGS (default -O2 -g, after the
# required flags), CXX, CXXFLAGS, LDFLAGS, B (the build directory), PREFIX,
# LIBDIR, INCDIR, PCDIR, DESTDIR; config.mak may set them.
#
# make install installs mp.h, libmp.a, libmp.so (soname libmp.so.MAJOR)
# and mp.pc.  libmp.so exports only the mp_* functions mp.h declares
# (harness/libmp.map; scripts/test-abi checks it).  The unit tests link
# $(B)/hooks/libmp-test.a instead: the same sources built with
# -DMP_TEST_HOOKS, which adds the probes and fault injection they need
# (harness/lib/test_hooks.h); the installed libraries, the harness and the
# benchmarks have none of it (scripts/test-install checks it).

CFLAGS  ?= -O2 -g
CXXFLAGS ?= -O2 -g
B       ?= build
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
PCDIR   ?= $(LIBDIR)/pkgconfig
PYTHON  ?= $(shell scripts/find-python)
REF     ?= reference/cpython-3.13
RUN     ?= results/$(shell date -u +%Y%m%dT%H%M%SZ)-$(shell git rev-parse --short HEAD 2>/dev/null || echo nogit)
-include config.mak

VERSION := $(shell sed -n 's/^\#define MP_VERSION "\(.*\)"/\1/p' \
                    harness/include/mp.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

# The C++ compiler of CC's family, unless CXX was given.
ifeq ($(origin CXX),default)
ifneq ($(findstring clang,$(CC)),)
CXX := $(subst clang,clang++,$(CC))
endif
endif

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Werror -fPIC \
             -pthread -Iharness/include -Iharness/lib -Iharness/runner -MMD -MP $(CFLAGS)
ALL_CXXFLAGS = -std=c++11 -pedantic -Wall -Wextra -Wshadow -Werror -pthread \
               -Iharness/include -MMD -MP $(CXXFLAGS)
ALL_LDFLAGS = -pthread $(LDFLAGS)

LIB_OBJ   := $(patsubst %.c,$(B)/%.o,$(wildcard harness/lib/*.c))
LIB_MAP   := harness/libmp.map
HOOK_OBJ  := $(patsubst %.c,$(B)/hooks/%.o,$(wildcard harness/lib/*.c))
TEST_LIB  := $(B)/hooks/libmp-test.a
TESTS     := $(patsubst harness/tests/%.c,$(B)/tests/%,\
                 $(wildcard harness/tests/test_*.c))
CXX_TEST  := $(B)/tests/cxx_header
BENCH     := $(B)/mp-bench-process
QBENCH    := $(B)/mp-bench-queue
SBENCH    := $(B)/mp-bench-sync
PBENCH    := $(B)/mp-bench-pool
VBENCH    := $(B)/mp-bench-shared
SCENARIO  := $(B)/mp-scenario
STRESS_BIN := $(B)/mp-stress
STRESS_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard harness/stress/*.c))
HELPERS   := $(patsubst harness/tests/%.c,$(B)/tests/%,\
                 $(wildcard harness/tests/helper_*.c))
NO_MAIN   := $(B)/tests/helper_no_mp_main
EXAMPLES  := $(patsubst harness/examples/%.c,$(B)/examples/%,\
                 $(wildcard harness/examples/*.c))
HARNESS   := $(B)/mp-harness
HAR_OBJ   := $(patsubst %.c,$(B)/%.o,$(wildcard harness/runner/*.c))
FUZZ_NAMES := $(patsubst harness/fuzz/fuzz_%.c,%,\
                  $(wildcard harness/fuzz/fuzz_*.c))
REPLAY    := $(addprefix $(B)/fuzz/replay-,$(FUZZ_NAMES))
FUZZERS   := $(addprefix $(B)/fuzz/fuzz-,$(FUZZ_NAMES))
PROVE     := prove -e ''

.SECONDARY:
.PHONY: all check run-tests conformance sanitize tsan msan valgrind bench \
        stress install uninstall clean deps reference reference-all \
        diff-reference gate compare fuzz fuzzers fuzz-seeds FORCE
all: $(B)/libmp.a $(B)/libmp.so $(HARNESS) $(TESTS) $(CXX_TEST) $(HELPERS) \
     $(BENCH) $(QBENCH) $(SBENCH) $(PBENCH) $(VBENCH) $(SCENARIO) $(STRESS_BIN) $(EXAMPLES) $(REPLAY)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(ALL_CXXFLAGS) -c $< -o $@

$(B)/libmp.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(B)/libmp.so.$(VERSION): $(LIB_OBJ) $(LIB_MAP)
	$(CC) -shared -Wl,-soname,libmp.so.$(SOMAJOR) \
	    -Wl,--version-script=$(LIB_MAP) $(ALL_LDFLAGS) $(LIB_OBJ) -o $@

$(B)/libmp.so: $(B)/libmp.so.$(VERSION)
	ln -sf libmp.so.$(VERSION) $@.$(SOMAJOR)
	ln -sf libmp.so.$(VERSION) $@

# Made at install time: it records the PREFIX of that install.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
             -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|'

# The library once more, with the test hooks, for the unit tests only.
$(B)/hooks/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DMP_TEST_HOOKS -c $< -o $@

$(TEST_LIB): $(HOOK_OBJ)
	$(AR) rcs $@ $^

$(B)/harness/tests/%.o: ALL_CFLAGS += -DMP_TEST_HOOKS

$(B)/tests/%: $(B)/harness/tests/%.o $(B)/harness/tests/check.o $(TEST_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(TEST_LIBS) -o $@

# C++ callers: mp.h compiles as C++, and what the test calls links from the
# shared library (found beside the tests' directory, wherever B is).
$(CXX_TEST): $(B)/harness/tests/cxx_header.o $(B)/libmp.so
	@mkdir -p $(@D)
	$(CXX) $(ALL_LDFLAGS) $< $(B)/libmp.so -Wl,-rpath,'$$ORIGIN/..' -o $@

# Programs the tests run (one forgets mp_main(), for test_context).
$(HELPERS): $(B)/tests/helper_%: $(B)/harness/tests/helper_%.o $(B)/libmp.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

# The examples, each the port of a Python program beside it
# (scripts/test-examples compares the two).
$(EXAMPLES): $(B)/examples/%: $(B)/harness/examples/%.o $(B)/libmp.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

# test_faults fails calls to the C library that libmp's objects make: the
# link routes them through its wrappers (libmp-test.a stays as it is).
FAULT_WRAP := malloc calloc realloc strdup strndup free open pipe2 \
              socketpair memfd_create eventfd signalfd fcntl syscall mmap \
              mprotect ftruncate fork posix_spawn pthread_create \
              posix_spawn_file_actions_adddup2 \
              posix_spawn_file_actions_addclosefrom_np
$(B)/tests/test_faults: ALL_LDFLAGS += $(foreach f,$(FAULT_WRAP),-Wl,--wrap=$(f))
$(B)/tests/test_faults: TEST_LIBS = -ldl

# The harness's own tests link its parts (all but main.o).
$(B)/tests/test_harness: $(filter-out %/main.o,$(HAR_OBJ))
$(B)/tests/test_harness: TEST_LIBS = -ljansson -lm

# The commit the harness and its libmp are built from, for the report's
# "git" (whatever directory it later runs in); "unknown" outside a git
# checkout of this tree.  Rewritten only when it changes, so an unchanged
# tree rebuilds nothing.
$(B)/gen/build_git.h: FORCE
	@mkdir -p $(@D)
	@if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; \
	then v=$$(git describe --always --dirty 2>/dev/null); fi; \
	printf '#define HARNESS_GIT "%s"\n' "$${v:-unknown}" > $@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(B)/harness/runner/report.o: $(B)/gen/build_git.h
$(B)/harness/runner/report.o: ALL_CFLAGS += -I$(B)/gen

# The case vocabulary is compiled into the harness (vocab.c), as a string.
$(B)/gen/ops_json.inc: harness/runner/ops.json
	@mkdir -p $(@D)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' \
	    -e 's/^/"/' -e 's/$$/\\n"/' $< > $@
$(B)/harness/runner/vocab.o: $(B)/gen/ops_json.inc
$(B)/harness/runner/vocab.o: ALL_CFLAGS += -I$(B)/gen

$(HARNESS): $(HAR_OBJ) $(B)/libmp.a
	$(CC) $(ALL_LDFLAGS) $^ -ljansson -lm -o $@

# The fuzz targets (harness/fuzz/README.md) link the harness's parts and
# libmp.  Every build makes each one with replay.c's main(), which runs
# given inputs once (make check replays the committed ones); make fuzz
# makes them with libFuzzer's, in build-fuzz/.
FUZZ_LINK := $(filter-out %/main.o,$(HAR_OBJ)) $(B)/libmp.a
$(REPLAY): $(B)/fuzz/replay-%: $(B)/harness/fuzz/fuzz_%.o \
                               $(B)/harness/fuzz/replay.o $(FUZZ_LINK)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(filter %.o %.a,$^) -ljansson -lm -o $@

$(FUZZERS): $(B)/fuzz/fuzz-%: $(B)/harness/fuzz/fuzz_%.o $(FUZZ_LINK)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer $(filter %.o %.a,$^) \
	    -ljansson -lm -o $@

$(B)/fuzz/seeds: $(B)/harness/fuzz/seeds.o $(B)/harness/fuzz/fuzz_blob.o \
                 $(B)/libmp.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

$(BENCH): $(B)/harness/bench/bench_process.o $(B)/harness/bench/common.o $(B)/libmp.a $(B)/mp-bench-true
	$(CC) $(ALL_LDFLAGS) $(filter %.o %.a,$^) -ljansson -lm -o $@

$(QBENCH): $(B)/harness/bench/bench_queue.o $(B)/harness/bench/common.o $(B)/libmp.a
	$(CC) $(ALL_LDFLAGS) $^ -ljansson -lm -o $@

$(SBENCH): $(B)/harness/bench/bench_sync.o $(B)/harness/bench/children.o $(B)/harness/bench/common.o $(B)/libmp.a
	$(CC) $(ALL_LDFLAGS) $^ -ljansson -lm -o $@

$(PBENCH): $(B)/harness/bench/bench_pool.o $(B)/harness/bench/children.o $(B)/harness/bench/common.o $(B)/libmp.a
	$(CC) $(ALL_LDFLAGS) $^ -ljansson -lm -o $@

$(VBENCH): $(B)/harness/bench/bench_shared.o $(B)/harness/bench/children.o $(B)/harness/bench/common.o $(B)/libmp.a
	$(CC) $(ALL_LDFLAGS) $^ -ljansson -lm -o $@

$(SCENARIO): $(B)/harness/bench/scenario.o $(B)/libmp.a
	$(CC) $(ALL_LDFLAGS) $^ -o $@

# The stress suite (harness/stress/README.md): every part's file, the
# driver, the benchmarks' clock and host record, and libmp with its test
# hooks (the fork server's pid).
$(B)/harness/stress/%.o: ALL_CFLAGS += -DMP_TEST_HOOKS -Iharness/bench \
    -Iharness/tests
$(STRESS_BIN): $(STRESS_OBJ) $(B)/harness/bench/common.o $(TEST_LIB)
	$(CC) $(ALL_LDFLAGS) $(filter %.o,$^) $(TEST_LIB) -ljansson -lm -o $@

# The spawn method's limit: posix_spawn of the smallest static program.
$(B)/mp-bench-true: harness/bench/true.c
	$(CC) -O2 -static $< -o $@

# Installs what a fresh machine lacks (Debian packages); a no-op otherwise.
deps:
	@scripts/install-deps

# The unit tests print TAP 13 and prove runs them.  The process and thread
# tests run a second time on the pipe fallback that replaces pidfds on old
# kernels.
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory run-tests

# A short conformance run belongs to the tests; the full one is `conformance`.
CHECK_CASES := $(addprefix cases/process/,exitcode_sys_exit_small_ints.json \
    seed000_basic_worker.json \
    join_timeout_child_alive.json terminate_sigterm_ignored_then_kill.json \
    daemon_terminated_at_main_exit.json name_nested_depth3.json \
    close_use_after_close.json exitcode_raise_valueerror.json \
    parent_process_in_grandchild.json active_children_counts.json \
    terminate_orphans_grandchild.json)
CHECK_CASES += $(addprefix cases/sync/,cond_over_passed_lock.json \
    barrier_action_raises.json lock_held_by_child.json)
CHECK_CASES += $(addprefix cases/pool/,map_apply_starmap_imap.json \
    callbacks.json maxtasksperchild.json)
CHECK_CASES += $(addprefix cases/shared/,value_given_lock_shared_with_child.json \
    array_filled_by_child.json shm_child_attaches_by_name.json)

# The SharedMemory tests record the names they make in SHM_MADE; the last
# test checks that none is left in /dev/shm once everything has run.
SHM_MADE = $(B)/tests/shm-made
run-tests:
	@rm -f $(SHM_MADE)
	MP_HARNESS=$(HARNESS) MP_NO_MAIN_HELPER=$(NO_MAIN) MP_LIB=$(B)/libmp.a \
	MP_HELPERS=$(B)/tests MP_EXAMPLES=$(B)/examples PYTHON=$(PYTHON) \
	MP_FUZZ=$(B)/fuzz MP_SHM_RECORD=$(abspath $(SHM_MADE)) \
	    $(PROVE) $(TESTS) $(CXX_TEST) scripts/test-abi scripts/test-install \
	    scripts/test-gate scripts/test-targets scripts/test-examples \
	    scripts/test-tap scripts/test-harness-cli scripts/test-recorder \
	    scripts/test-vocab scripts/test-fuzz-replay
	LIBMP_NO_PIDFD=1 $(PROVE) $(B)/tests/test_process $(B)/tests/test_threads
	LIBMP_NO_PIDFD=1 $(PROVE) $(B)/tests/test_signals :: process_calls
	$(HARNESS) run --method fork --ref $(REF) --out $(B)/check-conformance \
	    $(CHECK_CASES)
	$(STRESS_BIN) --short --out $(B)/stress-short.json
	$(PYTHON) scripts/stress-table --check harness/stress/README.md \
	    results/baseline/stress.json
	$(PROVE) $(B)/tests/helper_shm :: leftovers $(SHM_MADE)

# Every case under every start method, against the CPython reference REF.
# TAP on stdout; the run's TAP and JSON report in RUN (results/latest too).
conformance: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p $(RUN)
	@ln -sfn $(notdir $(RUN)) results/latest
	$(HARNESS) run --ref $(REF) --out $(RUN) cases

# Compares the latest results with the committed baseline (results/baseline,
# and results/baseline/quick for a QUICK=1 run): a conformance case that
# regressed, an instruction count that rose by more than 3%, or a ratio of
# libmp to the raw limit that got worse beyond the noise, fails
# (scripts/gate; results/README.md has the thresholds and why).  Refresh
# the baseline on purpose (results/README.md says how).
gate:
	@test -e results/latest/conformance.json || \
	    { echo "gate: run make conformance first" >&2; exit 2; }
	$(PYTHON) scripts/gate results/baseline/conformance.json \
	    results/latest/conformance.json
	@if ls results/bench-*.json >/dev/null 2>&1; then \
	    echo "$(PYTHON) scripts/gate results/baseline results"; \
	    $(PYTHON) scripts/gate results/baseline results; fi

# make compare A B [C ...]: result directories side by side, as one table
# and a plot, in results/compare.md (scripts/report --compare).
ifeq ($(firstword $(MAKECMDGOALS)),compare)
COMPARE := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
$(eval .PHONY: $(COMPARE))
$(eval $(COMPARE):;@:)
endif
compare:
	@test -n "$(COMPARE)" || \
	    { echo "usage: make compare DIR DIR [DIR ...]" >&2; exit 2; }
	@scripts/install-deps bench
	$(PYTHON) scripts/report --compare $(COMPARE) --out results

# Records what CPython does (PYTHON: the newest CPython 3.x found) into
# reference/cpython-X.Y.  Rewrites tracked files: review the diff.
# RECORD_RUNS (default 3): runs per case and method, which must all agree;
# RECORD_LOAD=N: record with N busy-loop processes running, so that a case
# whose outcome hangs on timing shows it.
RECORD_OPTS = $(if $(RECORD_RUNS),--runs $(RECORD_RUNS)) \
              $(if $(RECORD_LOAD),--load $(RECORD_LOAD))
reference:
	$(PYTHON) scripts/record_reference.py $(RECORD_OPTS) cases

# The same for every CPython >= 3.8 that pyenv has.
reference-all:
	@for py in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.* | sort -V); do \
	    v=$$(basename $$py | cut -d. -f1-2); \
	    case $$v in 3.[0-7]) continue;; esac; \
	    echo "== CPython $$v"; \
	    $$py/bin/python$$v scripts/record_reference.py $(RECORD_OPTS) cases \
	        || exit 1; \
	done

# Where two references disagree: make diff-reference OLD=3.8 NEW=3.13
OLD ?= 3.8
NEW ?= 3.13
diff-reference:
	@$(PYTHON) scripts/diff_reference.py reference/cpython-$(OLD) \
	    reference/cpython-$(NEW); test $$? -le 1  # 1: they differ, which is news, not failure

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
sanitize: deps
	@$(MAKE) --no-print-directory B=build-san CFLAGS="-O1 -g $(SAN_FLAGS)" \
	    CXXFLAGS="-O1 -g $(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(MAKE) --no-print-directory B=build-san LDFLAGS="$(SAN_FLAGS)" \
	    run-tests
	ASAN_OPTIONS=detect_leaks=1:handle_segv=0:handle_sigbus=0:handle_sigfpe=0 \
	UBSAN_OPTIONS=halt_on_error=1 \
	    build-san/mp-harness run --ref $(REF) \
	    --out build-san/conformance cases

# ThreadSanitizer, into build-tsan/: libmp and the unit tests but the
# harness's own, under halt_on_error; test_threads again on the pipe
# fallback.  gcc warns that TSan does not see atomic_thread_fence (queue.c):
# only here is that warning not an error (clang has no such warning).
# tsan.supp names the races TSan reports on a queue's shared memory, whose
# ordering it cannot see, and says why.
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
TSAN_TESTS := $(addprefix build-tsan/tests/,test_threads test_process \
                  test_queue test_connection test_context test_error \
                  test_signals test_sync test_sync_death test_robust \
                  test_pool test_pool_death test_value test_value_death \
                  test_shm test_shm_death)
TSAN_WNO = $(shell $(CC) -Werror -Wno-error=tsan -E -x c /dev/null \
                 >/dev/null 2>&1 && echo -Wno-error=tsan)
# TSan makes a process 5 to 15 times slower: timing windows are widened.
TSAN_ENV := CHECK_SLOWDOWN=3 TSAN_OPTIONS="halt_on_error=1 \
            suppressions=$(CURDIR)/harness/tests/tsan.supp"
tsan: deps
	@$(MAKE) --no-print-directory B=build-tsan \
	    CFLAGS="-O1 -g $(TSAN_FLAGS) $(TSAN_WNO)" LDFLAGS="$(TSAN_FLAGS)" \
	    $(TSAN_TESTS)
	$(TSAN_ENV) $(PROVE) $(TSAN_TESTS)
	$(TSAN_ENV) LIBMP_NO_PIDFD=1 $(PROVE) build-tsan/tests/test_threads

# MemorySanitizer (clang), into build-msan/: libmp and the unit tests that
# need no other library (jansson is not instrumented), on pidfds, which
# Debian's valgrind 3.19 cannot follow: uninitialised reads on the path
# valgrind does not see.  make sanitize's LeakSanitizer covers its leaks.
# A fork under MSan copies its shadow's page tables, so test_threads' fork
# storms outlast their deadlines: TSan runs those.
MSAN_FLAGS := -fsanitize=memory -fsanitize-memory-track-origins \
              -fno-omit-frame-pointer
MSAN_TESTS := $(filter-out build-msan/tests/test_harness \
                           build-msan/tests/test_threads,\
                  $(patsubst harness/tests/%.c,build-msan/tests/%,\
                      $(wildcard harness/tests/test_*.c)))
msan: deps
	@$(MAKE) --no-print-directory B=build-msan CC=clang \
	    CFLAGS="-O1 -g $(MSAN_FLAGS)" LDFLAGS="$(MSAN_FLAGS)" \
	    $(MSAN_TESTS) $(subst $(B)/,build-msan/,$(HELPERS))
	CHECK_SLOWDOWN=3 MP_NO_MAIN_HELPER=build-msan/tests/helper_no_mp_main \
	    MP_HELPERS=build-msan/tests $(PROVE) $(MSAN_TESTS)

# libFuzzer, into build-fuzz/ (clang; harness/fuzz/README.md): first every
# committed corpus file and regression input once, then each target for
# FUZZ_TIME seconds (0: only the replay) from a scratch copy of its corpus.
# A crash, a sanitizer report, a leak, an input that takes over 10 s or
# 2 GiB fails.  FUZZ_TARGETS: some of them; FUZZ_MERGE=1: new inputs that
# add coverage go into harness/fuzz/corpus/ (tracked files: review them).
FUZZ_TIME ?= 180
FUZZ_CC   ?= clang
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
fuzz:
	@scripts/install-deps fuzz
	@$(MAKE) --no-print-directory B=build-fuzz CC=$(FUZZ_CC) \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	    LDFLAGS="$(FUZZ_SAN)" fuzzers
	$(PYTHON) scripts/fuzz --build build-fuzz/fuzz --time $(FUZZ_TIME) \
	    $(if $(FUZZ_MERGE),--merge) $(FUZZ_TARGETS)

fuzzers: $(FUZZERS)

# Writes the seeds libmp makes itself (framed messages, blobs) into
# harness/fuzz/corpus/: tracked files, review the diff.
fuzz-seeds: $(B)/fuzz/seeds
	$(B)/fuzz/seeds harness/fuzz/corpus

VALGRIND := valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
            --error-exitcode=99 --child-silent-after-fork=yes
valgrind: all
	CHECK_SLOWDOWN=4 $(PROVE) --exec '$(VALGRIND)' $(TESTS)

# QUICK=1: a smoke run of a minute or two; CALLGRIND=1 adds instruction
# counts (libmp's only with QUICK=1: what CI gates on; else a stale
# bench-callgrind.json is removed, so the report and the gate see only this
# run's files).  Each file gets its host record (scripts/gate --stamp).
bench:
	@scripts/install-deps bench
	@$(MAKE) --no-print-directory all
	@mkdir -p results
	@$(if $(CALLGRIND),:,rm -f results/bench-callgrind.json)
	$(BENCH) $(if $(QUICK),--quick) --python $(PYTHON) \
	    --out results/bench-process.json
	$(QBENCH) $(if $(QUICK),--quick) --python $(PYTHON) \
	    --out results/bench-queue.json
	$(SBENCH) $(if $(QUICK),--quick) --python $(PYTHON) \
	    --out results/bench-sync.json
	$(PBENCH) $(if $(QUICK),--quick) --python $(PYTHON) \
	    --out results/bench-pool.json
	$(VBENCH) $(if $(QUICK),--quick) --python $(PYTHON) \
	    --out results/bench-shared.json
	$(PYTHON) scripts/bench_whole $(if $(QUICK),--quick) --python $(PYTHON) \
	    --build $(B) --out results/bench-whole.json
	$(PYTHON) scripts/gate --stamp results/bench-process.json \
	    results/bench-queue.json results/bench-sync.json \
	    results/bench-pool.json results/bench-shared.json \
	    results/bench-whole.json
	$(if $(CALLGRIND),$(PYTHON) scripts/bench_callgrind --python $(PYTHON) \
	    $(if $(QUICK),--libmp-only) --cc "$(CC)" --cflags "$(CFLAGS)" \
	    --build $(B) --out results/bench-callgrind.json)
	$(PYTHON) scripts/report --results results

# The stress suite, full (5 to 10 minutes on a 2-core VM), or STRESS=short
# (what make check runs); figures in results/stress.json.  PATTERN picks
# runs by "part [method]" substring.
stress:
	@$(MAKE) --no-print-directory $(STRESS_BIN)
	@mkdir -p results
	$(STRESS_BIN) $(if $(filter short,$(STRESS)),--short) "$(PATTERN)" \
	    --out results/stress$(if $(filter short,$(STRESS)),-short).json

install: $(B)/libmp.a $(B)/libmp.so
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PCDIR)
	install -m 644 harness/include/mp.h $(DESTDIR)$(INCDIR)/mp.h
	install -m 644 $(B)/libmp.a $(DESTDIR)$(LIBDIR)/libmp.a
	install -m 755 $(B)/libmp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libmp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmp.so.$(SOMAJOR)
	ln -sf libmp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmp.so
	$(PC_SED) harness/mp.pc.in > $(DESTDIR)$(PCDIR)/mp.pc

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/mp.h $(DESTDIR)$(LIBDIR)/libmp.a \
	      $(DESTDIR)$(LIBDIR)/libmp.so* $(DESTDIR)$(PCDIR)/mp.pc

clean:
	rm -rf $(B) build-san build-clang build-tsan build-msan build-fuzz

-include $(shell find $(B) -name '*.d' 2>/dev/null)
