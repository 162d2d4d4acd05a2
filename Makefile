# Usher — two commands on a fresh machine: `make run` and `make test`.
# Every target says what it does; set-up steps install what is missing
# (Chromium and redis-server from Debian, buf and protoc-gen-go with go install).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(CURDIR)/.bin
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
USHER_CHROMIUM_BIN ?= /usr/bin/chromium
REDIS_URL ?= redis://127.0.0.1:6379/0
TEST_TIMEOUT ?= 15m
export REDIS_URL USHER_CHROMIUM_BIN

SERVICES := ingest worker simulator

.PHONY: help run test bench proto proto-check lint vet fmt-check build deps chromium redis tools clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: deps build ## Run the whole fleet on this machine: JetStream, simulator, ingest, one worker.
	@scripts/run.sh

test: deps proto-check vet fmt-check ## Run every test (embedded JetStream, real Redis, real Chromium).
	@echo "==> go test (all modules of the workspace, timeout $(TEST_TIMEOUT))"
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) work

bench: deps build ## Print the performance figures next to their baselines (long).
	@scripts/bench.sh

build: ## Build the binaries into .bin/.
	@echo "==> go build: usher-jetstream $(addprefix usher-,$(SERVICES)) zoom-tokens-callback into .bin/"
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/usher-jetstream ./shared/cmd/usher-jetstream
	@for s in $(SERVICES); do $(GO) build -o $(BIN)/usher-$$s ./services/$$s; done
	$(GO) build -o $(BIN)/zoom-tokens-callback ./services/simulator/cmd/zoom-tokens-callback

deps: chromium redis ## Install or start what tests and the fleet need.

chromium: ## Install Debian's Chromium when it is missing.
	@if [ -x "$(USHER_CHROMIUM_BIN)" ]; then echo "==> chromium: $(USHER_CHROMIUM_BIN) present"; \
	else echo "==> chromium: $(USHER_CHROMIUM_BIN) missing, installing Debian package 'chromium' (apt-get)"; \
	  scripts/apt-install.sh chromium; fi

redis: ## Start redis-server at REDIS_URL when nothing answers there (installing it if missing).
	@scripts/ensure-redis.sh "$(REDIS_URL)"

tools: $(BIN)/buf $(BIN)/protoc-gen-go ## Install buf and protoc-gen-go (pinned) into .bin/.

$(BIN)/buf:
	@echo "==> installing buf $(BUF_VERSION) with go install (first time only)"
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(BIN)/protoc-gen-go:
	@echo "==> installing protoc-gen-go $(PROTOC_GEN_GO_VERSION) with go install (first time only)"
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

proto: tools ## Lint the protobuf contracts and regenerate the Go code.
	@echo "==> buf lint && buf generate (proto/)"
	cd proto && PATH=$(BIN):$$PATH $(BIN)/buf lint && PATH=$(BIN):$$PATH $(BIN)/buf generate

proto-check: tools ## Fail when the generated protobuf Go code is stale.
	@echo "==> checking that proto/gen matches proto/usher (buf lint, regenerate, diff)"
	@cd proto && PATH=$(BIN):$$PATH $(BIN)/buf lint
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  (cd proto && PATH=$(BIN):$$PATH $(BIN)/buf generate -o "$$tmp") && \
	  if ! diff -r proto/gen "$$tmp/gen" >/dev/null; then \
	    echo "proto/gen is stale: run 'make proto' and commit the result"; diff -r proto/gen "$$tmp/gen" | head -20; exit 1; fi

vet: ## go vet every module.
	@echo "==> go vet"
	$(GO) vet work

fmt-check: ## Fail when a Go file is not gofmt-clean.
	@echo "==> gofmt check"
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.bin/*')); \
	  if [ -n "$$bad" ]; then echo "gofmt would change:"; echo "$$bad"; exit 1; fi

lint: vet fmt-check tools ## go vet, gofmt, buf lint, deploy/ checks, and golangci-lint when installed.
	@cd proto && $(BIN)/buf lint
	@deploy/check.sh
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; else echo "==> golangci-lint not installed: skipped (config in .golangci.yml)"; fi

clean: ## Remove binaries and the dev data directory.
	rm -rf $(BIN)/usher-* .data
