# syntax=docker/dockerfile:1
# lictor: the gateway, and with `--egress` the egress sidecar (docs/sidecar.md).
#   docker build -t lictor:0.1.0 .                        # lictor itself
#   docker build -t lictor-init:0.1.0 --target init .     # the pod's iptables redirect
# No network at build time beyond the package registries (PyPI for the lock, Debian for
# iptables in the init image). Base image pinned by digest: python:3.11.11-slim-bookworm
# (multi-arch index). Refresh it with `docker buildx imagetools inspect <tag>`.
ARG BASE=python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5

FROM ${BASE} AS build
WORKDIR /src
COPY requirements/serve.lock requirements/serve.lock
RUN python -m venv /opt/lictor \
 && /opt/lictor/bin/pip install --no-cache-dir --require-hashes --no-deps \
      -r requirements/serve.lock
COPY pyproject.toml README.md ./
COPY proxy proxy
COPY adapters adapters
COPY enforcement enforcement
COPY rules rules
COPY audit audit
RUN /opt/lictor/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
 && /opt/lictor/bin/python -c "import lictor.proxy.cli, mitmproxy"

FROM ${BASE} AS lictor
# uid 1337: the init container's redirect leaves this user's traffic alone
RUN useradd --system --uid 1337 --user-group --create-home --home-dir /var/lib/lictor lictor
COPY --from=build /opt/lictor /opt/lictor
ENV PATH=/opt/lictor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True
USER 1337:1337
WORKDIR /var/lib/lictor
EXPOSE 8787 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2)"]
ENTRYPOINT ["lictor"]
CMD ["serve", "--data-dir", "/var/lib/lictor/var"]

FROM ${BASE} AS init
# Runs once per pod, as root with NET_ADMIN: sends the pod's TCP to lictor's egress port.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/k8s/redirect-egress.sh /usr/local/bin/redirect-egress
ENTRYPOINT ["/usr/local/bin/redirect-egress"]

# the default target is lictor itself
FROM lictor
