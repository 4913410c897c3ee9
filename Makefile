# smelt: `make demo` and `make test` each set up .venv when missing, install, and run.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
PYTEST    ?= $(BIN)/python -m pytest
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=

.PHONY: install demo test test-fast lint format bench ui clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	# torch first and alone: it takes the CPU wheel; the constraints then keep it.
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/smelt demo

test: $(STAMP)
	$(PYTEST) -q -ra

test-fast: $(STAMP)
	$(PYTEST) -q -m "not slow" -x

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	bash bench/run.sh

ui: $(STAMP)
	$(BIN)/smelt server

clean:
	rm -rf $(VENV) smelt-data .pytest_cache
