# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   the demo stack without containers
#   make test   unit + integration tests (DynamoDB Local in a container)
SHELL := /bin/bash
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test unit lint demo build bench bench-smoke

build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

# `vars=$$(...) && eval` rather than `eval "$$(...)"`: eval of an empty
# string succeeds, so a failed provisioning would go unnoticed until the
# tests failed to start a container.
#
# Provisions podman and the DynamoDB Local image (idempotent), then runs
# every test and a short run of the benchmark. DYNAMODB_ENDPOINT is cleared
# so the integration tests start their own container; -v shows that they
# did.
test: lint
	vars=$$(.ci/provision.sh) && eval "$$vars" && unset DYNAMODB_ENDPOINT && \
	$(GO) test -race -count=1 -timeout 30m -v ./...
	$(MAKE) bench-smoke

# Every mode and scenario of the benchmark with tiny numbers, so that it
# cannot rot. -check fails on booking errors or events lost on the relay's
# path; the timings of so short a run mean nothing and are not judged.
# Modes and scenarios are named: the bench reads flags not given from the
# environment, and a MODES= there must not empty the run.
bench-smoke:
	vars=$$(.ci/provision.sh) && eval "$$vars" && unset DYNAMODB_ENDPOINT && \
	$(GO) run ./cmd/bench -check -progress 0 \
	  -modes put-only,txn-floor,txn-floor-marks,sync-dual-write,memory-queue,outbox,booking-http \
	  -scenarios saturation,drain,sweep,crash -bookings 60 -rounds 1 -concurrency 4 -warm-up 200 -mode-warm-up 1s \
	  -saturation-step 2s -saturation-hold 4s -saturation-max-concurrency 4 -drain-events 1000 \
	  -sweep-batch-sizes 1,100 -sweep-windows 0,100ms -sweep-duration 2s -sweep-rate 10 \
	  -crash-bookings 300 -drain-timeout 60s -out "$${TMPDIR:-/tmp}/ddboutbox-bench-smoke.json"

# The full benchmark (about 30 minutes); its JSON is what README's table shows.
bench:
	vars=$$(.ci/provision.sh) && eval "$$vars" && unset DYNAMODB_ENDPOINT && \
	$(GO) run ./cmd/bench -out cmd/bench/results/latest.json

demo:
	vars=$$(.ci/provision.sh --jar-only) && eval "$$vars" && $(GO) run ./cmd/demo
