# softatm — the one front door. `make run` and `make test` are all a newcomer needs.
GO        ?= go
BIN       := .var/bin/softatm
FUZZTIME  ?= 10s
DURATION  ?= 10m

.PHONY: run test build lint bench fuzz soak deps clean

build:
	$(GO) build -o $(BIN) ./cmd/softatm

# Brings up private PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are
# set), migrates, loads the demo fixtures, starts the bank simulator and the
# switch, and prints where to look. Ctrl-C stops all of it.
run: deps build
	$(BIN) demo

# The whole suite. Tests start private PostgreSQL / Redis / Chromium sessions
# themselves when DATABASE_URL / REDIS_URL are not set.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...

# Micro-benchmarks of the hot pieces, then a short end-to-end run on private
# servers (PostgreSQL with fsync on): withdrawals/s, latency per call, and the
# machine's raw commit limit. bench/RESULTS.md records a run.
BENCHTIME ?= 1s
LOADGEN_FLAGS ?= -duration 20s -clients 32
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem ./bench/
	$(GO) run ./bench/cmd/loadgen -softatm $(BIN) $(LOADGEN_FLAGS)

fuzz:
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$spec/*_test.go | sed 's/func //'); do \
	    echo "== $$spec $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$spec || exit 1; \
	  done; \
	done

# Installs the Debian packages the servers and browser tests need, when missing.
deps:
	@sh scripts/deps.sh

clean:
	rm -rf .var
