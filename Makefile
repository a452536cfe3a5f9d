# Call center for Telnyx. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
PG_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: help run test test-pg ci lint fmt guard bench bench-vs-demo demo faults queue-acceptance fuzz-api twilio-fixtures signature-fixtures screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

run: ## Serve on 127.0.0.1:8080 with SQLite (data/callcenter.db); signature checks off unless a key is configured
	@if [ -z "$$TELNYX_PUBLIC_KEY" ] && ! grep -qsE '^TELNYX_PUBLIC_KEY=.+' .env; then \
	  echo "make run: no TELNYX_PUBLIC_KEY configured; starting with TELNYX_VERIFY_SIGNATURES=false (local work only)"; \
	  export TELNYX_VERIFY_SIGNATURES=false; \
	fi; \
	$(CARGO) run -p callcenter -- serve

test: ## All tests; the PostgreSQL ones run when TEST_DATABASE_URL is set (e.g. $(PG_URL)), else they are ignored and counted
	@mkdir -p target
	@set -o pipefail; $(CARGO) test --workspace --all-features 2>&1 | tee target/test.log
	@./tools/skipped.sh target/test.log

test-pg: ## All tests with the local PostgreSQL required
	@mkdir -p target
	@set -o pipefail; TEST_DATABASE_URL=$${TEST_DATABASE_URL:-$(PG_URL)} CI_REQUIRE_POSTGRES=1 $(CARGO) test --workspace --all-features 2>&1 | tee target/test.log
	@./tools/skipped.sh --require-none target/test.log

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

guard: ## The domain crates depend on neither sqlx nor actix-web
	./tools/dependency-guard.sh

ci: lint guard ## What CI runs: lint, the dependency guard, every test including PostgreSQL, the short fault suite
	@test -n "$$TEST_DATABASE_URL" || { echo "make ci: TEST_DATABASE_URL must be set (the PostgreSQL suite is required in CI)" >&2; exit 1; }
	@mkdir -p target
	@set -o pipefail; CI_REQUIRE_POSTGRES=1 $(CARGO) test --workspace --all-features 2>&1 | tee target/test.log
	@./tools/skipped.sh --require-none target/test.log
	./tools/faults.sh --short

twilio-fixtures: ## Regenerate the TwiML peer fixtures with Twilio's Python library
	python3 -m venv .venv && .venv/bin/pip install -q twilio && .venv/bin/python tools/twiml_fixtures.py

bench: ## Criterion benchmarks, load runs (SQLite, PostgreSQL, two instances), then bench-vs-demo; results in target/bench/ (about 50 min)
	./tools/bench.sh

bench-vs-demo: ## Side by side with Telnyx's Python demo (../shared/bench-vs-demo; needs wrk and PYDEMO_MIRROR), and the in-process ceilings (about 12 min)
	./tools/bench-vs-demo.sh

faults: ## Load under faults on PostgreSQL: restart, a 10 s stall, SIGKILL of the server, one of two instances killed (about 6 min)
	./tools/faults.sh

queue-acceptance: ## The queue's acceptance runs: 2,000 simulated calls, 5 agents, on SQLite, PostgreSQL, two instances and with 30% of pushes failing (about 20 min)
	./tools/queue-acceptance.sh

demo: ## A server on SQLite, 5 simulated agents and 20 simulated calls with a trace; exit 0 when consistent
	./tools/demo.sh

screenshots: ## The console and wallboard screenshots in docs/img/, taken by the browser tests (needs chromium and chromium-driver)
	@mkdir -p docs/img
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs/img $(CARGO) test -p e2e --test browser -- --test-threads=1 sqlite

fuzz-api: ## Schemathesis (PyPI) against a live server using its OpenAPI document; prints the cases tried
	./tools/fuzz-api.sh $(EXAMPLES)

signature-fixtures: ## Regenerate the webhook-signature fixtures with PyNaCl
	python3 -m venv .venv && .venv/bin/pip install -q pynacl && .venv/bin/python tools/signature_fixtures.py
