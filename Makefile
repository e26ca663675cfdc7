# The two set-up commands: `make demo` runs the example Dagster job on the
# embedded dev endpoint, `make test` runs every test. Both install what they
# need (Go modules, a virtualenv with the pinned Python packages and moto).

GO      ?= go
VENV    ?= .venv
BIN     := bin/taskiq-go
VERSION ?= $(shell bash scripts/version.sh)
LDFLAGS := -s -w -X github.com/taskiq-go/taskiq-go/commands.Version=$(VERSION)

export VENV

.PHONY: all build test go-test go-test-moto go-test-awscli py-test venv demo bench fuzz lint clean wheels deploy-check image sdist-test

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)-step ./cmd/taskiq-go-step
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)-supervise ./cmd/taskiq-go-supervise

venv:
	bash scripts/venv.sh

## test: everything CI runs: vet, Go unit and golden tests on the embedded
## endpoint, the golden tests again on moto_server, the AWS CLI against dev,
## the Dagster tests, the deployment recipes.
test: lint go-test go-test-moto go-test-awscli py-test deploy-check

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@# make wheels cross-builds these: a Linux-only call must not break macOS or arm64.
	@for t in darwin/amd64 darwin/arm64 linux/arm64; do \
	  GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build -o /dev/null . ./cmd/... || { echo "build for $$t failed"; exit 1; }; \
	done

go-test:
	$(GO) test -count=1 -timeout 30m ./...

go-test-moto: venv
	bash scripts/test-moto.sh

go-test-awscli:
	bash scripts/test-awscli.sh

py-test: build venv
	TASKIQ_GO_BIN=$(CURDIR)/$(BIN) $(VENV)/bin/python -m pytest -q python/tests

## wheels: dist/ gets taskiq-go and every binary of cmd/ beside it for linux and darwin
## on amd64 and arm64 (static, with tar.gz archives and checksums.txt), the dagster-taskiq
## sdist, and one platform wheel per target carrying its binaries; all of one version
## (scripts/version.sh).
wheels:
	python3 scripts/wheels.py

## sdist-test: pip install of the sdist into a fresh venv with Go on PATH builds
## the binary from the Go source inside it (about 2 min: CI runs it after make test).
sdist-test:
	bash scripts/test-sdist.sh

## deploy-check: every recipe in deploy/ through the validator that installs for it.
deploy-check: build venv
	TASKIQ_GO_BIN=$(CURDIR)/$(BIN) bash scripts/deploy-check.sh

## image: deploy/docker/Dockerfile.static built with buildah (no daemon) into
## dist/taskiq-go-image.tar (OCI archive), checked against the Dockerfile.
image: build
	TASKIQ_GO_BIN=$(CURDIR)/$(BIN) bash scripts/image.sh

demo: build venv
	bash scripts/demo.sh

bench: build
	bash bench/run.sh

fuzz:
	$(GO) test ./plan -run '^$$' -fuzz FuzzDecodeMessage -fuzztime 30s
	$(GO) test ./plan -run '^$$' -fuzz FuzzVerifyMessage -fuzztime 30s
	$(GO) test ./plan -run '^$$' -fuzz FuzzParseGeneratedID -fuzztime 30s
	$(GO) test ./serve -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 30s

clean:
	rm -rf bin dist .cache
