# Everything a bare machine needs, from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps serve test lint bench clean

install: $(STAMP)

# Debian packages the tests need: chromium for the browser tests (driven by Playwright
# through executable_path; Playwright downloads no browser of its own), and jq, which the
# documented examples use (tests/test_docs.py runs them).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@{ command -v chromium && command -v jq; } >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    chromium fonts-dejavu-core jq >/dev/null; }
	@chromium --version
	@jq --version

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[postgres,test,bench]'
	touch $(STAMP)

serve: install
	$(BIN)/consentry serve

lint: install
	$(BIN)/ruff check consentry tests bench

test: install system-deps lint
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/bench_gate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
