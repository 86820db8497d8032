# Everything a bare machine needs, from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps bench-deps serve test lint audit lock bench clean

install: $(STAMP)

# Debian packages the tests need: chromium for the browser tests (driven by Playwright
# through executable_path; Playwright downloads no browser of its own), and jq, which the
# documented examples use (tests/test_docs.py runs them), and pgbouncer, the connection
# pooler tests/store/test_pgbouncer.py puts in front of PostgreSQL (it starts its own).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@{ command -v chromium && command -v jq && test -x /usr/sbin/pgbouncer; } >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    chromium fonts-dejavu-core jq libgl1 libglib2.0-0 pgbouncer >/dev/null; }
	@chromium --version
	@jq --version
	@/usr/sbin/pgbouncer --version | head -1

# What only the benchmarks need: wrk, the HTTP load tool bench/bench_http.py drives.
bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    wrk >/dev/null; }
	@wrk --version | head -n 1 || true

# The versions that were tested (requirements.lock), then the project itself.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Re-resolve the pinned versions after changing dependencies in pyproject.toml.
lock:
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --extra=postgres,fleet,test,bench,scale --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file=requirements.lock pyproject.toml

# Known vulnerabilities in the installed dependencies (PyPI's advisory data). Packages
# the service cannot look up are listed as skipped; a known vulnerability fails.
audit: install
	$(BIN)/pip-audit --progress-spinner off --skip-editable

serve: install
	$(BIN)/consentry serve

lint: install
	$(BIN)/ruff check consentry tests bench
	$(BIN)/mypy

test: install system-deps lint audit
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/bench_gate.py
	$(BIN)/python bench/bench_quality.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
