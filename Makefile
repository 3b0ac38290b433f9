# Parcours: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test build image vet test-short bench bench-quick soak clean

## run: start everything in one process (Temporal + UI, worker, API) — `parcours dev`
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/parcours dev

## test: vet and run every test against the real PostgreSQL and an in-process Temporal server,
## then the benchmark harness at tiny sizes so that it never rots
test: vet
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) bench-quick

## test-short: skip the end-to-end tests that build and start the binary
test-short:
	$(GO) test -count=1 -short ./...

## bench: benchmarks against baselines measured in the same run (about 3 minutes; at most 15 on
## 2 cores); writes bench/REPORT.md and prints it. Needs TEST_DATABASE_URL's PostgreSQL.
bench:
	$(GO) run -ldflags "$(LDFLAGS)" ./bench/cmd/parcours-bench -out bench/REPORT.md

## bench-quick: the same harness at tiny sizes (well under a minute): checks it works, not the speed
bench-quick:
	$(GO) run -ldflags "$(LDFLAGS)" ./bench/cmd/parcours-bench -quick

## soak: the reliability scenarios with kills (R1 R2 R3 R5 R6 R12 R20; about 30 minutes): the worker,
## the API and Temporal killed, PostgreSQL restarted in immediate mode (everyone using that server
## notices); writes bench/SOAK.md and prints it. `make test` runs it at tiny sizes (bench/soak).
soak:
	$(GO) run -ldflags "$(LDFLAGS)" ./bench/cmd/parcours-soak -restart-postgres -out bench/SOAK.md

## build: the parcours binary in bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/parcours ./cmd/parcours

## image: the container image (needs a Docker engine); the same image runs api, worker and migrate
image:
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t parcours:$(VERSION) -t parcours:latest .

## vet: go vet, and workflowcheck over the workflow code (no clock, randomness, goroutines, map
## ranges or I/O in a workflow)
vet:
	$(GO) vet ./...
	$(GO) run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 ./workflows/...

clean:
	rm -rf bin
