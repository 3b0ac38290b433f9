# Parcours: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test build vet test-short clean

## run: start everything in one process (Temporal + UI, worker, API) — `parcours dev`
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/parcours dev

## test: vet and run every test against the real PostgreSQL and an in-process Temporal server
test: vet
	$(GO) test -count=1 -timeout 30m ./...

## test-short: skip the end-to-end tests that build and start the binary
test-short:
	$(GO) test -count=1 -short ./...

## build: the parcours binary in bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/parcours ./cmd/parcours

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
