# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   the demo stack without containers
#   make test   unit + integration tests (DynamoDB Local in a container)
SHELL := /bin/bash
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test unit lint demo build

build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

# Provisions podman and the DynamoDB Local image (idempotent), then runs
# every test. DYNAMODB_ENDPOINT is cleared so the integration tests start
# their own container; -v shows that they did.
test: lint
	eval "$$(.ci/provision.sh)" && unset DYNAMODB_ENDPOINT && \
	$(GO) test -race -count=1 -timeout 30m -v ./...

demo:
	eval "$$(.ci/provision.sh --jar-only)" && $(GO) run ./cmd/demo
