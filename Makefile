# The same commands locally and in CI. Each target creates the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-latest check bench bench-scale bench-llama llama-server fuzz soak clean

$(STAMP): pyproject.toml setup.py $(wildcard llm_locust/_native/*.c llm_locust/_native/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## make demo: the mock engine + a short seed ladder (1 -> 8 -> 32 users, 6 s each), then the summary
## (the same as `llm-locust demo` after `pip install .`, from any directory)
demo: $(STAMP)
	$(VENV)/bin/llm-locust demo

## make test: every test (about 10 minutes on 2 cores once llama-server is built): the in-process and
## llama-server layers one test at a time, then the e2e and browser layers two at a time (pytest-xdist:
## their tests mostly wait on child processes); both always run, and either failing fails the target
test: $(STAMP)
	@$(PY) -m pytest -q tests/unit tests/engine; first=$$?; \
	$(PY) -m pytest -q -n 2 tests/e2e tests/browser; second=$$?; \
	test $$first -eq 0 -a $$second -eq 0

## make test-latest: the suite against the newest releases of locust, geventhttpclient and hdrhistogram,
## installed in $(LATEST_VENV) above pyproject.toml's upper bounds (we use their private internals), so that
## raising a bound is a decision; TEST_ARGS narrows it (e.g. TEST_ARGS=tests/unit). Needs the registry.
LATEST_VENV ?= .venv-latest
BOUNDED := locust geventhttpclient hdrhistogram
TEST_ARGS ?=
$(LATEST_VENV)/.installed: pyproject.toml setup.py $(wildcard llm_locust/_native/*.c llm_locust/_native/*.h)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $@
test-latest: $(LATEST_VENV)/.installed
	@# pip then reports that llm-locust's bounds are not met (and exits 0): that is the point here
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade $(BOUNDED)
	$(LATEST_VENV)/bin/python -m pip list 2>/dev/null | grep -iE '^(locust|geventhttpclient|hdrhistogram) '
	LLM_LOCUST_UNBOUNDED="$(BOUNDED)" $(LATEST_VENV)/bin/python -m pytest -q $(TEST_ARGS)

## make check: lint and types
check: $(STAMP)
	$(VENV)/bin/ruff check llm_locust tests bench locustfiles fuzz
	$(VENV)/bin/mypy

## make bench: client capacity, timing error and memory per user against the mock, then events per
## client CPU-second of every API flavor beside bare Locust at 512 streams, then synthetic workloads
## against the fixed prompt and the time to prepare 10,000 samples
bench: $(STAMP)
	$(PY) bench/client_capacity.py
	$(PY) bench/flavors.py
	$(PY) bench/workloads.py

## make bench-scale: users per worker process vs events/s and timing error at 1, 2, 4 processes
bench-scale: $(STAMP)
	$(PY) bench/scale.py

## make llama-server: build llama.cpp's llama-server and a tiny model once (~7 min), print their paths
llama-server: $(STAMP)
	$(PY) bench/llama_cpp.py build

## make bench-llama: the seed ladder against llama-server --parallel 1 and --parallel 8
bench-llama: $(STAMP)
	$(PY) bench/llama_ladder.py

## make fuzz: coverage-guided fuzzing of the stream readers (atheris), FUZZ_SECONDS per target,
## FUZZ_JOBS at a time, then C line coverage and an ASan/UBSan replay of the corpora
FUZZ_SECONDS ?= 300
FUZZ_JOBS ?= 2
fuzz: $(STAMP)
	$(PY) -m pip install -q 'atheris>=2.3'
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) --c-coverage --asan

## make soak: 1,000 users against the mock for 30 min, 1 % faults of every kind, --processes 2:
## RSS, fds and greenlets of every process over time, and exact counts (SOAK_ARGS for bench/soak.py)
soak: $(STAMP)
	$(PY) bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info fuzz/work fuzz/artifacts
