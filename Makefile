# softatm — the one front door. `make run` and `make test` are all a newcomer needs.
GO        ?= go
BIN       := .var/bin/softatm
FUZZTIME  ?= 10s
DURATION  ?= 10m

.PHONY: run run-ha test build lint bench fuzz soak screenshots deps clean mutate mutate-check mutate-go

build:
	$(GO) build -o $(BIN) ./cmd/softatm

# Brings up private PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are
# set), migrates, loads the demo fixtures, starts the bank simulator and the
# switch, and prints where to look. Ctrl-C stops all of it.
run: deps build
	$(BIN) demo

# The highly available topology on this machine, from nothing: a
# pg_auto_failover monitor and two PostgreSQL nodes with synchronous
# replication, Redis with a replica and three Sentinels, the bank simulator
# and two switch instances. Prints every address and which node is primary;
# Ctrl-C stops all of it. See README, "Running it highly available".
run-ha: deps build
	$(BIN) demo-ha

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

# The guard mutation suite (scripts/mutate/guards.txt): each guard on the
# money path is removed in turn, in a scratch copy of the tree, and the tests
# named for it must fail. Prints killed / survived per guard with the test
# that caught it; exits non-zero if one survived or if a guard's snippet is no
# longer found exactly once (re-sync the list: `make mutate-check`).
# `make mutate GUARDS=id1,id2` runs a subset. Slow (minutes): not in `make test`.
GUARDS ?=
mutate: deps
	$(GO) run ./scripts/mutate -guards '$(GUARDS)'

mutate-check:
	$(GO) run ./scripts/mutate -check

# Go-level operator mutation (gremlins) over the packages whose logic is in
# Go, each within MUTATE_GO_BUDGET. Far too slow for CI; run it by hand and
# record the scores in the README's testing section.
GREMLINS         := .var/bin/gremlins
MUTATE_GO_PKGS   ?= switch/code iso ledger/recon
MUTATE_GO_BUDGET ?= 30m
$(GREMLINS):
	GOBIN=$(CURDIR)/.var/bin $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0

mutate-go: deps $(GREMLINS)
	@mkdir -p .var/mutate-go
	$(GO) run ./scripts/mutate -exec 'for p in $(MUTATE_GO_PKGS); do \
	  echo "== $$p (budget $(MUTATE_GO_BUDGET))"; \
	  timeout $(MUTATE_GO_BUDGET) $(GREMLINS) unleash --workers 1 --timeout-coefficient 5 \
	    --output .var/mutate-go/$$(echo $$p | tr / -).json ./$$p \
	    || echo "$$p: gremlins stopped (exit $$?; 124 is the time budget)"; \
	done'

# Installs the Debian packages the servers and browser tests need, when missing.
deps:
	@sh scripts/deps.sh

clean:
	rm -rf .var
