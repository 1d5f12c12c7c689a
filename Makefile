# agentstream — two commands do all set-up on a fresh machine:
#   make up    the whole stack (Kafka, ministack, bridge, worker, gateway); chat widget on http://localhost:8080
#   make test  installs, starts the services the tests need, runs the whole suite, stops them
# and for those who work on it:
#   make unit         the unit tests alone (in-process servers only, under a minute)
#   make soak         each process test that kills or races processes 20 times in a row, then the
#                     large sizes (100 000 customers, 1 000 messages of load...); before a release
#   make screenshots  the inbox screenshots in docs/, taken by the browser test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export AGENTSTREAM_HOME ?= $(CURDIR)/.local

PYTEST := $(BIN)/pytest -q -p no:cacheprovider
# Modules run on parallel workers, each module whole on one worker (its module-scoped stack is
# shared by its tests); each worker starts its own Kafka and ministack. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
# The tests `make soak` runs at full size, once each (AGENTSTREAM_SOAK=1, see tests/sizes.py).
LARGE := tests/integration/test_costs_at_scale.py tests/e2e/test_scale_load.py \
         tests/integration/test_bridge_crash.py tests/unit/test_facts.py \
         tests/integration/test_spend_ceiling.py tests/e2e/test_service_restarts.py

.PHONY: up test unit soak screenshots install services tools browser schemas bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed (found $$($(PYTHON) --version))"; exit 1; }
	@echo "installing agentstream and its development tools into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
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
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile

unit: install
	$(PYTEST) tests/unit

# Services of its own (each pytest session starts its own Kafka and ministack).
soak: services browser
	$(PYTEST) -m soak --count 20 -x
	AGENTSTREAM_SOAK=1 $(PYTEST) $(LARGE)

screenshots: services browser
	AGENTSTREAM_SCREENSHOTS=$(CURDIR)/docs $(PYTEST) tests/e2e/test_inbox_browser.py

schemas: install
	$(BIN)/agentstream schemas --out schemas

clean:
	rm -rf $(VENV) .local build *.egg-info
