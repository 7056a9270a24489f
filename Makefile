# The same commands locally and in CI. Each target creates the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check bench bench-scale bench-llama llama-server clean

$(STAMP): pyproject.toml setup.py $(wildcard llm_locust/*.c llm_locust/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## make demo: the mock engine + a short seed ladder (1 -> 8 -> 32 users), then the summary
demo: $(STAMP)
	$(VENV)/bin/llm-locust demo

## make test: every test (about 3 minutes on 2 cores)
test: $(STAMP)
	$(PY) -m pytest -q

## make check: lint and types
check: $(STAMP)
	$(VENV)/bin/ruff check llm_locust tests bench locustfiles
	$(VENV)/bin/mypy

## make bench: client capacity, timing error and memory per user against the mock
bench: $(STAMP)
	$(PY) bench/client_capacity.py

## make bench-scale: users per worker process vs events/s and timing error at 1, 2, 4 processes
bench-scale: $(STAMP)
	$(PY) bench/scale.py

## make llama-server: build llama.cpp's llama-server and a tiny model once (~7 min), print their paths
llama-server: $(STAMP)
	$(PY) bench/llama_cpp.py build

## make bench-llama: the seed ladder against llama-server --parallel 1 and --parallel 8
bench-llama: $(STAMP)
	$(PY) bench/llama_ladder.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
