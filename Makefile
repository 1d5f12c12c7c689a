# agentstream — two commands do all set-up on a fresh machine:
#   make up    the whole stack (Kafka, ministack, bridge, worker, gateway); chat widget on http://localhost:8080
#   make test  installs, starts the services the tests need, runs the whole suite, stops them
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export AGENTSTREAM_HOME ?= $(CURDIR)/.local

.PHONY: up test unit install services tools browser schemas bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

tools:
	@command -v java >/dev/null || { echo "Java 17+ is missing: install it (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is missing: install it (Debian: apt-get install maven)"; exit 1; }

# Kafka's jars from Maven Central and ministack's own virtualenv, once, under $(AGENTSTREAM_HOME).
services: install tools
	$(BIN)/python -c 'from agentstream.local.services import LocalHome; from pathlib import Path; h = LocalHome(Path("$(AGENTSTREAM_HOME)")); h.install_kafka(); h.install_ministack()'

up: services
	$(BIN)/agentstream up

# Debian's Chromium for the browser test (test tools' own browser downloads do not work here).
browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ; } || \
	  { echo "chromium is missing: install Debian's chromium package"; exit 1; }

test: services browser
	$(BIN)/pytest -q -p no:cacheprovider

unit: install
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

schemas: install
	$(BIN)/agentstream schemas --out schemas

clean:
	rm -rf $(VENV) .local build *.egg-info
