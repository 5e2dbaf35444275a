# syntax=docker/dockerfile:1.7
# One image for every recserve process; the command picks the role:
#   python -m recserve.gateway | recserve.embedding_store | recserve.candidates | recserve.ranking
#   python -m recserve.training train|publish|gc ...
#   python -m recserve.client recommend --target HOST:50051 --user-id 1   (helm test)
# Build: make image   (docker build -t $(IMAGE) .)
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build stage: wheels for the project and its pinned dependencies -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/recserve
ENV PATH=/opt/recserve/bin:$PATH
# Dependencies first so that code edits do not invalidate the (slow) dependency layer.
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install --no-cache-dir . \
 && python -c "import recserve" \
 && find /opt/recserve -name '__pycache__' -prune -exec rm -rf {} +

# ---- runtime stage: the venv only, no compilers, no pip cache, non-root -----------------
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
