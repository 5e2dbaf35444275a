# Reliability (docs/reliability.md). `make chaos` runs the fault and overload scenarios
# against real processes on loopback (2 replicas of every service, Redis, dnsmasq) in a few
# minutes and writes chaos/results/. Niced: the machine is shared.
.PHONY: chaos lint-chaos

CHAOS_NICE ?= nice -n 10
CHAOS_OUT ?= chaos/results
CHAOS_ARGS ?=

chaos: bootstrap  ## fault + overload scenarios, 2 replicas per service (~5 min) -> chaos/results/
	@command -v dnsmasq >/dev/null || echo "chaos: dnsmasq missing (apt-get install dnsmasq-base): static address lists instead of DNS"
	$(CHAOS_NICE) $(PY) -m chaos.run --out $(CHAOS_OUT) $(CHAOS_ARGS)

lint-chaos: bootstrap  ## ruff + mypy over the chaos harness (part of `make lint`)
	$(VENV)/bin/ruff check chaos
	$(VENV)/bin/ruff format --check chaos
	$(VENV)/bin/mypy chaos

# The harness is linted with everything else.
lint: lint-chaos
