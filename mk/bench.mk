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
