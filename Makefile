# faasd: `make run` serves, `make test` tests; both do all set-up first.
VENV      ?= .venv
PYTHON    ?= python3
STATE_DIR ?= .faasd
BIN       := $(VENV)/bin
export DOCKER_BUILDKIT := 0
export FAASD_STATE_DIR := $(STATE_DIR)

.PHONY: dist run test unit integration images engine browser postgresql nginx venv lint bench bench-quick compose clean

## run: set everything up, then serve faasd in the foreground on 127.0.0.1:8080
run: venv images
	$(BIN)/faasd

## test: set everything up, then run the whole test suite (unit + real engine)
test: venv images browser postgresql nginx
	$(BIN)/pytest

unit: venv postgresql
	$(BIN)/pytest tests/unit

integration: venv images browser postgresql nginx
	$(BIN)/pytest tests/integration tests/runtimes tests/cluster

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
	    && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv" >&2; exit 1; fi; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

## engine: make sure a Docker engine answers (installs and starts one on Debian as root)
engine:
	@bash scripts/ensure-docker.sh

## browser: make sure a headless Chromium is there (installs Debian's chromium as root), for the dashboard tests
browser:
	@bash scripts/ensure-chromium.sh

## postgresql: make sure PostgreSQL's server is installed (Debian's postgresql as root; its own cluster stays off),
# for the tests that run the registry on a real PostgreSQL (tests/postgres.py)
postgresql:
	@bash scripts/ensure-postgresql.sh

## nginx: make sure nginx is installed (Debian's nginx as root; the system's stays stopped), for the
# cluster test: two faasd nodes behind deploy/nginx.conf (tests/cluster/)
nginx:
	@bash scripts/ensure-nginx.sh

## images: build the runtime, builder and broker images (only when missing or changed)
images: venv engine
	$(BIN)/faasd images build --brokers

## bench: the benchmark suite (~30 min): prints the table and rewrites BENCHMARKS.md
bench: venv images postgresql
	@bash bench/ensure-wrk.sh
	$(BIN)/python -m bench

## bench-quick: every benchmark phase with tiny samples (CI: proves it runs, not that it is fast)
bench-quick: venv images postgresql
	@bash bench/ensure-wrk.sh
	$(BIN)/python -m bench --quick

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p faasd
	$(BIN)/lint-imports
	@# The CLI's folder (cli/) installs as faas_cli: show mypy that name.
	@mkdir -p build/mypy && ln -sfn $(CURDIR)/cli build/mypy/faas_cli
	MYPYPATH=build/mypy $(BIN)/mypy -p faas_cli

## compose: faasd itself in docker-compose (builds its image and every other one first, on local
# bases where nothing can be pulled) and the brokers: the official images when here or pullable,
# else those `faasd images build --brokers` built
compose: venv engine
	$(BIN)/faasd images build --brokers --source .
	@pick() { docker image inspect "$$1" >/dev/null 2>&1 || timeout 120 docker pull -q "$$1" >/dev/null 2>&1 \
	    && echo "$$1" || echo "$$2"; }; \
	export FAASD_REDIS_IMAGE="$${FAASD_REDIS_IMAGE:-$$(pick redis:7-bookworm faasd/broker-redis:latest)}"; \
	export FAASD_NATS_IMAGE="$${FAASD_NATS_IMAGE:-$$(pick nats:2.10 faasd/broker-nats:latest)}"; \
	echo "docker-compose up -d  (redis: $$FAASD_REDIS_IMAGE, nats: $$FAASD_NATS_IMAGE)"; \
	unset FAASD_STATE_DIR; docker-compose up -d  # the state dir in the container is compose's own

## dist: the sdist and the wheel (what `pip install faasd` installs) in dist/
dist: venv
	rm -rf dist && $(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) $(STATE_DIR) dist .pytest_cache .ruff_cache .mypy_cache
