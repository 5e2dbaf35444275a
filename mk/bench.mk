# Benchmarks (docs/benchmarks.md): `make bench` is the few-minute version, `make bench-full`
# the one whose numbers the docs quote. Heavy runs are niced: the machine is shared.
.PHONY: bench bench-full loadtest

BENCH_NICE ?= nice -n 10
BENCH_OUT ?= loadtest/results
STACK_JSON ?= $(RUN_DIR)/stack.json
# Benchmark the stack when one is reachable ($RECSERVE_TARGET or `make up`); else only the
# echo-server floor, so the machinery still runs on a fresh checkout.
BENCH_TARGET_ARGS = $(if $(or $(RECSERVE_TARGET),$(wildcard $(STACK_JSON))),--stack-json $(STACK_JSON),--no-stack)
LOCUST_USERS ?= 20
LOCUST_RATE ?= 100
LOCUST_DURATION ?= 60s

bench: bootstrap  ## short benchmarks (a few minutes) into loadtest/results/quick/
	$(BENCH_NICE) $(PY) -m loadtest.openloop $(BENCH_TARGET_ARGS) --duration 4 --start-rate 50 \
	  --factor 2 --max-rate 3200 --refine 1 --out $(BENCH_OUT)/quick/openloop.json
	$(BENCH_NICE) $(PY) -m loadtest.ann_bench --synthetic-n 100000 --queries 500 \
	  --out $(BENCH_OUT)/quick/ann.json
	$(PY) -m loadtest.hpa --openloop $(BENCH_OUT)/quick/openloop.json \
	  --out $(BENCH_OUT)/quick/hpa.json --targets-out $(BENCH_OUT)/quick/hpa_targets.json

bench-full: bootstrap  ## every benchmark in docs/benchmarks.md (1M-vector ANN: ~30 min)
	$(BENCH_NICE) $(PY) -m loadtest.openloop $(BENCH_TARGET_ARGS) --duration 10 --start-rate 100 \
	  --factor 1.5 --max-rate 6000 --refine 2 --out $(BENCH_OUT)/openloop.json
	$(BENCH_NICE) $(PY) -m loadtest.ann_bench --synthetic-n 1000000 --queries 1000 \
	  --out $(BENCH_OUT)/ann.json
	$(PY) -m loadtest.hpa --openloop $(BENCH_OUT)/openloop.json --out $(BENCH_OUT)/hpa.json \
	  --targets-out $(BENCH_OUT)/hpa_targets.json

loadtest: bootstrap  ## locust, headless (LOCUST_USERS/RATE/DURATION; RECSERVE_TARGET or make up)
	RECSERVE_LOCUST_USERS=$(LOCUST_USERS) RECSERVE_LOCUST_RATE=$(LOCUST_RATE) \
	  RECSERVE_LOCUST_DURATION=$(LOCUST_DURATION) $(VENV)/bin/locust -f loadtest/locustfile.py \
	  --only-summary

# Bench-only quality anchors (docs/training.md, "Anchors"): RecBole's BPR, GRU4Rec and SASRec on
# the training pipeline's exact split, in their own venv (never a product dependency). Niced and
# run one after the other; SASRec is capped (ANCHOR_EPOCHS_SASREC) and reported as a lower bound.
ANCHORS_VENV ?= .venv-anchors
ANCHORS_DIR ?= build/anchors
ANCHOR_EPOCHS_BPR ?= 300
ANCHOR_EPOCHS_GRU4REC ?= 60
ANCHOR_EPOCHS_SASREC ?= 8
ANCHOR_NICE ?= nice -n 19
ANCHORS_PY = $(abspath $(ANCHORS_VENV))/bin/python

.PHONY: anchors anchors-venv
anchors-venv:  ## the anchors' own venv: recbole 1.2.1 --no-deps, numpy 1.26, CPU torch
	test -x $(ANCHORS_PY) || python3 -m venv $(ANCHORS_VENV)
	$(ANCHORS_PY) -m pip install -q torch==2.13.0 numpy==1.26.4 "pandas<2.3" "scipy<1.14" \
	  "scikit-learn<1.6" colorlog colorama tensorboard texttable pyyaml thop tabulate plotly ray
	$(ANCHORS_PY) -m pip install -q --no-deps recbole==1.2.1

anchors: bootstrap  ## RecBole BPR/GRU4Rec/SASRec on our exact split (slow: ~1 h on 2 cores)
	$(PY) -m tools.anchors.export_split --out $(ANCHORS_DIR)
	cd $(ANCHORS_DIR) && for spec in BPR:$(ANCHOR_EPOCHS_BPR) GRU4Rec:$(ANCHOR_EPOCHS_GRU4REC) \
	    SASRec:$(ANCHOR_EPOCHS_SASREC); do model=$${spec%%:*}; \
	  $(ANCHOR_NICE) $(ANCHORS_PY) $(abspath tools/anchors/run_recbole.py) --data . \
	    --model $$model --epochs $${spec##*:} --out $$model.json > $$model.log 2>&1 || exit 1; \
	  done
