# llmrouter — see README.md. `make demo` and `make test` install what they
# need (Debian packages through config/install-deps.sh) and work as the first
# command on a fresh Debian 12 machine.

CC       ?= cc
PREFIX   ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system
PKGS     := libmicrohttpd libcurl libcjson yaml-0.1 libpcre2-8 libcrypto hiredis
PYTHON   ?= python3

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Iinclude $(PKG_CFLAGS) -MMD -MP
LDLIBS   := $(PKG_LIBS) -lpthread -lm
# The daemon's allocator: mimalloc from Debian (libmimalloc-dev) replaces
# glibc malloc for the whole process, libraries included; `make
# ALLOCATOR=libc` keeps glibc's. Measured in docs/performance.md
# ("Allocator"). The ASan build, the unit tests and the fuzzers keep the
# allocator their sanitizer needs.
ALLOCATOR ?= mimalloc
MIMALLOC_LIBS := -Wl,--push-state,--no-as-needed -lmimalloc -Wl,--pop-state
DAEMON_LIBS := $(if $(filter mimalloc,$(ALLOCATOR)),$(MIMALLOC_LIBS))

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS     := $(wildcard src/*.c) $(wildcard src/*/*.c) $(wildcard src/*/*/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)

# Normal build -> build/, sanitizer build -> build/asan/
OBJS      := $(SRCS:%.c=build/%.o)
LIB_OBJS  := $(LIB_SRCS:%.c=build/%.o)
ASAN_OBJS := $(SRCS:%.c=build/asan/%.o)
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=build/asan/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
ASAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/asan/tests/%)

.PHONY: fuzz fuzz-build fuzz-replay chaos all asan test check deps-test unit unit-asan integration cache observability budgets edge demo-check sdk deploy demo run deps install uninstall clean lint bench FORCE

all: build/llmrouter

build/llmrouter: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(DAEMON_LIBS) $(LDLIBS)

build/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/asan/llmrouter: $(ASAN_OBJS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC [asan] $<"
	@$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

# The installed binary looks for its configuration under SYSCONFDIR; the
# stamp file rebuilds it when SYSCONFDIR changes between two installs.
build/installed/sysconfdir: FORCE
	@mkdir -p $(dir $@)
	@echo '$(SYSCONFDIR)' | cmp -s - $@ || echo '$(SYSCONFDIR)' > $@

build/installed/main.o: src/main.c build/installed/sysconfdir
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DLLMROUTER_DEFAULT_CONFIG='"$(SYSCONFDIR)/llmrouter/llmrouter.yaml"' -c -o $@ $<

# The price table (config/catalog.yaml): a build in the tree reads the
# tree's copy, the installed binary SYSCONFDIR's (installed beside the
# configuration); catalog: PATH in the configuration overrides either.
CATALOG_OBJ := src/core/config_catalog.o
build/$(CATALOG_OBJ) build/asan/$(CATALOG_OBJ): ALL_CFLAGS += -DLLMROUTER_DEFAULT_CATALOG='"$(CURDIR)/config/catalog.yaml"'
# fuzz_config loads a configuration per input: no default table to read each time
build/fuzz/$(CATALOG_OBJ): FUZZ_CFLAGS += -DLLMROUTER_DEFAULT_CATALOG='""'

build/installed/config_catalog.o: src/core/config_catalog.c build/installed/sysconfdir
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DLLMROUTER_DEFAULT_CATALOG='"$(SYSCONFDIR)/llmrouter/catalog.yaml"' -c -o $@ $<

build/installed/llmrouter: build/installed/main.o build/installed/config_catalog.o $(filter-out build/$(CATALOG_OBJ),$(LIB_OBJS))
	$(CC) $(CFLAGS) -o $@ $^ $(DAEMON_LIBS) $(LDLIBS)

# ---- tests ----
build/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS) -lcmocka

build/asan/tests/%: tests/unit/%.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< $(ASAN_LIB_OBJS) $(LDLIBS) -lcmocka

deps:
	@sh config/install-deps.sh

deps-test:
	@sh config/install-deps.sh test

# The entry points below first run `deps`, then a sub-make, so that
# pkg-config is evaluated after the packages exist on a fresh machine.
SUBMAKE = $(MAKE) --no-print-directory

unit: $(UNIT_BINS)
	@$(PYTHON) tests/run_unit.py $(UNIT_BINS)

unit-asan: $(ASAN_UNIT_BINS)
	@$(PYTHON) tests/run_unit.py $(ASAN_UNIT_BINS)

integration: build/llmrouter
	@$(PYTHON) tests/integration/run.py

sdk: build/llmrouter
	@$(PYTHON) tests/with_daemon.py -- bash tests/sdk/run.sh

cache: build/llmrouter
	@$(PYTHON) tests/integration/test_cache.py

