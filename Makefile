# libphi4 — common tasks. `make demo` and `make test` are the two commands a newcomer needs.
SWIFT ?= swift
PREFIX ?= /usr/local
LIBDIR := lib
TOKENIZER := Tests/Phi4Tests/Fixtures/tokenizer/phi4

.PHONY: all deps test-deps build demo test test-long lib install clean server wheel dist

all: build

deps:
	@bash scripts/install-deps.sh

test-deps:
	@bash scripts/install-deps.sh --test

build: deps
	$(SWIFT) build -c release --product phi4

# Builds the tool and runs the bundled demo model (models/phi4-demo-q8_0.gguf: Phi-4's architecture
# and tokenizer, trained small on Python's standard library) through the same code as the 14B, then
# shows the Phi-4 tokenizer and chat prompt.
demo: build
	.build/release/phi4 demo
	.build/release/phi4 tokenize --tokenizer $(TOKENIZER) "Hello, world! Phi-4 runs on the CPU."
	.build/release/phi4 chat-prompt --tokenizer $(TOKENIZER) --system "You are helpful." "What is 2+2?"

# Every test: the Swift suite in a release build (the numeric kernels are too slow to test
# unoptimized), the command-line checks (chat REPL, perplexity, quantize; the Swift embedding
# example builds and runs), the C ABI suite (examples and C tests against lib/libphi4.so,
# valgrind), the Python binding's suite (pip-installed into .build-py), and phi4-server's suite
# (the official openai client and schemathesis, in the virtual environment .build-srvpy). Each
# stage prints how long it took and where the time went (build, slowest tests and checks).
test: test-deps
	@bash scripts/timed.sh "swift tests" bash scripts/test-swift.sh
	@bash scripts/timed.sh "cli tests" bash scripts/test-cli.sh
	@bash scripts/timed.sh "c tests" bash scripts/test-c.sh
	@bash scripts/timed.sh "python tests" bash scripts/test-python.sh
	@bash scripts/timed.sh "server tests" bash scripts/test-server.sh

# The same suites with the randomized checks at full counts (about 15 minutes more): 10,000
# mutated model files (Swift), a 4 × 1000-generation soak and 3,000 runs of each fuzz target
# (C ABI), 5 seeds of every constrained-output schema (CLI), 400 schemathesis cases an
# operation (server). tools/fuzz.sh, tools/fuzz_files.sh and tools/soak.sh run longer still.
test-long:
	@PHI4_TEST_LONG=1 PHI4_MUTANTS=10000 $(MAKE) --no-print-directory test

# phi4-server, the OpenAI-compatible HTTP server, and phi4-hub, the model downloader (Server/, a
# package of its own: Hummingbird, AsyncHTTPClient, SwiftNIO and its TLS are built only here, never
# for the library or the demo).
server: deps
	$(SWIFT) build -c release --package-path Server --product phi4-server
	$(SWIFT) build -c release --package-path Server --product phi4-hub
	@echo "built Server/.build/release/phi4-server and Server/.build/release/phi4-hub"

# libphi4.so: the C ABI with the Swift runtime linked in statically, only phi4_* exported, a SONAME.
lib: deps
	$(SWIFT) build -c release --product Phi4Shared --scratch-path .build-lib \
	    -Xswiftc -static-stdlib -Xlinker --version-script=$(CURDIR)/bindings/c/exports.map \
	    -Xlinker -soname=libphi4.so.1
	mkdir -p $(LIBDIR)
	cp .build-lib/release/libPhi4Shared.so $(LIBDIR)/libphi4.so.1.tmp
	mv -f $(LIBDIR)/libphi4.so.1.tmp $(LIBDIR)/libphi4.so.1  # a new inode: running programs keep theirs
	ln -sf libphi4.so.1 $(LIBDIR)/libphi4.so
	@echo "built $(LIBDIR)/libphi4.so"

# A binary wheel that needs no toolchain (manylinux, OpenBLAS bundled, the phi4 command inside):
# dist/phi4-VERSION-py3-none-manylinux_*_x86_64.whl.
wheel: deps
	@bash scripts/make-wheel.sh

# The C SDK: dist/phi4-VERSION-linux-x86_64.tar.gz (lib/, include/, relocatable pkg-config file,
# bin/phi4, the C examples).
dist: deps
	@bash scripts/make-dist.sh

VERSION := $(shell awk '/define PHI4_VERSION_(MAJOR|MINOR|PATCH)/ {v = v (v == "" ? "" : ".") $$3} END {print v}' include/phi4.h)

# Installs the library, the header and a pkg-config file under PREFIX.
install: lib
	install -d $(PREFIX)/lib/pkgconfig $(PREFIX)/include
	install -m 755 $(LIBDIR)/libphi4.so.1 $(PREFIX)/lib/libphi4.so.1
	ln -sf libphi4.so.1 $(PREFIX)/lib/libphi4.so
	install -m 644 include/phi4.h $(PREFIX)/include/phi4.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' bindings/c/phi4.pc.in > $(PREFIX)/lib/pkgconfig/phi4.pc

clean:
	rm -rf .build .build-lib .build-ctest .build-py .build-dist bindings/python/phi4/lib bindings/python/phi4/bin bindings/python/build $(LIBDIR) dist
