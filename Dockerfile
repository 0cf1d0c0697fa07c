# faasd itself, for docker-compose.yml: the daemon in a container that drives
# the host's Docker engine through its socket.
#
# `faasd images build --source . faasd` (make compose) builds it, on a local
# Debian base (--build-arg BASE_IMAGE=faasd/base-faasd:bookworm) when the
# default base cannot be pulled; `docker compose build` builds it on the
# default base. It carries the runtimes' recipes: faasd builds its runtime
# images itself on its first start.
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}

ENV VIRTUAL_ENV=/opt/faasd \
    PATH=/opt/faasd/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# 1. The dependencies, in their own layer: rebuilt only when pyproject.toml
#    changes. build/docker-ca.crt is optional (the [t] makes the COPY succeed
#    without it): `faasd images build` puts the host's CA bundle there, for hosts
#    whose TLS proxy pip must trust. A venv: Debian's Python refuses pip
#    installs into the system (PEP 668).
COPY pyproject.toml build/docker-ca.cr[t] /src/
# iptables: the host firewall around the functions' network (faasd/engines/firewall.py);
# the local Debian base has it already.
RUN set -eu; \
    if ! command -v iptables >/dev/null; then \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends iptables >/dev/null \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN set -eu; \
    if [ -f /src/docker-ca.crt ]; then export PIP_CERT=/src/docker-ca.crt; fi; \
    python3 -m venv "$VIRTUAL_ENV"; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /src/requirements.txt; \
    pip install --quiet -r /src/requirements.txt "setuptools>=77"

# 2. faasd and the CLI, without network access. Installed in place (-e), so
#    every subpackage under faasd/ and cli/ is found without being listed.
COPY README.md /src/
COPY faasd /src/faasd
COPY cli /src/cli
COPY migrations /src/migrations
COPY runtimes /src/runtimes
COPY brokers /src/brokers
RUN pip install --quiet --no-deps --no-build-isolation -e /src \
    && rm -f /src/docker-ca.crt /src/requirements.txt

# docker-compose.yml runs it in the host's network namespace on 127.0.0.1
# and mounts a named volume at the state dir (no VOLUME here: it would leave
# an anonymous volume behind each container). Runs as root: it talks to the
# Docker socket and sets the host firewall (with NET_ADMIN).
ENV FAASD_HOST=127.0.0.1 \
    FAASD_STATE_DIR=/var/lib/faasd
WORKDIR /var/lib/faasd
EXPOSE 8080
CMD ["faasd"]
