# OpenEAS build. `make demo` and `make test` work on a fresh Debian machine: they install
# what they need (scripts/fetch-deps.sh) into the git-ignored .cache/ and are fast the second time.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
ROOT := $(abspath .)
ORT_LIB := $(ROOT)/.cache/libonnxruntime.so
BINARIES := easd eascmd eas-worker blade
# Tests find the libtorch shim through OPENEAS_TORCH_SHIM (empty when make build had no libtorch: they skip).
TORCH_ENV = OPENEAS_TORCH_SHIM=$$([ -f bin/libopeneas_torch.so ] && echo $(ROOT)/bin/libopeneas_torch.so)
GOTEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: all build deps test test-short vet demo bench clean help

all: build

help:
	@echo "make demo   - build, start easd, deploy examples/ocr-cls with the Blade plugin, predict"
	@echo "make test   - install deps, build, vet and run every test (what CI runs)"
	@echo "make build  - binaries into bin/ (with libonnxruntime.so.1 beside them)"
	@echo "make bench  - benchmarks (not part of make test); results go to docs/benchmarks.md"

deps: .cache/.deps-ok

.cache/.deps-ok: scripts/fetch-deps.sh
	scripts/fetch-deps.sh
	@touch $@

build: deps
	@mkdir -p bin
	$(GO) build -trimpath -o bin/ $(addprefix ./cmd/,$(BINARIES))
	@cp -f .cache/onnxruntime/*/libonnxruntime.so.1 bin/libonnxruntime.so.1
	@# The libtorch shim (PyTorch processor); exit 3 = no libtorch here: build without it.
	@scripts/build-torch-shim.sh bin >/dev/null || { [ $$? -eq 3 ] && rm -f bin/libopeneas_torch.so bin/libopeneas_torch.json; }

vet:
	@test -z "$$(gofmt -l cmd internal e2e 2>/dev/null)" || { echo "gofmt needed:"; gofmt -l cmd internal e2e; exit 1; }
	$(GO) vet ./...

test: build vet
	scripts/tf-fixtures.sh
	OPENEAS_MINIO=$$(scripts/minio.sh) && export OPENEAS_MINIO && \
	OPENEAS_ENVTEST_ASSETS=$$(scripts/envtest.sh) && export OPENEAS_ENVTEST_ASSETS && \
	OPENEAS_ORT_LIB=$(ORT_LIB) OPENEAS_BIN=$(ROOT)/bin $(TORCH_ENV) $(GO) test $(GOTEST_FLAGS) ./...

test-short: build
	OPENEAS_ORT_LIB=$(ORT_LIB) OPENEAS_BIN=$(ROOT)/bin $(TORCH_ENV) $(GO) test -short -count=1 ./...

demo: build
	scripts/demo.sh

bench: build
	scripts/bench.sh
	scripts/bench-torch.sh

clean:
	rm -rf bin .demo
