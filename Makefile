# Everything a bare machine needs, from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install serve test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[postgres,test,bench]'
	touch $(STAMP)

serve: install
	$(BIN)/consentry serve

lint: install
	$(BIN)/ruff check consentry tests bench

test: install lint
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/bench_gate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
