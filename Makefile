# The two commands a newcomer needs: `make demo` and `make test`. Both bring
# up a local RabbitMQ with the management plugin first (scripts/broker-up.sh).

GO      ?= go
BIN     := bin/mqctl
PKG     := github.com/mqctl/mqctl/internal/buildinfo
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(DATE)
# Integration tests share one broker; each test has its own vhost.
TESTFLAGS ?= -count=1 -timeout 15m

.PHONY: all build broker broker-down test test-unit test-faults test-versions demo completions man packages fmt vet

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mqctl

broker:
	scripts/broker-up.sh

broker-down:
	scripts/broker-down.sh

## test: every test, unit and integration, against a real local broker;
## the fault suite last and alone, since its private nodes need both cores.
test: broker vet
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v /internal/faults)
	$(MAKE) test-faults

## test-faults: the reliability suite (private RabbitMQ nodes it breaks);
## prints every scenario's figures at the end.
FAULTS_REPORT ?= $(CURDIR)/faults-report.jsonl
# The suite boots a dozen private nodes: about 6 min on an idle 2-core
# machine, 12 with both cores busy elsewhere; the bound catches a hang.
FAULTSFLAGS ?= -count=1 -timeout 30m
test-faults:
	rm -f $(FAULTS_REPORT)
	MQCTL_FAULTS_REPORT=$(FAULTS_REPORT) $(GO) test $(FAULTSFLAGS) ./internal/faults
	@test ! -s $(FAULTS_REPORT) || { echo "fault suite figures:"; cat $(FAULTS_REPORT); }

## test-versions: the integration suites against each RabbitMQ release
## (system = the node of `make broker`, 3.10 here; 4.0 and 4.3 from Debian
## chroots built once per machine), and the core fault scenarios on 4.3.
## VERSIONS="4.0" narrows it; .ci/run runs it after `make test`.
VERSIONS ?= system 4.0 4.3
test-versions: vet
	GO=$(GO) TESTFLAGS='$(TESTFLAGS)' scripts/test-versions.sh $(VERSIONS)

## test-unit: only tests that need no broker.
test-unit:
	MQCTL_SKIP_INTEGRATION=1 $(GO) test $(TESTFLAGS) ./...

vet:
	$(GO) vet ./...

## demo: the registration story against the local broker, in its own vhost.
demo: broker
	@echo "demo: building mqctl (a first build downloads the Go modules and compiles them: minutes on 2 cores; then seconds)"
	@$(MAKE) --no-print-directory build
	@echo "demo: checking the broker (mqctl doctor)"
	$(BIN) doctor
	@echo "demo: running the registration story (mqctl demo, about 10 s)"
	$(BIN) demo

## completions: regenerate completions/ (a test fails when they are stale).
completions:
	$(GO) run ./cmd/mqctl completion bash > completions/mqctl.bash
	$(GO) run ./cmd/mqctl completion zsh > completions/_mqctl
	$(GO) run ./cmd/mqctl completion fish > completions/mqctl.fish
	$(GO) run ./cmd/mqctl completion powershell > completions/mqctl.ps1

## man: regenerate man/ from the command tree (a test fails when stale).
man:
	rm -rf man && $(GO) run ./scripts/genman man

## packages: archives, .deb, .rpm and the Homebrew formula in dist/ with
## the goreleaser pinned in tools/go.mod (release --snapshot), then the .deb
## installed here and run (scripts/package-check.sh). CI runs it.
packages:
	$(GO) -C tools build -o ../bin/goreleaser github.com/goreleaser/goreleaser/v2
	bin/goreleaser release --snapshot --clean
	scripts/package-check.sh

fmt:
	gofmt -w $$(git ls-files '*.go')