observability: build/llmrouter
	@$(PYTHON) tests/integration/test_observability.py

budgets: build/llmrouter
	@$(PYTHON) tests/integration/test_budgets.py

# The smaller run_suite-based integration suites beside run.py (one file per
# area; each prints "N passed, M failed").
EDGE_SUITES := tests/integration/test_not_routed.py tests/integration/test_stream_memory.py tests/integration/test_upstream_faults.py tests/integration/test_http_edge.py tests/integration/test_strict_body.py tests/integration/test_ops.py tests/integration/test_cascade.py tests/integration/test_anthropic_sim.py tests/integration/test_scorer.py tests/integration/test_anthropic_upstream.py tests/integration/test_classifier.py tests/integration/test_doors.py tests/integration/test_retries.py tests/integration/test_health.py tests/integration/test_chaos.py tests/integration/test_resilience_ops.py tests/integration/test_redis_faults.py tests/integration/test_hostile.py tests/integration/test_experiments.py tests/integration/test_tune.py tests/integration/test_otel.py tests/integration/test_judge.py tests/integration/test_drift.py tests/integration/test_lb.py tests/integration/test_presets.py tests/integration/test_catalog.py tests/integration/test_upstream_wire.py

edge: build/llmrouter
	@for t in $(EDGE_SUITES); do echo "== $$t"; $(PYTHON) $$t || exit 1; done

# systemd unit, make install/uninstall, the Docker build script, compose
# example, readiness notifications (tests/deploy/run.sh).
deploy: build/llmrouter
	@bash tests/deploy/run.sh

# Everything on the normal build.
check: deps-test
	@$(SUBMAKE) lint build/llmrouter
	@$(SUBMAKE) unit
	@$(SUBMAKE) fuzz-replay
	@$(SUBMAKE) integration
	@$(SUBMAKE) cache
	@$(SUBMAKE) observability
	@$(SUBMAKE) budgets
	@$(SUBMAKE) edge
	@$(SUBMAKE) demo-check
	@$(SUBMAKE) sdk
	@$(SUBMAKE) deploy

# Everything again on the AddressSanitizer + UBSan build.
asan: deps-test
	@$(SUBMAKE) build/asan/llmrouter
	@$(SUBMAKE) unit-asan
	@LLMROUTER_BIN=build/asan/llmrouter $(PYTHON) tests/integration/run.py
	@LLMROUTER_BIN=build/asan/llmrouter $(PYTHON) tests/integration/test_cache.py
	@LLMROUTER_BIN=build/asan/llmrouter $(PYTHON) tests/integration/test_observability.py
	@LLMROUTER_BIN=build/asan/llmrouter $(PYTHON) tests/integration/test_budgets.py
	@for t in $(EDGE_SUITES); do echo "== [asan] $$t"; LLMROUTER_BIN=build/asan/llmrouter $(PYTHON) $$t || exit 1; done
	@LLMROUTER_BIN=build/asan/llmrouter $(PYTHON) tests/with_daemon.py -- bash tests/sdk/run.sh

# The test command of the README and CI: both builds.
test: deps-test
	@$(SUBMAKE) check
	@$(SUBMAKE) asan
	@echo "make test: all suites passed on the normal and the sanitizer builds"

demo: deps
	@$(SUBMAKE) build/llmrouter
	@$(PYTHON) tests/demo/demo.py

# The demo checks what it shows (statuses, tiers, the failover, the cache
# hit); make test runs it quietly and prints its closing line.
demo-check: build/llmrouter
	@$(PYTHON) tests/demo/demo.py > build/demo.out 2>&1 || { cat build/demo.out; exit 1; }
	@tail -1 build/demo.out

run: deps
	@$(SUBMAKE) build/llmrouter
	./build/llmrouter -c config/llmrouter.yaml

# Benchmarks (never part of `make test`): figures go to docs/performance.md.
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=build/bench/%)

build/bench/%: tests/bench/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# standalone load tools (libc only)
BENCH_TOOLS := build/bench/latency_client build/bench/upstream build/bench/openloop build/bench/streams

$(BENCH_TOOLS): build/bench/%: tests/bench/%.c tests/bench/httpresp.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o $@ $< -lm

