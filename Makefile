# callstream: `make demo` runs everything locally, `make test` runs lint, type checks and all tests.
# Both install what they need on a fresh machine (a virtualenv, the Python packages, the Kafka jars,
# the helm binary).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA := $(PYTHON) dev/kafka/launcher.py
PYTEST_ARGS ?=

.PHONY: help install jars helm helm-lint lint format typecheck test test-unit test-integration \
        kafka-up kafka-down kafka-status demo demo-down bench clean

help:
	@echo "make demo        local Kafka + sandbox platform + all services, sample calls flowing"
	@echo "make test        lint, type checks and every test (installs what it needs)"
	@echo "make kafka-up    start the local Apache Kafka broker on 127.0.0.1:9092 (make kafka-down)"
	@echo "make bench       run the benchmarks in bench/ (tables in bench/results/)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

jars:
	$(KAFKA) jars

helm:
	bash helm/install-helm.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

helm-lint: install helm
	.tools/bin/helm lint --strict helm/callstream
	.tools/bin/helm lint --strict helm/callstream -f helm/callstream/ci/all-enabled-values.yaml
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest tests/unit/test_helm_chart.py

test: install jars helm lint typecheck
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest $(PYTEST_ARGS)

test-unit: install helm
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install jars
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

kafka-up: jars
	$(KAFKA) up

kafka-down:
	$(KAFKA) down

kafka-status:
	$(KAFKA) status

demo: install kafka-up
	$(BIN)/python dev/demo.py

bench: install jars
	$(BIN)/python -m bench

clean:
	$(KAFKA) down || true
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
