# smelt: `make demo` and `make test` each set up .venv when missing, install, and run.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
PYTEST    ?= $(BIN)/python -m pytest
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=

.PHONY: install demo test test-fast mutants lint format bench ui clean

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

# Break each claimed behaviour on purpose (tests/mutants/catalog.py), in a copy of the tree, and
# fail unless every test named for it goes red. One mutant: make mutants MUTANTS="--only NAME".
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants $(MUTANTS)

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
