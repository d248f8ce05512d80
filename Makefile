# fer.h - build examples, tools and tests. No -march: SIMD is chosen at run time.
CC      ?= cc
CXX     ?= c++
CFLAGS  ?= -O2
WARN     = -Wall -Wextra -Wpedantic -Werror
INC      = -I. -I/usr/include/stb
LDLIBS   = -lm -lpthread
B        = build

TOOLS    = $(B)/fer-zoo $(B)/fer-peak $(B)/fer-bench $(B)/fer-eval $(B)/fer-embed $(B)/fer-report
EXAMPLES = $(B)/fer-predict $(B)/fer-train
TESTS    = $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all test test-sanitize test-arm bench clean
all: $(TOOLS) $(EXAMPLES)

$(B)/fer-%: tools/fer-%.c fer.h
	@mkdir -p $(B)
	$(CC) $(CFLAGS) -std=c99 $(WARN) $(INC) $< -o $@ $(LDLIBS)

$(B)/fer-peak $(B)/fer-bench: tools/peak.h

$(B)/fer-%: examples/%.c fer.h
	@mkdir -p $(B)
	$(CC) $(CFLAGS) -std=c99 $(WARN) $(INC) $< -o $@ $(LDLIBS)

$(B)/tests/%: tests/%.c fer.h tests/test.h
	@mkdir -p $(B)/tests
	$(CC) $(CFLAGS) -std=c99 $(WARN) $(INC) $< -o $@ $(LDLIBS)

# Two translation units with FER_STATIC linked together, and the header as C++.
$(B)/tests/static2: tests/static_a.c tests/static_b.c fer.h
	@mkdir -p $(B)/tests
	$(CC) -std=c99 $(WARN) $(INC) -DFER_STATIC tests/static_a.c tests/static_b.c -o $@ -lm
$(B)/tests/cxx: tests/static_a.c tests/static_b.c fer.h
	@mkdir -p $(B)/tests
	$(CXX) -O2 -x c++ $(WARN) $(INC) -DFER_STATIC tests/static_a.c tests/static_b.c -o $@ -lm

# The configuration switches: scalar-only kernels, and no stdio, still build and pass.
$(B)/tests/nosimd: tests/test_kernels.c fer.h tests/test.h
	@mkdir -p $(B)/tests
	$(CC) $(CFLAGS) -std=c99 $(WARN) $(INC) -DFER_NO_SIMD -DFER_NO_THREADS $< -o $@ $(LDLIBS)
$(B)/tests/nostdio: tests/static_a.c tests/static_b.c fer.h
	@mkdir -p $(B)/tests
	$(CC) -std=c99 $(WARN) $(INC) -DFER_STATIC -DFER_NO_STDIO -DFER_NO_STB_IMAGE tests/static_a.c tests/static_b.c -o $@ -lm
# clang, when installed (.ci/run installs it), with its own warnings
CLANG   := $(shell command -v clang 2>/dev/null)
ifneq ($(CLANG),)
EXTRA_TESTS += $(B)/tests/clang
endif
$(B)/tests/clang: tests/static_a.c tests/static_b.c fer.h
	@mkdir -p $(B)/tests
	clang -std=c99 $(WARN) $(INC) -DFER_STATIC tests/static_a.c tests/static_b.c -o $@ -lm

ALL_TESTS = $(TESTS) $(B)/tests/static2 $(B)/tests/cxx $(B)/tests/nosimd $(B)/tests/nostdio $(EXTRA_TESTS)
test: $(ALL_TESTS)
	@FER_TRAIN=$(B)/fer-train sh tests/run.sh $(ALL_TESTS)

# Speed of every default zoo model against this core's peak (tools/bench-peers compares with PyTorch, ONNX Runtime)
bench: $(B)/fer-bench
	$(B)/fer-bench

test-arm:
	sh tests/run-arm.sh

test-sanitize:
	$(MAKE) B=build/san CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

clean:
	rm -rf $(B)

# test_cli runs the training CLI of the same build (FER_TRAIN, set by the test rule)
$(B)/tests/test_cli: $(B)/fer-train

# the tools' shared report code
$(B)/fer-eval $(B)/fer-embed $(B)/fer-report $(B)/tests/test_metrics: tools/report.h
