# Lock file and the container image built and run without a Docker engine (buildah).
.PHONY: lock image-test image-clean

LOCK_ARGS ?=
BASE_IMAGE ?= localhost/recserve-base:bookworm
TEST_IMAGE ?= localhost/recserve:test

lock: bootstrap  ## re-pin requirements.lock (runtime deps, hashed) from pyproject.toml; LOCK_ARGS=--upgrade bumps
	$(VENV)/bin/uv pip compile pyproject.toml -o requirements.lock --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --generate-hashes \
	  --custom-compile-command "make lock" --quiet $(LOCK_ARGS)

image-test: bootstrap  ## build the image with buildah on a Debian base, run every chart role from it
	BASE_IMAGE=$(BASE_IMAGE) IMAGE=$(TEST_IMAGE) VENV=$(VENV) ./scripts/image-test.sh

image-clean:  ## remove the image-test images and buildah's layer cache (each code change adds ~0.6 GB)
	buildah rmi --force $(TEST_IMAGE) $(BASE_IMAGE) 2>/dev/null || true
	buildah rmi --prune >/dev/null
