# softatm — the one front door. `make run` and `make test` are all a newcomer needs.
GO        ?= go
BIN       := .var/bin/softatm
FUZZTIME  ?= 10s
DURATION  ?= 10m

.PHONY: run test build lint bench fuzz soak screenshots deps clean

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

# The browser tests again, writing their screenshots to teller/screenshots/.
screenshots: deps
	SOFTATM_SCREENSHOTS=1 $(GO) test -count=1 -run 'Browser' ./cmd/softatm/

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

# The fault and concurrency proofs (switch/faults), run again and again for
# DURATION with more rounds per scenario (SOAK_SCALE), each run with a new
# seed. Prints, per scenario: rounds run, faults injected, invariant
# violations found. A failing run's seed is in .var/soak/run-N.log.
SOAK_SCALE ?= 3
soak: deps
	@mkdir -p .var/soak && rm -f .var/soak/stats .var/soak/run-*.log
	@end=$$(( $$(date +%s) + $$(echo "$(DURATION)" | awk '/h$$/{print $$0*3600; next} /m$$/{print $$0*60; next} {print $$0+0}') )); \
	n=0; failed=0; \
	while [ $$(date +%s) -lt $$end ]; do \
	  n=$$((n+1)); \
	  if SOFTATM_SOAK_SCALE=$(SOAK_SCALE) SOFTATM_SOAK_STATS=$(CURDIR)/.var/soak/stats \
	     $(GO) test -count=1 -timeout 30m -v ./switch/faults/ > .var/soak/run-$$n.log 2>&1; then \
	    echo "run $$n: ok"; \
	  else \
	    failed=$$((failed+1)); echo "run $$n: FAILED (see .var/soak/run-$$n.log)"; \
	  fi; \
	done; \
	echo; printf "%-40s %8s %8s %11s\n" scenario rounds faults violations; \
	awk '{r[$$1]+=$$2; f[$$1]+=$$3; v[$$1]+=$$4} END {for (s in r) printf "%-40s %8d %8d %11d\n", s, r[s], f[s], v[s]}' .var/soak/stats | sort; \
	echo "$$n runs, $$failed failed"; test $$failed -eq 0

# Installs the Debian packages the servers and browser tests need, when missing.
deps:
	@sh scripts/deps.sh

clean:
	rm -rf .var
