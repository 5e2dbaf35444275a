# API hygiene for protos/ (config: buf.yaml). `make api-check` lints the protos (STANDARD) and
# fails on changes that break the last release (FILE), compared with a Buf image of that
# release's protos committed in api/. The buf CLI is pinned in package.json/package-lock.json
# and installed into node_modules/ by scripts/bootstrap.sh.
# Baseline: api/recserve-v1-48525e8.binpb was made by `make api-baseline` with
# API_BASELINE_REV=48525e8 (the last landed release): protos/ as of that commit (git archive,
# read-only) built with `buf build --exclude-source-info`. To refresh it at a release: set
# API_BASELINE_REV to the release's commit or tag, run `make api-baseline`, delete the old
# image, drop the buf.yaml breaking.ignore_only entries made for the previous baseline, commit.
.PHONY: api-check api-baseline

BUF := node_modules/.bin/buf
API_BASELINE_REV ?= 48525e8
API_BASELINE := api/recserve-v1-$(API_BASELINE_REV).binpb

api-check: bootstrap  ## buf lint + buf breaking against the last release's API (api/)
	$(BUF) lint
	$(BUF) breaking --against $(API_BASELINE)

api-baseline: bootstrap  ## build the baseline image of protos/ at API_BASELINE_REV into api/
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  git archive $(API_BASELINE_REV) protos | tar -x -C "$$tmp" && \
	  $(BUF) build "$$tmp/protos" --exclude-source-info -o $(API_BASELINE)
