# msb: build, set-up and tests.
#
#   make            build everything into build/
#   make setup      install host packages and the guest assets (idempotent)
#   make check      build and run every test (a short fuzz run included);
#                   ends with "N passed, N failed"
#   make fuzz       build the libFuzzer targets (clang)
#   make bench      run the benchmarks

CC ?= cc
MUSL_CC ?= musl-gcc
CLANG ?= clang
BUILD := build

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wvla -Wno-unused-parameter -Wno-format-truncation \
	-Wmissing-prototypes -Wstrict-prototypes
CFLAGS ?= -O2 -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARNINGS) -MMD -MP -Iinclude
HOST_CFLAGS := $(BASE_CFLAGS) -fPIC $(CFLAGS)
# musl-gcc does not see the kernel's UAPI headers; adding the system include
# directories after musl's own keeps musl's libc headers first.
AGENT_CFLAGS := $(BASE_CFLAGS) -Os -static -idirafter /usr/include -idirafter /usr/include/x86_64-linux-gnu

PROTO_SRC := $(wildcard src/proto/*.c)
BASE_SRC := $(wildcard src/base/*.c)
CLIENT_SRC := $(wildcard src/client/*.c) $(BASE_SRC)
RUNTIME_SRC := $(wildcard src/runtime/*.c src/engine/*.c src/guest/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
AGENT_SRC := $(wildcard src/agentd/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

PROTO_OBJ := $(call obj,$(PROTO_SRC))
CLIENT_OBJ := $(call obj,$(CLIENT_SRC))
RUNTIME_OBJ := $(call obj,$(RUNTIME_SRC))
CLI_OBJ := $(call obj,$(CLI_SRC))
UNIT_OBJ := $(call obj,$(UNIT_SRC))
AGENT_BLOB_OBJ := $(BUILD)/obj/agent_blob.o

LIBS := -lsqlite3

# End-to-end test programs: each tests/e2e/NAME.c links against libmsb.
E2E_PROGRAMS := $(patsubst tests/e2e/%.c,$(BUILD)/tests/%,$(wildcard tests/e2e/*.c))

BENCH_PROGRAMS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

# Example programs of the C API.
EXAMPLE_PROGRAMS := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))

PROGRAMS := $(BUILD)/msb $(BUILD)/msb-agentd $(BUILD)/libmsb.a $(BUILD)/libmsb.so \
	$(BUILD)/tests/unit-tests $(BUILD)/tests/cbor-roundtrip $(E2E_PROGRAMS) $(EXAMPLE_PROGRAMS)

.PHONY: all setup check unit fuzz fuzz-run bench clean
# Benchmarks are built with everything, so that they keep compiling; they
# run only with `make bench`.
all: $(PROGRAMS) $(BENCH_PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) -c $< -o $@

$(BUILD)/msb-agentd: $(AGENT_SRC) $(PROTO_SRC) $(wildcard src/agentd/*.h src/proto/*.h)
	@mkdir -p $(BUILD)
	$(MUSL_CC) $(AGENT_CFLAGS) $(AGENT_SRC) $(PROTO_SRC) -o $@
	strip $@

# The agent binary travels inside msb, so one file is all a host needs.
$(AGENT_BLOB_OBJ): src/guest/agent_blob.S $(BUILD)/msb-agentd
	@mkdir -p $(dir $@)
	$(CC) -c -DAGENT_PATH='"$(BUILD)/msb-agentd"' $< -o $@

$(BUILD)/libmsb.a: $(CLIENT_OBJ) $(PROTO_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libmsb.so: $(CLIENT_OBJ) $(PROTO_OBJ)
	$(CC) -shared -o $@ $^ $(LIBS)

$(BUILD)/msb: $(CLI_OBJ) $(RUNTIME_OBJ) $(CLIENT_OBJ) $(PROTO_OBJ) $(AGENT_BLOB_OBJ)
	$(CC) -o $@ $^ $(LIBS)

$(BUILD)/tests/unit-tests: $(UNIT_OBJ) $(RUNTIME_OBJ) $(CLIENT_OBJ) $(PROTO_OBJ) $(AGENT_BLOB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS)

$(BUILD)/tests/cbor-roundtrip: $(call obj,tests/tools/cbor_roundtrip.c) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^

# Installs host packages first, so it cannot depend on targets that need them.
$(BUILD)/tests/%: $(BUILD)/obj/tests/e2e/%.o $(BUILD)/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(BUILD)/libmsb.a $(LIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(BUILD)/libmsb.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(BUILD)/libmsb.a $(LIBS)

setup:
	src/guest/setup.sh

unit: $(BUILD)/tests/unit-tests
	$(BUILD)/tests/unit-tests

check: all fuzz
	tests/run-all.sh

# libFuzzer targets, built with clang's sanitizers.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz: $(FUZZ_TARGETS)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(PROTO_SRC) $(wildcard src/proto/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) $< $(PROTO_SRC) -o $@

# Runs each fuzz target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
fuzz-run: fuzz
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Benchmarks: each bench/NAME.c links the runtime and libmsb.

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(RUNTIME_OBJ) $(CLIENT_OBJ) $(PROTO_OBJ) $(AGENT_BLOB_OBJ) bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(filter %.o,$^) $(LIBS)

bench: all $(BENCH_PROGRAMS)
	@for b in $(BENCH_PROGRAMS); do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
