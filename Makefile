# `make run` sets up .venv (if needed) and simulates the bundled example scenario;
# `make test` sets up .venv (if needed) and runs the whole test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
SCENARIO ?= examples/llama3-8b-h100-shared-prefix.yaml

.PHONY: run test bench validate clean

run: $(STAMP)
	$(VENV)/bin/servesim run $(SCENARIO)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/hour_of_chat.py

validate: $(STAMP)
	$(VENV)/bin/python benchmarks/validation_page.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
