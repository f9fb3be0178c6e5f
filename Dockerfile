# syntax=docker/dockerfile:1
# The vmgitops operator image (the Helm chart's default image.repository).
#   docker build -t ghcr.io/vmgitops/vmgitops:0.1.0 .
# Two stages: the first installs the package and its locked dependencies into a virtual
# environment with uv (from uv.lock, without dev dependencies); the second is a slim
# Python with git and ssh (for Git sources) that runs it as a non-root user.
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/vmgitops
WORKDIR /src
# Dependencies first (a layer that only changes with uv.lock), then the package.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY operator ./operator
RUN uv sync --frozen --no-dev --no-editable

FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="vmgitops" \
      org.opencontainers.image.description="GitOps for plain VMs over SSH: the vmgitops operator" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vmgitops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/vmgitops --create-home \
      --shell /usr/sbin/nologin vmgitops \
 && mkdir -p /var/cache/vmgitops \
 && chown 10001:10001 /var/cache/vmgitops
COPY --from=build /opt/vmgitops /opt/vmgitops
ENV PATH=/opt/vmgitops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/vmgitops \
    VMGITOPS_CACHE_DIR=/var/cache/vmgitops/git
# Numeric, so that Kubernetes can check runAsNonRoot (the chart runs it as 10001 too).
USER 10001:10001
WORKDIR /home/vmgitops
# 8080: /metrics; 8081: kopf's health endpoint (--liveness).
EXPOSE 8080 8081
ENTRYPOINT ["vmgitops"]
CMD ["run", "--liveness=http://0.0.0.0:8081/healthz"]