# `make bench BENCH_ARGS=--quick` for a smoke run of bench_proxy.py's modes.
BENCH_ARGS ?=
bench: deps
	@sh config/install-deps.sh bench
	@$(SUBMAKE) $(BENCH_BINS) build/llmrouter $(BENCH_TOOLS)
	@for b in $(BENCH_BINS); do echo "== $$b"; taskset -c 0 $$b || exit 1; done
	@echo "== tests/bench/bench_cache.py"; $(PYTHON) tests/bench/bench_cache.py
	@echo "== tests/bench/bench_proxy.py"; $(PYTHON) tests/bench/bench_proxy.py $(BENCH_ARGS)
	@echo "== tests/bench/bench_proxy.py --growth"; $(PYTHON) tests/bench/bench_proxy.py --growth $(BENCH_ARGS)
	@echo "== tests/bench/bench_proxy.py --doors"; $(PYTHON) tests/bench/bench_proxy.py --doors $(BENCH_ARGS)
	@echo "== tests/bench/bench_proxy.py --scaling"; $(PYTHON) tests/bench/bench_proxy.py --scaling $(BENCH_ARGS)
	@if command -v valgrind >/dev/null 2>&1; then \
	  echo "== tests/bench/bench_instr.py --table"; $(PYTHON) tests/bench/bench_instr.py --table || exit 1; \
	  echo "== tests/bench/bench_instr.py --doors"; $(PYTHON) tests/bench/bench_instr.py --doors || exit 1; \
	else echo "== tests/bench/bench_instr.py: skipped (no valgrind)"; fi

# The fault-injection suite's long run (never part of make test): four 45 s
# rounds of every provider fault under 200 clients, VmRSS after each; both builds.
chaos: deps-test
	@$(SUBMAKE) build/llmrouter build/asan/llmrouter
	@$(PYTHON) tests/integration/test_chaos.py --long
	@LLMROUTER_BIN=build/asan/llmrouter $(PYTHON) tests/integration/test_chaos.py --long

lint:
	@sh tests/lint.sh

# Binary, configuration (kept if present), systemd unit and man page; the
# unit's and man page's /usr/bin and /etc paths are rewritten for BINDIR and
# SYSCONFDIR. The key file for the unit is created empty-but-commented, 0600.
SED_PATHS = sed -e 's|/usr/bin/llmrouter|$(BINDIR)/llmrouter|g' -e 's|/etc/llmrouter/|$(SYSCONFDIR)/llmrouter/|g'

install: build/installed/llmrouter
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/llmrouter $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 build/installed/llmrouter $(DESTDIR)$(BINDIR)/llmrouter
	$(SED_PATHS) config/systemd/llmrouter.service > build/installed/llmrouter.service
	install -m 0644 build/installed/llmrouter.service $(DESTDIR)$(UNITDIR)/llmrouter.service
	$(SED_PATHS) docs/llmrouter.8 > build/installed/llmrouter.8
	install -m 0644 build/installed/llmrouter.8 $(DESTDIR)$(MANDIR)/man8/llmrouter.8
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/llmrouter/llmrouter.yaml ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/llmrouter/llmrouter.yaml"; \
	else install -m 0644 config/llmrouter.yaml $(DESTDIR)$(SYSCONFDIR)/llmrouter/llmrouter.yaml; fi
	install -m 0644 config/catalog.yaml $(DESTDIR)$(SYSCONFDIR)/llmrouter/catalog.yaml
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/llmrouter/llmrouter.env ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/llmrouter/llmrouter.env"; \
	else install -m 0600 config/systemd/llmrouter.env $(DESTDIR)$(SYSCONFDIR)/llmrouter/llmrouter.env; fi
	@echo "installed; under systemd: systemctl daemon-reload && systemctl enable --now llmrouter (docs/systemd.md)"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/llmrouter $(DESTDIR)$(UNITDIR)/llmrouter.service $(DESTDIR)$(MANDIR)/man8/llmrouter.8
	rm -f $(DESTDIR)$(SYSCONFDIR)/llmrouter/catalog.yaml
	@echo "left $(DESTDIR)$(SYSCONFDIR)/llmrouter/ in place (your configuration and keys)"

# ---- fuzzing: clang's libFuzzer with ASan + UBSan (tests/fuzz/README.md) ----
# make fuzz          runs each harness for FUZZ_TIME seconds (default 60; the
#                    issue's bar is 600), FUZZ_JOBS at once, new inputs kept in
#                    build/fuzz/work/, findings in build/fuzz/findings/
# make fuzz-replay   runs every committed corpus input once (part of make test)
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 60
FUZZ_JOBS  ?= 2
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g -Iinclude $(PKG_CFLAGS) -MMD -MP $(FUZZ_SAN)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=build/fuzz/%.o)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRCS:tests/fuzz/%.c=%)
FUZZ_BINS  := $(FUZZ_NAMES:%=build/fuzz/bin/%)

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC [fuzz] $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/bin/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "LD [fuzz] $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJS) $(LDLIBS)

.SECONDARY: $(FUZZ_LIB_OBJS)

fuzz-build: $(FUZZ_BINS)

fuzz: deps-test
	@$(SUBMAKE) fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_TIME) $(FUZZ_JOBS) $(FUZZ_NAMES)

fuzz-replay: deps-test
	@$(SUBMAKE) fuzz-build
	@sh tests/fuzz/replay.sh $(FUZZ_NAMES)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_BINS:=.d) build/installed/main.d build/installed/config_catalog.d
