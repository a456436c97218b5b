# Critic: two commands for a fresh machine, `make run` and `make test`.
# Every target sets up what it needs; set-up is skipped when already current.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .tools/sam
CHECKOV_VENV := .tools/checkov
PIP_FLAGS := --disable-pip-version-check --quiet
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test setup tools browser bench evaluate deploy fuzz lock clean help

help:
	@echo "make run    start the local stack (S3, SageMaker, API, web page) on 127.0.0.1"
	@echo "make test   set up and run every test"
	@echo "make bench  print throughput and latency figures of the shipped model (DATA=aclImdb_v1.tar.gz)"
	@echo "make fuzz   1,000 Hypothesis examples per fuzz target"
	@echo "make load   load the local stack and print latency percentiles"
	@echo "make deploy deploy to AWS (see README)"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/main.txt requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install $(PIP_FLAGS) --upgrade 'pip<27' 'setuptools<81' wheel
	@echo "installing pinned dependencies into $(VENV) (first time: a few minutes)"
	@$(BIN)/pip install $(PIP_FLAGS) -r requirements/main.txt -c requirements/constraints.txt
	@$(BIN)/pip install $(PIP_FLAGS) --no-deps --no-build-isolation -e .
	@touch $@

tools: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

$(SAM_VENV)/.installed: requirements/sam.txt requirements/sam-constraints.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	@echo "installing aws-sam-cli into $(SAM_VENV)"
	@$(SAM_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/sam.txt -c requirements/sam-constraints.txt
	@touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.txt requirements/checkov-constraints.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo "installing checkov into $(CHECKOV_VENV)"
	@$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/checkov.txt -c requirements/checkov-constraints.txt
	@touch $@

browser:
	@scripts/ensure-chromium.sh

run: setup
	$(BIN)/critic serve $(SERVE_ARGS)

test: setup tools browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# DATA: aclImdb_v1.tar.gz or its folder; empty downloads the official tarball.
DATA ?=
DATA_FLAG := $(if $(DATA),--data $(DATA),)

bench: setup
	$(BIN)/critic bench $(DATA_FLAG)

evaluate: setup
	$(BIN)/critic evaluate $(DATA_FLAG)

# Deploy to AWS (README, "Deploy to AWS"), e.g. make deploy DEPLOY_ARGS="--region eu-west-1".
# The us-east-1 default above serves the offline tools; a deployment uses your
# region (AWS_REGION, ~/.aws/config, samconfig.toml or --region), not that one.
deploy: setup $(SAM_VENV)/.installed
	$(if $(filter file,$(origin AWS_DEFAULT_REGION)),env -u AWS_DEFAULT_REGION )$(BIN)/critic deploy $(DEPLOY_ARGS)

# Load on the local stack (127.0.0.1 only, bounded): LOAD_ARGS="--duration 10".
load: setup
	$(BIN)/python scripts/load_local.py $(LOAD_ARGS)

fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests -k fuzz

# Re-resolve and re-pin the dependencies of all three venvs.
lock:
	rm -rf /tmp/critic-lock && $(PYTHON) -m venv /tmp/critic-lock
	/tmp/critic-lock/bin/pip install $(PIP_FLAGS) 'setuptools<81' -r requirements/main.txt
	/tmp/critic-lock/bin/pip freeze --exclude-editable | grep -v '^critic' > requirements/constraints.txt

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache
