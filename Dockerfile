# syntax=docker/dockerfile:1.7
# One image for every recserve process; the command picks the role:
#   python -m recserve.gateway | recserve.embedding_store | recserve.candidates | recserve.ranking
#   python -m recserve.training train|publish|gc ...
#   python -m recserve.client recommend --target HOST:50051 --user-id 1   (helm test)
# Build: make image (docker build -t $(IMAGE) .). make image-test builds it with buildah on a
# Debian base and runs every role the chart runs (mk/image.mk).
# Optional build secrets for pip, mounted only while pip runs and never stored in a layer:
#   pip_conf: a pip.conf (e.g. a mirror's index-url); pip_ca: a CA bundle it may name as
#   /run/secrets/pip_ca. e.g. docker build --secret id=pip_conf,src=pip.conf ...
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build stage: a venv with the locked dependencies and the project -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/recserve
ENV PATH=/opt/recserve/bin:$PATH
# Dependencies first, pinned with hashes (`make lock`), so that code edits do not invalidate
# the (slow) dependency layer.
COPY requirements.lock ./
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip_ca \
    pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY services ./services
# pip check: the lock must hold every dependency of the project. The .pyc files stay: the
# runtime root filesystem is read-only, so Python could not cache them at start-up.
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip_ca \
    pip install --no-cache-dir --no-deps . \
 && pip check \
 && python -c "import recserve.gateway, recserve.training"

# ---- runtime stage: the venv only, no compilers, no pip configuration, non-root ----------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
LABEL org.opencontainers.image.title="recserve" \
      org.opencontainers.image.description="Real-time item recommender (gRPC services and trainer)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid ${UID} recserve \
 && useradd --system --uid ${UID} --gid ${UID} --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin recserve
COPY --from=build /opt/recserve /opt/recserve
ENV PATH=/opt/recserve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECSERVE_GRPC_PORT=50051 \
    RECSERVE_METRICS_PORT=9464 \
    RECSERVE_BUNDLE_DIR=/bundles
WORKDIR /tmp
USER ${UID}:${UID}
EXPOSE 50051 9464
# Kubernetes probes the gRPC health service natively (see helm/recserve); no HEALTHCHECK here.
CMD ["python", "-m", "recserve.gateway"]
