# agentstream — two commands do all set-up on a fresh machine:
#   make up    the whole stack (Kafka, ministack, bridge, worker, gateway); chat widget on http://localhost:8080
#   make test  installs, starts the services the tests need, runs the whole suite, stops them
# and for those who work on it:
#   make unit         the unit tests alone (in-process servers only, under a minute)
#   make soak         each process test that kills or races processes 20 times in a row, then the
#                     large sizes (100 000 customers, 1 000 messages of load...); before a release
#   make screenshots  the inbox screenshots in docs/, taken by the browser test
#   make docs         the docs site (mkdocs-material) into site/, strict: a broken link fails
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export AGENTSTREAM_HOME ?= $(CURDIR)/.local

PYTEST := $(BIN)/pytest -q -p no:cacheprovider
# Tests run on parallel workers: those of a module that boots a stack for all of them together on
# one worker, any other test on whichever worker is free (xdist groups, tests/conftest.py); the
# workers share one Kafka and ministack. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
# The tests `make soak` runs at full size, once each (AGENTSTREAM_SOAK=1, see tests/sizes.py).
LARGE := tests/integration/test_costs_at_scale.py tests/integration/test_bounded_memory.py \
         tests/integration/test_bridge_crash.py tests/unit/test_facts.py tests/unit/test_fold_version_bump.py \
         tests/integration/test_spend_ceiling.py tests/e2e/test_kills_under_load.py \
         tests/unit/test_dead_letters.py tests/unit/test_settled_heads.py tests/unit/test_reminder_timer.py \
         tests/unit/test_analytics.py

.PHONY: up test unit soak screenshots install services tools browser schemas bench clean docs

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed (found $$($(PYTHON) --version))"; exit 1; }
	@echo "installing agentstream and its development tools into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@# setuptools notes "Editable installation ... folders with the same name as your package" on
	@# every editable install of a package-dir layout (ours: the folder agentstream is the package):
	@# a note, not a fault, kept off a fresh machine's first screen
	@PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e '.[dev]'
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
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup

# Without the store contract's ministack case (marked integration: `make test` runs it), so
# nothing but in-process servers (moto, the fakes) starts.
unit: install
	$(PYTEST) -n $(TEST_WORKERS) -m "not integration" tests/unit

# Services of its own (each pytest session starts its own Kafka and ministack).
soak: services browser
	$(PYTEST) -m soak --count 20 -x
	AGENTSTREAM_SOAK=1 $(PYTEST) $(LARGE)

screenshots: services browser
	AGENTSTREAM_SCREENSHOTS=$(CURDIR)/docs $(PYTEST) tests/e2e/test_inbox_browser.py

schemas: install
	$(BIN)/agentstream schemas --out schemas

# never --quiet: it hides the warnings --strict counts
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .local build *.egg-info site
